# cython: language_level=3, boundscheck=False, wraparound=False
"""The boundary between Python and the C kernels.

``TensorTable`` checks every buffer of one parameter group (dtype, C-contiguity, alignment, equal sizes,
writeability, no overlap between a written buffer and any other buffer) and builds the C pointer table with
its fixed work items; it keeps a reference to every array it points into. ``Kernel`` (one per row of the C kernel
table, in ``KERNELS``) packs a hyper-parameter block by field name, releases the GIL, runs the kernel and turns its
status into an exception: one generic call for every elementwise kernel. ``find_overlap`` is the one overlap check
(sorted byte extents, exact test where they meet) every caller uses. ``StepPlan`` holds a group's repeated step and
``StepPlans`` every group's; ``fused_step`` (``FusedOptimizer.step``) runs them in one call, taking the optimizer's
``OptimizerLock`` from C. These checks are the last guard: the messages users normally see come earlier, from ``fastopt._validate``.
No algorithm lives here.
"""
import os
import types

cimport numpy as cnp
from libc.stdint cimport int64_t, uint32_t, uintptr_t
from libc.stdlib cimport free, malloc, qsort
from cpython.object cimport PyObject
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.pythread cimport (NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
                               PyThread_free_lock, PyThread_get_thread_ident, PyThread_release_lock,
                               PyThread_type_lock)

cdef extern from "Python.h":
    object PyObject_GenericGetDict(object o, void *context)
    ctypedef enum PyLockStatus:
        PY_LOCK_FAILURE
        PY_LOCK_ACQUIRED
        PY_LOCK_INTR
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock lock, long long microseconds, int intr_flag) nogil
    # CPython's member descriptor (a __slots__ entry): where the slot sits in the object
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

import numpy as np

cnp.import_array()

cdef int _n_threads = 1
cdef enum:
    FO_MAX_SCALARS = 8  # the most per-tensor scalars a kernel with C step scalars may have
cdef int64_t _GIL_FREE_MIN = 4096  # elements from which a kernel call releases the GIL

PARALLEL_MIN = FO_PARALLEL_MIN


def have_openmp() -> bool:
    """True if the extension was built with OpenMP (otherwise every kernel runs on one thread).

    Example:
        >>> isinstance(fastopt.have_openmp(), bool)
        True
    """
    return fo_have_openmp() != 0


def set_num_threads(int n) -> None:
    """Set how many threads fastopt's kernels may use (at least 1). Results do not depend on it.

    Example:
        >>> old = fastopt.get_num_threads()
        >>> fastopt.set_num_threads(2)
        >>> fastopt.get_num_threads()
        2
        >>> fastopt.set_num_threads(old)
    """
    global _n_threads
    if n < 1:
        raise ValueError(f"number of threads must be at least 1, got {n}")
    _n_threads = n


def get_num_threads() -> int:
    """How many threads fastopt's kernels may use.

    Example:
        >>> fastopt.get_num_threads() >= 1
        True
    """
    return _n_threads


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, fo_max_threads())


_n_threads = _default_threads()


ctypedef struct _interval:  # a buffer a kernel writes: its bytes [lo, hi)
    uintptr_t lo  # first: _cmp_lo sorts it
    uintptr_t hi
    int64_t tensor
    int64_t buf


cdef int _cmp_lo(const void *a, const void *b) noexcept nogil:
    """qsort's order of byte ranges (_interval, _extent): by their start ``lo``, the struct's first member (a pointer
    to a struct is a pointer to its first member)."""
    cdef uintptr_t x = (<const uintptr_t *>a)[0]
    cdef uintptr_t y = (<const uintptr_t *>b)[0]
    return -1 if x < y else (1 if x > y else 0)


cdef int64_t _hit_range(const _interval *written, int64_t n, uintptr_t lo, uintptr_t hi) noexcept:
    """The index of the one of the sorted, disjoint ``written`` ranges that the bytes [lo, hi) intersect, or -1."""
    cdef int64_t a_ = 0, b_ = n, m
    if hi == lo:
        return -1
    while a_ < b_:  # the last range starting below hi is the only candidate
        m = (a_ + b_) // 2
        if written[m].lo < hi:
            a_ = m + 1
        else:
            b_ = m
    return a_ - 1 if a_ > 0 and written[a_ - 1].hi > lo else -1


cdef int64_t _hit(const _interval *written, int64_t n, cnp.ndarray a):
    """``_hit_range`` for the bytes of ``a`` (a C-contiguous array)."""
    cdef uintptr_t lo = <uintptr_t>cnp.PyArray_DATA(a)
    return _hit_range(written, n, lo, lo + <uintptr_t>cnp.PyArray_NBYTES(a))


cdef object _ndarray = np.ndarray


ctypedef struct _extent:  # the bytes an array's elements span, for find_overlap
    uintptr_t lo  # first: _cmp_lo sorts it
    uintptr_t hi
    int64_t index
    int written


cdef bint _extent_of(cnp.ndarray a, uintptr_t *lo, uintptr_t *hi):
    """The bytes [lo, hi) that ``a``'s elements span, whatever its strides; False for an empty array."""
    cdef int nd = cnp.PyArray_NDIM(a), k
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef Py_ssize_t low = 0, high = 0, step
    if cnp.PyArray_SIZE(a) == 0:
        return False
    for k in range(nd):
        step = (dims[k] - 1) * strides[k]
        if step < 0:
            low += step
        else:
            high += step
    lo[0] = <uintptr_t>cnp.PyArray_DATA(a) + <uintptr_t>low
    hi[0] = <uintptr_t>cnp.PyArray_DATA(a) + <uintptr_t>high + <uintptr_t>cnp.PyArray_ITEMSIZE(a)
    return True


cdef bint _overlaps_itself(cnp.ndarray a):
    """Whether two elements of ``a`` share bytes (a zero stride, or strides that interleave). Sufficient test first:
    with the axes sorted by |stride|, each stride clears the span of the smaller ones; exact count otherwise."""
    cdef int nd = cnp.PyArray_NDIM(a), k
    cdef Py_ssize_t span = cnp.PyArray_ITEMSIZE(a), st
    if cnp.PyArray_SIZE(a) <= 1:
        return False
    axes = sorted((abs(<Py_ssize_t>cnp.PyArray_STRIDES(a)[k]), <Py_ssize_t>cnp.PyArray_DIMS(a)[k])
                  for k in range(nd) if cnp.PyArray_DIMS(a)[k] > 1)
    for st, dim in axes:
        if st < span:
            break
        span += (dim - 1) * st
    else:
        return False
    offsets = np.zeros((), np.int64)
    for k in range(nd):
        offsets = np.add.outer(offsets, np.arange(cnp.PyArray_DIMS(a)[k], dtype=np.int64) * cnp.PyArray_STRIDES(a)[k])
    offsets = np.unique(offsets.ravel())
    return offsets.size != a.size or bool(np.any(np.diff(offsets) < cnp.PyArray_ITEMSIZE(a)))


