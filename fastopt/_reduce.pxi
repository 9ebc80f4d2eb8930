# Group reductions (included by _kernels.pyx; C: FO_REDUCERS in csrc/fastopt.h, the driver in csrc/fo_group_reduce.h).
# A reduction runs over a kernel's TensorTable with that kernel's hyper block, like the kernel, and returns sums
# added in a fixed order (same bits for any thread count): Prodigy's first pass is one.

cdef extern from "fastopt.h" nogil:
    ctypedef int (*fo_reduce_fn)(const fo_tensor_list *t, const void *h, double *partials, double *out) noexcept nogil
    ctypedef struct fo_reducer_info:
        const char *name
        const char *kernel
        int64_t n_out
        fo_reduce_fn f32
        fo_reduce_fn f64
    const fo_reducer_info fo_reducers[]
    const int64_t fo_n_reducers


cdef class Reducer:
    """One row of the C reduction table (``fo_reducers``, from ``FO_REDUCERS``): runs over a ``TensorTable`` built
    for the kernel ``kernel`` with that kernel's packed hyper block, and returns its ``n_out`` sums as floats.
    ``scratch(t)`` is the per-work-item partials array a call over ``t`` needs (keep it with the table)."""
    cdef const fo_reducer_info *info
    cdef readonly str name
    cdef readonly str kernel
    cdef readonly int64_t n_out

    def __repr__(self):
        return f"<fastopt reduction {self.name} over kernel {self.kernel}>"

    def scratch(self, TensorTable t) -> object:
        """A float64 array of the size a call over ``t`` needs for its partial sums."""
        return np.empty(max(1, t.lst.n_work * self.n_out), np.float64)

    def __call__(self, TensorTable t, bytes hyper, object partials) -> tuple:
        """Run the reduction over ``t`` (GIL released for large tables); ``partials`` from ``scratch(t)``."""
        cdef Kernel k = KERNELS[self.kernel]
        cdef fo_reduce_fn fn
        cdef const char *h
        cdef double out[8]
        cdef double *part
        cdef int rc
        cdef cnp.ndarray arr
        if len(hyper) != k.hyper_size:
            raise ValueError(f"{self.name}: hyper block of {len(hyper)} bytes, expected {k.hyper_size}")
        if not isinstance(partials, np.ndarray):
            raise TypeError(f"{self.name}: partials must be a numpy.ndarray (from scratch())")
        arr = <cnp.ndarray>partials
        if (cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT64 or not cnp.PyArray_IS_C_CONTIGUOUS(arr)
                or not cnp.PyArray_ISWRITEABLE(arr) or arr.size < t.lst.n_work * self.n_out):
            raise ValueError(f"{self.name}: partials must be a writeable C-contiguous float64 array of at least "
                             f"{t.lst.n_work * self.n_out} elements (from scratch())")
        if t.type_num == cnp.NPY_FLOAT32:
            fn = self.info.f32
        elif t.type_num == cnp.NPY_FLOAT64 or t.n_tensors == 0:
            fn = self.info.f64
        else:
            raise TypeError(f"{self.name}: table dtype must be float32 or float64")
        h = hyper
        part = <double *>cnp.PyArray_DATA(arr)
        t.lst.n_threads = _n_threads
        if t.total < _GIL_FREE_MIN:
            rc = fn(&t.lst, <const void *>h, part, out)
        else:
            with nogil:
                rc = fn(&t.lst, <const void *>h, part, out)
        if rc == FO_ERR_ARG:
            raise ValueError(f"{self.name}: the reduction rejected its hyper-parameters")
        if rc != FO_OK:
            _raise(rc, self.name)
        return tuple(out[i] for i in range(self.n_out))


cdef Reducer _reducer_row(int64_t i):
    cdef Reducer r = Reducer.__new__(Reducer)
    r.info = &fo_reducers[i]
    r.name = r.info.name.decode()
    r.kernel = r.info.kernel.decode()
    r.n_out = r.info.n_out
    if r.n_out > 8:
        raise RuntimeError(f"reduction {r.name}: at most 8 sums (it declares {r.n_out})")
    return r


REDUCERS = {r.name: r for r in (_reducer_row(i) for i in range(fo_n_reducers))}
"""Every reduction of the C table, by name."""
