"""Every kernel against the NumPy reference: every registry row, both dtypes, odd and empty sizes, strided views."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, case_id, make
from conftest import make_array
from reference import REFERENCES

SIZES = [0, 1, 7, 64, 65, 4099]
TOL = {np.float32: 2e-6, np.float64: 1e-13}  # a few ulps after 4 steps (fma vs separate multiply-add)


def _close(actual: np.ndarray, expected: np.ndarray, dtype, what: str) -> None:
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=what)


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_kernel_matches_reference(case, dtype, layout, rng):
    name, kw = case
    params = [fo.Parameter(make_array(rng, n, dtype, strided=layout == "strided")) for n in SIZES]
    ref_params = [p.data.copy() for p in params]
    ref_states = [{} for _ in params]
    opt = make(name, params, **kw)
    for _ in range(4):
        grads = [make_array(rng, n, dtype) for n in SIZES]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for rp, g, st in zip(ref_params, grads, ref_states):
            REFERENCES[name](rp, g, st, **kw)
    for j, (p, rp, st) in enumerate(zip(params, ref_params, ref_states)):
        assert p.data.dtype == dtype
        _close(p.data, rp, dtype, f"param {j} (n={SIZES[j]})")
        live = opt.state[p]
        assert set(live) == set(st), (set(live), set(st))
        for key, value in st.items():
            if isinstance(value, np.ndarray):
                # param-shaped buffers have the param's dtype; 0-d scalars (ASGD's eta, mu) the reference's
                assert live[key].dtype == value.dtype and live[key].shape == value.shape
                _close(live[key], value, dtype, f"state {key} of param {j}")
            else:
                assert live[key] == value


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_view_updates_its_base(dtype, rng):
    base = rng.standard_normal((6, 8)).astype(dtype)
    before = base.copy()
    view = base[:, ::3]  # non-contiguous; the untouched columns must stay as they were
    p = fo.Parameter(view)
    opt = fo.SGD([p], lr=0.5)
    g = np.ones(view.shape, dtype)
    p.grad = g
    opt.step()
    expected = before.copy()
    expected[:, ::3] = before[:, ::3] + np.asarray(-0.5, dtype) * g
    np.testing.assert_array_equal(base, expected)


def test_readonly_and_strided_grads_are_accepted(rng):
    p = fo.Parameter(rng.standard_normal(10))
    q = fo.Parameter(p.data.copy())
    g = rng.standard_normal(20)[::2]
    g_ro = g.copy()
    g_ro.flags.writeable = False
    opt_p, opt_q = fo.Adam([p], lr=0.1), fo.Adam([q], lr=0.1)
    p.grad, q.grad = g, g_ro
    opt_p.step()
    opt_q.step()
    np.testing.assert_array_equal(p.data, q.data)


def test_nan_and_inf_propagate_like_torch():
    p = fo.Parameter(np.array([1.0, 2.0, 3.0], np.float32))
    opt = fo.Adam([p], lr=0.1)
    p.grad = np.array([np.nan, np.inf, 1.0], np.float32)
    opt.step()
    assert np.isnan(p.data[0]) and np.isnan(p.data[1])  # inf/inf -> nan, as in torch
    assert np.isfinite(p.data[2])


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.1, amsgrad=True)),
                                     ("RMSprop", dict(lr=0.1, centered=True, momentum=0.5))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functional_matches_class(name, kw, dtype, rng):
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
            fo.functional.sgd(arrays, grads, bufs, weight_decay=0, momentum=0.9, lr=0.1, dampening=0,
                              nesterov=False, maximize=False)
        elif name == "Adam":
            if _ == 0:
                ea, eas, mx, steps = [a.copy() for a in z], [a.copy() for a in z], [a.copy() for a in z], [0, 0]
            fo.functional.adam(arrays, grads, ea, eas, mx, steps, amsgrad=True, beta1=0.9, beta2=0.999, lr=0.1,
                               weight_decay=0, eps=1e-8, maximize=False)
        else:
            if _ == 0:
                sq, ga, mb, steps = [a.copy() for a in z], [a.copy() for a in z], [a.copy() for a in z], [0, 0]
            fo.functional.rmsprop(arrays, grads, sq, ga, mb, steps, lr=0.1, alpha=0.99, eps=1e-8, weight_decay=0,
                                  momentum=0.5, centered=True, maximize=False)
    for p, a in zip(params, arrays):
        np.testing.assert_array_equal(p.data, a)
