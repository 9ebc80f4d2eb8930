"""ASGD, Rprop, Muon and SparseAdam against torch.optim: 100-step trajectories, every option, both dtypes.

Each run uses two parameter groups (the second with its own lr), compares every parameter and every state value
with torch's after 100 steps (relative error max|a - b| / max|b| per tensor: float64 <= 1e-12, float32 <= 1e-5),
then loads torch's state_dict (converted with np.asarray) into a fresh fastopt optimizer and checks that both
continue identically for 10 more steps. Skipped without torch.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo

torch = pytest.importorskip("torch")

TOL = {np.float32: 1e-5, np.float64: 1e-12}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
WORST: dict[tuple[str, str], float] = {}  # (algorithm, dtype) -> worst relative error seen (for the report)


def rel_err(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape} != {b.shape}")
    if a.size == 0:
        return 0.0
    scale = float(np.max(np.abs(b)))
    diff = float(np.max(np.abs(a - b)))
    if diff == 0:
        return 0.0
    return diff / scale if scale > 0 else float("inf")


def _np(v):
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v


def torch_state_dict_as_numpy(sd: dict) -> dict:
    return {"state": {k: {kk: np.asarray(_np(vv)) if isinstance(vv, torch.Tensor) else vv for kk, vv in st.items()}
                      for k, st in sd["state"].items()},
            "param_groups": [dict(g) for g in sd["param_groups"]]}


class Pair:
    """The same problem in fastopt and torch: parameters, groups, optimizer kwargs, a gradient generator."""

    def __init__(self, name, kwargs, shapes, dtype, seed=0, group2=None, torch_name=None):
        self.name, self.kwargs, self.dtype = name, kwargs, dtype
        self.rng = np.random.default_rng(seed)
        init = [self.rng.standard_normal(s).astype(dtype) for s in shapes]
        self.fp = [fo.Parameter(a.copy()) for a in init]
        self.tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
        half = max(1, len(shapes) // 2)
        group2 = group2 or {"lr": kwargs.get("lr", 1e-2) * 0.5}
        self.fo_opt = getattr(fo, name)([{"params": self.fp[:half]}, {"params": self.fp[half:], **group2}],
                                        **kwargs)
        self.t_opt = getattr(torch.optim, torch_name or name)(
            [{"params": self.tp[:half]}, {"params": self.tp[half:], **group2}], **kwargs)

    def grads(self):
        return [self.rng.standard_normal(p.data.shape).astype(self.dtype) for p in self.fp]

    def step(self, grads=None):
        grads = self.grads() if grads is None else grads
        for p, t, g in zip(self.fp, self.tp, grads):
            p.grad = g.copy()
            t.grad = torch.tensor(g.copy())
        self.fo_opt.step()
        self.t_opt.step()

    def worst(self) -> float:
        """The largest relative error over parameters and state values; asserts the state keys match."""
        worst = 0.0
        for p, t in zip(self.fp, self.tp):
            worst = max(worst, rel_err(p.data, _np(t.detach())))
            fs, ts = self.fo_opt.state[p], self.t_opt.state[t]
            assert set(fs) == set(ts), (sorted(fs), sorted(ts))
            for k, v in ts.items():
                tv = np.asarray(_np(v))
                if k == "step":
                    assert float(fs[k]) == float(tv)
                else:
                    worst = max(worst, rel_err(fs[k], tv))
        return worst


def check_pair(pair: Pair, steps: int = 100, tag: str | None = None) -> float:
    for _ in range(steps):
        pair.step()
    worst = pair.worst()
    key = (tag or pair.name, np.dtype(pair.dtype).name)
    WORST[key] = max(WORST.get(key, 0.0), worst)
    assert worst <= TOL[pair.dtype], f"{pair.name} {pair.kwargs}: relative error {worst:.3e}"
    # state_dict round trip: torch's state loads into a fresh fastopt optimizer and both carry on together
    fresh = getattr(fo, pair.name)([{"params": pair.fp[:max(1, len(pair.fp) // 2)]},
                                    {"params": pair.fp[max(1, len(pair.fp) // 2):]}], **pair.kwargs)
    fresh.load_state_dict(torch_state_dict_as_numpy(pair.t_opt.state_dict()))
    pair.fo_opt = fresh
    for _ in range(10):
        pair.step()
    worst2 = pair.worst()
    assert worst2 <= TOL[pair.dtype], f"{pair.name} {pair.kwargs} after loading torch's state: {worst2:.3e}"
    # and our own state_dict round trip is exact
    sd = pair.fo_opt.state_dict()
    again = getattr(fo, pair.name)([{"params": pair.fp[:max(1, len(pair.fp) // 2)]},
                                    {"params": pair.fp[max(1, len(pair.fp) // 2):]}], **pair.kwargs)
    again.load_state_dict(sd)
    for p in pair.fp:
        a, b = pair.fo_opt.state[p], again.state[p]
        assert set(a) == set(b)
        for k in a:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
    return max(worst, worst2)


@pytest.fixture(autouse=True, scope="module")
def _report_worst():
    yield
    if WORST:
        print("\nworst relative error vs torch:")
        for (name, dt), v in sorted(WORST.items()):
            print(f"  {name:12s} {dt:8s} {v:.3e}")


DTYPES = [np.float32, np.float64]
SHAPES_1D = [(7,), (64,), (1, 33), (5, 13)]

ASGD_CASES = [
    dict(lr=1e-2),
    dict(lr=5e-2, lambd=1e-2, alpha=0.5, t0=20, weight_decay=0.1),
    dict(lr=1e-2, t0=0, maximize=True),
    dict(lr=2e-2, lambd=0.0, alpha=1.0, t0=50.5, weight_decay=0.01),
]
RPROP_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-3, etas=(0.3, 1.5), step_sizes=(1e-4, 2e-3)),
    dict(lr=1e-2, maximize=True),
    dict(lr=0.1, etas=(0.9, 1.01), step_sizes=(0.05, 0.2)),
]


@pytest.mark.parametrize("kwargs", ASGD_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_asgd_parity(kwargs, dtype):
    check_pair(Pair("ASGD", kwargs, SHAPES_1D, dtype))


@pytest.mark.parametrize("kwargs", RPROP_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rprop_parity(kwargs, dtype):
    check_pair(Pair("Rprop", kwargs, SHAPES_1D, dtype))


def test_rprop_sign_changes_and_zero_grads():
    """Gradients that flip sign, repeat, or are exactly zero exercise every branch of the step-size rule."""
    for dtype in DTYPES:
        pair = Pair("Rprop", dict(lr=1e-2), [(40,), (9,)], dtype, group2={"lr": 1e-2})
        base = [pair.rng.standard_normal(n).astype(dtype) for n in (40, 9)]
        for k in range(60):
            gs = [b * (1 if (k // 3) % 2 == 0 else -1) for b in base]
            for g in gs:
                g[::5] = 0
            pair.step(gs)
        assert pair.worst() <= TOL[dtype]


# ---- Muon -------------------------------------------------------------------------------------------------------
MUON_SHAPES = [(8, 5), (6, 6), (3, 17), (20, 4)]
MUON_CASES = [
    dict(),
    dict(lr=2e-2, momentum=0.9, nesterov=False, weight_decay=0.0),
    dict(lr=1e-2, adjust_lr_fn="match_rms_adamw", weight_decay=0.05),
    dict(lr=1e-2, momentum=0.3, ns_steps=3, ns_coefficients=(2.0, -1.5, 0.5), eps=1e-5, adjust_lr_fn="original"),
]


def _ns_in_input_dtype(grad, ns_coefficients, ns_steps, eps):
    """torch's _zeropower_via_newtonschulz without its cast to bfloat16 (same operations otherwise)."""
    a, b, c = ns_coefficients
    x = grad.clone()
    if grad.size(0) > grad.size(1):
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram = x @ x.T
        upd = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, upd, x, beta=a)
    if grad.size(0) > grad.size(1):
        x = x.T
    return x


