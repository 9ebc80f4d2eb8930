"""load_state_dict matches saved state to live parameters by name when both sides carry 'param_names'."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import fastopt as fo
from helpers import rejected


def _named(rng, order=("w", "b", "c"), shapes=None):
    shapes = shapes or {"w": (3, 2), "b": (2,), "c": (4,)}
    return [(n, fo.Parameter(rng.standard_normal(shapes[n]))) for n in order]


def _train(opt, params, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in params:
            p.grad = rng.standard_normal(p.shape)
        opt.step()


def test_state_follows_names_when_order_differs(rng):
    a = _named(rng)
    opt_a = fo.Adam(a, lr=0.1)
    _train(opt_a, [p for _, p in a])
    sd = opt_a.state_dict()
    assert sd["param_groups"][0]["param_names"] == ["w", "b", "c"]
    b = _named(rng, order=("c", "w", "b"))
    opt_b = fo.Adam(b, lr=0.1)
    opt_b.load_state_dict(copy.deepcopy(sd))
    by_name_a = dict(a)
    for name, p in b:
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(opt_b.state[p][key], opt_a.state[by_name_a[name]][key])
        assert opt_b.state[p]["step"] == 3
    assert opt_b.param_groups[0]["param_names"] == ["c", "w", "b"]


def test_positional_when_either_side_lacks_names(rng):
    a = _named(rng)
    opt_a = fo.SGD(a, lr=0.1, momentum=0.9)
    _train(opt_a, [p for _, p in a])
    sd = opt_a.state_dict()
    plain = [fo.Parameter(np.zeros_like(p.data)) for _, p in a]
    opt_b = fo.SGD(plain, lr=0.1, momentum=0.9)
    opt_b.load_state_dict(copy.deepcopy(sd))
    for (_, pa), pb in zip(a, plain):
        np.testing.assert_array_equal(opt_b.state[pb]["momentum_buffer"], opt_a.state[pa]["momentum_buffer"])
    # saved without names, live with names: positional too
    opt_c = fo.SGD(_named(rng), lr=0.1, momentum=0.9)
    opt_c.load_state_dict(opt_b.state_dict())
    assert len(opt_c.state) == 3


@pytest.mark.parametrize("names, match", [(["w", "b", "z"], r"unknown \['z'\], missing \['c'\]"),
                                          (["w", "b", "b"], "repeats"),
                                          (["w", "b"], "3 params but 2 param_names")])
def test_bad_names_rejected_nothing_changed(rng, names, match):
    a = _named(rng)
    opt_a = fo.Adam(a, lr=0.1)
    _train(opt_a, [p for _, p in a])
    sd = copy.deepcopy(opt_a.state_dict())
    b = _named(rng, order=("c", "w", "b"))
    opt_b = fo.Adam(b, lr=0.5)
    _train(opt_b, [p for _, p in b], steps=1, seed=1)
    sd["param_groups"][0]["param_names"] = names
    with rejected(opt_b, ValueError, match):
        opt_b.load_state_dict(sd)


def test_names_matched_within_each_group(rng):
    ps = dict(_named(rng))
    opt_a = fo.Adam([{"params": [("w", ps["w"]), ("b", ps["b"])]}, {"params": [("c", ps["c"])], "lr": 0.01}])
    _train(opt_a, list(ps.values()))
    sd = opt_a.state_dict()
    q = dict(_named(rng))
    opt_b = fo.Adam([{"params": [("b", q["b"]), ("w", q["w"])]}, {"params": [("c", q["c"])], "lr": 0.01}])
    opt_b.load_state_dict(copy.deepcopy(sd))
    for n in "wbc":
        np.testing.assert_array_equal(opt_b.state[q[n]]["exp_avg"], opt_a.state[ps[n]]["exp_avg"])
    # a name that moved to another group is unknown in its saved group
    opt_c = fo.Adam([{"params": [("b", q["b"]), ("c", q["c"])]}, {"params": [("w", q["w"])], "lr": 0.01}])
    with rejected(opt_c, ValueError, r"param_groups\[0\].*unknown \['w'\], missing \['c'\]"):
        opt_c.load_state_dict(copy.deepcopy(sd))


def test_shape_check_uses_the_named_parameter(rng):
    a = _named(rng)
    opt_a = fo.Adam(a, lr=0.1)
    _train(opt_a, [p for _, p in a])
    sd = opt_a.state_dict()
    # same names, but 'w' has another shape here: refused, naming the live position of 'w'
    b = _named(rng, order=("c", "w", "b"), shapes={"w": (2, 3), "b": (2,), "c": (4,)})
    opt_b = fo.Adam(b, lr=0.1)
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[1\]"):
        opt_b.load_state_dict(copy.deepcopy(sd))
    assert not opt_b.state
