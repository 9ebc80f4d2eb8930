"""fastopt.tree: named Parameters from a tree of arrays, gradients from a tree of the same shape, and
saving Parameters / a whole run in one fastopt.save call (issue 16, items 6 and 7)."""

from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo


def _tree(rng):
    return {"enc": [{"w": rng.standard_normal((3, 4)), "b": np.zeros(4)}],
            "head": (rng.standard_normal((4, 2)).astype(np.float32), None)}


def test_parameters_wrap_the_leaves_in_place_and_are_named_by_path():
    rng = np.random.default_rng(0)
    tree = _tree(rng)
    params = fo.tree.parameters(tree)
    assert [p.name for p in params] == ["enc.0.w", "enc.0.b", "head.0"]
    assert params[0].data is tree["enc"][0]["w"] and params[2].data is tree["head"][0]
    before = tree["enc"][0]["w"].copy()
    grads = {"enc": [{"w": np.ones((3, 4)), "b": np.ones(4)}], "head": (np.ones((4, 2), np.float32), None)}
    opt = fo.SGD(params, lr=0.5)
    fo.tree.set_grads(params, grads)
    opt.step()
    np.testing.assert_array_equal(tree["enc"][0]["w"], before - 0.5)   # the tree itself changed


def test_set_grads_matches_by_path_not_order():
    rng = np.random.default_rng(1)
    tree = {"b": np.zeros(2), "a": np.zeros(3)}
    params = fo.tree.parameters(tree)
    ga, gb = np.arange(3.0), np.arange(2.0)
    fo.tree.set_grads(params, {"a": ga, "b": gb})       # keys in another order (as JAX sorts them)
    assert params[0].grad is gb and params[1].grad is ga


def test_set_grads_accepts_read_only_and_none_leaves():
    params = fo.tree.parameters({"w": np.zeros(3), "v": np.zeros(2)})
    g = np.ones(3)
    g.flags.writeable = False
    params[1].grad = np.ones(2)
    fo.tree.set_grads(params, {"w": g, "v": None})
    assert params[0].grad is g and params[1].grad is None
    fo.Adam(params).step()                                  # a read-only grad is fine for a step


@pytest.mark.parametrize("grads,exc,match", [
    ({"w": np.ones(3)}, ValueError, r"missing \['v'\]"),
    ({"w": np.ones(3), "v": np.ones(2), "z": np.ones(1)}, ValueError, r"unexpected \['z'\]"),
    ({"w": np.ones(4), "v": np.ones(2)}, ValueError, r"gradient 'w' has shape \(4,\), parameter has \(3,\)"),
    ({"w": np.ones(3, np.float32), "v": np.ones(2)}, TypeError, r"jax_enable_x64"),
    ({"w": np.ones(3, np.int64), "v": np.ones(2)}, TypeError, r"integer/bool gradient"),
])
def test_set_grads_checks_everything_before_setting_any_grad(grads, exc, match):
    params = fo.tree.parameters({"w": np.zeros(3), "v": np.zeros(2)})
    with pytest.raises(exc, match=match):
        fo.tree.set_grads(params, grads)
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("tree,exc,match", [
    ({"w": [1.0, 2.0]}, TypeError, r"tree leaf 'w.0' is a builtins.float"),
    ({"w": np.zeros(3, np.int32)}, TypeError, r"'w': dtype int32"),
    ({"a.b": np.zeros(3)}, ValueError, r"contains '\.'"),
])
def test_parameters_refuse_what_cannot_be_updated_in_place(tree, exc, match):
    with pytest.raises(exc, match=match):
        fo.tree.parameters(tree)


def test_parameters_refuse_read_only_and_repeated_leaves():
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="read-only"):
        fo.tree.parameters({"w": ro})
    shared = np.zeros(3)
    with pytest.raises(ValueError, match="'a' and 'b' are the same array"):
        fo.tree.parameters({"a": shared, "b": shared})


def test_save_a_parameter_loads_its_array(tmp_path):
    w = fo.Parameter(np.arange(6.0).reshape(2, 3), name="w")
    fo.save({"w": w, "list": [w]}, tmp_path / "p.npz")
    back = fo.load(tmp_path / "p.npz")
    assert isinstance(back["w"], np.ndarray) and back["w"].dtype == np.float64
    np.testing.assert_array_equal(back["w"], w.data)
    np.testing.assert_array_equal(back["list"][0], w.data)


def test_one_call_checkpoint_of_params_optimizer_scheduler_and_rng_resumes_exactly(tmp_path):
    def run(steps, resume_from=None, save_at=None):
        rng = np.random.default_rng(7)
        params = fo.tree.parameters({"w": np.ones((4, 3)), "b": np.zeros(3)})
        opt = fo.AdamW(params, lr=0.1)
        sched = fo.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        start = 0
        if resume_from is not None:
            ck = fo.load(resume_from)
            for p in params:
                np.copyto(p.data, ck["params"][p.name])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            rng.bit_generator.state = ck["rng"]
            start = ck["epoch"]
        for epoch in range(start, steps):
            for p in params:
                p.grad = rng.standard_normal(p.shape)
            opt.step()
            sched.step()
            if save_at == epoch + 1:
                fo.save({"params": {p.name: p for p in params}, "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "rng": rng.bit_generator.state,
                         "epoch": epoch + 1}, tmp_path / "run.npz")
        return [p.data.copy() for p in params]

    straight = run(10, save_at=4)
    resumed = run(10, resume_from=tmp_path / "run.npz")
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)


def test_step_dtype_errors_carry_a_hint_for_the_usual_sources():
    w = fo.Parameter(np.zeros(3))
    opt = fo.SGD([w], lr=0.1)
    w.grad = np.ones(3, np.float32)                   # a JAX gradient without jax_enable_x64
    with pytest.raises(TypeError, match=r"grad is float32, param is float64.*jax_enable_x64"):
        opt.step()

    class FakeDeviceArray:                            # what a JAX/torch array looks like to fastopt
        def __array__(self, dtype=None, copy=None):
            return np.ones(3)

    w.grad = FakeDeviceArray()
    with pytest.raises(TypeError, match=r"np\.asarray\(g\)"):
        opt.step()
    w.grad = np.asarray(FakeDeviceArray())
    opt.step()                                        # the suggested fix works
