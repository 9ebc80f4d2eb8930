"""The functional forms (fastopt.functional): each gives its class's results bit for bit, and a call that rejects
its input leaves the parameters, the state buffers and the step counts as they were (the counts are stored only
after the kernel's checks have passed). Adafactor's functional form: tests/test_adafactor.py."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import make
from helpers import make_array

F = fo.functional




def _run(name, kw, fn, state, dtype, rng):
    data = [make_array(rng, n, dtype) for n in (5, 130, 0)]
    params = [fo.Parameter(d.copy()) for d in data]
    opt = getattr(fo, name)(params, **kw)
    arrays = [d.copy() for d in data]
    st = state(arrays)
    for _ in range(7):
        grads = [make_array(rng, a.size, dtype) for a in arrays]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        fn(arrays, grads, st)
    for p, a in zip(params, arrays):
        np.testing.assert_array_equal(p.data, a)
    return opt, params, st


def zeros(arrays):
    return [np.zeros_like(a) for a in arrays]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functional_matches_class(dtype, rng):
    _run("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-6),
         lambda p, g, s: F.adagrad(p, g, s[0], s[1], lr=0.1, weight_decay=0.1, lr_decay=0.01, eps=1e-6,
                                   maximize=False),
         lambda a: ([np.full_like(x, 0.3) for x in a], [0] * len(a)), dtype, rng)
    _run("Adadelta", dict(lr=0.5, rho=0.8, maximize=True),
         lambda p, g, s: F.adadelta(p, g, s[0], s[1], s[2], lr=0.5, rho=0.8, eps=1e-6, weight_decay=0,
                                    maximize=True),
         lambda a: (zeros(a), zeros(a), np.zeros(len(a), np.int64)), dtype, rng)
    _run("Adamax", dict(lr=0.1, betas=(0.3, 0.9), weight_decay=0.1),
         lambda p, g, s: F.adamax(p, g, s[0], s[1], s[2], eps=1e-8, beta1=0.3, beta2=0.9, lr=0.1, weight_decay=0.1,
                                  maximize=False),
         lambda a: (zeros(a), zeros(a), [0] * len(a)), dtype, rng)
    opt, params, st = _run(
        "NAdam", dict(lr=0.1, weight_decay=0.1, decoupled_weight_decay=True),
        lambda p, g, s: F.nadam(p, g, s[0], s[1], s[2], s[3], True, beta1=0.9, beta2=0.999, lr=0.1,
                                weight_decay=0.1, momentum_decay=4e-3, eps=1e-8, maximize=False),
        lambda a: (zeros(a), zeros(a), [1.0] * len(a), [0] * len(a)), dtype, rng)
    assert [float(opt.state[p]["mu_product"]) for p in params] == st[2]
    _run("RAdam", dict(lr=0.1, betas=(0.8, 0.9), weight_decay=0.1),
         lambda p, g, s: F.radam(p, g, s[0], s[1], s[2], beta1=0.8, beta2=0.9, lr=0.1, weight_decay=0.1, eps=1e-8,
                                 maximize=False),
         lambda a: (zeros(a), zeros(a), [0] * len(a)), dtype, rng)
    _run("Lion", dict(lr=0.01, weight_decay=0.5, maximize=True),
         lambda p, g, s: F.lion(p, g, s, lr=0.01, beta1=0.9, beta2=0.99, weight_decay=0.5, maximize=True),
         zeros, dtype, rng)


def test_functional_rejects_before_writing(rng):
    p = [rng.standard_normal(4)]
    g = [rng.standard_normal(4)]
    before = p[0].copy()
    with pytest.raises(ValueError, match="Invalid momentum_decay value"):
        F.nadam(p, g, zeros(p), zeros(p), [1.0], [0], beta1=0.9, beta2=0.999, lr=0.1, weight_decay=0,
                momentum_decay=-1.0, eps=1e-8, maximize=False)
    steps, mus = [3], [0.5]
    with pytest.raises(ValueError, match="exp_avg_sq"):
        F.nadam(p, g, zeros(p), [np.zeros(3)], mus, steps, beta1=0.9, beta2=0.999, lr=0.1, weight_decay=0,
                momentum_decay=4e-3, eps=1e-8, maximize=False)
    assert steps == [3] and mus == [0.5]
    with pytest.raises(ValueError, match="Invalid rho value"):
        F.adadelta(p, g, zeros(p), zeros(p), [0], lr=1.0, rho=2.0, eps=1e-6, weight_decay=0, maximize=False)
    with pytest.raises(ValueError, match="exp_avg"):
        F.lion(p, g, [], lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0, maximize=False)
    np.testing.assert_array_equal(p[0], before)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.1, amsgrad=True)),
                                     ("RMSprop", dict(lr=0.1, centered=True, momentum=0.5))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_adam_rmsprop_functional_matches_class(name, kw, dtype, rng):
    data = [make_array(rng, n, dtype) for n in (5, 130)]
    params = [fo.Parameter(d.copy()) for d in data]
    opt = make(name, params, **kw)
    arrays = [d.copy() for d in data]
    z = [np.zeros_like(a) for a in arrays]
    if name == "SGD":
        bufs = [None, None]
    for _ in range(3):
        grads = [make_array(rng, a.size, dtype) for a in arrays]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        if name == "SGD":
            F.sgd(arrays, grads, bufs, weight_decay=0, momentum=0.9, lr=0.1, dampening=0,
                              nesterov=False, maximize=False)
        elif name == "Adam":
            if _ == 0:
                ea, eas, mx, steps = [a.copy() for a in z], [a.copy() for a in z], [a.copy() for a in z], [0, 0]
            F.adam(arrays, grads, ea, eas, mx, steps, amsgrad=True, beta1=0.9, beta2=0.999, lr=0.1,
                               weight_decay=0, eps=1e-8, maximize=False)
        else:
            if _ == 0:
                sq, ga, mb, steps = [a.copy() for a in z], [a.copy() for a in z], [a.copy() for a in z], [0, 0]
            F.rmsprop(arrays, grads, sq, ga, mb, steps, lr=0.1, alpha=0.99, eps=1e-8, weight_decay=0,
                                  momentum=0.5, centered=True, maximize=False)
    for p, a in zip(params, arrays):
        np.testing.assert_array_equal(p.data, a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_muon_functional_matches_class(dtype, rng):
    data = [rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal((2, 8)).astype(dtype)]
    params = [fo.Parameter(d.copy()) for d in data]
    opt = fo.Muon(params, lr=0.05)
    arrays, bufs = [d.copy() for d in data], [np.zeros_like(d) for d in data]
    for _ in range(3):
        grads = [rng.standard_normal(d.shape).astype(dtype) for d in data]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        F.muon(arrays, grads, bufs, lr=0.05, weight_decay=0.1, momentum=0.95, nesterov=True,
                           ns_coefficients=(3.4445, -4.7750, 2.0315), ns_steps=5, eps=1e-7, adjust_lr_fn=None)
    for p, a in zip(params, arrays):
        np.testing.assert_array_equal(p.data, a)


def test_sparse_adam_functional_matches_class(rng):
    data = rng.standard_normal((12, 3))
    p = fo.Parameter(data.copy())
    opt = fo.SparseAdam([p], lr=0.1)
    arr, m, v = data.copy(), np.zeros_like(data), np.zeros_like(data)
    for t in range(1, 4):
        g = fo.SparseGrad(rng.integers(0, 12, size=5), rng.standard_normal((5, 3)))
        p.grad = g
        opt.step()
        F.sparse_adam([arr], [g], [m], [v], [t], eps=1e-8, beta1=0.9, beta2=0.999, lr=0.1,
                                  maximize=False)
    np.testing.assert_array_equal(p.data, arr)
    np.testing.assert_array_equal(opt.state[p]["exp_avg_sq"], v)




# name -> call(params, grads, steps, bufs): bufs is the list of state-buffer lists the call mutates
CALLS = {
    "adam": lambda p, g, s, b: F.adam(p, g, b[0], b[1], b[2], s, amsgrad=True, beta1=0.9, beta2=0.999, lr=0.1,
                                      weight_decay=0.0, eps=1e-8, maximize=False),
    "adamw": lambda p, g, s, b: F.adamw(p, g, b[0], b[1], b[2], s, amsgrad=False, beta1=0.9, beta2=0.999, lr=0.1,
                                        weight_decay=0.01, eps=1e-8, maximize=False),
    "rmsprop": lambda p, g, s, b: F.rmsprop(p, g, b[0], b[1], b[2], s, lr=0.1, alpha=0.99, eps=1e-8,
                                            weight_decay=0.0, momentum=0.5, centered=True, maximize=False),
    "adagrad": lambda p, g, s, b: F.adagrad(p, g, b[0], s, lr=0.1, weight_decay=0.0, lr_decay=0.0, eps=1e-10,
                                            maximize=False),
    "adadelta": lambda p, g, s, b: F.adadelta(p, g, b[0], b[1], s, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0,
                                              maximize=False),
    "adamax": lambda p, g, s, b: F.adamax(p, g, b[0], b[1], s, eps=1e-8, beta1=0.9, beta2=0.999, lr=0.1,
                                          weight_decay=0.0, maximize=False),
    "nadam": lambda p, g, s, b: F.nadam(p, g, b[0], b[1], [1.0] * len(p), s, beta1=0.9, beta2=0.999, lr=0.1,
                                        weight_decay=0.0, momentum_decay=4e-3, eps=1e-8, maximize=False),
    "radam": lambda p, g, s, b: F.radam(p, g, b[0], b[1], s, beta1=0.9, beta2=0.999, lr=0.1, weight_decay=0.0,
                                        eps=1e-8, maximize=False),
    "asgd": lambda p, g, s, b: F.asgd(p, g, b[0], [np.array(1.0, np.float32) for _ in p],
                                      [np.array(0.1, np.float32) for _ in p], s, lambd=1e-4, lr=0.1, t0=1e6,
                                      alpha=0.75, weight_decay=0.0, maximize=False),
    "rprop": lambda p, g, s, b: F.rprop(p, g, b[0], [np.full_like(x, 0.1) for x in p], s, step_size_min=1e-6,
                                        step_size_max=50.0, etaminus=0.5, etaplus=1.2, maximize=False),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("as_array", [False, True], ids=["list", "ndarray"])
def test_rejected_call_changes_nothing(name, as_array):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(5), rng.standard_normal(4)]
    bufs = [zeros(params), zeros(params), zeros(params)]
    steps = np.array([3, 3]) if as_array else [3, 3]
    grads = [rng.standard_normal(5), rng.standard_normal(3)]  # the second has the wrong shape
    before = [p.copy() for p in params], [[a.copy() for a in b] for b in bufs]
    with pytest.raises((ValueError, TypeError)):
        CALLS[name](params, grads, steps, bufs)
    assert list(steps) == [3, 3]
    for p, q in zip(params, before[0]):
        np.testing.assert_array_equal(p, q)
    for b, c in zip(bufs, before[1]):
        for x, y in zip(b, c):
            np.testing.assert_array_equal(x, y)
    # and a valid call does advance the counts
    grads[1] = rng.standard_normal(4)
    CALLS[name](params, grads, steps, bufs)
    assert list(steps) == [4, 4]
