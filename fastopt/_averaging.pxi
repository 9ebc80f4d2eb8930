# Parameter averaging: the C boundary of fastopt.swa_utils (included by _kernels.pyx; C in csrc/averaging.c).

AVG_SWA = FO_AVG_SWA
AVG_LERP = FO_AVG_LERP
AVG_EMA = FO_AVG_EMA


def average(TensorTable t, int mode, double weight) -> None:
    """Run the averaging kernel over ``t`` (buffers: averaged, current parameter; no scalars) with rule
    ``mode`` (AVG_SWA, AVG_LERP or AVG_EMA) and its ``weight``."""
    cdef fo_avg_hyper h
    cdef int rc
    h.mode = mode
    h.weight = weight
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_average_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_average_f64(&t.lst, &h)
    if rc == FO_ERR_ARG:
        raise ValueError(f"average: invalid mode {mode} or weight {weight}")
    if rc != FO_OK:
        _raise(rc, "average")
