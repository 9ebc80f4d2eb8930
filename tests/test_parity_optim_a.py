"""Adagrad, Adadelta, Adamax, NAdam and RAdam against torch.optim: what the generic tests/test_torch_parity.py
does not cover (it runs every registry row for 100 steps and loads torch's state_dict into fastopt).

Here: fastopt's state_dict loaded into torch, both continuing in lockstep (parameters and every state value
compared as max|a - b| / max|b| per tensor); NAdam's float32 mu_product; Adagrad's eagerly created state.
``Pair`` is also what produced the worst-error figures in the issue-4 report. Lion has no torch counterpart:
tests/test_kernels.py checks it against the paper's rule in tests/reference.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, TORCH_NAMES, case_id

torch = pytest.importorskip("torch")

ALGOS = ("Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam")
ROWS = [c for c in CASES if c[0] in ALGOS]
TOL = {np.float64: 1e-12, np.float32: 1e-5}
SHAPES = [(4, 5), (33,), (1,), (2, 3, 7)]
STEPS = 100


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b| / max|b| (the absolute error when b is all zeros)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    return diff / scale if scale > 0 else diff


class Pair:
    """A fastopt and a torch optimizer over the same starting parameters, stepped with the same gradients."""

    def __init__(self, name: str, kw: dict, dtype, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.cast_by_torch: tuple[str, ...] = ()  # scalar state keys torch's load_state_dict cast
        data = [self.rng.standard_normal(s).astype(dtype) for s in SHAPES]
        self.fp = [fo.Parameter(d.copy()) for d in data]
        self.tp = [torch.tensor(d.copy(), requires_grad=True) for d in data]
        half = len(SHAPES) // 2
        lr2 = kw.get("lr", getattr(fo, name)([fo.Parameter(np.zeros(1))]).defaults["lr"]) * 0.5
        self.fo = getattr(fo, name)([{"params": self.fp[:half]}, {"params": self.fp[half:], "lr": lr2}], **kw)
        self.to = getattr(torch.optim, TORCH_NAMES[name])(
            [{"params": self.tp[:half]}, {"params": self.tp[half:], "lr": lr2}], foreach=False, **kw)

    def step(self, n: int) -> None:
        for _ in range(n):
            for f, t in zip(self.fp, self.tp):
                g = self.rng.standard_normal(f.data.shape).astype(self.dtype)
                f.grad = g
                t.grad = torch.from_numpy(g.copy())
            self.fo.step()
            self.to.step()

    def errors(self) -> dict[str, float]:
        """Worst relative error over the parameters and over each state key."""
        worst: dict[str, float] = {"param": 0.0}
        for f, t in zip(self.fp, self.tp):
            worst["param"] = max(worst["param"], rel_err(f.data, t.detach().numpy()))
            tst, fst = self.to.state[t], self.fo.state[f]
            assert set(fst) == set(tst), (sorted(fst), sorted(tst))
            for key, tv in tst.items():
                tv = tv.detach().numpy() if isinstance(tv, torch.Tensor) else np.asarray(tv)
                if key == "step":
                    assert fst[key] == int(tv.item())
                    continue
                assert np.shape(fst[key]) == tv.shape
                if isinstance(fst[key], np.ndarray) and key not in self.cast_by_torch:
                    assert fst[key].dtype == tv.dtype
                worst[key] = max(worst.get(key, 0.0), rel_err(fst[key], tv))
        return worst


def numpy_state_to_torch(sd: dict) -> dict:
    def conv(k, v):
        if k == "step":
            return torch.tensor(float(v))
        if isinstance(v, np.ndarray):
            return torch.from_numpy(v.copy())
        return torch.tensor(float(v), dtype=torch.float32)  # a scalar state such as NAdam's mu_product
    state = {i: {k: conv(k, v) for k, v in s.items()} for i, s in sd["state"].items()}
    return {"state": state, "param_groups": [dict(g) for g in sd["param_groups"]]}


def check(worst: dict[str, float], dtype, what: str) -> None:
    for key, err in worst.items():
        assert err <= TOL[dtype], f"{what}: {key} differs from torch by {err:.3g} (relative)"


@pytest.mark.parametrize("case", ROWS, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fastopt_state_dict_loads_into_torch(case, dtype):
    """fastopt's state_dict, converted with torch.from_numpy, continues fastopt's trajectory in torch.

    (torch -> fastopt and the 100-step trajectories are covered for every row by tests/test_torch_parity.py.)
    """
    name, kw = case
    pair = Pair(name, kw, dtype, seed=1)
    pair.step(30)
    half = len(SHAPES) // 2
    tp = [torch.tensor(f.data.copy(), requires_grad=True) for f in pair.fp]
    topt = getattr(torch.optim, TORCH_NAMES[name])([{"params": tp[:half]}, {"params": tp[half:]}], foreach=False,
                                                    **kw)
    topt.load_state_dict(numpy_state_to_torch(pair.fo.state_dict()))
    assert topt.param_groups[1]["lr"] == pair.fo.param_groups[1]["lr"]
    pair.tp, pair.to = tp, topt
    pair.cast_by_torch = ("mu_product",)
    pair.step(70)
    worst = pair.errors()
    if "mu_product" in worst and dtype == np.float64:
        # torch's load_state_dict casts mu_product to the parameter's dtype, so torch now multiplies in float64
        # while fastopt goes on in float32 (as torch would have without the round trip): float32-close only
        # (down to float32's underflow, which a float64 product passes).
        worst.pop("mu_product")
        for f, t in zip(pair.fp, pair.tp):
            np.testing.assert_allclose(pair.fo.state[f]["mu_product"], pair.to.state[t]["mu_product"].item(),
                                       rtol=1e-6, atol=float(np.finfo(np.float32).tiny))
    check(worst, dtype, f"{case_id(case)} {np.dtype(dtype).name} after loading fastopt's state into torch")


def test_nadam_mu_product_is_torch_float32():
    """NAdam's mu_product follows torch's float32 scalar exactly, also for float64 parameters."""
    pair = Pair("NAdam", dict(lr=1e-2), np.float64)
    pair.step(20)
    for f, t in zip(pair.fp, pair.tp):
        assert pair.fo.state[f]["mu_product"] == pair.to.state[t]["mu_product"].item()


def test_adagrad_state_exists_after_construction_like_torch():
    p = fo.Parameter(np.zeros(3))
    opt = fo.Adagrad([p], initial_accumulator_value=0.25)
    t = torch.zeros(3, requires_grad=True)
    topt = torch.optim.Adagrad([t], initial_accumulator_value=0.25)
    assert set(opt.state[p]) == set(topt.state[t]) == {"step", "sum"}
    np.testing.assert_array_equal(opt.state[p]["sum"], topt.state[t]["sum"].numpy())
    assert opt.state[p]["step"] == 0
