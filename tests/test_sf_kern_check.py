"""Schedule-Free's step skips the group check while every option and schedule key is the very object it accepted
(or wrote) last (fastopt/optim/schedulefree.py, _check_options): it must skip it in the steady state, check again
after any change, and give exactly the bits and errors of a step that checks every time."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from helpers import rejected

KINDS = [("ScheduleFreeSGD", dict(lr=0.5, momentum=0.8, weight_decay=0.01, warmup_steps=3)),
         ("ScheduleFreeAdamW", dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01, warmup_steps=3))]


def _make(name, kw, always_check=False):
    rng = np.random.default_rng(3)
    params = [fo.Parameter(rng.standard_normal(s).astype(np.float32)) for s in [(7,), (3, 5), (2,)]]
    opt = getattr(fo, name)([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], **kw)
    if always_check:  # the step before round 6: the whole group check and the schedule again every step
        opt._options_seen = lambda gi, group: False
    return params, opt


def _counting(opt):
    calls = []
    check = opt._check_group_at

    def counted(gi, group):
        calls.append(gi)
        return check(gi, group)
    opt._check_group_at = counted
    return calls


def _grads(params, rng):
    for p in params:
        p.grad = rng.standard_normal(p.data.shape).astype(np.float32)


@pytest.mark.parametrize("name,kw", KINDS)
def test_the_steady_state_step_checks_no_group_and_a_change_is_checked(name, kw):
    params, opt = _make(name, kw)
    rng = np.random.default_rng(0)
    for _ in range(3):
        _grads(params, rng)
        opt.step()
    calls = _counting(opt)
    for _ in range(4):
        _grads(params, rng)
        opt.step()
    assert calls == [] and opt._plans is not None
    opt.param_groups[1]["lr"] = 0.03
    opt.step()
    assert calls[0] == 1  # (then the full step, the plans being stale, checks every group)
    del calls[:]
    opt.step()
    assert calls == []
    opt.param_groups[0]["weight_sum"] = opt.param_groups[0]["weight_sum"] * 1.0  # an equal float, another object
    opt.step()
    assert calls == [0]
    opt.step()
    assert calls == [0]


def _snapshot(params, opt):
    out = [p.data.copy() for p in params]
    out += [a.copy() for p in params for a in opt.state[p].values() if isinstance(a, np.ndarray)]
    groups = [[(k, type(v), v) for k, v in g.items() if k != "params"] for g in opt.param_groups]
    return out, groups


def _same(a, b):
    (xa, ga), (xb, gb) = a, b
    assert len(xa) == len(xb)
    for x, y in zip(xa, xb):
        assert x.dtype == y.dtype and np.array_equal(x.view(np.uint8), y.view(np.uint8))
    assert ga == gb


@pytest.mark.parametrize("name,kw", KINDS)
def test_skipping_the_check_changes_no_bit(name, kw):
    """Against a step that checks every group every step: a hook, a closure and direct assignments change options
    and schedule keys between and during steps (a NumPy scalar included, which the check turns into a float)."""
    runs = []
    for always in (False, True):
        params, opt = _make(name, kw, always)
        rng = np.random.default_rng(1)
        snaps = []

        def hook(o, args, kwargs):
            if hook.on:
                o.param_groups[0]["lr"] = o.param_groups[0]["lr"] * 0.5
        hook.on = False
        opt.register_step_pre_hook(hook)
        for t in range(12):
            _grads(params, rng)
            hook.on = t == 3
            closure = None
            if t == 5:
                def closure():
                    opt.param_groups[1]["weight_decay"] = 0.02
                    return 1.0
            if t == 7:
                opt.param_groups[0].update(k=20, weight_sum=2.5)
            if t == 9:
                opt.param_groups[1]["lr"] = np.float64(0.04)
            if t == 10:
                opt.param_groups[0]["warmup_steps"] = 40
            opt.step(closure)
            snaps.append(_snapshot(params, opt))
        runs.append(snaps)
    for a, b in zip(*runs):
        _same(a, b)


@pytest.mark.parametrize("always", [False, True])
def test_a_weight_sum_that_overflowed_is_refused_by_the_next_step(always):
    params, opt = _make("ScheduleFreeSGD", dict(lr=1e30, r=100.0, weight_lr_power=9.0), always)
    rng = np.random.default_rng(2)
    for _ in range(3):  # weights 1e270, 2^100 1e270, then 3^100 1e270 = inf
        _grads(params, rng)
        with np.errstate(all="ignore"):
            opt.step()
    assert opt.param_groups[0]["weight_sum"] == np.inf
    _grads(params, rng)
    with rejected(opt, ValueError, r"param_groups\[0\]: Invalid weight_sum value"):
        opt.step()


def test_a_copy_and_a_loaded_state_check_their_groups_again():
    import copy
    params, opt = _make(*KINDS[1])
    _grads(params, np.random.default_rng(4))
    opt.step()
    opt.step()
    assert opt._valid
    twin = copy.deepcopy(opt)
    assert twin._valid == {}
    calls = _counting(twin)
    twin.step()
    assert calls[:2] == [0, 1]  # (then the full step: a copy has no plans)
    other_params, other = _make(*KINDS[1])
    other.load_state_dict(opt.state_dict())
    assert other._valid == {}
    calls = _counting(other)
    for p, q in zip(other_params, params):
        p.data[...] = q.data
        p.grad = q.grad
    other.step()
    opt.step()
    assert calls[:2] == [0, 1]  # the loaded groups are other dicts: checked
    _same(_snapshot(other_params, other), _snapshot(params, opt))
