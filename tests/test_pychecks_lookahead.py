"""Lookahead's repeated slow-weight update through its plan (fastopt/optim/lookahead.py ``_plan_update``): after a
full update of every parameter of a group, one ``StepPlan`` per dtype over (param, slow_params, grad) checks in C
that the parameters, their arrays, slow weights and gradients are as then, and runs the lookahead kernel. Every
case compares a Lookahead that may plan with one that never does (``_plan_update`` disabled): the same bits."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from helpers import assert_arrays_equal, make_array


def _params(rng, layout):
    """Per group, a list of (size, dtype)."""
    return [[fo.Parameter(make_array(rng, n, dt)) for n, dt in g] for g in layout]


def _pair(rng, layout, inner=lambda ps: fo.Adam(ps, lr=1e-2), k=2, alpha=0.5):
    """Two Lookaheads over copies of the same parameters; the second never plans."""
    base = _params(rng, layout)
    out = []
    for planned in (True, False):
        groups = [[fo.Parameter(p.data.copy()) for p in g] for g in base]
        la = fo.Lookahead(inner([{"params": g} for g in groups]), k=k, alpha=alpha)
        if not planned:
            la._plan_update = lambda *a: None
        out.append((la, [p for g in groups for p in g]))
    return out


def _runs(la):
    return sum(entry[2].runs for entry in la._plans.values())


def _step_both(a, b, grads):
    (la, ps), (lb, qs) = a, b
    for p, q, g in zip(ps, qs, grads):
        p.grad, q.grad = g, None if g is None else g.copy()
    la.step()
    lb.step()
    assert not lb._plans
    assert_arrays_equal([p.data for p in ps], [q.data for q in qs])
    assert_arrays_equal([la.state[p]["slow_params"] for p in ps], [lb.state[q]["slow_params"] for q in qs])
    assert la._counters == lb._counters


def _grads(rng, ps):
    return [make_array(rng, p.data.size, p.data.dtype) for p in ps]


LAYOUT = [[(5, np.float32), (64, np.float64), (1, np.float32), (0, np.float64)], [(300, np.float64)]]


def test_repeated_updates_take_the_plan_one_per_group_and_dtype(rng):
    a, b = _pair(rng, LAYOUT, k=2)
    for _ in range(10):
        _step_both(a, b, _grads(rng, a[1]))
    la = a[0]
    assert sorted(la._plans) == [0, 1]
    assert len(la._plans[0][2].plans) == 2 and len(la._plans[1][2].plans) == 1  # group 0 has two dtypes
    assert _runs(la) == 2 * 4  # 5 updates per group, the first one full


def test_a_scheduled_lr_keeps_the_plan(rng):
    """The update reads no option of the group: an lr changed every step by a scheduler leaves the plan on."""
    a, b = _pair(rng, [[(33, np.float32), (7, np.float32)]], k=1)
    scheds = [fo.lr_scheduler.StepLR(la, step_size=1, gamma=0.9) for la, _ in (a, b)]
    for _ in range(6):
        _step_both(a, b, _grads(rng, a[1]))
        for s in scheds:
            s.step()
    assert _runs(a[0]) == 5


@pytest.mark.parametrize("change", ["missing grad", "new data", "new slow", "alpha", "strided grad",
                                    "grad is the slow weights", "load_state_dict"])
def test_what_the_plan_leaves_to_the_full_path(change, rng):
    a, b = _pair(rng, [[(40, np.float64), (9, np.float64), (3, np.float64)]], k=1)
    for _ in range(3):
        _step_both(a, b, _grads(rng, a[1]))
    la, ps = a
    plan = la._plans[0][2]
    assert plan.runs == 2
    grads = _grads(rng, ps)
    for lx, xs in (a, b):
        if change == "new data":
            xs[1].data = xs[1].data.copy()
        elif change == "new slow":
            lx.state[xs[2]]["slow_params"] = lx.state[xs[2]]["slow_params"].copy()
        elif change == "alpha":
            lx.alpha = 0.25
        elif change == "load_state_dict":
            lx.load_state_dict(lx.state_dict())
    if change == "missing grad":
        grads[1] = None  # that parameter is not interpolated (upstream's rule), by the full path
    elif change == "strided grad":
        grads[0] = make_array(rng, 40, np.float64, strided=True)
    if change == "grad is the slow weights":  # accepted by the inner SGD and the full update, refused by the plan
        for lx, xs in (a, b):
            xs[2].grad = lx.state[xs[2]]["slow_params"]
        a[1][0].grad, a[1][1].grad = grads[0], grads[1]
        b[1][0].grad, b[1][1].grad = grads[0].copy(), grads[1].copy()
        la.step()
        b[0].step()
        assert_arrays_equal([p.data for p in a[1]], [q.data for q in b[1]])
    else:
        _step_both(a, b, grads)
    assert plan.runs == 2  # the full path ran
    # a plan that cannot hold is not made again ("missing grad", "strided grad", the overlap) until it can
    _step_both(a, b, _grads(rng, ps))
    _step_both(a, b, _grads(rng, ps))
    assert 0 in la._plans and la._plans[0][2].runs >= 1


def _sgd(ps):
    return fo.SGD(ps, lr=0.1)


@pytest.mark.parametrize("spoil,regex", [
    (lambda la, ps: setattr(la.state[ps[1]]["slow_params"].flags, "writeable", False), "read-only"),
    (lambda la, ps: setattr(la.state[ps[0]]["slow_params"], "shape", (2, 3)), r"float64\[2, 3\]"),
    (lambda la, ps: la.state[ps[0]].update(slow_params=ps[1].data[:6]), "overlap|share"),
    (lambda la, ps: setattr(ps[1].data.flags, "writeable", False), "read-only|writeable"),
], ids=["read-only slow", "reshaped slow", "slow is another param", "read-only param"])
def test_the_plan_refuses_what_the_full_update_refuses_and_nothing_changes(spoil, regex, rng):
    (la, ps), _ = _pair(rng, [[(6,  np.float64), (12, np.float64)]], inner=_sgd, k=1)
    for _ in range(3):
        for p in ps:
            p.grad = make_array(rng, p.data.size, np.float64)
        la.step()
    assert _runs(la) == 2
    spoil(la, ps)
    before = [(p.data.tobytes(), la.state[p]["slow_params"].tobytes()) for p in ps]
    with pytest.raises((ValueError, TypeError), match=regex):
        la._update(0, la.param_groups[0])
    assert [(p.data.tobytes(), la.state[p]["slow_params"].tobytes()) for p in ps] == before
    assert _runs(la) == 0 and 0 not in la._plans