@pytest.mark.parametrize("kwargs", MUON_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_muon_parity_with_ns_in_param_dtype(kwargs, dtype, monkeypatch):
    """torch runs Newton–Schulz in bfloat16; with that one cast removed, everything else must match."""
    import torch.optim._muon as tm
    monkeypatch.setattr(tm, "_zeropower_via_newtonschulz", _ns_in_input_dtype)
    check_pair(Pair("Muon", kwargs, MUON_SHAPES, dtype, group2={"lr": kwargs.get("lr", 1e-3) * 0.5}))


@pytest.mark.parametrize("dtype", DTYPES)
def test_muon_close_to_unpatched_torch(dtype):
    """Against torch as shipped (bfloat16 iteration), the parameters agree to bfloat16 precision of the updates."""
    pair = Pair("Muon", dict(lr=2e-2), MUON_SHAPES, dtype)
    start = [p.data.copy() for p in pair.fp]
    for _ in range(10):
        pair.step()
    for p, t, s in zip(pair.fp, pair.tp, start):
        moved = _np(t.detach()) - s
        assert rel_err(p.data - s, moved) < 2e-2  # bfloat16 has 8 significant bits


def test_muon_newton_schulz_orthogonalises():
    """Run long enough, the iteration maps G to (approximately) U V^T: singular values near 1 (the quintic's
    fixed band is roughly [0.7, 1.2])."""
    g = np.random.default_rng(3).standard_normal((12, 7))
    o = fo.optim.muon.newton_schulz(g, (3.4445, -4.7750, 2.0315), 10, 1e-7)
    sv = np.linalg.svd(o, compute_uv=False)
    assert o.shape == g.shape and np.all((sv > 0.6) & (sv < 1.3)), sv


def test_muon_rejects_non_2d():
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        fo.Muon([fo.Parameter(np.zeros(3))])
    opt = fo.Muon([fo.Parameter(np.zeros((2, 3)))])
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        opt.add_param_group({"params": [fo.Parameter(np.zeros((2, 3, 4)))]})


# ---- SparseAdam -------------------------------------------------------------------------------------------------
SPARSE_SHAPES = [(50, 8), (30,), (20, 3, 2)]
SPARSE_CASES = [dict(), dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6), dict(lr=5e-3, maximize=True),
                dict(lr=1e-2, betas=(0.3, 0.5))]


