# Wrappers for the Adafactor kernels (included by _kernels.pyx; C in csrc/adafactor_impl.h). Each takes single
# arrays, not a TensorTable: Adafactor's row and column factors do not have the parameter's shape. The float64
# scratch the sums need is the caller's (the optimizer keeps one between steps: adafactor_scratch_size says how
# much); None allocates it for this call only.


def adafactor_scratch_size(shape) -> int:
    """Doubles of scratch ``adafactor_sumsq`` and ``adafactor_factored`` need for a tensor of this shape."""
    cdef int64_t n = 1, batch = 1
    cdef Py_ssize_t i, nd = len(shape)
    for i in range(nd):
        n *= shape[i]
        if i < nd - 2:
            batch *= shape[i]
    return max(fo_adafactor_n_chunks(n), batch if nd >= 2 else 1, 1)


cdef double *_af_scratch(object scratch, int64_t need, str name) except NULL:
    """The data of the caller's scratch array (float64, C-contiguous, writeable, >= need doubles)."""
    if not isinstance(scratch, np.ndarray):
        raise TypeError(f"adafactor: {name} must be a numpy.ndarray (see adafactor_scratch_size)")
    cdef cnp.ndarray s = <cnp.ndarray>scratch
    if (cnp.PyArray_TYPE(s) != cnp.NPY_FLOAT64 or not cnp.PyArray_IS_C_CONTIGUOUS(s)
            or not cnp.PyArray_ISWRITEABLE(s) or cnp.PyArray_SIZE(s) < max(need, 1)):
        raise ValueError(f"adafactor: {name} must be a writeable C-contiguous float64 array of at least "
                         f"{max(need, 1)} elements")
    return <double *>cnp.PyArray_DATA(s)


