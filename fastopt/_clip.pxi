# Gradient clipping: the C boundary of fastopt.clip (included by _kernels.pyx; C in csrc/clip.c).

cdef class GradTable:
    """C table over a list of gradient arrays of float32 and/or float64 (mixed dtypes allowed).

    The table owns everything a call needs besides the gradients: the pointers, the fixed work items and the
    scratch of ``grad_norm`` (one partial per work item, one norm per tensor), sized once. ``grad_table`` hands out
    a cached table for a list of the same sizes and dtypes (rebinding only the pointers), so a clipping call in a
    training loop allocates nothing; ``release_grad_table`` drops its references to the arrays and caches it again.

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
    cdef double *part_buf   # [n_work]: one partial per work item (fo_grad_norm)
    cdef double *norm_buf   # [n_tensors]: each tensor's norm (fo_grad_norm)
    cdef list _arrays
    cdef list _names
    cdef readonly int64_t n_tensors
    cdef readonly int64_t n_work
    cdef readonly int64_t total

    def __cinit__(self, list arrays, bint writeable, list names=None):
        cdef int64_t n = len(arrays)
        self.data = NULL
        self.sizes = NULL
        self.dtypes = NULL
        self.work = NULL
        self.part_buf = NULL
        self.norm_buf = NULL
        self.n_tensors = n
        self.data = <void **>malloc(max(n, 1) * sizeof(void *))
        self.sizes = <int64_t *>malloc(max(n, 1) * sizeof(int64_t))
        self.dtypes = <int *>malloc(max(n, 1) * sizeof(int))
        self.norm_buf = <double *>malloc(max(n, 1) * sizeof(double))
        if self.data == NULL or self.sizes == NULL or self.dtypes == NULL or self.norm_buf == NULL:
            raise MemoryError()
        self._bind(arrays, writeable, names, True)
        self.n_work = fo_count_work(self.sizes, n, FO_CHUNK)
        self.work = <fo_work *>malloc(max(self.n_work, 1) * sizeof(fo_work))
        self.part_buf = <double *>malloc(max(self.n_work, 1) * sizeof(double))
        if self.work == NULL or self.part_buf == NULL:
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

    cdef bint _bind(self, list arrays, bint writeable, list names, bint fresh) except -1:
        """Check ``arrays`` and point the table at them. ``fresh``: record their sizes and dtypes (construction);
        otherwise return False, changing nothing the kernels read, unless they match the recorded layout."""
        cdef int64_t n = len(arrays), i, size
        cdef cnp.ndarray a
        cdef int tn, dt
        if n != self.n_tensors:
            return False
        if names is None:
            names = [f"grads[{i}]" for i in range(n)]
        elif len(names) != n:
            raise ValueError(f"got {n} arrays but {len(names)} names")
        for i in range(n):
            arr = arrays[i]
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"{names[i]} must be a numpy.ndarray, got {type(arr).__name__}")
            a = <cnp.ndarray>arr
            tn = cnp.PyArray_TYPE(a)
            if tn == cnp.NPY_FLOAT32:
                dt = FO_DTYPE_F32
            elif tn == cnp.NPY_FLOAT64:
                dt = FO_DTYPE_F64
            else:
                raise TypeError(f"{names[i]} has dtype {a.dtype}; expected float32 or float64")
            if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)):
                raise ValueError(f"{names[i]} must be C-contiguous and aligned")
            if writeable and not cnp.PyArray_ISWRITEABLE(a):
                raise ValueError(f"{names[i]} is read-only")
            size = cnp.PyArray_SIZE(a)
            if not fresh and (size != self.sizes[i] or dt != self.dtypes[i]):
                return False
        if writeable:  # the one overlap check
            pair = find_overlap(arrays, [True] * n)
            if pair is not None:
                j, k = pair
                raise ValueError(f"{names[j]} and {names[k]} share memory; gradients written in place "
                                 "must be separate arrays")
        # every check has passed: bind (the layout is unchanged when not fresh)
        if fresh:
            self.total = 0
        for i in range(n):
            a = <cnp.ndarray>arrays[i]
            if fresh:
                self.sizes[i] = cnp.PyArray_SIZE(a)
                self.dtypes[i] = FO_DTYPE_F32 if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32 else FO_DTYPE_F64
                self.total += self.sizes[i]
            self.data[i] = cnp.PyArray_DATA(a) if self.sizes[i] > 0 else NULL
        self._arrays = list(arrays)  # the kernels read these: keep them alive while bound
        self._names = names
        return True

    cdef void _unbind(self):
        cdef int64_t i
        self._arrays = None
        self._names = None
        for i in range(self.n_tensors):
            self.data[i] = NULL

    def norms(self) -> object:
        """The per-tensor norms of the last ``grad_norm`` over this table (a float64 copy)."""
        return np.array([self.norm_buf[i] for i in range(self.n_tensors)], dtype=np.float64)

    def __dealloc__(self):
        free(self.data)
        free(self.sizes)
        free(self.dtypes)
        free(self.work)
        free(self.part_buf)
        free(self.norm_buf)


# Tables not in use, by tensor count (one each, at most _GRAD_TABLES_MAX counts). A table in use is out of the
# cache, so two threads clipping at once never share scratch.
cdef dict _grad_tables = {}
cdef int _GRAD_TABLES_MAX = 8


def grad_table(list arrays, bint writeable, list names=None) -> GradTable:
    """A table bound to ``arrays`` (checked as ``GradTable``): the cached one for this tensor count if the sizes and
    dtypes match (no allocation), else a new one. Give it back with ``release_grad_table`` after the call."""
    cdef GradTable t = _grad_tables.pop(len(arrays), None)
    if t is not None and t._bind(arrays, writeable, names, False):
        return t
    return GradTable(arrays, writeable, names)


def release_grad_table(GradTable t) -> None:
    """Drop ``t``'s references to its arrays and keep it for the next ``grad_table`` call of its tensor count."""
    t._unbind()
    if len(_grad_tables) >= _GRAD_TABLES_MAX and t.n_tensors not in _grad_tables:
        _grad_tables.pop(next(iter(_grad_tables)))
    _grad_tables[t.n_tensors] = t