def find_overlap(list arrays, list written):
    """The one overlap check: the first conflict among ``arrays`` (ndarrays of any dtype and strides; None entries
    are skipped), or None. ``written[i]`` says the caller writes array i. A conflict is a written array whose
    elements overlap each other (returned as ``(i, i)``), or two arrays sharing a byte where at least one is
    written (``(i, j)``, i before j in the list). The byte extents are sorted (O(n log n)) and the exact test
    (``np.shares_memory``) runs only where two extents intersect.
    """
    cdef int64_t n = len(arrays), m = 0, i, j, k
    cdef _extent *ext
    cdef uintptr_t *reach
    cdef uintptr_t lo, hi
    cdef cnp.ndarray a
    if len(written) != n:
        raise ValueError(f"got {n} arrays but {len(written)} written flags")
    if n == 0:
        return None
    ext = <_extent *>malloc(n * sizeof(_extent))
    reach = <uintptr_t *>malloc(n * sizeof(uintptr_t))
    if ext == NULL or reach == NULL:
        free(ext)
        free(reach)
        raise MemoryError()
    try:
        for i in range(n):
            arr = arrays[i]
            if arr is None:
                continue
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"array {i} must be a numpy.ndarray, got {type(arr).__name__}")
            a = <cnp.ndarray>arr
            if not _extent_of(a, &lo, &hi):
                continue
            if written[i] and not (cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_IS_F_CONTIGUOUS(a)) \
                    and _overlaps_itself(a):
                return (i, i)
            ext[m].lo = lo
            ext[m].hi = hi
            ext[m].index = i
            ext[m].written = 1 if written[i] else 0
            m += 1
        qsort(ext, m, sizeof(_extent), _cmp_lo)
        best = None
        for j in range(m):
            reach[j] = ext[j].hi if j == 0 or ext[j].hi > reach[j - 1] else reach[j - 1]
            k = j - 1
            while k >= 0 and reach[k] > ext[j].lo:  # reach[k]: the furthest end among extents 0..k
                if ext[k].hi > ext[j].lo and (ext[k].written or ext[j].written):
                    x, y = sorted((ext[k].index, ext[j].index))
                    if (best is None or (y, x) < (best[1], best[0])) and np.shares_memory(arrays[x], arrays[y]):
                        best = (x, y)
                k -= 1
        return best
    finally:
        free(ext)
        free(reach)


