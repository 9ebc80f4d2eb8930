"""Trajectories against torch.optim (single-tensor path, foreach=False); skipped when torch is not installed.

Relative error is max|a - b| / max|b| per tensor (elementwise ratios blow up where a value passes near zero).
SGD matches torch bit for bit; Adam and RMSprop differ in float32 only through torch's float32 sqrt, which is
not correctly rounded (fastopt's is).
"""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import BIT_EXACT, CASES, TORCH_NAMES, case_id, make

torch = pytest.importorskip("torch")

# The bars are 1e-5 / 1e-12; what the kernels reach (worst over the registry) is about 1e-6 / 1e-15,
# so the tests hold them to a few times that, and to exactly 0 for BIT_EXACT.
TOL = {np.float32: 5e-6, np.float64: 1e-14}
TORCH_CASES = [c for c in CASES if TORCH_NAMES.get(c[0])]
SHAPES = [(3, 5), (17,), (64,), (2, 2, 3)]


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def torch_opt(name: str, groups, kw):
    return getattr(torch.optim, TORCH_NAMES[name])(groups, foreach=False, **kw)


def _pair(name, kw, dtype, rng):
    data = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    params = [fo.Parameter(d.copy()) for d in data]
    tparams = [torch.tensor(d.copy(), requires_grad=True) for d in data]
    lr = kw.get("lr", 1e-3)
    # two groups with different learning rates
    opt = make(name, [{"params": params[:2]}, {"params": params[2:], "lr": lr * 0.5}], **kw)
    topt = torch_opt(name, [{"params": tparams[:2]}, {"params": tparams[2:], "lr": lr * 0.5}], kw)
    return params, tparams, opt, topt


def _feed(params, tparams, rng, dtype):
    for p, tp in zip(params, tparams):
        g = rng.standard_normal(p.shape).astype(dtype)
        p.grad = g
        tp.grad = torch.tensor(g.copy())


def _compare(params, tparams, opt, topt, dtype):
    worst = 0.0
    for p, tp in zip(params, tparams):
        worst = max(worst, rel_err(p.data, tp.detach().numpy()))
        tstate = topt.state[tp]
        fstate = opt.state[p]
        assert set(fstate) == set(tstate), (set(fstate), set(tstate))
        for key, tv in tstate.items():
            tv = np.asarray(tv)
            if key == "step":
                assert fstate[key] == int(tv)
            else:
                assert fstate[key].dtype == tv.dtype
                worst = max(worst, rel_err(fstate[key], tv))
    return worst


@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trajectory_matches_torch(case, dtype):
    name, kw = case
    rng = np.random.default_rng(7)
    params, tparams, opt, topt = _pair(name, kw, dtype, rng)
    for _ in range(100):
        _feed(params, tparams, rng, dtype)
        opt.step()
        topt.step()
    err = _compare(params, tparams, opt, topt, dtype)
    tol = 0.0 if name in BIT_EXACT else TOL[dtype]
    assert err <= tol, f"{case_id(case)} {dtype.__name__}: relative error {err:.3e}"


@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_state_dict_loads_and_continues(case, dtype):
    """A torch optimizer's state_dict, converted with np.asarray, continues the same trajectory in fastopt."""
    name, kw = case
    rng = np.random.default_rng(11)
    params, tparams, opt, topt = _pair(name, kw, dtype, rng)
    for _ in range(10):
        _feed(params, tparams, rng, dtype)
        topt.step()
    sd = topt.state_dict()
    converted = {"state": {i: {k: np.asarray(v) for k, v in s.items()} for i, s in sd["state"].items()},
                 "param_groups": sd["param_groups"]}
    for p, tp in zip(params, tparams):
        p.data[...] = tp.detach().numpy()
    opt.load_state_dict(converted)
    for _ in range(20):
        _feed(params, tparams, rng, dtype)
        opt.step()
        topt.step()
    err = _compare(params, tparams, opt, topt, dtype)
    assert err <= TOL[dtype], f"{case_id(case)} {dtype.__name__}: relative error {err:.3e}"


def test_nan_inf_match_torch():
    rng = np.random.default_rng(5)
    for name, kw in [("Adam", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9)), ("RMSprop", dict(lr=0.1))]:
        x = rng.standard_normal(8).astype(np.float64)
        p, tp = fo.Parameter(x.copy()), torch.tensor(x.copy(), requires_grad=True)
        opt, topt = make(name, [p], **kw), torch_opt(name, [tp], kw)
        for g in ([np.nan, np.inf, -np.inf, 1, 0, 2, 3, 4], [1, 1, 1, np.nan, 1, -np.inf, 1, 1]):
            g = np.array(g, np.float64)
            p.grad, tp.grad = g, torch.tensor(g)
            opt.step()
            topt.step()
        np.testing.assert_array_equal(np.isnan(p.data), np.isnan(tp.detach().numpy()))
        finite = np.isfinite(p.data)
        np.testing.assert_allclose(p.data[finite], tp.detach().numpy()[finite], rtol=1e-12)