def grad_norm(GradTable t, double norm_type) -> float:
    """The norm_type-norm of the per-gradient norms (``t.norms()`` gives those), in double; scratch is ``t``'s."""
    cdef double total = 0.0
    cdef int rc
    if t._arrays is None:
        raise RuntimeError("grad_norm: the table was released")
    t.lst.n_threads = _n_threads
    with nogil:
        rc = fo_grad_norm(&t.lst, norm_type, t.part_buf, t.norm_buf, &total)
    if rc == FO_ERR_ARG:
        raise RuntimeError(f"cannot compute the {norm_type:g}-norm (NaN order, or an empty gradient with no "
                           "identity for this order)")
    if rc != FO_OK:
        _raise(rc, "grad_norm")
    return total


def grad_scale(GradTable t, double coef) -> None:
    """Multiply every gradient of ``t`` in place by ``coef`` (cast to each gradient's dtype)."""
    cdef int rc
    if t._arrays is None:
        raise RuntimeError("grad_scale: the table was released")
    t.lst.n_threads = _n_threads
    with nogil:
        rc = fo_grad_scale(&t.lst, coef)
    if rc != FO_OK:
        _raise(rc, "grad_scale")


def grad_clamp(GradTable t, double lo, double hi) -> None:
    """Clamp every gradient of ``t`` in place to [lo, hi] (NaN stays NaN)."""
    cdef int rc
    if t._arrays is None:
        raise RuntimeError("grad_clamp: the table was released")
    t.lst.n_threads = _n_threads
    with nogil:
        rc = fo_grad_clamp(&t.lst, lo, hi)
    if rc != FO_OK:
        _raise(rc, "grad_clamp")


cdef extern from "fo_sum.h":
    enum: FO_SUM_LANES

SUM_LANES = FO_SUM_LANES
"""Lanes of fastopt's one reduction (csrc/fo_sum.h): element i of a work item goes into lane i % SUM_LANES."""
SUM_CHUNK = FO_CHUNK
"""Elements per work item of the reduction (FO_CHUNK): the partials of consecutive items are added in order."""
