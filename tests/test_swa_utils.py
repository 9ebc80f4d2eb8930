"""AveragedParameters: NumPy reference, torch AveragedModel parity (SWA and EMA, both forms), SWALR together,
state_dict round trip and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from fastopt.swa_utils import AveragedParameters, get_ema_multi_avg_fn
from cases import AVERAGING_RULES
from helpers import assert_arrays_equal, num_threads, requires_openmp, torch_default_dtype

RULES = {name: rule() for name, rule in AVERAGING_RULES.items()}


def ref_update(a, p, n, rule):
    """NumPy version of each rule, in the dtype of a."""
    if n == 0:
        return p.copy()
    t = a.dtype.type
    if rule.kind == "swa" and not rule.multi:
        return a + (p - a) / t(n + 1)
    if rule.kind == "ema" and not rule.multi:
        return t(rule.decay) * a + t(1 - rule.decay) * p
    w = float(t(1) / t(n + 1)) if rule.kind == "swa" else 1 - rule.decay  # in the averages' dtype, as torch
    w = t(w)
    # lerp as torch: fma form; emulate with float64/longdouble and round (exact enough for the test's tolerance)
    return (a + w * (p - a)).astype(a.dtype) if abs(w) < 0.5 else (p - (t(1) - w) * (p - a)).astype(a.dtype)


@pytest.mark.parametrize("rule", list(RULES), ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_numpy_reference(rng, rule, dtype):
    ps = [fo.Parameter(rng.standard_normal(n).astype(dtype)) for n in (1, 7, 40000)]
    ps.append(fo.Parameter(rng.standard_normal(18).astype(dtype)[::2]))  # strided source
    avg = AveragedParameters(ps, **RULES[rule])
    ref = [None] * len(ps)
    for n in range(5):
        for p in ps:
            p.data += rng.standard_normal(p.shape).astype(dtype)
        ref = [ref_update(r, p.data, n, avg.avg_rule) for r, p in zip(ref, ps)]
        avg.update_parameters(ps)
        assert avg.n_averaged == n + 1
        for r, a in zip(ref, avg.params):
            np.testing.assert_allclose(a.data, r, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                       atol=1e-7 if dtype == np.float32 else 1e-15)


def _tiny_models(torch, dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).to(dtype)
    ours = [fo.Parameter(t.detach().numpy().copy()) for t in model.parameters()]
    return model, ours


@pytest.mark.parametrize("rule", list(RULES), ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_averaged_model_parity(rule, dtype):
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils as T
    tdtype = getattr(torch, dtype)
    model, ours = _tiny_models(torch, tdtype)
    tkw = {"default": {}, "swa": dict(avg_fn=T.get_swa_avg_fn()),
           "swa_multi": dict(multi_avg_fn=T.get_swa_multi_avg_fn()),
           "ema": dict(avg_fn=T.get_ema_avg_fn(0.9)), "ema_multi": dict(multi_avg_fn=T.get_ema_multi_avg_fn(0.9)),
           "ema_multi_small": dict(multi_avg_fn=T.get_ema_multi_avg_fn(0.3))}[rule]
    tavg = T.AveragedModel(model, **tkw)
    avg = AveragedParameters(ours, **RULES[rule])
    rng = np.random.default_rng(3)
    for _ in range(12):
        with torch.no_grad():
            for t, p in zip(model.parameters(), ours):
                d = rng.standard_normal(p.shape).astype(dtype)
                t.add_(torch.from_numpy(d))
                p.data += d
        with torch_default_dtype(dtype):  # float64 params: torch's scalars (swa_multi's weight) in float64 too
            tavg.update_parameters(model)
        avg.update_parameters(ours)
    assert avg.n_averaged == int(tavg.n_averaged)
    for t, a in zip(tavg.module.parameters(), avg.params):
        np.testing.assert_allclose(a.data, t.detach().numpy(), rtol=1e-6 if dtype == "float32" else 1e-14,
                                   atol=1e-7 if dtype == "float32" else 1e-15)
        if dtype == "float64" and rule == "swa_multi":  # the same weight, the same lerp: bit for bit
            np.testing.assert_array_equal(a.data, t.detach().numpy())


def test_with_swalr_against_torch():
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils as T
    model, ours = _tiny_models(torch, torch.float64)
    topt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = fo.SGD(ours, lr=0.1, momentum=0.9)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=20)
    sched = fo.lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    tswa = T.SWALR(topt, swa_lr=0.05, anneal_epochs=3)
    swa = fo.lr_scheduler.SWALR(opt, swa_lr=0.05, anneal_epochs=3)
    tavg, avg = T.AveragedModel(model), AveragedParameters(ours)
    rng = np.random.default_rng(5)
    for epoch in range(15):
        for t, p in zip(model.parameters(), ours):
            g = rng.standard_normal(p.shape)
            t.grad = torch.from_numpy(g.copy())
            p.grad = g
        topt.step()
        opt.step()
        if epoch >= 8:
            tavg.update_parameters(model)
            avg.update_parameters(ours)
            tswa.step()
            swa.step()
        else:
            tsched.step()
            sched.step()
        assert swa.get_last_lr() == pytest.approx(tswa.get_last_lr(), rel=1e-15)
    assert avg.n_averaged == int(tavg.n_averaged) == 7
    for t, a in zip(tavg.module.parameters(), avg.params):
        np.testing.assert_allclose(a.data, t.detach().numpy(), rtol=1e-12, atol=1e-14)
    avg.copy_to(ours)
    for t, p in zip(tavg.module.parameters(), ours):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_state_dict_round_trip(rng, tmp_path):
    ps = [fo.Parameter(rng.standard_normal(5)), fo.Parameter(rng.standard_normal((2, 3)).astype(np.float32))]
    avg = AveragedParameters(ps, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    for _ in range(3):
        for p in ps:
            p.data += 1
        avg.update_parameters(ps)
    fo.save(avg.state_dict(), tmp_path / "avg.npz")
    other = AveragedParameters(ps, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    other.load_state_dict(fo.load(tmp_path / "avg.npz"))
    assert other.n_averaged == 3
    for a, b in zip(avg.params, other.params):
        np.testing.assert_array_equal(a.data, b.data)
    for p in ps:
        p.data += 1
    avg.update_parameters(ps)
    other.update_parameters(ps)
    for a, b in zip(avg.params, other.params):
        np.testing.assert_array_equal(a.data, b.data)


def test_bad_input_changes_nothing(rng):
    ps = [fo.Parameter(rng.standard_normal(4)), fo.Parameter(rng.standard_normal(3))]
    avg = AveragedParameters(ps)
    avg.update_parameters(ps)
    before = [a.data.copy() for a in avg.params]

    def same():
        for b, a in zip(before, avg.params):
            np.testing.assert_array_equal(a.data, b)
        assert avg.n_averaged == 1

    for bad, exc in [([ps[0]], ValueError), ([ps[0], fo.Parameter(np.zeros(4))], ValueError),
                     ([ps[0], fo.Parameter(np.zeros(3, np.float32))], ValueError), ([ps[0], np.zeros(3)], TypeError),
                     (avg.params, ValueError)]:
        with pytest.raises(exc):
            avg.update_parameters(bad)
        same()
    sd = avg.state_dict()
    for bad in [{"n_averaged": 1}, {"n_averaged": -1, "params": sd["params"]},
                {"n_averaged": 2, "params": [np.zeros(4), np.zeros(3, np.float32)]},
                {"n_averaged": 2, "params": [np.zeros(4)]}]:
        with pytest.raises((ValueError, TypeError)):
            avg.load_state_dict(bad)
        same()
    ro = fo.Parameter(np.zeros(3))
    ro.data.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        avg.copy_to([fo.Parameter(np.zeros(4)), ro])
    with pytest.raises(TypeError, match="callables"):
        AveragedParameters(ps, avg_fn=lambda a, p, n: a)
    with pytest.raises(ValueError, match="Only one"):
        AveragedParameters(ps, avg_fn="swa", multi_avg_fn=get_ema_multi_avg_fn())
    with pytest.raises(ValueError, match="decay"):
        get_ema_multi_avg_fn(1.5)
    with pytest.raises(ValueError, match="empty"):
        AveragedParameters([])
    with pytest.raises(TypeError):
        AveragedParameters(ps, use_buffers=True)


def test_one_and_two_threads_bit_identical():
    requires_openmp()

    def run(threads):
        rng = np.random.default_rng(1)
        ps = [fo.Parameter(rng.standard_normal(n).astype(np.float32)) for n in (700_001, 3, 400_000)]
        avg = AveragedParameters(ps, multi_avg_fn=get_ema_multi_avg_fn(0.99))
        with num_threads(threads):
            for _ in range(3):
                for p in ps:
                    p.data += rng.standard_normal(p.shape).astype(np.float32)
                avg.update_parameters(ps)
        return [a.data.copy() for a in avg.params]

    assert_arrays_equal(run(1), run(2))
