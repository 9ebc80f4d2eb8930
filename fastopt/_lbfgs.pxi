# _lbfgs.pxi — Cython boundary of the L-BFGS core (csrc/lbfgs.c) and the L-BFGS-B core (csrc/lbfgsb.c);
# included by _kernels.pyx, and it holds its own `cdef extern` blocks (nothing in _kernels.pxd).
# It checks and pins the caller's NumPy buffers, fills the C work structs and advances the state machines; it
# publishes each core's state layout (field tables) and its one table of stop codes and messages.
# No algorithm here: the Python drivers (fastopt/minimize.py, fastopt/optim/lbfgs.py) own the loop and the
# user's function.

from libc.stdint cimport int64_t, uintptr_t
from libc.stdlib cimport calloc, free
cimport numpy as cnp
import numpy as _np


cdef extern from "fo_lbfgs.h" nogil:
    cdef enum:
        FO_LBFGS_EVAL
        FO_LBFGS_ITER
        FO_LBFGS_NEED_SLOT
        FO_LBFGS_STOP
        FO_LBFGS_CONV_GRAD
        FO_LBFGS_CONV_F
        FO_LBFGS_CONV_X
        FO_LBFGS_CONV_GTD
        FO_LBFGS_MAX_ITER
        FO_LBFGS_MAX_EVAL
        FO_LBFGS_LS_FAILED
        FO_LBFGS_NONFINITE
        FO_LBFGS_ERR_ARG
        FO_LBFGS_ERR_STATE
        FO_LBFGS_NCODES
    ctypedef struct fo_state_field:
        const char *name
        int64_t offset
        char kind
        int64_t count
    ctypedef struct fo_stop_code:
        int code
        int status
        const char *message
    const fo_stop_code *fo_lbfgs_codes
    const fo_state_field *fo_lbfgs_fields
    const int64_t fo_lbfgs_nfields
    const int64_t fo_lbfgs_state_size
    ctypedef struct fo_lbfgs_state:
        pass
    ctypedef struct fo_lbfgs_hyper:
        double lr, tolerance_grad, tolerance_change, ftol, ls_tolerance_change, c1, c2, curv_abs, curv_rel
        int64_t max_iter, max_eval, max_ls, line_search, eval_last, report_iter, restart_bad_dir
    ctypedef struct fo_lbfgs_work:
        int64_t n, m
        void *x
        void *g
        void *d
        void *x0
        void *prev_g
        void *gb0
        void *gb1
        void *xbest
        void *gbest
        void **old_dirs
        void **old_stps
        double *ro
        double *al
        fo_lbfgs_state *st
    int fo_lbfgs_run_f32(const fo_lbfgs_work *w, const fo_lbfgs_hyper *h, double f)
    int fo_lbfgs_run_f64(const fo_lbfgs_work *w, const fo_lbfgs_hyper *h, double f)
    int fo_lbfgs_direction_f32(const fo_lbfgs_work *w)
    int fo_lbfgs_direction_f64(const fo_lbfgs_work *w)
    double fo_lbfgs_cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                                      int has_bounds, double lo, double hi)

# task / stop codes and state sizes, from the C header (one source of truth)
LBFGS_EVAL = FO_LBFGS_EVAL
LBFGS_ITER = FO_LBFGS_ITER
LBFGS_NEED_SLOT = FO_LBFGS_NEED_SLOT
LBFGS_STOP = FO_LBFGS_STOP
LBFGS_CONV_GRAD = FO_LBFGS_CONV_GRAD
LBFGS_CONV_F = FO_LBFGS_CONV_F
LBFGS_CONV_X = FO_LBFGS_CONV_X
LBFGS_CONV_GTD = FO_LBFGS_CONV_GTD
LBFGS_MAX_ITER = FO_LBFGS_MAX_ITER
LBFGS_MAX_EVAL = FO_LBFGS_MAX_EVAL
LBFGS_LS_FAILED = FO_LBFGS_LS_FAILED
LBFGS_NONFINITE = FO_LBFGS_NONFINITE


cdef tuple _fields(const fo_state_field *t, int64_t k):
    return tuple((t[i].name.decode(), t[i].offset, chr(t[i].kind), t[i].count) for i in range(k))


cdef dict _codes(const fo_stop_code *t, int64_t k):
    return {t[i].code: (t[i].status, t[i].message.decode()) for i in range(k)}


