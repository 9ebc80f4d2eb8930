"""Every kernel against the NumPy reference (tests/reference.py): every registry row, both dtypes, odd and empty sizes,
strided views, read-only grads, NaN and Inf. The functional forms: tests/test_functional.py."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, case_id, make
from helpers import assert_close, make_array, step_with_reference

SIZES = [0, 1, 7, 64, 65, 4099]


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_kernel_matches_reference(case, dtype, layout, rng):
    name, kw = case
    params = [fo.Parameter(make_array(rng, n, dtype, strided=layout == "strided")) for n in SIZES]
    opt = make(name, params, **kw)
    ref_params, ref_states = step_with_reference(opt, name, kw, params,
                                                 lambda: [make_array(rng, n, dtype) for n in SIZES], 4)
    for j, (p, rp, st) in enumerate(zip(params, ref_params, ref_states)):
        assert p.data.dtype == dtype
        assert_close(p.data, rp, dtype, f"param {j} (n={SIZES[j]})")
        live = opt.state[p]
        assert set(live) == set(st), (set(live), set(st))
        for key, value in st.items():
            if isinstance(value, np.ndarray):
                # param-shaped buffers have the param's dtype; 0-d scalars (ASGD's eta, mu) the reference's
                assert live[key].dtype == value.dtype and live[key].shape == value.shape
                assert_close(live[key], value, dtype, f"state {key} of param {j}")
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
