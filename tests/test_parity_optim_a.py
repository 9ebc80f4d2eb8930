"""Adagrad, Adadelta, Adamax, NAdam and RAdam against torch.optim (single-tensor path, foreach=False).

Every registry row of these algorithms runs 100 steps of random gradients on two parameter groups (the second
with its own learning rate) in float64 and float32; parameters and every state value are compared after each
run as max|a - b| / max|b| per tensor. Then a torch state_dict, converted with np.asarray only, is loaded into a
fresh fastopt optimizer (and fastopt's back into torch) and both continue in lockstep. Lion has no torch
counterpart: tests/test_kernels.py checks it against the paper's rule in tests/reference.py.
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
                if isinstance(fst[key], np.ndarray):
                    assert fst[key].dtype == tv.dtype
                worst[key] = max(worst.get(key, 0.0), rel_err(fst[key], tv))
        return worst


def torch_state_to_numpy(sd: dict) -> dict:
    state = {i: {k: np.asarray(v) for k, v in s.items()} for i, s in sd["state"].items()}
    return {"state": state, "param_groups": [dict(g) for g in sd["param_groups"]]}


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
def test_trajectory_matches_torch(case, dtype):
    name, kw = case
    pair = Pair(name, kw, dtype)
    pair.step(STEPS)
    check(pair.errors(), dtype, f"{case_id(case)} {np.dtype(dtype).name}")


@pytest.mark.parametrize("case", ROWS, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_state_dict_round_trip_with_torch(case, dtype):
    name, kw = case
    pair = Pair(name, kw, dtype, seed=1)
    pair.step(30)
    # torch -> fastopt: a fresh fastopt optimizer on torch's current parameters, loaded from torch's state_dict.
    fp = [fo.Parameter(t.detach().numpy().copy()) for t in pair.tp]
    half = len(SHAPES) // 2
    opt = getattr(fo, name)([{"params": fp[:half]}, {"params": fp[half:]}], **kw)
    opt.load_state_dict(torch_state_to_numpy(pair.to.state_dict()))
    assert opt.param_groups[1]["lr"] == pair.to.param_groups[1]["lr"]
    # fastopt -> torch: a fresh torch optimizer loaded from fastopt's state_dict.
    tp = [torch.tensor(f.data.copy(), requires_grad=True) for f in pair.fp]
    topt = getattr(torch.optim, TORCH_NAMES[name])([{"params": tp[:half]}, {"params": tp[half:]}], foreach=False,
                                                    **kw)
    topt.load_state_dict(numpy_state_to_torch(pair.fo.state_dict()))
    pair.fp, pair.fo, pair.tp, pair.to = fp, opt, tp, topt
    pair.step(30)
    check(pair.errors(), dtype, f"{case_id(case)} {np.dtype(dtype).name} after state_dict round trip")


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
