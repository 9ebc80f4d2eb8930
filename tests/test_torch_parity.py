"""Every registry row against torch.optim (single-tensor path, foreach=False); skipped when torch is not installed.

100-step trajectories over two parameter groups, every parameter and state value compared as max|a - b| / max|b|
per tensor; torch's state_dict loaded into fastopt and fastopt's into torch, both continuing in lockstep; NaN and
Inf propagation; scalar state (NAdam's mu_product, ASGD's eta and mu) in torch's dtype; Adagrad's eagerly created
state; Rprop's sign-change branches; RMSprop bit for bit wherever torch's float32 sqrt is correctly rounded.
float64 rows run torch under ``torch.set_default_dtype(torch.float64)`` (helpers.TorchPair), so every scalar is
float64 on both sides. BIT_EXACT rows must equal torch exactly; the rest differ only through torch's float32 sqrt,
which is not correctly rounded (fastopt's is). Muon and SparseAdam: tests/test_special_optimizers.py; Adafactor's factored shapes:
tests/test_adafactor.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import BIT_EXACT, CASES, TORCH_NAMES, case_id, make
from helpers import TORCH_TOL, TorchPair, rel_err, to_numpy, torch_default_dtype, torch_state_to_numpy

torch = pytest.importorskip("torch")

TORCH_CASES = [c for c in CASES if TORCH_NAMES.get(c[0])]
SHAPES = [(3, 5), (17,), (64,), (2, 2, 3)]
DTYPES = [np.float32, np.float64]
# fastopt's state_dict loaded into torch (the other direction runs for every row)
INTO_TORCH = [c for c in CASES if c[0] in ("Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "RMSprop", "ASGD")]


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
    p.check(tol=0.0 if case[0] in BIT_EXACT else None, what=case_id(case) + " after loading torch's state")


@pytest.mark.parametrize("case", INTO_TORCH, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fastopt_state_dict_loads_into_torch(case, dtype):
    """fastopt's state_dict, converted with torch.from_numpy, continues fastopt's trajectory in torch."""
    p = pair(case, dtype, 1, shapes=[(4, 5), (33,), (1,), (2, 3, 7)])
    p.step(30)
    p.load_fastopt_state()
    assert p.t_opt.param_groups[1]["lr"] == p.fo_opt.param_groups[1]["lr"]
    p.step(70)
    p.check(tol=0.0 if case[0] in BIT_EXACT else None, what=case_id(case) + " after torch loaded fastopt's state")


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


SCALAR_STATE = [("NAdam", dict(lr=1e-2), ("mu_product",)),
                ("ASGD", dict(lr=5e-2, lambd=1e-2, alpha=0.5, t0=2, weight_decay=0.1), ("eta", "mu"))]


@pytest.mark.parametrize("name,kw,keys", SCALAR_STATE, ids=[c[0] for c in SCALAR_STATE])
@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_state_is_torchs_in_each_dtype(name, kw, keys, dtype):
    """Scalar state is float64 for float64 params (torch under set_default_dtype(float64)) and float32 for float32
    params (torch's default), and equals torch's bit for bit after 20 steps."""
    p = TorchPair(name, kw, [(4, 5), (33,), (1,), (2, 3, 7)], dtype, 0)
    p.step(20)
    for f, t in zip(p.fp, p.tp):
        for key in keys:
            ours, theirs = p.fo_opt.state[f][key], p.t_opt.state[t][key].numpy()
            assert ours.dtype == theirs.dtype == np.dtype(dtype), (key, ours.dtype, theirs.dtype)
            assert ours.tobytes() == theirs.tobytes(), key


@pytest.mark.parametrize("name,kw,keys", SCALAR_STATE, ids=[c[0] for c in SCALAR_STATE])
def test_float32_scalar_state_loads_into_float64_params_as_float64(name, kw, keys):
    """A torch checkpoint made under torch's default float32 scalar dtype, over float64 params: fastopt loads its
    scalar state as float64 and continues exactly as torch does after its own load_state_dict, which casts that
    state to the parameter's dtype."""
    shapes = [(4, 5), (33,), (1,), (2, 3, 7)]
    p = TorchPair(name, kw, shapes, np.float64, 3)
    with torch_default_dtype(np.float32):  # the checkpoint's run: float64 params, float32 scalar state
        p.t_opt = p.make_torch(p.tp)
        for _ in range(15):
            p.feed(p.grads())
            p.t_opt.step()
    saved = p.t_opt.state_dict()
    assert all(saved["state"][i][k].dtype == torch.float32 for i in saved["state"] for k in keys)
    p.load_torch_state()
    for f in p.fp:
        assert all(p.fo_opt.state[f][k].dtype == np.float64 for k in keys)
    resumed = p.make_torch(p.tp)  # what torch does with its own checkpoint: casts the scalars to float64
    resumed.load_state_dict(saved)
    p.t_opt = resumed
    p.step(30)
    p.check(tol=0.0 if name in BIT_EXACT else None, what=f"{name} resumed from a float32-scalar checkpoint")


@pytest.mark.parametrize("kw", [dict(lr=1e-2, momentum=0.7, centered=True),
                                dict(lr=1e-2, momentum=0.9, centered=True, alpha=0.4, weight_decay=0.1, maximize=True),
                                dict(lr=1e-2, centered=True, alpha=0.9), dict(lr=1e-2, momentum=0.5),
                                dict(lr=1e-2, weight_decay=0.1)], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize("n", [5, 1000, 40000])
def test_rmsprop_float32_is_torch_bit_for_bit_where_its_sqrt_rounds_correctly(kw, n):
    """One float32 RMSprop step from the same state (torch's, loaded): square_avg and grad_avg equal torch's
    everywhere, and param and momentum_buffer wherever torch's float32 sqrt of the variance equals the correctly
    rounded one (about 80% of elements; torch's vectorised sqrt is off by one ulp elsewhere). So fastopt's order
    of operations is torch's, in every branch (centered, momentum, both lerp branches, L2, maximize), for sizes on
    the scalar tail and the vector loop of torch's kernel, and the remaining float32 drift is torch's sqrt alone."""
    p = TorchPair("RMSprop", kw, [(n,), (n + 3,)], np.float32, n)
    for _ in range(3):  # gradients with a mean, so that the centered variance is a real difference
        p.step(grads=[(g + 0.8).astype(np.float32) for g in p.grads()], fastopt=False)
    p.load_torch_state()
    p.step()
    agreeing = 0
    for f, t in zip(p.fp, p.tp):
        st, tst = p.fo_opt.state[f], {k: np.asarray(to_numpy(v)) for k, v in p.t_opt.state[t].items()}
        for key in ("square_avg", "grad_avg"):
            if key in st:
                np.testing.assert_array_equal(st[key], tst[key], err_msg=key)
        var = st["square_avg"]
        if kw.get("centered"):
            ga = torch.from_numpy(st["grad_avg"])
            var = torch.from_numpy(var).addcmul(ga, ga, value=-1).numpy()
        rounds = torch.from_numpy(var).sqrt().numpy() == np.sqrt(var)
        agreeing += int(rounds.sum())
        np.testing.assert_array_equal(f.data[rounds], to_numpy(t)[rounds])
        if "momentum_buffer" in st:
            np.testing.assert_array_equal(st["momentum_buffer"][rounds], tst["momentum_buffer"][rounds])
    assert agreeing > 0.5 * (2 * n + 3)  # the comparison covered most elements


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