cdef class TensorTable:
    """C pointer table over ``rows``: one row per tensor, ``n_bufs`` arrays (or None) per row.

    Args:
        rows: list of lists of C-contiguous arrays of one dtype; row i, position k is buffer k of tensor i.
            Position 0 is the parameter; all arrays of a row have its size.
        names: name of each buffer position, for messages.
        readonly: positions that the kernel only reads (the gradient); every other array must be writeable.
        n_scalars: per-tensor float64 values the kernel reads (``self.scalars``, shape (n_tensors, n_scalars)).
        dtypes: optional, per position: the dtype its arrays must have (None: the parameter's, the default for
            every position). Mixed-dtype tables are the low-precision kernels' (uint8 codes, uint16 bfloat16 bits);
            a uint16 position 0 (16-bit parameter bits, dtype uint16 given for it) makes a float32 table.
        lengths: optional, per position: 0 (the default) for the parameter's element count, ``-B`` for one element
            per block of B (ceil(size / B): a per-block absmax), ``k > 0`` for exactly k elements (a code map).
    """
    cdef fo_tensor_list lst
    cdef void **bufs
    cdef int64_t *sizes
    cdef fo_work *work
    cdef double *partials
    cdef _interval *written
    cdef int64_t n_written
    cdef list _rows
    cdef tuple _names
    cdef tuple _readonly
    cdef uint32_t _ro_mask  # bit k: position k is read-only
    cdef tuple _dtypes
    cdef tuple _lengths
    cdef readonly object scalars
    cdef readonly int type_num
    cdef readonly int64_t n_tensors
    cdef readonly int64_t total

    def __cinit__(self, list rows, tuple names, tuple readonly, int n_scalars, tuple dtypes=None,
                  tuple lengths=None):
        cdef int64_t n = len(rows), nb = len(names), i, k, w
        cdef cnp.ndarray a
        self.bufs = NULL
        self.sizes = NULL
        self.work = NULL
        self.partials = NULL
        self.written = NULL
        if len(readonly) != nb:
            raise ValueError(f"got {nb} buffer names but {len(readonly)} read-only flags")
        if nb > 32:
            raise ValueError(f"at most 32 buffers per tensor, got {nb}")
        self._ro_mask = 0
        for k in range(nb):
            if readonly[k]:
                self._ro_mask |= (<uint32_t>1) << k
        if (dtypes is not None and len(dtypes) != nb) or (lengths is not None and len(lengths) != nb):
            raise ValueError(f"got {nb} buffer names but dtypes/lengths of another length")
        self._dtypes = tuple(None if d is None else np.dtype(d).num for d in dtypes) if dtypes is not None else None
        self._lengths = tuple(int(x) for x in lengths) if lengths is not None else None
        self._rows = [list(r) for r in rows]  # our own lists: what keeps the arrays alive cannot change under us
        rows = self._rows
        self._names = names
        self._readonly = readonly
        self.n_tensors = n
        self.type_num = -1
        self.total = 0
        self.scalars = np.zeros((n, max(n_scalars, 1)), dtype=np.float64)
        self.bufs = <void **>malloc(max(n * nb, 1) * sizeof(void *))
        self.sizes = <int64_t *>malloc(max(n, 1) * sizeof(int64_t))
        self.written = <_interval *>malloc(max(n * nb, 1) * sizeof(_interval))
        if self.bufs == NULL or self.sizes == NULL or self.written == NULL:
            raise MemoryError()
        self.n_written = 0
        for i in range(n):
            row = rows[i]
            if len(row) != nb:
                raise ValueError(f"tensor {i}: expected {nb} buffers, got {len(row)}")
            first = row[0]
            if not isinstance(first, np.ndarray):
                raise TypeError(f"tensor {i}: '{names[0]}' must be a numpy.ndarray")
            if self.type_num < 0:
                self.type_num = cnp.PyArray_TYPE(<cnp.ndarray>first)
                if self.type_num == cnp.NPY_UINT16 and self._dtypes is not None and self._dtypes[0] == cnp.NPY_UINT16:
                    self.type_num = cnp.NPY_FLOAT32  # 16-bit parameter bits first: the kernel computes in float32
                if self.type_num != cnp.NPY_FLOAT32 and self.type_num != cnp.NPY_FLOAT64:
                    raise TypeError(f"tensor {i}: dtype must be float32 or float64, got {first.dtype}")
            self.sizes[i] = cnp.PyArray_SIZE(<cnp.ndarray>first)
            self.total += self.sizes[i]
            for k in range(nb):
                arr = row[k]
                if arr is None:
                    self.bufs[i * nb + k] = NULL
                    continue
                self.bufs[i * nb + k] = self._check(arr, i, k)
                if not readonly[k]:
                    self._add_written(<cnp.ndarray>arr, i, k)
        self._check_overlaps()
        self.lst.n_work = fo_count_work(self.sizes, n, FO_CHUNK)
        self.work = <fo_work *>malloc(max(self.lst.n_work, 1) * sizeof(fo_work))
        if self.work == NULL:
            raise MemoryError()
        # the reduce-then-update kernels' scratch (fastopt.h: fo_tensor_list.partials), so a step allocates nothing
        self.partials = <double *>malloc(max((self.lst.n_work + n) * FO_PARTIALS, 1) * sizeof(double))
        if self.partials == NULL:
            raise MemoryError()
        fo_plan_work(self.sizes, n, FO_CHUNK, self.work)
        self.lst.n_tensors = n
        self.lst.n_bufs = nb
        self.lst.n_scalars = self.scalars.shape[1]
        self.lst.bufs = self.bufs
        self.lst.sizes = self.sizes
        self.lst.scalars = <const double *>cnp.PyArray_DATA(<cnp.ndarray>self.scalars)
        self.lst.work = self.work
        self.lst.total = self.total
        self.lst.n_threads = 1
        self.lst.partials = self.partials

    def __dealloc__(self):
        free(self.bufs)
        free(self.sizes)
        free(self.work)
        free(self.partials)
        free(self.written)

    cdef void *_check(self, object arr, int64_t i, int64_t k) except NULL:
        cdef cnp.ndarray a
        where = f"tensor {i}: '{self._names[k]}'"
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{where} must be a numpy.ndarray, got {type(arr).__name__}")
        a = <cnp.ndarray>arr
        cdef int want_type = self.type_num
        cdef int64_t want_size = self.sizes[i], rule = 0
        if self._dtypes is not None and self._dtypes[k] is not None:
            want_type = self._dtypes[k]
        if self._lengths is not None:
            rule = self._lengths[k]
            if rule < 0:
                want_size = (self.sizes[i] + (-rule) - 1) // (-rule)
            elif rule > 0:
                want_size = rule
        if cnp.PyArray_TYPE(a) != want_type:
            raise TypeError(f"{where} has dtype {a.dtype}, expected {np.dtype(want_type)}")
        if cnp.PyArray_SIZE(a) != want_size:
            raise ValueError(f"{where} has {a.size} elements, expected {want_size}")
        if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)):
            raise ValueError(f"{where} must be C-contiguous and aligned")
        if not self._readonly[k] and not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError(f"{where} is read-only")
        if want_size == 0:
            return <void *>1  # never dereferenced: the kernel skips empty tensors
        return cnp.PyArray_DATA(a)

    cdef int _add_written(self, cnp.ndarray a, int64_t i, int64_t k) except -1:
        cdef uintptr_t lo = <uintptr_t>cnp.PyArray_DATA(a)
        if cnp.PyArray_NBYTES(a) == 0:
            return 0
        self.written[self.n_written].lo = lo
        self.written[self.n_written].hi = lo + <uintptr_t>cnp.PyArray_NBYTES(a)
        self.written[self.n_written].tensor = i
        self.written[self.n_written].buf = k
        self.n_written += 1
        return 0

    cdef int _check_overlaps(self) except -1:
        """No two written buffers overlap, and no read-only buffer overlaps a written one."""
        cdef int64_t j, i, k, nb = len(self._names)
        qsort(self.written, self.n_written, sizeof(_interval), _cmp_lo)
        for j in range(1, self.n_written):
            if self.written[j].lo < self.written[j - 1].hi:
                raise ValueError(self._overlap_msg(j - 1, self.written[j].tensor, self.written[j].buf))
        for i in range(self.n_tensors):
            for k in range(nb):
                if self._readonly[k] and self._rows[i][k] is not None:
                    self._check_readonly(<cnp.ndarray>self._rows[i][k], i, k)
        return 0

    cdef int _check_readonly(self, cnp.ndarray a, int64_t i, int64_t k) except -1:
        cdef int64_t j = _hit(self.written, self.n_written, a)
        if j >= 0:
            raise ValueError(self._overlap_msg(j, i, k))
        return 0

    def _overlap_msg(self, int64_t j, int64_t i, int64_t k):
        return (f"tensor {i}: '{self._names[k]}' shares memory with tensor {self.written[j].tensor}: "
                f"'{self._names[self.written[j].buf]}'; buffers a kernel writes must not overlap any other")

    def set_grads(self, list grads, int64_t k=1) -> int:
        """Swap the read-only buffer k of every tensor for ``grads[i]`` after checking each.

        Returns -1 on success, or the index of the first array that fails the checks (nothing is changed then).
        """
        cdef int64_t i, n = self.n_tensors, nb = len(self._names)
        cdef cnp.ndarray a
        cdef uintptr_t lo, hi
        if not 0 <= k < nb or not self._readonly[k]:
            raise IndexError(f"buffer {k} is not a read-only position of this table")
        if len(grads) != n:
            raise ValueError(f"got {len(grads)} arrays for {n} tensors")
        for i in range(n):
            g = grads[i]
            if type(g) is not np.ndarray:
                return i
            a = <cnp.ndarray>g
            if (cnp.PyArray_TYPE(a) != self.type_num or cnp.PyArray_SIZE(a) != self.sizes[i]
                    or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)):
                return i
            try:
                self._check_readonly(a, i, k)
            except ValueError:
                return i
        for i in range(n):
            a = <cnp.ndarray>grads[i]
            self._rows[i][k] = a
            self.bufs[i * nb + k] = cnp.PyArray_DATA(a) if self.sizes[i] > 0 else <void *>1
        return -1

    cdef inline bint _same_buffer(self, cnp.ndarray a, int64_t i, int64_t k, cnp.ndarray data, int want_type,
                                  int64_t rule, bint fixed) noexcept:
        """``a`` (an ndarray) still has the dtype ``want_type``, the size of position k (``rule``: 0 for the shape of
        ``data``, ``-B`` for a 1-D array of one element per block of B, ``m > 0`` for a 1-D array of m elements; as
        the table's ``lengths``), the layout, the writeability if position k is written and, if ``fixed``, the address
        it had when the table was built (arrays can be reshaped or made read-only in place)."""
        cdef int nd = cnp.PyArray_NDIM(a), j
        cdef cnp.npy_intp *da = cnp.PyArray_DIMS(a)
        cdef cnp.npy_intp *dd = cnp.PyArray_DIMS(data)
        cdef int64_t size = 1, want = self.sizes[i]
        cdef int need = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
        if not (self._ro_mask >> k & 1):
            need |= cnp.NPY_ARRAY_WRITEABLE
        if cnp.PyArray_TYPE(a) != want_type or (cnp.PyArray_FLAGS(a) & need) != need:
            return False
        if rule == 0:
            if nd != cnp.PyArray_NDIM(data):
                return False
            for j in range(nd):
                if da[j] != dd[j]:
                    return False
                size *= da[j]
        else:
            want = (want + (-rule) - 1) // (-rule) if rule < 0 else rule
            if nd != 1:
                return False
            size = da[0]
        if size != want:
            return False
        return not fixed or size == 0 or cnp.PyArray_DATA(a) == self.bufs[i * self.lst.n_bufs + k]

    cdef bint _hits_written(self, cnp.ndarray a, int64_t size):
        """Whether ``a`` (C-contiguous, ``size`` elements) shares a byte with a buffer this table writes."""
        cdef uintptr_t lo = <uintptr_t>cnp.PyArray_DATA(a)
        return _hit_range(self.written, self.n_written, lo, lo + <uintptr_t>(size * cnp.PyArray_ITEMSIZE(a))) >= 0

    cpdef release(self, int64_t k=1):
        """Drop the references held at position k (the gradients) once a step is done; the pointers become NULL,
        so a kernel run before the next ``set_grads``/``rebind`` fails its check instead of reading freed memory."""
        cdef int64_t i, nb = len(self._names)
        if not 0 <= k < nb or not self._readonly[k]:
            raise IndexError(f"buffer {k} is not a read-only position of this table")
        for i in range(self.n_tensors):
            self._rows[i][k] = None
            self.bufs[i * nb + k] = NULL


