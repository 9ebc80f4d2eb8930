"""Schedule-Free's own behaviour beyond the registry's generic tests: the train/eval switch (in place, strided
params, no-ops), stepping in eval mode, checkpoints saved in either mode, the functional forms."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from helpers import assert_arrays_equal, rejected
from reference import _lerp

KINDS = [("ScheduleFreeSGD", dict(lr=0.5, momentum=0.8, weight_decay=0.01, warmup_steps=3)),
         ("ScheduleFreeAdamW", dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01, warmup_steps=3))]


def _setup(name, kw, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in [(5,), (3, 4), (2,)]]
    grads = [[rng.standard_normal(x.shape).astype(dtype) for x in init] for _ in range(12)]
    params = [fo.Parameter(x.copy()) for x in init]
    opt = getattr(fo, name)([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], **kw)
    return params, opt, grads


def _steps(params, opt, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g
        opt.step()


@pytest.mark.parametrize("name,kw", KINDS)
def test_eval_moves_to_x_and_train_back_to_y(name, kw):
    params, opt, grads = _setup(name, kw)
    _steps(params, opt, grads[:5])
    y = [p.data.copy() for p in params]
    z = [opt.state[p]["z"].copy() for p in params]
    ids = [id(p.data) for p in params]
    opt.eval()
    for group in opt.param_groups:
        assert group["train_mode"] is False
    beta = kw.get("momentum", kw.get("betas", (0.9,))[0])
    for p, yi, zi in zip(params, y, z):
        assert_arrays_equal([p.data], [_lerp(yi, zi, 1 - 1 / beta)])  # x, in place
    assert [id(p.data) for p in params] == ids
    x = [p.data.copy() for p in params]
    opt.eval()  # already in eval mode: nothing moves
    assert_arrays_equal([p.data for p in params], x)
    opt.train()
    for p, xi, zi in zip(params, x, z):
        assert_arrays_equal([p.data], [_lerp(xi, zi, 1 - beta)])
    assert all(g["train_mode"] is True for g in opt.param_groups)


@pytest.mark.parametrize("name,kw", KINDS)
def test_step_in_eval_mode_raises_and_changes_nothing(name, kw):
    params, opt, grads = _setup(name, kw)
    _steps(params, opt, grads[:3])
    opt.eval()
    for p, g in zip(params, grads[3]):
        p.grad = g
    with rejected(opt, RuntimeError, r"param_groups\[0\]: .* is in eval mode .*call optimizer.train\(\)"):
        opt.step()


def test_a_new_optimizer_starts_in_train_mode_and_train_is_a_no_op():
    p = fo.Parameter(np.arange(4.0))
    opt = fo.ScheduleFreeSGD([p], lr=0.1)
    assert opt.param_groups[0]["train_mode"] is True and opt.defaults["train_mode"] is True
    opt.train()
    opt.eval()  # no z yet: only the flag changes (as upstream)
    assert_arrays_equal([p.data], [np.arange(4.0)])
    p.grad = np.ones(4)
    with pytest.raises(RuntimeError, match="eval mode"):
        opt.step()


@pytest.mark.parametrize("name,kw", KINDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_checkpoint_saved_in_either_mode_resumes(name, kw, mode, tmp_path):
    """A run that saves at step 6 (after eval() in eval mode) and resumes in a new process-like setup continues
    bit for bit like the run that never stopped (which took the same eval()/train() round trip)."""
    params, opt, grads = _setup(name, kw)
    _steps(params, opt, grads[:6])
    if mode == "eval":
        opt.eval()
    fo.save(opt.state_dict(), tmp_path / "ckpt.npz")
    saved = [p.data.copy() for p in params]
    if mode == "eval":
        opt.train()
    _steps(params, opt, grads[6:])
    straight = [p.data.copy() for p in params]

    params2, opt2, _ = _setup(name, kw)
    for p, s in zip(params2, saved):
        p.data[...] = s
    opt2.load_state_dict(fo.load(tmp_path / "ckpt.npz"))
    assert opt2.param_groups[0]["train_mode"] is (mode == "train")
    assert opt2.param_groups[0]["k"] == 6
    if mode == "eval":
        with pytest.raises(RuntimeError, match="eval mode"):
            for p, g in zip(params2, grads[6]):
                p.grad = g
            opt2.step()
        opt2.train()
    _steps(params2, opt2, grads[6:])
    assert_arrays_equal([p.data for p in params2], straight)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_switch_updates_strided_params_in_place(dtype):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((4, 6)).astype(dtype)
    view = base[:, ::2]
    before = base.copy()
    p = fo.Parameter(view)
    q = fo.Parameter(view.copy())
    opt_p, opt_q = fo.ScheduleFreeAdamW([p], lr=0.1), fo.ScheduleFreeAdamW([q], lr=0.1)
    for _ in range(3):
        g = rng.standard_normal(view.shape).astype(dtype)
        p.grad, q.grad = g, g
        opt_p.step()
        opt_q.step()
    opt_p.eval()
    opt_q.eval()
    assert_arrays_equal([base[:, ::2]], [q.data])
    assert_arrays_equal([base[:, 1::2]], [before[:, 1::2]])  # the columns outside the view are untouched


def test_grads_are_not_overwritten():
    p = fo.Parameter(np.arange(3.0))
    g = np.array([1.0, -2.0, 0.5])
    g.flags.writeable = False  # a read-only gradient is accepted: it is only read
    opt = fo.ScheduleFreeAdamW([p], lr=0.1, weight_decay=0.1)
    p.grad = g
    opt.step()
    assert_arrays_equal([g], [np.array([1.0, -2.0, 0.5])])


def test_bad_train_mode_in_a_group_is_named():
    p = fo.Parameter(np.zeros(2))
    opt = fo.ScheduleFreeSGD([p])
    opt.param_groups[0]["train_mode"] = "yes"
    p.grad = np.ones(2)
    with rejected(opt, TypeError, r"param_groups\[0\]: train_mode must be a bool"):
        opt.step()


def test_functional_forms_match_the_class():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(9)
    gs = [rng.standard_normal(9) for _ in range(4)]
    for cls, fn, extra in [(fo.ScheduleFreeSGD, fo.functional.schedule_free_sgd, dict(momentum=0.9)),
                           (fo.ScheduleFreeAdamW, fo.functional.schedule_free_adamw,
                            dict(beta1=0.9, beta2=0.999, eps=1e-8))]:
        p = fo.Parameter(x.copy())
        opt = cls([p], lr=0.05, weight_decay=0.1, warmup_steps=2)
        y, zs, vs = x.copy(), [x.copy()], [np.zeros(9)]
        for k, g in enumerate(gs):
            lr, _, _, c = fo.optim.schedulefree.schedule(opt.param_groups[0])
            p.grad = g
            opt.step()
            if cls is fo.ScheduleFreeSGD:
                fn([y], [g], zs, lr=lr, ckp1=c, weight_decay=0.1, **extra)
            else:
                fn([y], [g], zs, vs, lr=lr, ckp1=c, k=k, weight_decay=0.1, **extra)
        assert_arrays_equal([p.data, opt.state[p]["z"]], [y, zs[0]])


def test_functional_rejects_bad_input_before_writing():
    y, z = np.ones(3), np.ones(3)
    with pytest.raises(ValueError, match="Invalid ckp1 value"):
        fo.functional.schedule_free_sgd([y], [np.ones(3)], [z], lr=0.1, ckp1=1.5, momentum=0.9, weight_decay=0.0)
    with pytest.raises(ValueError, match="Momentum must be between 0 and 1"):
        fo.functional.schedule_free_sgd([y], [np.ones(3)], [z], lr=0.1, ckp1=0.5, momentum=1.0, weight_decay=0.0)
    with pytest.raises(ValueError, match=r"z\[0\] must be an ndarray of shape \(3,\)"):
        fo.functional.schedule_free_sgd([y], [np.ones(3)], [np.ones(4)], lr=0.1, ckp1=0.5, momentum=0.9,
                                        weight_decay=0.0)
    assert_arrays_equal([y, z], [np.ones(3), np.ones(3)])


def test_repeated_steps_follow_group_keys_set_by_hand():
    """The repeated (cached-plan) step recomputes the schedule from the group keys each step: a hand-set k or
    weight_sum is honoured exactly as on a fresh optimizer, and a bad one is refused with nothing changed."""
    rng = np.random.default_rng(7)
    x, gs = rng.standard_normal(6), [rng.standard_normal(6) for _ in range(4)]
    a, b = fo.Parameter(x.copy()), fo.Parameter(x.copy())
    oa, ob = fo.ScheduleFreeSGD([a], lr=0.3, warmup_steps=5), fo.ScheduleFreeSGD([b], lr=0.3, warmup_steps=5)
    for g in gs[:2]:
        a.grad = b.grad = g
        oa.step()
        ob.step()
    oa.param_groups[0].update(k=10, weight_sum=3.0)
    ob.param_groups[0].update(k=10, weight_sum=3.0)
    for g in gs[2:]:
        a.grad = b.grad = g
        oa.step()
        ob._plans = None  # b always takes the full (checking) path
        ob.step()
    assert oa._plans is not None  # a's steps took the cached plan
    assert_arrays_equal([a.data, oa.state[a]["z"]], [b.data, ob.state[b]["z"]])
    assert oa.param_groups[0]["k"] == 12
    oa.param_groups[0]["weight_sum"] = -1.0
    a.grad = gs[0]
    with rejected(oa, ValueError, r"param_groups\[0\]: Invalid weight_sum value"):
        oa.step()
