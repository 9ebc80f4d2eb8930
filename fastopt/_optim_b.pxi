# Wrappers for the ASGD, Rprop, Muon and SparseAdam kernels (included by _kernels.pyx).


def asgd(TensorTable t, double weight_decay, bint maximize) -> None:
    """Run the ASGD kernel (buffers: param, grad, ax; scalars: 1 - lambd*eta, -eta, mu, mu == 1)."""
    cdef fo_asgd_hyper h
    cdef int rc
    h.weight_decay = weight_decay; h.maximize = maximize
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_asgd_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_asgd_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "asgd")


def rprop(TensorTable t, double etaminus, double etaplus, double step_size_min, double step_size_max,
          bint maximize) -> None:
    """Run the Rprop kernel (buffers: param, grad, prev, step_size; no scalars)."""
    cdef fo_rprop_hyper h
    cdef int rc
    h.etaminus = etaminus; h.etaplus = etaplus; h.step_size_min = step_size_min; h.step_size_max = step_size_max
    h.maximize = maximize
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_rprop_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_rprop_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "rprop")


def muon_momentum(TensorTable t, double momentum, bint nesterov) -> None:
    """Run Muon's momentum kernel (buffers: update (written), grad, momentum_buffer; no scalars)."""
    cdef fo_muon_hyper h
    cdef int rc
    h.lr = 0; h.weight_decay = 0; h.momentum = momentum; h.nesterov = nesterov
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_muon_momentum_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_muon_momentum_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "muon_momentum")


def muon_apply(TensorTable t, double lr, double weight_decay) -> None:
    """Run Muon's update kernel (buffers: param, update; scalars: adjusted_lr)."""
    cdef fo_muon_hyper h
    cdef int rc
    h.lr = lr; h.weight_decay = weight_decay; h.momentum = 0; h.nesterov = 0
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_muon_apply_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_muon_apply_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "muon_apply")


def sparse_adam(TensorTable t, double beta1, double beta2, double eps, bint maximize) -> None:
    """Run the SparseAdam kernel over gathered rows (buffers: param rows, grad rows, exp_avg rows,
    exp_avg_sq rows; scalars: step_size)."""
    cdef fo_sparse_adam_hyper h
    cdef int rc
    h.beta1 = beta1; h.beta2 = beta2; h.eps = eps; h.maximize = maximize
    _prepare(t)
    if t.type_num == cnp.NPY_FLOAT32:
        with nogil:
            rc = fo_sparse_adam_f32(&t.lst, &h)
    else:
        with nogil:
            rc = fo_sparse_adam_f64(&t.lst, &h)
    if rc != FO_OK:
        _raise(rc, "sparse_adam")