cdef class OptimizerLock:
    """The lock of one optimizer: reentrant, with ``threading.RLock``'s semantics (the thread holding it may take it
    again and must release it as many times; ``with lock:`` works), whose repeated step takes and drops it from C.

    Example:
        >>> lock = fastopt._kernels.OptimizerLock()
        >>> with lock:
        ...     with lock:  # the same thread again
        ...         pass
    """
    cdef PyThread_type_lock _lock
    cdef unsigned long _owner
    cdef Py_ssize_t _count

    def __cinit__(self):
        self._lock = PyThread_allocate_lock()
        self._owner = 0
        self._count = 0
        if self._lock == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self._lock != NULL:
            PyThread_free_lock(self._lock)

    cdef bint _acquire(self, double timeout):
        """Take the lock (waiting without the GIL, at most ``timeout`` seconds if it is >= 0); False on timeout."""
        cdef unsigned long me = PyThread_get_thread_ident()
        cdef long long us
        cdef int got
        if self._count > 0 and self._owner == me:
            self._count += 1
            return True
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            if timeout == 0:
                return False
            with nogil:
                if timeout < 0:
                    got = PyThread_acquire_lock(self._lock, WAIT_LOCK)
                else:
                    us = <long long>(timeout * 1e6)
                    got = PyThread_acquire_lock_timed(self._lock, us, 0) == PY_LOCK_ACQUIRED
            if not got:
                return False
        self._owner = me
        self._count = 1
        return True

    cdef int _release(self) except -1:
        if self._count == 0 or self._owner != PyThread_get_thread_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if self._count == 0:
            self._owner = 0
            PyThread_release_lock(self._lock)
        return 0

    def acquire(self, bint blocking=True, double timeout=-1) -> bool:
        """Take the lock, as ``threading.RLock.acquire``: wait if ``blocking`` (at most ``timeout`` seconds if it is
        not -1); True if it was taken."""
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return self._acquire(0)
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be a non-negative number")
        return self._acquire(timeout)

    def release(self) -> None:
        """Release the lock once (RuntimeError if this thread does not hold it)."""
        self._release()

    def __enter__(self):
        self._acquire(-1)
        return True

    def __exit__(self, *exc):
        self._release()
        return False

    def _is_owned(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._count > 0 and self._owner == PyThread_get_thread_ident()


cdef object _MISSING = object()


cdef bint _exact_count(object v, int64_t *out):
    """``v`` is an exact int in [0, 2**62): store it in out[0]. (One C conversion: comparing the object with
    Python ints first cost two rich comparisons per tensor and step.)"""
    cdef int overflow = 0
    cdef long long x
    if not PyLong_CheckExact(v):
        return False
    x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow != 0 or x < 0 or x >= (<long long>1 << 62):
        return False
    out[0] = <int64_t>x
    return True


cdef Py_ssize_t _slot_offset(type tp, str name):
    """Where instances of ``tp`` keep the ``__slots__`` attribute ``name`` (what getattr would read), or 0 if
    getattr does anything else for it (a property, an instance dict, a custom ``__getattribute__``)."""
    if tp.__getattribute__ is not object.__getattribute__:
        return 0
    for klass in tp.__mro__:
        if name in klass.__dict__:
            d = klass.__dict__[name]
            if type(d) is not _MemberDescriptor:
                return 0
            return (<PyMemberDescrObject *><PyObject *>d).d_member.offset
    return 0


cdef object _MemberDescriptor = types.MemberDescriptorType


cdef inline object _slot(object p, Py_ssize_t off):
    """The object in the slot at ``off`` of ``p`` (None if the slot is empty)."""
    cdef PyObject *v = (<PyObject **>(<char *><PyObject *>p + off))[0]
    if v == NULL:
        return None
    return <object>v


cdef class StepPlan:
    """The repeated step of one table of one group (``FusedOptimizer``'s fast path, and the low-precision modes' of
    fastopt/_lowp.py; every plan of an optimizer runs as one ``StepPlans``).

    Built after a full step validated the group; holds its table (params, state buffers), a snapshot of the group
    dict and of every parameter's state dict (keys and values, in order; the step count's value aside), the group's
    options as they were then (values and types; tuples by identity), the packed hyper block and how to get the
    per-tensor scalars. Binding the plan confirms, in C, that the group and its arrays are unchanged and that every
    gradient is the array validated last time or passes the same checks (type, dtype, shape, layout, no overlap
    with what the table writes), and reads the step counts; running it advances the counts, fills the scalars and
    runs the kernel (without the GIL for large tensors). Either returns False and changes nothing visible when the
    full path must run instead. ``step`` is both, for a single group.

    Args:
        table: the group's ``TensorTable`` (its gradients released).
        kernel: the table kernel.
        hyper: its packed hyper-parameter block.
        group: the group dict (its params and options are snapshotted; the group must keep equal values of equal
            types).
        state: the optimizer's state (a dict by parameter); each parameter's state dict is snapshotted.
        keys: the group's option keys (those compared by value when the snapshot differs).
        has_step: whether each parameter's state counts steps (under the key 'step').
        at_step: ``at_step(t)`` giving the first scalars for step count t (used when the group's tensors share a
            count), or None.
        fill: ``fill(scalars, steps)`` writing the scalars for per-tensor counts (the general case), or None if the
            scalars do not change between steps (the caller filled them once).
        kernel_scalars: a kernel's C function computes the first scalars from a hyper block and the count
            (``Kernel.step_scalars``): used instead of ``at_step`` when the tensors share a count. The kernel and
            block are ``kernel`` and ``hyper`` unless ``scalars_from`` says otherwise.
        index: the positions in ``group['params']`` of the table's tensors, in table order (default: all of them,
            in order). A group whose tensors are split over several tables (by dtype or format) has one plan per
            table; ``StepPlans`` runs them together.
        param_pos, grad_pos: the table positions of the parameter and of the gradient (default 0 and 1). The table
            may hold another view of ``.data`` at ``param_pos`` (16-bit parameters as uint16 bits), of the same
            bytes; the parameter's ``.data`` must keep its own dtype.
        grad_dtype: the dtype a gradient must have (default: the table's at ``grad_pos``); the gradient array itself
            is put in the table (a 16-bit gradient whose table position is uint16 bits: the same bytes).
        scalars_from: ``(kernel, hyper)`` whose C step scalars ``kernel_scalars`` uses (a low-precision kernel whose
            scalars are the float32 kernel's).
        count_col: a column of the scalars that holds each tensor's step count after this step (-1: none).
    Every other buffer of the table is the parameter's state under its position's name, or a read-only constant
    the table holds (a code map): each must keep its dtype, size, layout and address.
    """
    cdef TensorTable table
    cdef Kernel kernel
    cdef bytes hyper
    cdef Kernel skernel     # whose C step scalars (kernel_scalars), for the block shyper
    cdef bytes shyper
    cdef list params        # the table's parameters (the group's, or those ``index`` picks)
    cdef list gparams       # the group's params list when the plan was made
    cdef list _datas        # each parameter's .data array then
    cdef tuple keys
    cdef tuple values
    cdef tuple types
    cdef list _gkeys   # the group dict's keys and values, in order, when the plan was made
    cdef list _gvals
    cdef bint has_step
    cdef object at_step
    cdef object fill
    cdef bint kernel_scalars
    cdef list _states  # each tensor's state dict
    cdef list _skeys   # its keys and values (in order) when the plan was made
    cdef list _svals
    cdef int64_t *_steppos  # where 'step' sits in tensor i's state dict (-1: no count)
    cdef int64_t *_steps    # the counts read by the last bind
    cdef int *_types        # per table position: the dtype (type number) its arrays must have
    cdef int64_t *_rules    # per table position: its size rule (TensorTable's lengths; 0: the parameter's shape)
    cdef int64_t *_spos     # the positions of the other buffers (state, constants), _nspos of them
    cdef int64_t _nspos
    cdef int64_t ppos, gpos, count_col
    cdef bint _bound
    cdef type _ptype        # the parameters' type, and where its .data and .grad slots sit (0: use getattr)
    cdef Py_ssize_t _data_off
    cdef Py_ssize_t _grad_off

    def __cinit__(self, *args, **kwargs):
        self._steppos = NULL
        self._steps = NULL
        self._types = NULL
        self._rules = NULL
        self._spos = NULL

    def __init__(self, TensorTable table, Kernel kernel, bytes hyper, dict group, object state, tuple keys,
                 bint has_step, object at_step, object fill, bint kernel_scalars=False, *, tuple index=None,
                 int param_pos=0, int grad_pos=1, object grad_dtype=None, tuple scalars_from=None,
                 int count_col=-1):
        cdef int64_t i, k, n = table.n_tensors, nb = len(table._names)
        cdef Kernel sk = kernel
        cdef bytes sh = hyper
        if scalars_from is not None:
            sk, sh = scalars_from
        if kernel_scalars and (not sk.has_step_scalars or len(sh) != sk.hyper_size
                               or table.scalars.shape[1] < sk.n_scalars):
            raise ValueError(f"kernel {sk.name} cannot compute this table's scalars")
        if not (0 <= param_pos < nb and 0 <= grad_pos < nb and param_pos != grad_pos and table._readonly[grad_pos]
                and not table._readonly[param_pos]):
            raise ValueError(f"positions {param_pos} (param) and {grad_pos} (a read-only grad) do not fit the table")
        if not -1 <= count_col < table.scalars.shape[1]:
            raise ValueError(f"count column {count_col} is not a column of the table's scalars")
        self.kernel_scalars = kernel_scalars
        self.table, self.kernel, self.hyper, self.skernel, self.shyper = table, kernel, hyper, sk, sh
        self.ppos, self.gpos, self.count_col = param_pos, grad_pos, count_col
        self.gparams = list(group["params"])
        self.params = self.gparams if index is None else [self.gparams[j] for j in index]
        if len(self.params) != n:
            raise ValueError(f"the plan has {len(self.params)} params, the table {n} tensors")
        self.keys = keys
        self.values = tuple(group[k_] for k_ in keys)
        self.types = tuple(type(v) for v in self.values)
        self._gkeys, self._gvals = list(group.keys()), list(group.values())
        self.has_step, self.at_step, self.fill = has_step, at_step, fill
        self._ptype = type(self.params[0]) if n else None
        self._data_off = _slot_offset(self._ptype, "data") if n else 0
        self._grad_off = _slot_offset(self._ptype, "grad") if n else 0
        if self._data_off == 0 or self._grad_off == 0:
            self._data_off = self._grad_off = 0
        self._steppos = <int64_t *>malloc(max(n, 1) * sizeof(int64_t))
        self._steps = <int64_t *>malloc(max(n, 1) * sizeof(int64_t))
        self._types = <int *>malloc(nb * sizeof(int))
        self._rules = <int64_t *>malloc(nb * sizeof(int64_t))
        self._spos = <int64_t *>malloc(nb * sizeof(int64_t))
        if (self._steppos == NULL or self._steps == NULL or self._types == NULL or self._rules == NULL
                or self._spos == NULL):
            raise MemoryError()
        self._nspos = 0
        for k in range(nb):
            if k != param_pos and k != grad_pos:
                self._spos[self._nspos] = k
                self._nspos += 1
            self._types[k] = table.type_num
            if table._dtypes is not None and table._dtypes[k] is not None:
                self._types[k] = table._dtypes[k]
            self._rules[k] = table._lengths[k] if table._lengths is not None else 0
        if self._rules[param_pos] != 0 or self._rules[grad_pos] != 0:
            raise ValueError("the param and grad positions must have the parameter's size")
        if grad_dtype is not None:
            self._types[grad_pos] = np.dtype(grad_dtype).num
        self._datas, self._states, self._skeys, self._svals = [], [], [], []
        for i in range(n):
            st = state[self.params[i]]
            if type(st) is not dict:
                raise TypeError(f"tensor {i}: state must be a dict")
            skeys = list((<dict>st).keys())
            self._states.append(st)
            self._skeys.append(skeys)
            self._svals.append(list((<dict>st).values()))
            self._steppos[i] = skeys.index("step") if has_step and "step" in skeys else -1
            if has_step and self._steppos[i] < 0:
                raise ValueError(f"tensor {i}: state has no 'step'")
            data = self.params[i].data
            row = table._rows[i]
            if row[param_pos] is not data and not (isinstance(data, np.ndarray) and (
                    cnp.PyArray_DATA(<cnp.ndarray>data) == cnp.PyArray_DATA(<cnp.ndarray>row[param_pos])
                    and cnp.PyArray_NBYTES(<cnp.ndarray>data) == cnp.PyArray_NBYTES(<cnp.ndarray>row[param_pos]))):
                raise ValueError(f"tensor {i}: the table's param is not the parameter's data")
            if i == 0:
                self._types[param_pos] = cnp.PyArray_TYPE(<cnp.ndarray>data)
            elif cnp.PyArray_TYPE(<cnp.ndarray>data) != self._types[param_pos]:
                raise ValueError(f"tensor {i}: the parameters of one table must share a dtype")
            self._datas.append(data)
            for k in range(nb):
                buf = row[k]
                if k == param_pos or k == grad_pos or buf is None or (<dict>st).get(table._names[k]) is buf:
                    continue
                if not table._readonly[k]:  # a written buffer is always the state's
                    raise ValueError(f"tensor {i}: the table's '{table._names[k]}' is not the state's")
        self._bound = False

    def __dealloc__(self):
        free(self._steppos)
        free(self._steps)
        free(self._types)
        free(self._rules)
        free(self._spos)

    cdef bint _same_options(self, dict group):
        """The group's options equal (by value and type; tuples by identity) those the plan was made with."""
        cdef Py_ssize_t i, n = len(self.keys)
        for i in range(n):
            v = group.get(self.keys[i], _MISSING)
            w = self.values[i]
            if v is w:
                continue
            if type(v) is not self.types[i] or type(v) is tuple or not (v == w):
                return False
        return True

    cdef bint _same_group(self, dict group):
        """The group holds the same params (same objects, same order) and options as when the plan was made: first
        by identity over the whole dict (the repeated step's case), else by value."""
        cdef Py_ssize_t pos = 0, j = 0, i, n
        cdef PyObject *key
        cdef PyObject *val
        cdef bint same = len(group) == len(self._gkeys)
        while same and PyDict_Next(group, &pos, &key, &val):
            if key != PyList_GET_ITEM(self._gkeys, j) or val != PyList_GET_ITEM(self._gvals, j):
                same = False
            j += 1
        if not same and not self._same_options(group):
            return False
        g = group.get("params")
        if type(g) is not list:
            return False
        n = len(<list>g)
        if n != len(self.gparams):
            return False
        for i in range(n):
            if PyList_GET_ITEM(<list>g, i) != PyList_GET_ITEM(self.gparams, i):
                return False
        return True

    cdef bint _same_state(self, int64_t i, dict st):
        """Tensor i's state dict holds the keys and values it held when the plan was made, except its step count,
        which must be an int >= 0 (read into _steps[i])."""
        cdef Py_ssize_t pos = 0, j = 0
        cdef PyObject *key
        cdef PyObject *val
        cdef list keys = <list>PyList_GET_ITEM(self._skeys, i)
        cdef list vals = <list>PyList_GET_ITEM(self._svals, i)
        cdef int64_t at = self._steppos[i]
        if len(st) != len(keys):
            return False
        while PyDict_Next(st, &pos, &key, &val):
            if key != PyList_GET_ITEM(keys, j):
                return False
            if j == at:
                if not _exact_count(<object>val, &self._steps[i]):
                    return False
            elif val != PyList_GET_ITEM(vals, j):
                return False
            j += 1
        return True

    cdef int _bind(self, dict group, dict state) except -1:
        """Check the group and its arrays (see the class docstring) and point the table at the gradients: 1, or 0
        with nothing changed."""
        cdef TensorTable t = self.table
        cdef int64_t i, k, s, n = t.n_tensors, nb = t.lst.n_bufs, pk = self.ppos, gk = self.gpos
        cdef int ptype = self._types[pk], gtype = self._types[gk]
        cdef PyObject *st
        cdef PyObject *buf
        cdef list row
        if not self._same_group(group):
            return 0
        for i in range(n):
            p = <object>PyList_GET_ITEM(self.params, i)
            row = <list>PyList_GET_ITEM(t._rows, i)
            if self._data_off and type(p) is self._ptype:
                data = _slot(p, self._data_off)
                g = _slot(p, self._grad_off)
            else:
                data = p.data
                g = p.grad
            if (data is not <object>PyList_GET_ITEM(self._datas, i)
                    or not t._same_buffer(<cnp.ndarray>data, i, pk, <cnp.ndarray>data, ptype, 0, True)):
                self._unbind()
                return 0
            if (type(g) is not _ndarray
                    or not t._same_buffer(<cnp.ndarray>g, i, gk, <cnp.ndarray>data, gtype, 0, False)
                    or t._hits_written(<cnp.ndarray>g, t.sizes[i])):
                self._unbind()
                return 0
            st = PyDict_GetItemWithError(state, p)  # a defaultdict: a plain lookup never inserts
            if st == NULL or <object>st is not <object>PyList_GET_ITEM(self._states, i) \
                    or not self._same_state(i, <dict>st):
                self._unbind()
                return 0
            for s in range(self._nspos):
                k = self._spos[s]
                buf = PyList_GET_ITEM(row, k)
                if <object>buf is not None and not t._same_buffer(<cnp.ndarray>buf, i, k, <cnp.ndarray>data,
                                                                  self._types[k], self._rules[k], True):
                    self._unbind()
                    return 0
            row[gk] = g
            t.bufs[i * nb + gk] = cnp.PyArray_DATA(<cnp.ndarray>g) if t.sizes[i] > 0 else <void *>1
        self._bound = True
        return 1

    cdef int _unbind(self) except -1:
        self.table.release(self.gpos)
        self._bound = False
        return 0

    cdef object _grad(self, int64_t i):
        """The gradient tensor i is bound to (after ``_bind``)."""
        return <object>PyList_GET_ITEM(<list>PyList_GET_ITEM(self.table._rows, i), self.gpos)

    cdef int _run(self) except -1:
        """Advance the step counts, fill the scalars, run the kernel, drop the gradients (after ``_bind``)."""
        cdef Py_ssize_t i, n = self.table.n_tensors
        cdef bint same = True
        cdef int64_t t0, cols = self.table.lst.n_scalars
        cdef double *d
        if not self._bound:
            raise RuntimeError("StepPlan run without a successful bind")
        try:
            if self.has_step and n > 0:
                t0 = self._steps[0] + 1
                count0 = t0  # one int object for every tensor at the common count
                for i in range(n):
                    if self._steps[i] + 1 == t0:
                        count = count0
                    else:
                        same = False
                        count = self._steps[i] + 1
                    PyDict_SetItem(<dict>PyList_GET_ITEM(self._states, i),
                                   <object>PyList_GET_ITEM(<list>PyList_GET_ITEM(self._skeys, i), self._steppos[i]),
                                   count)
                if self.count_col >= 0:
                    d = <double *>cnp.PyArray_DATA(<cnp.ndarray>self.table.scalars)
                    for i in range(n):
                        d[i * cols + self.count_col] = <double>(self._steps[i] + 1)
                if same and self.kernel_scalars:
                    self._kernel_scalars(t0)
                elif same and self.at_step is not None:
                    fill_columns(<cnp.ndarray>self.table.scalars, self.at_step(count0))
                elif self.fill is not None:
                    self.fill(self.table.scalars, [self._steps[i] + 1 for i in range(n)])
            self.kernel._run(self.table, self.hyper)
        finally:
            self._unbind()
        return 1

    cdef void _kernel_scalars(self, int64_t t) noexcept:
        """The first columns of every row of the table's scalars from the C step scalars (``skernel``) at count t."""
        cdef TensorTable tab = self.table
        cdef int64_t i, j, ns = self.skernel.n_scalars, cols = tab.lst.n_scalars
        cdef double *d = <double *>cnp.PyArray_DATA(<cnp.ndarray>tab.scalars)
        cdef const char *h = self.shyper
        if tab.n_tensors == 0:
            return
        self.skernel.step_fn(<const void *>h, t, d)
        for i in range(1, tab.n_tensors):
            for j in range(ns):
                d[i * cols + j] = d[j]

    def step(self, dict group, object state) -> bool:
        """Bind then run: the whole repeated step of a one-group optimizer in one call (False: nothing done)."""
        if not isinstance(state, dict) or not self._bind(group, <dict>state):
            return False
        return self._run() == 1


cdef class StepPlans:
    """The repeated step of every group of an optimizer, in one call (``step``): each group's ``StepPlan`` is bound
    (so every check of every group passes before anything is written), the gradients are checked against what any
    group's table writes (the overlap check across groups; each table checked its own), then every plan runs.

    Args:
        plans: one ``StepPlan`` per group, in group order (or several per group, see ``group_of``).
        pre_hooks, post_hooks: the optimizer's step hook dicts; the step runs only while both are empty (or from
            inside a hooked step).
        group_of: the group index of each plan, non-decreasing from 0 with no group left out (default: plan k
            is group k's). Every tensor of a group must be in one of its plans.
    """
    cdef readonly tuple plans
    cdef readonly Py_ssize_t n_groups
    cdef Py_ssize_t *_group_of
    # repeated steps these plans ran (what the fast-path tests assert by)
    cdef readonly int64_t runs
    cdef _interval *written  # every table's written byte ranges, sorted
    cdef int64_t n_written
    cdef object pre_hooks    # the optimizer's step hook dicts (never replaced: Optimizer only mutates them)
    cdef object post_hooks

    def __cinit__(self, list plans, object pre_hooks, object post_hooks, tuple group_of=None):
        cdef int64_t n = 0, m = 0, j
        cdef Py_ssize_t k, last = -1
        cdef StepPlan p
        self.written = NULL
        self._group_of = NULL
        self.plans = tuple(plans)
        if group_of is not None and len(group_of) != len(self.plans):
            raise ValueError(f"got {len(self.plans)} plans but {len(group_of)} group indices")
        self._group_of = <Py_ssize_t *>malloc(max(len(self.plans), 1) * sizeof(Py_ssize_t))
        if self._group_of == NULL:
            raise MemoryError()
        for k in range(len(self.plans)):
            self._group_of[k] = k if group_of is None else group_of[k]
            if not last <= self._group_of[k] <= last + 1:
                raise ValueError(f"group indices must be non-decreasing from 0 without gaps, got {group_of}")
            last = self._group_of[k]
        self.n_groups = last + 1
        self.pre_hooks, self.post_hooks = pre_hooks, post_hooks
        for p in self.plans:
            n += p.table.n_written
        self.written = <_interval *>malloc(max(n, 1) * sizeof(_interval))
        if self.written == NULL:
            raise MemoryError()
        for p in self.plans:
            for j in range(p.table.n_written):
                self.written[m] = p.table.written[j]
                m += 1
        self.n_written = m
        qsort(self.written, m, sizeof(_interval), _cmp_lo)

    def __dealloc__(self):
        free(self.written)
        free(self._group_of)

    def __len__(self):
        return len(self.plans)

    cdef int _step(self, list groups, dict state) except -1:
        cdef Py_ssize_t g, k, n = len(self.plans)
        cdef int64_t i
        cdef StepPlan p
        if len(groups) != self.n_groups:
            return 0
        for g in range(n):
            p = <StepPlan>self.plans[g]
            grp = groups[self._group_of[g]]
            if type(grp) is not dict or not p._bind(<dict>grp, state):
                for k in range(g):
                    (<StepPlan>self.plans[k])._unbind()
                return 0
        if n > 1:
            for g in range(n):
                p = <StepPlan>self.plans[g]
                for i in range(p.table.n_tensors):
                    if _hit(self.written, self.n_written, <cnp.ndarray>p._grad(i)) >= 0:
                        for k in range(n):
                            (<StepPlan>self.plans[k])._unbind()
                        return 0  # the full path names the conflict
        for g in range(n):
            try:
                (<StepPlan>self.plans[g])._run()
            except BaseException:
                for k in range(g + 1, n):
                    (<StepPlan>self.plans[k])._unbind()
                raise
        self.runs += 1
        return 1

    def step(self, list groups, object state) -> bool:
        """Every group's repeated step (see the class docstring; hooks are the caller's business); False, with
        nothing done, if any group needs the full path."""
        if not isinstance(state, dict):
            return False
        return self._step(groups, <dict>state) == 1


cdef int _fast_step(object opt) except -1:
    """The repeated step of a ``FusedOptimizer`` under its lock, if its plans still hold and it has no step hooks to
    run. Reads the optimizer's attributes from its instance dict (``Optimizer.__init__`` sets them all)."""
    cdef PyObject *v
    cdef StepPlans plans
    cdef dict d = <dict>PyObject_GenericGetDict(opt, NULL)
    cdef OptimizerLock lock
    v = PyDict_GetItemWithError(d, "_lock")
    if v == NULL or type(<object>v) is not OptimizerLock:
        return 0
    lock = <OptimizerLock>v
    lock._acquire(-1)
    try:
        v = PyDict_GetItemWithError(d, "_plans")
        if v == NULL or type(<object>v) is not StepPlans:
            return 0
        plans = <StepPlans>v
        if plans.pre_hooks or plans.post_hooks:  # hooks to run, unless this is a step inside a hooked step
            v = PyDict_GetItemWithError(d, "_in_step")
            if v == NULL or <object>v is not True:
                return 0
        groups = PyDict_GetItemWithError(d, "param_groups")
        state = PyDict_GetItemWithError(d, "state")
        if groups == NULL or state == NULL or type(<object>groups) is not list or not isinstance(<object>state, dict):
            return 0
        return plans._step(<list>groups, <dict>state)
    finally:
        lock._release()


def fused_step(self, closure=None):
    r"""Perform one step over every group (one kernel call per group). Returns the closure's loss.

    Args:
        closure (callable, optional): re-evaluates the model and returns the loss; it runs before the update
            (default: None).

    A repeated step (no closure, no step hooks, groups, parameters, state and gradients' shapes, dtypes and
    layouts unchanged since the last step) runs as one call into the extension, which confirms all of that in C
    while holding the optimizer's lock; anything else takes the full path (``_full_step``), which validates every
    group before writing anything.
    """
    if closure is None:
        if _fast_step(self):
            return None
        return self._full_step()
    return self._full_step(closure)

fused_step._fastopt_wrapped = True  # the lock and the hooks are handled here and in _full_step


cpdef fill_columns(cnp.ndarray scalars, tuple values):
    """Set column k of ``scalars`` (a writeable C-contiguous float64 2-D array, e.g. ``TensorTable.scalars``)
    to ``values[k]`` in every row: the per-step scalars of a group whose tensors share a step count, without
    NumPy's indexing overhead (which dominates a tiny model's step)."""
    cdef int64_t i, k, rows, cols, nv = len(values)
    cdef double *d
    cdef double v
    if (cnp.PyArray_TYPE(scalars) != cnp.NPY_FLOAT64 or cnp.PyArray_NDIM(scalars) != 2
            or not cnp.PyArray_IS_C_CONTIGUOUS(scalars) or not cnp.PyArray_ISWRITEABLE(scalars)):
        raise ValueError("scalars must be a writeable C-contiguous 2-D float64 array")
    rows = cnp.PyArray_DIMS(scalars)[0]
    cols = cnp.PyArray_DIMS(scalars)[1]
    if nv > cols:
        raise ValueError(f"got {nv} values for {cols} columns")
    d = <double *>cnp.PyArray_DATA(scalars)
    for k in range(nv):
        v = values[k]
        for i in range(rows):
            d[i * cols + k] = v


cdef _raise(int rc, str kernel):
    if rc == FO_ERR_NULL:
        raise RuntimeError(f"{kernel}: a required buffer is missing")
    if rc == FO_ERR_LAYOUT:
        raise RuntimeError(f"{kernel}: malformed tensor table")
    raise RuntimeError(f"{kernel}: kernel failed with status {rc}")


cdef class Kernel:
    """One row of the C kernel table (``fo_kernels`` in csrc/kernel_table.c, generated from ``FO_KERNELS``).

    ``fields`` are the names of its hyper-parameter struct's fields in the struct's order; ``pack`` builds that
    struct from a mapping by name, and calling the kernel runs it over a ``TensorTable`` with such a block. This is
    the one generic call every optimizer, Muon, SparseAdam, SWA and the benchmark probe go through.
    """
    cdef const fo_kernel_info *info
    cdef readonly str name
    cdef readonly tuple fields
    cdef readonly tuple kinds
    cdef readonly int64_t n_bufs
    cdef readonly int64_t n_scalars
    cdef readonly Py_ssize_t hyper_size
    cdef fo_step_scalars_fn step_fn  # fo_<name>_step_scalars, or NULL (fastopt.h: FO_STEP_SCALARS)
    cdef readonly bint has_step_scalars

    def __repr__(self):
        return f"<fastopt kernel {self.name}{self.fields}>"

    def pack(self, values) -> bytes:
        """The kernel's hyper-parameter struct, its fields filled by name from ``values`` (a mapping with exactly
        these keys): doubles from real numbers, ints from bools or ints. ValueError/TypeError otherwise."""
        cdef bytearray buf
        cdef char *base
        cdef const fo_field *f
        cdef int64_t k
        if len(values) != len(self.fields) or any(name not in values for name in self.fields):
            missing = [n for n in self.fields if n not in values]
            extra = sorted(str(n) for n in values if n not in self.fields)
            raise ValueError(f"kernel {self.name}: hyper-parameters must be exactly {self.fields}; "
                             f"missing {missing}, unknown {extra}")
        buf = bytearray(self.hyper_size)
        base = buf
        for k in range(self.info.n_fields):
            f = &self.info.fields[k]
            v = values[self.fields[k]]
            if f.kind == FO_FIELD_DOUBLE:
                (<double *>(base + f.offset))[0] = <double>float(v)
            else:
                if not isinstance(v, (bool, int, np.bool_, np.integer)):
                    raise TypeError(f"kernel {self.name}: field '{self.fields[k]}' takes a bool or an int, "
                                    f"got {type(v).__name__}")
                (<int *>(base + f.offset))[0] = <int>int(v)
        return bytes(buf)

    def step_scalars(self, bytes hyper, int64_t t) -> tuple:
        """The kernel's per-tensor scalars at step count ``t`` for the block ``hyper``, computed by its C function
        (``fo_<name>_step_scalars``; only for kernels that have one: ``has_step_scalars``)."""
        cdef double out[FO_MAX_SCALARS]
        cdef const char *h
        if self.step_fn == NULL:
            raise RuntimeError(f"kernel {self.name} has no C step scalars")
        if len(hyper) != self.hyper_size:
            raise ValueError(f"kernel {self.name}: hyper block of {len(hyper)} bytes, expected {self.hyper_size}")
        if t < 0:
            raise ValueError(f"step count must be >= 0, got {t}")
        h = hyper
        self.step_fn(<const void *>h, t, out)
        return tuple(out[j] for j in range(self.n_scalars))

    def __call__(self, TensorTable t, bytes hyper) -> None:
        """Run the kernel over ``t`` with the block ``hyper`` (from ``pack``), without the GIL. The table keeps a
        reference to every array it points into, and ``hyper`` is held by this call, for the whole run."""
        self._run(t, hyper)

    cdef int _run(self, TensorTable t, bytes hyper) except -1:
        cdef int rc
        cdef const char *h
        cdef fo_kernel_fn fn
        if len(hyper) != self.hyper_size:
            raise ValueError(f"kernel {self.name}: hyper block of {len(hyper)} bytes, expected {self.hyper_size}")
        if t.type_num == cnp.NPY_FLOAT32:
            fn = self.info.f32
        elif t.type_num == cnp.NPY_FLOAT64 or t.n_tensors == 0:
            fn = self.info.f64
        else:
            raise TypeError(f"kernel {self.name}: table dtype must be float32 or float64")
        h = hyper
        t.lst.n_threads = _n_threads
        if t.total < _GIL_FREE_MIN:  # a few microseconds at most: releasing the GIL would cost a good part of it
            rc = fn(&t.lst, <const void *>h)
        else:
            with nogil:
                rc = fn(&t.lst, <const void *>h)
        if rc == FO_ERR_ARG:
            raise ValueError(f"{self.name}: the kernel rejected its hyper-parameters")
        if rc != FO_OK:
            _raise(rc, self.name)
        return 0


cdef Kernel _kernel_row(int64_t i):
    cdef Kernel k = Kernel.__new__(Kernel)
    cdef const fo_kernel_info *info = &fo_kernels[i]
    k.info = info
    k.name = info.name.decode()
    k.fields = tuple(info.fields[j].name.decode() for j in range(info.n_fields))
    k.kinds = tuple("double" if info.fields[j].kind == FO_FIELD_DOUBLE else "int" for j in range(info.n_fields))
    k.n_bufs = info.n_bufs
    k.n_scalars = info.n_scalars
    k.hyper_size = info.hyper_size
    k.step_fn = NULL
    for j in range(fo_n_step_scalars):
        if fo_step_scalars[j].name.decode() == k.name:
            k.step_fn = fo_step_scalars[j].fn
    k.has_step_scalars = k.step_fn != NULL
    if k.has_step_scalars and k.n_scalars > FO_MAX_SCALARS:
        raise RuntimeError(f"kernel {k.name}: {k.n_scalars} step scalars, at most {FO_MAX_SCALARS}")
    return k


KERNELS = {k.name: k for k in (_kernel_row(i) for i in range(fo_n_kernels))}
"""Every kernel of the C table, by name."""

AVG_SWA = FO_AVG_SWA
AVG_LERP = FO_AVG_LERP
AVG_EMA = FO_AVG_EMA


def probe(TensorTable t, int n_state, double scale=1.0, int n_in=0) -> None:
    """Run the same-traffic probe over ``t``: buffers param (INOUT), grad (IN), then ``n_state`` INOUT buffers,
    then ``n_in`` (0 to 2) more IN buffers; each written element b becomes ``b + scale * (grad + the IN ones)``.
    ``n_state + n_in <= 3``. Threads and work items as the optimizer kernels."""
    KERNELS["probe"](t, KERNELS["probe"].pack({"n_state": n_state, "n_in": n_in, "scale": scale}))


def isa() -> str:
    """The instruction set the kernels use on this CPU: 'avx512', 'avx2' or 'baseline'."""
    return ("baseline", "avx2", "avx512")[fo_isa()]


include "_lbfgs.pxi"
include "_clip.pxi"
include "_adafactor.pxi"
include "_lowp.pxi"

include "_reduce.pxi"