cdef int _af_check(object a, str name, int type_num, bint written) except -1:
    """Last guard before a kernel: ndarray of the right dtype, C-contiguous, aligned, writeable if written."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"adafactor: {name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray x = <cnp.ndarray>a
    if cnp.PyArray_TYPE(x) != type_num:
        raise TypeError(f"adafactor: {name} has dtype {x.dtype}, expected {np.dtype(np.float32 if type_num == cnp.NPY_FLOAT32 else np.float64)}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_ISALIGNED(x)):
        raise ValueError(f"adafactor: {name} must be C-contiguous and aligned")
    if written and not cnp.PyArray_ISWRITEABLE(x):
        raise ValueError(f"adafactor: {name} is read-only")
    return 0


cdef int _af_type(object a) except -1:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"adafactor: expected a numpy.ndarray, got {type(a).__name__}")
    cdef int tn = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if tn != cnp.NPY_FLOAT32 and tn != cnp.NPY_FLOAT64:
        raise TypeError(f"adafactor: dtype {a.dtype} is not supported; expected float32 or float64")
    return tn


cdef int _af_disjoint(list written, list others) except -1:
    """No array the kernel writes may share memory with any other array of the call (the one overlap check)."""
    if find_overlap(written + others, [True] * len(written) + [False] * len(others)) is not None:
        raise ValueError("adafactor: a buffer written by the kernel shares memory with another buffer")
    return 0


def adafactor_sumsq(x, scratch=None) -> float:
    """Sum of squares of a C-contiguous float32/float64 array, in double, in fastopt's fixed order (fo_sum.h);
    ``scratch``: float64 of at least ``adafactor_scratch_size(x.shape)`` elements (None: allocated here)."""
    cdef int tn = _af_type(x)
    _af_check(x, "x", tn, False)
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int64_t n = cnp.PyArray_SIZE(a)
    if scratch is None:
        scratch = np.empty(max(fo_adafactor_n_chunks(n), 1), np.float64)
    cdef double *pp = _af_scratch(scratch, fo_adafactor_n_chunks(n), "scratch")
    _af_disjoint([scratch], [x])
    cdef double out = 0
    cdef int rc
    cdef int nt = _n_threads
    cdef void *px = cnp.PyArray_DATA(a)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rc = fo_adafactor_sumsq_f32(<const float *>px, n, pp, nt, &out)
        else:
            rc = fo_adafactor_sumsq_f64(<const double *>px, n, pp, nt, &out)
    if rc != FO_OK:
        _raise(rc, "adafactor_sumsq")
    return out


def adafactor_factored(grad, row_var, col_var, update, double weight, double eps1, bint maximize,
                       scratch=None) -> None:
    """Factored second moment and update of one tensor of >= 2 dims: row_var, col_var updated, update written;
    ``scratch``: float64 of at least ``adafactor_scratch_size(grad.shape)`` elements (None: allocated here)."""
    cdef int tn = _af_type(grad)
    _af_check(grad, "grad", tn, False)
    _af_check(row_var, "row_var", tn, True)
    _af_check(col_var, "col_var", tn, True)
    _af_check(update, "update", tn, True)
    shape = tuple(grad.shape)
    cdef Py_ssize_t nd = len(shape)
    if nd < 2:
        raise ValueError(f"adafactor: the factored kernel needs a grad of >= 2 dims, got shape {shape}")
    if row_var.shape != shape[:nd - 1] + (1,) or col_var.shape != shape[:nd - 2] + (1, shape[nd - 1]) \
            or update.shape != shape:
        raise ValueError(f"adafactor: row_var {row_var.shape}, col_var {col_var.shape} or update {update.shape} "
                         f"does not fit grad {shape}")
    cdef int64_t m = shape[nd - 2], n = shape[nd - 1]
    cdef int64_t batch = 1
    for s in shape[:nd - 2]:
        batch *= s
    if scratch is None:
        scratch = np.empty(max(batch, 1), np.float64)
    cdef double *ps = _af_scratch(scratch, batch, "scratch")
    _af_disjoint([row_var, col_var, update, scratch], [grad])
    cdef fo_adafactor_hyper h
    h.weight = weight; h.eps1 = eps1; h.maximize = maximize; h.n_threads = _n_threads
    cdef void *pg = cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef void *pr = cnp.PyArray_DATA(<cnp.ndarray>row_var)
    cdef void *pc = cnp.PyArray_DATA(<cnp.ndarray>col_var)
    cdef void *pu = cnp.PyArray_DATA(<cnp.ndarray>update)
    cdef int rc
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rc = fo_adafactor_factored_f32(<const float *>pg, <float *>pr, <float *>pc, <float *>pu, ps,
                                           batch, m, n, &h)
        else:
            rc = fo_adafactor_factored_f64(<const double *>pg, <double *>pr, <double *>pc, <double *>pu, ps,
                                           batch, m, n, &h)
    if rc != FO_OK:
        _raise(rc, "adafactor_factored")


def adafactor_vector(grad, variance, update, double weight, double eps1, bint maximize) -> None:
    """Unfactored second moment and update of one 0-D or 1-D tensor: variance updated, update written."""
    cdef int tn = _af_type(grad)
    _af_check(grad, "grad", tn, False)
    _af_check(variance, "variance", tn, True)
    _af_check(update, "update", tn, True)
    if variance.shape != grad.shape or update.shape != grad.shape:
        raise ValueError(f"adafactor: variance {variance.shape} or update {update.shape} does not fit grad "
                         f"{grad.shape}")
    _af_disjoint([variance, update], [grad])
    cdef int64_t n = grad.size
    cdef fo_adafactor_hyper h
    h.weight = weight; h.eps1 = eps1; h.maximize = maximize; h.n_threads = _n_threads
    cdef void *pg = cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef void *pv = cnp.PyArray_DATA(<cnp.ndarray>variance)
    cdef void *pu = cnp.PyArray_DATA(<cnp.ndarray>update)
    cdef int rc
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rc = fo_adafactor_vector_f32(<const float *>pg, <float *>pv, <float *>pu, n, &h)
        else:
            rc = fo_adafactor_vector_f64(<const double *>pg, <double *>pv, <double *>pu, n, &h)
    if rc != FO_OK:
        _raise(rc, "adafactor_vector")


def adafactor_apply(param, update, double decay, double step) -> None:
    """param = param * decay + step * update (one fma after the rounded product), in param's dtype."""
    cdef int tn = _af_type(param)
    _af_check(param, "param", tn, True)
    _af_check(update, "update", tn, False)
    if update.shape != param.shape:
        raise ValueError(f"adafactor: update {update.shape} does not fit param {param.shape}")
    _af_disjoint([param], [update])
    cdef int64_t n = param.size
    cdef void *pp = cnp.PyArray_DATA(<cnp.ndarray>param)
    cdef void *pu = cnp.PyArray_DATA(<cnp.ndarray>update)
    cdef int nt = _n_threads
    cdef int rc
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rc = fo_adafactor_apply_f32(<float *>pp, <const float *>pu, n, decay, step, nt)
        else:
            rc = fo_adafactor_apply_f64(<double *>pp, <const double *>pu, n, decay, step, nt)
    if rc != FO_OK:
        _raise(rc, "adafactor_apply")
