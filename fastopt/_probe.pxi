# The same-traffic probe (csrc/fo_probe.h) and the ISA the kernels dispatch to; used by fastopt.bench.
# Included from _kernels.pyx, so it shares TensorTable and _raise.

cdef extern from "fo_probe.h" nogil:
    ctypedef struct fo_probe_hyper:
        int64_t n_state
        double scale
    int fo_probe_f32(const fo_tensor_list *t, const fo_probe_hyper *h)
    int fo_probe_f64(const fo_tensor_list *t, const fo_probe_hyper *h)
    int fo_isa()


def probe(TensorTable t, int n_state, double scale=1.0) -> None:
    """Run the same-traffic probe over ``t``: buffers param (INOUT), grad (IN), then ``n_state`` INOUT buffers;
    each written element b becomes ``b + scale * grad``. Threads and work items as the optimizer kernels."""
    cdef fo_probe_hyper h
    cdef int rc
    h.n_state = n_state
    h.scale = scale
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_probe_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_probe_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "probe")


def isa() -> str:
    """The instruction set the kernels use on this CPU: 'avx512', 'avx2' or 'baseline'."""
    return ("baseline", "avx2", "avx512")[fo_isa()]
