"""The functional forms of Adagrad, Adadelta, Adamax, NAdam, RAdam and Lion give the classes' results bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from conftest import make_array

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
