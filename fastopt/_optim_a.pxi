# Wrappers for the Adagrad, Adadelta, Adamax, NAdam, RAdam and Lion kernels (csrc/fo_optim_a.h); included by
# _kernels.pyx. Each fills its hyper struct, releases the GIL, calls the kernel for the table's dtype and turns
# a failure status into an exception. Buffer positions and per-tensor scalars are listed in fo_optim_a.h.


def adagrad(TensorTable t, double eps, double weight_decay, bint maximize) -> None:
    """Run the Adagrad kernel (buffers: param, grad, sum; scalars: clr)."""
    cdef fo_adagrad_hyper h
    cdef int rc
    h.eps = eps; h.weight_decay = weight_decay; h.maximize = maximize
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_adagrad_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_adagrad_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "adagrad")


def adadelta(TensorTable t, double lr, double rho, double eps, double weight_decay, bint maximize) -> None:
    """Run the Adadelta kernel (buffers: param, grad, square_avg, acc_delta; no scalars)."""
    cdef fo_adadelta_hyper h
    cdef int rc
    h.lr = lr; h.rho = rho; h.eps = eps; h.weight_decay = weight_decay; h.maximize = maximize
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_adadelta_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_adadelta_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "adadelta")


def adamax(TensorTable t, double beta1, double beta2, double eps, double weight_decay, bint maximize) -> None:
    """Run the Adamax kernel (buffers: param, grad, exp_avg, exp_inf; scalars: clr)."""
    cdef fo_adamax_hyper h
    cdef int rc
    h.beta1 = beta1; h.beta2 = beta2; h.eps = eps; h.weight_decay = weight_decay; h.maximize = maximize
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_adamax_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_adamax_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "adamax")


def nadam(TensorTable t, double lr, double beta1, double beta2, double eps, double weight_decay,
          bint maximize, bint decoupled_weight_decay) -> None:
    """Run the NAdam kernel (buffers: param, grad, exp_avg, exp_avg_sq;
    scalars: bias_correction2, grad coefficient, exp_avg coefficient)."""
    cdef fo_nadam_hyper h
    cdef int rc
    h.lr = lr; h.beta1 = beta1; h.beta2 = beta2; h.eps = eps; h.weight_decay = weight_decay
    h.maximize = maximize; h.decoupled_weight_decay = decoupled_weight_decay
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_nadam_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_nadam_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "nadam")


def radam(TensorTable t, double lr, double beta1, double beta2, double eps, double weight_decay,
          bint maximize, bint decoupled_weight_decay) -> None:
    """Run the RAdam kernel (buffers: param, grad, exp_avg, exp_avg_sq;
    scalars: bias_correction1, sqrt(bias_correction2), rect, rectified)."""
    cdef fo_radam_hyper h
    cdef int rc
    h.lr = lr; h.beta1 = beta1; h.beta2 = beta2; h.eps = eps; h.weight_decay = weight_decay
    h.maximize = maximize; h.decoupled_weight_decay = decoupled_weight_decay
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_radam_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_radam_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "radam")


def lion(TensorTable t, double lr, double beta1, double beta2, double weight_decay, bint maximize) -> None:
    """Run the Lion kernel (buffers: param, grad, exp_avg; no scalars)."""
    cdef fo_lion_hyper h
    cdef int rc
    h.lr = lr; h.beta1 = beta1; h.beta2 = beta2; h.weight_decay = weight_decay; h.maximize = maximize
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_lion_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_lion_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "lion")
