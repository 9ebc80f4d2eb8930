# Gradient clipping: the C boundary of fastopt.clip (included by _kernels.pyx; C in csrc/clip.c).

cdef class GradTable:
    """C table over a list of gradient arrays of float32 and/or float64 (mixed dtypes allowed).

    Args:
        arrays: C-contiguous, aligned float32/float64 ndarrays.
        writeable: the kernel will write them: each must be writeable and no two may share memory.
        names: how messages name each array (default ``grads[i]``).
    """
    cdef fo_grad_list lst
    cdef void **data
    cdef int64_t *sizes
    cdef int *dtypes
    cdef fo_work *work
    cdef list _arrays
    cdef list _names
    cdef readonly int64_t n_tensors
    cdef readonly int64_t n_work
    cdef readonly int64_t total

    def __cinit__(self, list arrays, bint writeable, list names=None):
        cdef int64_t n = len(arrays), i
        cdef cnp.ndarray a
        cdef int tn
        self.data = NULL
        self.sizes = NULL
        self.dtypes = NULL
        self.work = NULL
        self._arrays = list(arrays)
        self._names = names if names is not None else [f"grads[{i}]" for i in range(n)]
        if len(self._names) != n:
            raise ValueError(f"got {n} arrays but {len(self._names)} names")
        self.n_tensors = n
        self.total = 0
        self.data = <void **>malloc(max(n, 1) * sizeof(void *))
        self.sizes = <int64_t *>malloc(max(n, 1) * sizeof(int64_t))
        self.dtypes = <int *>malloc(max(n, 1) * sizeof(int))
        if self.data == NULL or self.sizes == NULL or self.dtypes == NULL:
            raise MemoryError()
        for i in range(n):
            arr = self._arrays[i]
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"{self._names[i]} must be a numpy.ndarray, got {type(arr).__name__}")
            a = <cnp.ndarray>arr
            tn = cnp.PyArray_TYPE(a)
            if tn == cnp.NPY_FLOAT32:
                self.dtypes[i] = FO_DTYPE_F32
            elif tn == cnp.NPY_FLOAT64:
                self.dtypes[i] = FO_DTYPE_F64
            else:
                raise TypeError(f"{self._names[i]} has dtype {a.dtype}; expected float32 or float64")
            if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)):
                raise ValueError(f"{self._names[i]} must be C-contiguous and aligned")
            if writeable and not cnp.PyArray_ISWRITEABLE(a):
                raise ValueError(f"{self._names[i]} is read-only")
            self.sizes[i] = cnp.PyArray_SIZE(a)
            self.total += self.sizes[i]
            self.data[i] = cnp.PyArray_DATA(a) if self.sizes[i] > 0 else NULL
        if writeable:  # the one overlap check
            pair = find_overlap(self._arrays, [True] * n)
            if pair is not None:
                j, k = pair
                raise ValueError(f"{self._names[j]} and {self._names[k]} share memory; gradients written in place "
                                 "must be separate arrays")
        self.n_work = fo_count_work(self.sizes, n, FO_CHUNK)
        self.work = <fo_work *>malloc(max(self.n_work, 1) * sizeof(fo_work))
        if self.work == NULL:
            raise MemoryError()
        fo_plan_work(self.sizes, n, FO_CHUNK, self.work)
        self.lst.n_tensors = n
        self.lst.data = self.data
        self.lst.sizes = self.sizes
        self.lst.dtypes = self.dtypes
        self.lst.work = self.work
        self.lst.n_work = self.n_work
        self.lst.total = self.total
        self.lst.n_threads = 1

    def __dealloc__(self):
        free(self.data)
        free(self.sizes)
        free(self.dtypes)
        free(self.work)


def grad_norm(GradTable t, double norm_type):
    """(total, norms): the norm_type-norm of each gradient (float64 array) and the norm of those norms."""
    cdef cnp.ndarray partials = np.zeros(max(t.n_work, 1), dtype=np.float64)
    cdef cnp.ndarray norms = np.zeros(max(t.n_tensors, 1), dtype=np.float64)
    cdef double *pp = <double *>cnp.PyArray_DATA(partials)
    cdef double *pn = <double *>cnp.PyArray_DATA(norms)
    cdef double total = 0.0
    cdef int rc
    t.lst.n_threads = _n_threads
    with nogil:
        rc = fo_grad_norm(&t.lst, norm_type, pp, pn, &total)
    if rc == FO_ERR_ARG:
        raise RuntimeError(f"cannot compute the {norm_type:g}-norm (NaN order, or an empty gradient with no "
                           "identity for this order)")
    if rc != FO_OK:
        _raise(rc, "grad_norm")
    return total, norms[:t.n_tensors]


def grad_scale(GradTable t, double coef) -> None:
    """Multiply every gradient of ``t`` in place by ``coef`` (cast to each gradient's dtype)."""
    cdef int rc
    t.lst.n_threads = _n_threads
    with nogil:
        rc = fo_grad_scale(&t.lst, coef)
    if rc != FO_OK:
        _raise(rc, "grad_scale")


def grad_clamp(GradTable t, double lo, double hi) -> None:
    """Clamp every gradient of ``t`` in place to [lo, hi] (NaN stays NaN)."""
    cdef int rc
    t.lst.n_threads = _n_threads
    with nogil:
        rc = fo_grad_clamp(&t.lst, lo, hi)
    if rc != FO_OK:
        _raise(rc, "grad_clamp")
