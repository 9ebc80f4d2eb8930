"""Every registry row against torch.optim (single-tensor path, foreach=False); skipped when torch is not installed.

100-step trajectories over two parameter groups, every parameter and state value compared as max|a - b| / max|b|
per tensor; torch's state_dict loaded into fastopt and fastopt's into torch, both continuing in lockstep; NaN and
Inf propagation; NAdam's float32 mu_product; Adagrad's eagerly created state; Rprop's sign-change branches.
BIT_EXACT rows must equal torch exactly; the rest differ only through torch's float32 sqrt, which is not correctly
rounded (fastopt's is). Muon and SparseAdam: tests/test_special_optimizers.py; Adafactor's factored shapes:
tests/test_adafactor.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import BIT_EXACT, CASES, TORCH_NAMES, case_id, make
from helpers import TorchPair, to_numpy

torch = pytest.importorskip("torch")

TORCH_CASES = [c for c in CASES if TORCH_NAMES.get(c[0])]
SHAPES = [(3, 5), (17,), (64,), (2, 2, 3)]
DTYPES = [np.float32, np.float64]
# fastopt's state_dict loaded into torch (the other direction runs for every row)
INTO_TORCH = [c for c in CASES if c[0] in ("Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam")]


def pair(case, dtype, seed: int, shapes=SHAPES) -> TorchPair:
    name, kw = case
    return TorchPair(name, kw, shapes, dtype, seed, torch_name=TORCH_NAMES[name])


@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_trajectory_matches_torch(case, dtype):
    p = pair(case, dtype, 7)
    p.step(100)
    p.check(tol=0.0 if case[0] in BIT_EXACT else None, what=case_id(case))


@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_state_dict_loads_and_continues(case, dtype):
    """A torch optimizer's state_dict, converted with np.asarray, continues the same trajectory in fastopt."""
    p = pair(case, dtype, 11)
    p.step(10, fastopt=False)
    p.load_torch_state()
    p.step(20)
    p.check(what=case_id(case) + " after loading torch's state")


@pytest.mark.parametrize("case", INTO_TORCH, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fastopt_state_dict_loads_into_torch(case, dtype):
    """fastopt's state_dict, converted with torch.from_numpy, continues fastopt's trajectory in torch."""
    p = pair(case, dtype, 1, shapes=[(4, 5), (33,), (1,), (2, 3, 7)])
    p.step(30)
    p.load_fastopt_state()
    assert p.t_opt.param_groups[1]["lr"] == p.fo_opt.param_groups[1]["lr"]
    p.cast_by_torch = ("mu_product",)
    p.step(70)
    worst = p.errors()
    if "mu_product" in worst and dtype == np.float64:
        # torch's load_state_dict casts mu_product to the parameter's dtype, so torch now multiplies in float64
        # while fastopt goes on in float32 (as torch would have without the round trip): float32-close only
        # (down to float32's underflow, which a float64 product passes).
        worst.pop("mu_product")
        for f, t in zip(p.fp, p.tp):
            np.testing.assert_allclose(p.fo_opt.state[f]["mu_product"], p.t_opt.state[t]["mu_product"].item(),
                                       rtol=1e-6, atol=float(np.finfo(np.float32).tiny))
    tol = {np.float64: 1e-12, np.float32: 1e-5}[dtype]
    for key, err in worst.items():
        assert err <= tol, f"{case_id(case)} {np.dtype(dtype).name}: {key} differs from torch by {err:.3g}"


def test_nan_inf_match_torch():
    rng = np.random.default_rng(5)
    for name, kw in [("Adam", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9)), ("RMSprop", dict(lr=0.1))]:
        x = rng.standard_normal(8).astype(np.float64)
        p, tp = fo.Parameter(x.copy()), torch.tensor(x.copy(), requires_grad=True)
        opt, topt = make(name, [p], **kw), getattr(torch.optim, name)([tp], foreach=False, **kw)
        for g in ([np.nan, np.inf, -np.inf, 1, 0, 2, 3, 4], [1, 1, 1, np.nan, 1, -np.inf, 1, 1]):
            g = np.array(g, np.float64)
            p.grad, tp.grad = g, torch.tensor(g)
            opt.step()
            topt.step()
        np.testing.assert_array_equal(np.isnan(p.data), np.isnan(to_numpy(tp)))
        finite = np.isfinite(p.data)
        np.testing.assert_allclose(p.data[finite], to_numpy(tp)[finite], rtol=1e-12)


def test_nadam_mu_product_is_torch_float32():
    """NAdam's mu_product follows torch's float32 scalar exactly, also for float64 parameters."""
    p = pair(("NAdam", dict(lr=1e-2)), np.float64, 0, shapes=[(4, 5), (33,), (1,), (2, 3, 7)])
    p.step(20)
    for f, t in zip(p.fp, p.tp):
        assert p.fo_opt.state[f]["mu_product"] == p.t_opt.state[t]["mu_product"].item()


def test_adagrad_state_exists_after_construction_like_torch():
    p = fo.Parameter(np.zeros(3))
    opt = fo.Adagrad([p], initial_accumulator_value=0.25)
    t = torch.zeros(3, requires_grad=True)
    topt = torch.optim.Adagrad([t], initial_accumulator_value=0.25)
    assert set(opt.state[p]) == set(topt.state[t]) == {"step", "sum"}
    np.testing.assert_array_equal(opt.state[p]["sum"], topt.state[t]["sum"].numpy())
    assert opt.state[p]["step"] == 0


def test_rprop_sign_changes_and_zero_grads():
    """Gradients that flip sign, repeat, or are exactly zero exercise every branch of the step-size rule."""
    for dtype in DTYPES:
        p = TorchPair("Rprop", dict(lr=1e-2), [(40,), (9,)], dtype, 0, group2={"lr": 1e-2})
        base = [p.rng.standard_normal(n).astype(dtype) for n in (40, 9)]
        for k in range(60):
            gs = [b * (1 if (k // 3) % 2 == 0 else -1) for b in base]
            for g in gs:
                g[::5] = 0
            p.step(grads=gs)
        p.check(tol=0.0)  # Rprop is BIT_EXACT