#: (name, byte offset, 'i' int64 / 'f' double, count) for every field of fo_lbfgs_state, and its size in bytes
LBFGS_FIELDS = _fields(fo_lbfgs_fields, fo_lbfgs_nfields)
LBFGS_STATE_SIZE = fo_lbfgs_state_size
#: stop code -> (scipy status, message), from the C table fo_lbfgs_codes
LBFGS_CODES = _codes(fo_lbfgs_codes, FO_LBFGS_NCODES)


def lbfgs_cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2, bounds=None):
    """The line search's cubic interpolation step (torch's _cubic_interpolate); for tests."""
    if bounds is None:
        return fo_lbfgs_cubic_interpolate(x1, f1, g1, x2, f2, g2, 0, 0.0, 0.0)
    lo, hi = bounds
    return fo_lbfgs_cubic_interpolate(x1, f1, g1, x2, f2, g2, 1, lo, hi)


cdef inline void *_lb_vec(object a, str name, object dtype, int64_t n) except NULL:
    if not isinstance(a, _np.ndarray):
        raise TypeError(f"L-BFGS buffer {name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"L-BFGS buffer {name}: expected dtype {dtype}, got {a.dtype}")
    if a.size != n:
        raise ValueError(f"L-BFGS buffer {name}: expected {n} elements, got {a.size}")
    if not a.flags.c_contiguous or not a.flags.aligned or not a.flags.writeable:
        raise ValueError(f"L-BFGS buffer {name}: must be C-contiguous, aligned and writeable")
    cdef cnp.ndarray arr = a
    cdef void *p = cnp.PyArray_DATA(arr)
    if p == NULL:   # a 0-element array may have no data: hand C a valid dummy address
        return <void *>&_lb_dummy
    return p

cdef double _lb_dummy = 0.0


cdef void *_lb_record(object st, int64_t size, str what) except NULL:
    """One C-contiguous, aligned, writeable record of exactly the state struct's size."""
    if not isinstance(st, _np.ndarray) or st.dtype.itemsize != size or st.size != 1:
        raise TypeError(f"{what} state: expected one record of the state dtype ({size} bytes)")
    if not st.flags.c_contiguous or not st.flags.aligned or not st.flags.writeable:
        raise ValueError(f"{what} state: must be C-contiguous, aligned and writeable")
    return cnp.PyArray_DATA(<cnp.ndarray>st)


cdef int _lb_disjoint(list arrays, str where) except -1:
    """The C core writes its buffers through restrict pointers and memcpy: no two may share memory."""
    cdef Py_ssize_t i, j
    cdef uintptr_t lo_i, hi_i, lo_j, hi_j
    cdef cnp.ndarray a, b
    for i in range(len(arrays)):
        a = arrays[i]
        lo_i = <uintptr_t>cnp.PyArray_DATA(a)
        hi_i = lo_i + <uintptr_t>cnp.PyArray_NBYTES(a)
        for j in range(i + 1, len(arrays)):
            b = arrays[j]
            lo_j = <uintptr_t>cnp.PyArray_DATA(b)
            hi_j = lo_j + <uintptr_t>cnp.PyArray_NBYTES(b)
            if hi_i > lo_i and hi_j > lo_j and lo_i < hi_j and lo_j < hi_i:
                raise ValueError(f"L-BFGS buffers {i} and {j}{where} share memory; each must be its own array")
    return 0


cdef class LBFGSCore:
    """Pins the NumPy buffers of one L-BFGS problem and runs the C state machine (see csrc/fo_lbfgs.h).

    Vectors (x, g, d, x0, prev_g, gb0, gb1 and, for the fixed step, xbest/gbest) hold n elements of the
    problem's dtype; ro and al hold m float64, st is one record of the state (fields from LBFGS_FIELDS). History slots are
    set one by one with set_slot() (the C core asks for slot HIST_LEN with LBFGS_NEED_SLOT)."""
    cdef fo_lbfgs_work w
    cdef fo_lbfgs_hyper h
    cdef int is64
    cdef object _keep
    cdef list _dirs, _stps
    cdef readonly object dtype
    cdef readonly int64_t n, m

    def __cinit__(self):
        self.w.old_dirs = NULL
        self.w.old_stps = NULL

    def __init__(self, x, g, d, x0, prev_g, gb0, gb1, xbest, gbest, ro, al, st, int64_t m):
        if not isinstance(x, _np.ndarray) or x.dtype not in (_np.float32, _np.float64):
            raise TypeError("L-BFGS buffer x: expected a float32 or float64 numpy.ndarray")
        if m < 1:
            raise ValueError(f"history_size must be at least 1, got {m}")
        dtype = x.dtype
        cdef int64_t n = x.size
        self.dtype = dtype
        self.n = n
        self.m = m
        self.is64 = dtype == _np.float64
        self.w.n = n
        self.w.m = m
        self.w.x = _lb_vec(x, "x", dtype, n)
        self.w.g = _lb_vec(g, "g", dtype, n)
        self.w.d = _lb_vec(d, "d", dtype, n)
        self.w.x0 = _lb_vec(x0, "x0", dtype, n)
        self.w.prev_g = _lb_vec(prev_g, "prev_g", dtype, n)
        self.w.gb0 = _lb_vec(gb0, "gb0", dtype, n)
        self.w.gb1 = _lb_vec(gb1, "gb1", dtype, n)
        self.w.xbest = NULL if xbest is None else _lb_vec(xbest, "xbest", dtype, n)
        self.w.gbest = NULL if gbest is None else _lb_vec(gbest, "gbest", dtype, n)
        self.w.ro = <double *>_lb_vec(ro, "ro", _np.float64, m)
        self.w.al = <double *>_lb_vec(al, "al", _np.float64, m)
        self.w.st = <fo_lbfgs_state *>_lb_record(st, fo_lbfgs_state_size, "L-BFGS")
        self._keep = (x, g, d, x0, prev_g, gb0, gb1, xbest, gbest, ro, al, st)
        _lb_disjoint([a for a in self._keep if a is not None], "")
        free(self.w.old_dirs)   # a second __init__ on the same object must not leak the first ring
        free(self.w.old_stps)
        self.w.old_dirs = <void **>calloc(m, sizeof(void *))
        self.w.old_stps = <void **>calloc(m, sizeof(void *))
        if self.w.old_dirs == NULL or self.w.old_stps == NULL:
            raise MemoryError()
        self._dirs = [None] * m
        self._stps = [None] * m

    def __dealloc__(self):
        free(self.w.old_dirs)
        free(self.w.old_stps)

    def set_slot(self, int64_t k, y, s):
        """Use arrays y (a y_k = g_{k+1} - g_k slot) and s (an s_k = x_{k+1} - x_k slot) as ring slot k."""
        if k < 0 or k >= self.m:
            raise IndexError(f"history slot {k} out of range for history_size {self.m}")
        py = _lb_vec(y, "old_dirs", self.dtype, self.n)
        ps = _lb_vec(s, "old_stps", self.dtype, self.n)
        _lb_disjoint([a for a in self._keep if a is not None] + [y, s], f" (history slot {k})")
        self._dirs[k] = y
        self._stps[k] = s
        self.w.old_dirs[k] = py
        self.w.old_stps[k] = ps

    def set_hyper(self, *, double lr, double tolerance_grad, double tolerance_change, double ftol,
                  double ls_tolerance_change, double c1, double c2, double curv_abs, double curv_rel,
                  int64_t max_iter, int64_t max_eval,
                  int64_t max_ls, bint line_search, bint eval_last, bint report_iter, bint restart_bad_dir):
        if not line_search and (self.w.xbest == NULL or self.w.gbest == NULL):
            raise ValueError("the fixed-step mode needs the xbest and gbest buffers")
        self.h.lr = lr
        self.h.tolerance_grad = tolerance_grad
        self.h.tolerance_change = tolerance_change
        self.h.ftol = ftol
        self.h.ls_tolerance_change = ls_tolerance_change
        self.h.c1 = c1
        self.h.c2 = c2
        self.h.curv_abs = curv_abs
        self.h.curv_rel = curv_rel
        self.h.max_iter = max_iter
        self.h.max_eval = max_eval
        self.h.max_ls = max_ls
        self.h.line_search = line_search
        self.h.eval_last = eval_last
        self.h.report_iter = report_iter
        self.h.restart_bad_dir = restart_bad_dir

    cpdef int run(self, double f) except? -100:
        """Advance the state machine; f is the value at x when the previous task was LBFGS_EVAL."""
        cdef int rc
        if self.is64:
            with nogil:
                rc = fo_lbfgs_run_f64(&self.w, &self.h, f)
        else:
            with nogil:
                rc = fo_lbfgs_run_f32(&self.w, &self.h, f)
        if rc == FO_LBFGS_ERR_ARG:
            raise RuntimeError("L-BFGS core: invalid buffers or hyper-parameters")
        if rc == FO_LBFGS_ERR_STATE:
            raise RuntimeError("L-BFGS core: corrupted state (phase or history indices out of range)")
        return rc

    def direction(self):
        """d = -H g by the two-loop recursion over the stored pairs (for tests)."""
        cdef int rc
        if self.is64:
            rc = fo_lbfgs_direction_f64(&self.w)
        else:
            rc = fo_lbfgs_direction_f32(&self.w)
        if rc != 0:
            raise RuntimeError("L-BFGS core: invalid buffers or history state")


# ---- L-BFGS-B (csrc/lbfgsb.c): bound constraints; named state struct, one code table ------------------

cdef extern from "fo_lbfgsb.h" nogil:
    cdef enum:
        FO_LBFGSB_EVAL
        FO_LBFGSB_ITER
        FO_LBFGSB_STOP
        FO_LBFGSB_NCODES
        FO_LBFGSB_ERR_ARG
        FO_LBFGSB_ERR_STATE
    const fo_stop_code *fo_lbfgsb_codes
    const fo_state_field *fo_lbfgsb_fields
    const int64_t fo_lbfgsb_nfields
    const int64_t fo_lbfgsb_state_size
    ctypedef struct fo_lbfgsb_hyper:
        double ftol, gtol, eps, lr, ls_ftol, ls_gtol, ls_xtol, fabs_tol, xabs_tol
        int64_t max_iter, max_fun, max_ls, line_search, report_iter
    ctypedef struct fo_lbfgsb_state:
        pass
    ctypedef struct fo_lbfgsb_work:
        int64_t n, m
        void *x
        void *g
        const void *lo
        const void *hi
        void *x0
        void *g0
        void *d
        void *z
        void *S
        void *Y
        double *tb
        int64_t *iw
        double *mw
        fo_lbfgsb_state *st
    int64_t FO_LBFGSB_MW_SIZE(int64_t m)
    int fo_lbfgsb_run_f32(const fo_lbfgsb_work *w, const fo_lbfgsb_hyper *h, double f)
    int fo_lbfgsb_run_f64(const fo_lbfgsb_work *w, const fo_lbfgsb_hyper *h, double f)
    double fo_lbfgsb_projgr_f32(const fo_lbfgsb_work *w)
    double fo_lbfgsb_projgr_f64(const fo_lbfgsb_work *w)


LBFGSB_EVAL = FO_LBFGSB_EVAL
LBFGSB_ITER = FO_LBFGSB_ITER
LBFGSB_STOP = FO_LBFGSB_STOP
#: code -> (scipy status, message), from the C table fo_lbfgsb_codes
LBFGSB_CODES = _codes(fo_lbfgsb_codes, FO_LBFGSB_NCODES)
#: (name, byte offset, 'i' int64 / 'f' double, count) for every field of fo_lbfgsb_state, and its size in bytes
LBFGSB_FIELDS = _fields(fo_lbfgsb_fields, fo_lbfgsb_nfields)
LBFGSB_STATE_SIZE = fo_lbfgsb_state_size


def lbfgsb_mw_size(int64_t m):
    """Doubles of small-matrix workspace the L-BFGS-B core needs for history size m."""
    return FO_LBFGSB_MW_SIZE(m)


_LBFGSB_HYPER = ("ftol", "gtol", "eps", "lr", "ls_ftol", "ls_gtol", "ls_xtol", "fabs_tol", "xabs_tol",
                 "max_iter", "max_fun", "max_ls", "line_search", "report_iter")


cdef class LBFGSBCore:
    """Pins the NumPy buffers of one L-BFGS-B problem and runs the C state machine (csrc/fo_lbfgsb.h).

    Vectors x, g, lo, hi, x0, g0, d, z hold n elements of the problem dtype, S and Y are (m, n); tb is n
    float64, iw 3n int64, mw lbfgsb_mw_size(m) float64, and st one record of the state dtype (its fields
    come from LBFGSB_FIELDS). Hyper-parameters are set by name with set_hyper()."""
    cdef fo_lbfgsb_work w
    cdef fo_lbfgsb_hyper h
    cdef int is64, have_h
    cdef object _keep
    cdef readonly object dtype
    cdef readonly int64_t n, m

    def __init__(self, x, g, lo, hi, x0, g0, d, z, S, Y, tb, iw, mw, st, int64_t m):
        if not isinstance(x, _np.ndarray) or x.dtype not in (_np.float32, _np.float64):
            raise TypeError("L-BFGS-B buffer x: expected a float32 or float64 numpy.ndarray")
        if m < 1:
            raise ValueError(f"history size must be at least 1, got {m}")
        dtype = x.dtype
        cdef int64_t n = x.size
        self.dtype, self.n, self.m, self.is64 = dtype, n, m, dtype == _np.float64
        self.w.n = n
        self.w.m = m
        self.w.x = _lb_vec(x, "x", dtype, n)
        self.w.g = _lb_vec(g, "g", dtype, n)
        self.w.lo = _lb_vec(lo, "lo", dtype, n)
        self.w.hi = _lb_vec(hi, "hi", dtype, n)
        self.w.x0 = _lb_vec(x0, "x0", dtype, n)
        self.w.g0 = _lb_vec(g0, "g0", dtype, n)
        self.w.d = _lb_vec(d, "d", dtype, n)
        self.w.z = _lb_vec(z, "z", dtype, n)
        self.w.S = _lb_vec(S, "S", dtype, n * m)
        self.w.Y = _lb_vec(Y, "Y", dtype, n * m)
        self.w.tb = <double *>_lb_vec(tb, "tb", _np.float64, n)
        self.w.iw = <int64_t *>_lb_vec(iw, "iw", _np.int64, 3 * n)
        self.w.mw = <double *>_lb_vec(mw, "mw", _np.float64, FO_LBFGSB_MW_SIZE(m))
        self.w.st = <fo_lbfgsb_state *>_lb_record(st, fo_lbfgsb_state_size, "L-BFGS-B")
        self._keep = (x, g, lo, hi, x0, g0, d, z, S, Y, tb, iw, mw, st)
        _lb_disjoint(list(self._keep), "")
        self.have_h = 0

    def set_hyper(self, *, double ftol, double gtol, double eps, double lr, double ls_ftol, double ls_gtol,
                  double ls_xtol, double fabs_tol, double xabs_tol, int64_t max_iter, int64_t max_fun,
                  int64_t max_ls, bint line_search, bint report_iter):
        """Set every hyper-parameter of fo_lbfgsb_hyper, by name (see csrc/fo_lbfgsb.h)."""
        self.h.ftol = ftol
        self.h.gtol = gtol
        self.h.eps = eps
        self.h.lr = lr
        self.h.ls_ftol = ls_ftol
        self.h.ls_gtol = ls_gtol
        self.h.ls_xtol = ls_xtol
        self.h.fabs_tol = fabs_tol
        self.h.xabs_tol = xabs_tol
        self.h.max_iter = max_iter
        self.h.max_fun = max_fun
        self.h.max_ls = max_ls
        self.h.line_search = line_search
        self.h.report_iter = report_iter
        self.have_h = 1

    cpdef int run(self, double f) except? -100:
        """Advance the state machine; f is the value at x when the previous task was LBFGSB_EVAL."""
        cdef int rc
        if not self.have_h:
            raise RuntimeError("L-BFGS-B core: set_hyper() first")
        if self.is64:
            with nogil:
                rc = fo_lbfgsb_run_f64(&self.w, &self.h, f)
        else:
            with nogil:
                rc = fo_lbfgsb_run_f32(&self.w, &self.h, f)
        if rc == FO_LBFGSB_ERR_ARG:
            raise RuntimeError("L-BFGS-B core: invalid buffers or hyper-parameters")
        if rc == FO_LBFGSB_ERR_STATE:
            raise RuntimeError("L-BFGS-B core: corrupted state (phase or history indices out of range)")
        return rc

    def projgr(self):
        """max_i |proj g_i| at x (scipy's projected-gradient norm)."""
        if self.is64:
            return fo_lbfgsb_projgr_f64(&self.w)
        return fo_lbfgsb_projgr_f32(&self.w)
