"""Muon and SparseAdam against their NumPy references (they do not fit the generic elementwise registry: Muon
takes 2-D parameters only, SparseAdam takes row-sparse gradients), plus functional forms and error checks."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from conftest import snapshot
from reference import ref_muon, ref_sparse_adam

TOL = {np.float32: 2e-6, np.float64: 1e-13}


def _close(a, b, dtype):
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype] * scale)


MUON = [dict(), dict(lr=0.02, nesterov=False, weight_decay=0.0, momentum=0.8),
        dict(lr=0.01, adjust_lr_fn="match_rms_adamw", ns_steps=2, ns_coefficients=(2.0, -1.5, 0.5), eps=1e-3)]


@pytest.mark.parametrize("kw", MUON)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strided", [False, True])
def test_muon_matches_reference(kw, dtype, strided, rng):
    shapes = [(1, 1), (7, 3), (4, 9), (65, 65)]
    datas = []
    for s in shapes:
        base = rng.standard_normal((s[0], 2 * s[1])).astype(dtype)
        datas.append(base[:, ::2] if strided else np.ascontiguousarray(base[:, : s[1]]))
    params = [fo.Parameter(d) for d in datas]
    refs = [d.copy() for d in datas]
    states = [{} for _ in shapes]
    opt = fo.Muon(params, **kw)
    for _ in range(4):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for r, g, st in zip(refs, grads, states):
            ref_muon(r, g, st, **kw)
    for p, r, st in zip(params, refs, states):
        _close(p.data, r, dtype)
        _close(opt.state[p]["momentum_buffer"], st["momentum_buffer"], dtype)


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
        fo.functional.muon(arrays, grads, bufs, lr=0.05, weight_decay=0.1, momentum=0.95, nesterov=True,
                           ns_coefficients=(3.4445, -4.7750, 2.0315), ns_steps=5, eps=1e-7, adjust_lr_fn=None)
    for p, a in zip(params, arrays):
        np.testing.assert_array_equal(p.data, a)


SPARSE = [dict(), dict(lr=0.01, betas=(0.5, 0.9), eps=1e-4, maximize=True)]


@pytest.mark.parametrize("kw", SPARSE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_adam_matches_reference(kw, dtype, rng):
    shapes = [(1,), (9, 4), (300, 5), (6, 2, 3)]
    params = [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    refs = [p.data.copy() for p in params]
    states = [{} for _ in shapes]
    opt = fo.SparseAdam(params, **kw)
    for _ in range(5):
        grads = []
        for s in shapes:
            k = int(rng.integers(0, s[0] + 2))
            grads.append((rng.integers(0, s[0], size=k), rng.standard_normal((k,) + s[1:]).astype(dtype)))
        for p, (r, v) in zip(params, grads):
            p.grad = fo.SparseGrad(r, v)
        opt.step()
        for ref, (r, v), st in zip(refs, grads, states):
            ref_sparse_adam(ref, r, v, st, **kw)
    for p, ref, st in zip(params, refs, states):
        _close(p.data, ref, dtype)
        assert opt.state[p]["step"] == st["step"]
        for k in ("exp_avg", "exp_avg_sq"):
            _close(opt.state[p][k], st[k], dtype)


def test_sparse_adam_functional_matches_class(rng):
    data = rng.standard_normal((12, 3))
    p = fo.Parameter(data.copy())
    opt = fo.SparseAdam([p], lr=0.1)
    arr, m, v = data.copy(), np.zeros_like(data), np.zeros_like(data)
    for t in range(1, 4):
        g = fo.SparseGrad(rng.integers(0, 12, size=5), rng.standard_normal((5, 3)))
        p.grad = g
        opt.step()
        fo.functional.sparse_adam([arr], [g], [m], [v], [t], eps=1e-8, beta1=0.9, beta2=0.999, lr=0.1,
                                  maximize=False)
    np.testing.assert_array_equal(p.data, arr)
    np.testing.assert_array_equal(opt.state[p]["exp_avg_sq"], v)


def test_sparse_grad_coalesce_and_dense():
    g = fo.SparseGrad(np.array([4, 1, 4]), np.array([[1.0], [2.0], [3.0]]))
    rows, vals = g.coalesce()
    np.testing.assert_array_equal(rows, [1, 4])
    np.testing.assert_array_equal(vals, [[2.0], [4.0]])
    np.testing.assert_array_equal(g.to_dense((5, 1))[:, 0], [0, 2, 0, 0, 4])
    with pytest.raises(TypeError, match="1-D integer array"):
        fo.SparseGrad(np.array([0.5]), np.ones((1, 2)))


@pytest.mark.parametrize("name,kw,exc,msg", [
    ("Muon", dict(lr=-1.0), ValueError, "Learning rate should be >= 0 but is: -1.0"),
    ("Muon", dict(momentum=-0.1), ValueError, "momentum should be >= 0 but is: -0.1"),
    ("Muon", dict(weight_decay=-0.1), ValueError, "weight decay should be >= 0 but is: -0.1"),
    ("Muon", dict(adjust_lr_fn="bogus"), ValueError, "Adjust learning rate function bogus is not supported"),
    ("Muon", dict(ns_steps=100), ValueError, "Number of steps must be less than 100"),
    ("Muon", dict(ns_coefficients=(1.0, 2.0)), ValueError, "Coefficients must be a tuple of exactly 3 values"),
    ("SparseAdam", dict(lr=0.0), ValueError, "Invalid learning rate: 0.0"),
    ("SparseAdam", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0"),
    ("SparseAdam", dict(betas=(1.0, 0.9)), ValueError, "Invalid beta parameter at index 0"),
    ("SparseAdam", dict(betas=(0.9, -0.1)), ValueError, "Invalid beta parameter at index 1"),
])
def test_constructor_errors(name, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        getattr(fo, name)([fo.Parameter(np.zeros((2, 2)))], **kw)


def test_muon_rejected_step_changes_nothing(rng):
    a, b = fo.Parameter(rng.standard_normal((3, 3))), fo.Parameter(rng.standard_normal((3, 3)))
    opt = fo.Muon([a, b])
    a.grad, b.grad = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    opt.step()
    before = snapshot(opt)
    a.grad, b.grad = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)).astype(np.float32)
    with pytest.raises(TypeError, match=r"param_groups\[0\]\['params'\]\[1\]: grad is float32"):
        opt.step()
    assert snapshot(opt) == before
