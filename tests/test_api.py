"""The torch.optim model: construction, groups, zero_grad, closures, state_dict round trips, hooks."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, case_id, make
from helpers import assert_arrays_equal


def P(n=3, dtype=np.float64):
    return fo.Parameter(np.arange(n, dtype=dtype) + 1.0)


def test_parameter_basics():
    a = np.zeros(3, np.float32)
    p = fo.Parameter(a)
    assert p.data is a and np.asarray(p) is a and p.grad is None
    assert p.shape == (3,) and p.dtype == np.float32
    assert fo.Parameter([1.0, 2.0]).dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        fo.Parameter(np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="float32 or float64"):
        fo.Parameter(np.zeros(3, np.complex64))
    assert fo.Parameter(np.zeros(3, np.float16)).dtype == np.float16  # low-precision params (Adam/AdamW)


def test_params_forms():
    a, b, c = P(), P(), P()
    assert len(fo.SGD([a, b]).param_groups) == 1
    opt = fo.SGD([{"params": [a]}, {"params": [b, c], "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0
    named = fo.Adam([("w", a), ("b", b)])
    assert named.param_groups[0]["param_names"] == ["w", "b"]
    gen = fo.SGD(p for p in [a, b])
    assert gen.param_groups[0]["params"] == [a, b]


def test_group_dict_not_modified():
    a = P()
    group = {"params": (a,), "lr": 0.3}
    fo.SGD([group])
    assert group == {"params": (a,), "lr": 0.3}


@pytest.mark.parametrize("params,exc,regex", [
    (P(), TypeError, "iterable of Parameters or dicts"),
    (np.zeros(3), TypeError, "iterable of Parameters or dicts"),
    ({P()}, TypeError, "ordered collections"),
    ([], ValueError, "empty parameter list"),
    ([np.zeros(3)], TypeError, r"can only optimize Parameters.*wrap it"),
    ([1.0], TypeError, "can only optimize Parameters"),
    ([{"params": set()}], TypeError, "ordered collections"),
    ([{"lr": 0.1}], ValueError, "'params'"),
])
def test_bad_params(params, exc, regex):
    with pytest.raises(exc, match=regex):
        fo.SGD(params, lr=0.1)


def test_parameter_in_two_groups():
    a, b = P(), P()
    with pytest.raises(ValueError, match="more than one parameter group"):
        fo.SGD([{"params": [a]}, {"params": [a, b]}])
    opt = fo.SGD([a])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match="duplicate"):
        fo.SGD([a, a])


def test_add_param_group_fills_defaults_and_checks():
    a, b = P(), P()
    opt = fo.Adam([a], lr=0.01, betas=(0.8, 0.9))
    opt.add_param_group({"params": [b], "lr": 0.5})
    assert opt.param_groups[1]["betas"] == (0.8, 0.9) and opt.param_groups[1]["lr"] == 0.5
    with pytest.raises(ValueError, match="Invalid learning rate"):
        opt.add_param_group({"params": [P()], "lr": -1})
    assert len(opt.param_groups) == 2
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [("c", P())]})


def test_zero_grad():
    a = P()
    opt = fo.SGD([a])
    a.grad = np.ones(3)
    g = a.grad
    opt.zero_grad(set_to_none=False)
    assert a.grad is g and not g.any()
    opt.zero_grad()
    assert a.grad is None


def test_closure_runs_first_and_returns_loss():
    a = P()
    opt = fo.SGD([a], lr=0.5)
    calls = []

    def closure():
        calls.append(a.data.copy())
        a.grad = np.ones(3)
        return 42.0

    assert opt.step(closure) == 42.0
    np.testing.assert_array_equal(calls[0], [1, 2, 3])
    np.testing.assert_array_equal(a.data, [0.5, 1.5, 2.5])
    assert opt.step() is None


def test_params_without_grad_are_skipped():
    a, b = P(), P()
    opt = fo.Adam([a, b], lr=0.1)
    a.grad = np.ones(3)
    opt.step()
    np.testing.assert_array_equal(b.data, [1, 2, 3])
    assert b not in opt.state and opt.state[a]["step"] == 1


def test_unsupported_torch_arguments_raise():
    with pytest.raises(TypeError):
        fo.Adam([P()], foreach=True)
    with pytest.raises(TypeError):
        fo.SGD([P()], fused=True)


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_round_trip_continues_bit_identically(case, dtype):
    name, kw = case
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s).astype(dtype) for s in [(5,), (3, 4), (1,)]]
    grads = [[rng.standard_normal(x.shape).astype(dtype) for x in init] for _ in range(12)]

    def run(split):
        params = [fo.Parameter(x.copy()) for x in init]
        opt = make(name, [{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], **kw)
        for t in range(12):
            if t == split:
                sd = copy.deepcopy(opt.state_dict())
                params = [fo.Parameter(p.data.copy()) for p in params]
                opt = make(name, [{"params": params[:2]}, {"params": params[2:]}], **kw)
                opt.load_state_dict(sd)
            for p, g in zip(params, grads[t]):
                p.grad = g
            opt.step()
        return [p.data for p in params], opt

    straight, _ = run(-1)
    resumed, opt = run(6)
    assert_arrays_equal(straight, resumed)
    assert opt.param_groups[1]["lr"] == 0.02


def test_state_dict_layout():
    a, b = P(), P()
    opt = fo.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = np.ones(3)
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][1]["params"] == [1]
    assert set(sd["state"]) == {0}
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"} and sd["state"][0]["step"] == 1


def test_torch_only_group_keys_load_when_neutral():
    a = P()
    opt = fo.Adam([a], lr=0.1)
    sd = opt.state_dict()
    sd["param_groups"][0].update(foreach=None, fused=None, capturable=False, differentiable=False)
    opt.load_state_dict(sd)
    assert "foreach" not in opt.param_groups[0]
    sd["param_groups"][0]["differentiable"] = True
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        opt.load_state_dict(sd)


def test_hooks():
    a = P()
    opt = fo.SGD([a], lr=1.0)
    seen = []
    h1 = opt.register_step_pre_hook(lambda o, args, kw: seen.append("pre"))
    h2 = opt.register_step_post_hook(lambda o, args, kw: seen.append("post"))
    opt.register_state_dict_post_hook(lambda o, sd: sd.__setitem__("extra", 1))
    opt.register_load_state_dict_pre_hook(lambda o, sd: {k: v for k, v in sd.items() if k != "extra"})
    loaded = []
    opt.register_load_state_dict_post_hook(lambda o: loaded.append(True))
    a.grad = np.ones(3)
    opt.step()
    assert seen == ["pre", "post"] and opt._opt_called
    h1.remove()
    h2.remove()
    opt.step()
    assert seen == ["pre", "post"]
    sd = opt.state_dict()
    assert sd["extra"] == 1
    opt.load_state_dict(sd)
    assert loaded == [True]


def test_threads_setting():
    n = fo.get_num_threads()
    try:
        fo.set_num_threads(1)
        assert fo.get_num_threads() == 1
        with pytest.raises(ValueError):
            fo.set_num_threads(0)
    finally:
        fo.set_num_threads(n)


@pytest.mark.parametrize("params,match", [
    ("group", r"single param-group dict; wrap it in a list"),
    ("named", r"dict of Parameters; for named parameters pass its items"),
])
def test_a_dict_is_not_params(params, match):
    w, b = fo.Parameter(np.zeros(2)), fo.Parameter(np.zeros(1))
    arg = {"params": [w, b]} if params == "group" else {"w": w, "b": b}
    with pytest.raises(TypeError, match=match):
        fo.Adam(arg)
    opt = fo.Adam({"w": w, "b": b}.items())                  # the suggested fix
    assert opt.param_groups[0]["param_names"] == ["w", "b"]


def test_parameter_names_are_the_param_names():
    w, b = fo.Parameter(np.zeros(2), name="w"), fo.Parameter(np.zeros(1), name="b")
    opt = fo.Adam([w, b])
    assert opt.param_groups[0]["param_names"] == ["w", "b"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]
    # state follows the names into an optimizer whose params come in another order
    w.grad, b.grad = np.ones(2), np.ones(1)
    opt.step()
    w2, b2 = fo.Parameter(np.zeros(2), name="w"), fo.Parameter(np.zeros(1), name="b")
    opt2 = fo.Adam([b2, w2])
    opt2.load_state_dict(opt.state_dict())
    np.testing.assert_array_equal(opt2.state[w2]["exp_avg"], opt.state[w]["exp_avg"])
    # unnamed, partly named or repeated names: no param_names (positional, as in torch)
    for ps in ([fo.Parameter(np.zeros(2))], [fo.Parameter(np.zeros(2), name="x"), fo.Parameter(np.zeros(2))],
               [fo.Parameter(np.zeros(2), name="x"), fo.Parameter(np.zeros(2), name="x")]):
        assert "param_names" not in fo.SGD(ps, lr=0.1).param_groups[0]
    # a group named through Parameter.name may sit beside an unnamed one (explicit pairs still may not)
    opt3 = fo.SGD([{"params": [fo.Parameter(np.zeros(2), name="a")]}, {"params": [fo.Parameter(np.zeros(2))]}], lr=0.1)
    assert "param_names" in opt3.param_groups[0] and "param_names" not in opt3.param_groups[1]
    with pytest.raises(ValueError, match="with/without names"):
        fo.SGD([{"params": [("a", fo.Parameter(np.zeros(2)))]}, {"params": [fo.Parameter(np.zeros(2))]}], lr=0.1)


@pytest.mark.parametrize("cls", [fo.Adam, fo.RAdam, fo.NAdam])
def test_step_counts_are_exact_and_bounded(cls):
    """A loaded step count is kept exactly (no float round trip beyond 2**53), and one the kernels' signed 64-bit
    count cannot advance is refused with a ValueError naming the parameter, before anything is written, whether it
    comes through load_state_dict or was set on the live state."""
    p = fo.Parameter(np.linspace(-1, 1, 8).astype(np.float32))
    p.grad = np.full(8, 0.5, np.float32)
    opt = cls([p], lr=1e-3)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["step"] = 2**53 + 1
    opt.load_state_dict(sd)
    assert opt.state[p]["step"] == 2**53 + 1
    for bad in (2**63 - 1, 2**63, 2**64 + 5):
        sd["state"][0]["step"] = bad
        before = {k: np.copy(v) for k, v in opt.state[p].items()}
        with pytest.raises(ValueError, match=r"\['params'\]\[0\]: state 'step' must be at most 2\*\*63 - 2"):
            opt.load_state_dict(sd)
        assert opt.state[p].keys() == before.keys()
        for k, v in before.items():
            np.testing.assert_array_equal(opt.state[p][k], v)
        assert opt.state[p]["step"] == 2**53 + 1
    data = p.data.copy()
    opt.state[p]["step"] = 2**63
    with pytest.raises(ValueError, match=r"\['params'\]\[0\]: state 'step' must be at most 2\*\*63 - 2"):
        opt.step()
    np.testing.assert_array_equal(p.data, data)
    assert opt.state[p]["step"] == 2**63