class SparsePair(Pair):
    """Embedding-like parameters with row-sparse gradients: fastopt.SparseGrad vs torch.sparse_coo_tensor."""

    def grads(self):
        out = []
        for p in self.fp:
            n = p.data.shape[0]
            k = int(self.rng.integers(0, 2 * n // 3))  # sometimes no row at all
            rows = self.rng.integers(0, n, size=k)     # duplicates included: summed
            vals = self.rng.standard_normal((k,) + p.data.shape[1:]).astype(self.dtype)
            out.append((rows, vals))
        return out

    def step(self, grads=None):
        grads = self.grads() if grads is None else grads
        for p, t, (rows, vals) in zip(self.fp, self.tp, grads):
            p.grad = fo.SparseGrad(rows, vals.copy())
            t.grad = torch.sparse_coo_tensor(torch.tensor(rows[None, :], dtype=torch.int64),
                                             torch.tensor(vals.copy()), tuple(p.data.shape), check_invariants=True)
        self.fo_opt.step()
        self.t_opt.step()


@pytest.mark.parametrize("kwargs", SPARSE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_adam_parity(kwargs, dtype):
    pair = SparsePair("SparseAdam", kwargs, SPARSE_SHAPES, dtype, group2={"lr": kwargs.get("lr", 1e-3) * 2})
    check_pair(pair)


def test_sparse_adam_touches_only_given_rows():
    data = np.random.default_rng(1).standard_normal((10, 4))
    p = fo.Parameter(data.copy())
    opt = fo.SparseAdam([p], lr=0.1)
    p.grad = fo.SparseGrad([2, 7, 2], np.ones((3, 4)))
    opt.step()
    untouched = [i for i in range(10) if i not in (2, 7)]
    np.testing.assert_array_equal(p.data[untouched], data[untouched])
    assert np.all(p.data[[2, 7]] != data[[2, 7]])
    assert np.all(opt.state[p]["exp_avg"][untouched] == 0)
    np.testing.assert_allclose(opt.state[p]["exp_avg"][2], 0.2)  # duplicates summed: (1 - 0.9) * 2
    np.testing.assert_allclose(opt.state[p]["exp_avg"][7], 0.1)


def test_sparse_adam_rejects_dense_and_bad_sparse_grads():
    p = fo.Parameter(np.zeros((5, 2)))
    opt = fo.SparseAdam([p])
    p.grad = np.ones((5, 2))
    with pytest.raises(RuntimeError, match="does not support dense gradients"):
        opt.step()
    p.grad = fo.SparseGrad([5], np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 5\)"):
        opt.step()
    p.grad = fo.SparseGrad([1], np.ones((1, 3)))
    with pytest.raises(ValueError, match="grad rows have shape"):
        opt.step()
    p.grad = fo.SparseGrad([1], np.ones((1, 2), np.float32))
    with pytest.raises(TypeError, match="grad values are float32"):
        opt.step()
    assert not opt.state[p] and np.all(p.data == 0)
    with pytest.raises(ValueError, match="2 indices but 1 value rows"):
        fo.SparseGrad([1, 2], np.ones((1, 2)))
