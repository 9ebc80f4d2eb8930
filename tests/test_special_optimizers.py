"""Muon and SparseAdam, which do not fit the elementwise registry (Muon takes 2-D parameters only, SparseAdam
row-sparse gradients): against their NumPy references and torch.optim, state_dict round trips both ways, the
Newton-Schulz iteration, SparseGrad and bad input. Their rows are MUON_CASES / SPARSE_ADAM_CASES in tests/cases.py;
their constructor errors are ERROR_CASES rows (tests/test_errors.py), their functional forms in
tests/test_functional.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import MUON_CASES, SPARSE_ADAM_CASES, case_id
from helpers import TorchPair, assert_close, rejected, rel_err, to_numpy
from reference import ref_muon, ref_sparse_adam

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}  # against torch after 100 steps, relative per tensor


def _ids(name):
    return lambda kw: case_id((name, kw))


# ---- NumPy references -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", MUON_CASES, ids=_ids("Muon"))
@pytest.mark.parametrize("dtype", DTYPES)
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
        assert_close(p.data, r, dtype)
        assert_close(opt.state[p]["momentum_buffer"], st["momentum_buffer"], dtype)


@pytest.mark.parametrize("kw", SPARSE_ADAM_CASES, ids=_ids("SparseAdam"))
@pytest.mark.parametrize("dtype", DTYPES)
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
        assert_close(p.data, ref, dtype)
        assert opt.state[p]["step"] == st["step"]
        for k in ("exp_avg", "exp_avg_sq"):
            assert_close(opt.state[p][k], st[k], dtype)


# ---- torch ------------------------------------------------------------------------------------------------------

def check_pair(pair: TorchPair, steps: int = 100) -> None:
    """steps in lockstep with torch, then torch's state_dict loaded into a fresh fastopt optimizer and 10 more
    steps, then fastopt's own state_dict round trip, which must be exact."""
    pair.step(steps)
    pair.check(TOL[pair.dtype])
    pair.load_torch_state()
    pair.step(10)
    pair.check(TOL[pair.dtype], what=f"{pair.name} after loading torch's state")
    again = pair.make_fastopt()
    again.load_state_dict(pair.fo_opt.state_dict())
    for p in pair.fp:
        a, b = pair.fo_opt.state[p], again.state[p]
        assert set(a) == set(b)
        for k in a:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))


MUON_SHAPES = [(8, 5), (6, 6), (3, 17), (20, 4)]


def _ns_in_input_dtype(grad, ns_coefficients, ns_steps, eps):
    """torch's _zeropower_via_newtonschulz without its cast to bfloat16 (same operations otherwise)."""
    import torch
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


@pytest.mark.parametrize("kwargs", MUON_CASES, ids=_ids("Muon"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_muon_parity_with_ns_in_param_dtype(kwargs, dtype, monkeypatch):
    """torch runs Newton–Schulz in bfloat16; with that one cast removed, everything else must match."""
    pytest.importorskip("torch")
    import torch.optim._muon as tm
    monkeypatch.setattr(tm, "_zeropower_via_newtonschulz", _ns_in_input_dtype)
    check_pair(TorchPair("Muon", kwargs, MUON_SHAPES, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_muon_close_to_unpatched_torch(dtype):
    """Against torch as shipped (bfloat16 iteration), the parameters agree to bfloat16 precision of the updates."""
    pair = TorchPair("Muon", dict(lr=2e-2), MUON_SHAPES, dtype, group2={"lr": 1e-2})
    start = [p.data.copy() for p in pair.fp]
    pair.step(10)
    for p, t, s in zip(pair.fp, pair.tp, start):
        assert rel_err(p.data - s, to_numpy(t) - s) < 2e-2  # bfloat16 has 8 significant bits


class SparsePair(TorchPair):
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

    def feed(self, grads):
        import torch
        for p, t, (rows, vals) in zip(self.fp, self.tp, grads):
            p.grad = fo.SparseGrad(rows, vals.copy())
            t.grad = torch.sparse_coo_tensor(torch.tensor(rows[None, :], dtype=torch.int64),
                                             torch.tensor(vals.copy()), tuple(p.data.shape), check_invariants=True)


@pytest.mark.parametrize("kwargs", SPARSE_ADAM_CASES, ids=_ids("SparseAdam"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_adam_parity(kwargs, dtype):
    check_pair(SparsePair("SparseAdam", kwargs, [(50, 8), (30,), (20, 3, 2)], dtype,
                          group2={"lr": kwargs.get("lr", 1e-3) * 2}))


# ---- behaviour and bad input ------------------------------------------------------------------------------------

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


def test_muon_rejected_step_changes_nothing(rng):
    a, b = fo.Parameter(rng.standard_normal((3, 3))), fo.Parameter(rng.standard_normal((3, 3)))
    opt = fo.Muon([a, b])
    a.grad, b.grad = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    opt.step()
    a.grad, b.grad = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)).astype(np.float32)
    with rejected(opt, TypeError, r"param_groups\[0\]\['params'\]\[1\]: grad is float32"):
        opt.step()


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


def test_sparse_grad_coalesce_and_dense():
    g = fo.SparseGrad(np.array([4, 1, 4]), np.array([[1.0], [2.0], [3.0]]))
    rows, vals = g.coalesce()
    np.testing.assert_array_equal(rows, [1, 4])
    np.testing.assert_array_equal(vals, [[2.0], [4.0]])
    np.testing.assert_array_equal(g.to_dense((5, 1))[:, 0], [0, 2, 0, 0, 4])
    with pytest.raises(TypeError, match="1-D integer array"):
        fo.SparseGrad(np.array([0.5]), np.ones((1, 2)))
