"""The repeated-step fast path (cached plans and pointer tables) keeps every guarantee of the full step:
same results, every change noticed, rejected steps change nothing and name the parameter."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from conftest import snapshot

SHAPES = [(20, 1), (20,), (1, 20), (1,)]


def _mlp(rng, dtype=np.float32):
    ps = [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]
    for p in ps:
        p.grad = rng.standard_normal(p.shape).astype(dtype)
    return ps


def _warm(opt):
    opt.step()
    opt.step()
    assert opt._plans is not None  # the fast path is armed


@pytest.mark.parametrize("make", [lambda ps: fo.Adam(ps, lr=1e-2, weight_decay=0.1),
                                  lambda ps: fo.AdamW(ps, lr=1e-2, amsgrad=True),
                                  lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda ps: fo.RMSprop(ps, lr=1e-2, centered=True, momentum=0.5)])
def test_fast_path_matches_full_path(make, rng):
    a, b = _mlp(rng), None
    b = [fo.Parameter(p.data.copy()) for p in a]
    oa, ob = make(a), make(b)
    for k in range(12):
        for pa, pb in zip(a, b):
            g = rng.standard_normal(pa.shape).astype(np.float32)
            pa.grad, pb.grad = g, g.copy()
        if k == 5:  # a scheduler-style change of a hyper-parameter
            for o in (oa, ob):
                o.param_groups[0]["lr"] = o.param_groups[0]["lr"] * 0.5
        oa.step()
        ob._plans = None  # always the full path
        ob.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.data, pb.data)
        for key, value in oa.state[pa].items():
            np.testing.assert_array_equal(value, ob.state[pb][key])


def _rejects(opt, exc, match):
    before = snapshot(opt)
    with pytest.raises(exc, match=match):
        opt.step()
    assert snapshot(opt) == before


def test_bad_grad_after_caching_is_rejected(rng):
    ps = _mlp(rng)
    opt = fo.Adam(ps)
    _warm(opt)
    ps[2].grad = np.ones((1, 20), np.float64)
    _rejects(opt, TypeError, r"param_groups\[0\]\['params'\]\[2\]: grad is float64")
    ps[2].grad = np.ones((20, 1), np.float32)
    _rejects(opt, ValueError, r"param_groups\[0\]\['params'\]\[2\]: grad has shape")
    ps[2].grad = ps[2].data
    _rejects(opt, ValueError, r"param_groups\[0\]\['params'\]\[2\]: grad shares memory")


def test_changed_arrays_after_caching_are_rejected(rng):
    ps = _mlp(rng)
    opt = fo.Adam(ps)
    _warm(opt)
    ps[1].data.flags.writeable = False
    _rejects(opt, ValueError, r"param_groups\[0\]\['params'\]\[1\]: data is read-only")
    ps[1].data.flags.writeable = True
    opt.state[ps[3]]["exp_avg_sq"].flags.writeable = False
    _rejects(opt, ValueError, r"param_groups\[0\]\['params'\]\[3\]: state 'exp_avg_sq' is read-only")
    opt.state[ps[3]]["exp_avg_sq"].flags.writeable = True
    ps[0].data.shape = (1, 20)  # reshaped in place: the old-shaped gradient no longer fits
    _rejects(opt, ValueError, r"param_groups\[0\]\['params'\]\[0\]: grad has shape")
    ps[0].data.shape = (20, 1)
    opt.state[ps[0]]["step"] = -1
    _rejects(opt, ValueError, r"param_groups\[0\]\['params'\]\[0\]: state 'step'")
    opt.state[ps[0]]["step"] = 2
    opt.param_groups[0]["lr"] = -1.0
    _rejects(opt, ValueError, "Invalid learning rate")
    opt.param_groups[0]["lr"] = 1e-3
    opt.param_groups[0]["amsgrad"] = 1  # equal to True but not a bool: must still be checked
    _rejects(opt, TypeError, "amsgrad must be a bool")
    opt.param_groups[0]["amsgrad"] = False
    opt.step()  # and everything works again


def test_replaced_state_and_data_are_used(rng):
    ps = _mlp(rng)
    opt = fo.Adam(ps)
    _warm(opt)
    old = opt.state[ps[1]]["exp_avg"]
    new = np.zeros_like(old)
    opt.state[ps[1]]["exp_avg"] = new
    kept = old.copy()
    opt.step()
    np.testing.assert_array_equal(old, kept)  # the replaced buffer is no longer written
    assert np.any(new != 0)
    fresh = np.ones(20, np.float32)
    ps[1].data = fresh
    opt.step()
    assert np.any(fresh != 1)


def test_new_step_count_type_goes_through_validation(rng):
    ps = _mlp(rng)
    opt = fo.Adam(ps)
    _warm(opt)
    opt.state[ps[0]]["step"] = np.float32(2.0)  # torch-style step: accepted, converted by the full path
    opt.step()
    assert opt.state[ps[0]]["step"] == 3


def test_fill_columns_checks_its_array():
    from fastopt import _kernels as K
    s = np.zeros((3, 2))
    K.fill_columns(s, (1.5, -2.0))
    np.testing.assert_array_equal(s, [[1.5, -2.0]] * 3)
    with pytest.raises(ValueError):
        K.fill_columns(np.zeros((3, 2), np.float32), (1.0,))
    with pytest.raises(ValueError):
        K.fill_columns(s, (1.0, 2.0, 3.0))
    ro = np.zeros((2, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        K.fill_columns(ro, (1.0,))


def _fast_equals_full(oa, ob, a, b, rng, steps):
    """``steps`` steps of oa (fast path when it holds) and ob (always the full path) on equal fresh gradients:
    equal parameters after."""
    for _ in range(steps):
        for pa, pb in zip(a, b):
            g = rng.standard_normal(pa.shape).astype(np.float32)
            pa.grad, pb.grad = g, g.copy()
        oa.step()
        ob._plans = None
        ob.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.data, pb.data)


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.0, 0.5), (0.5, 0.0), (-0.0, 0.99), (0.999999, 0.1)])
@pytest.mark.parametrize("lr", [1e-3, 1, 0.7])
def test_c_step_scalars_equal_python_arithmetic(lr, betas):
    # the repeated step's scalars come from C (csrc/adam.c): bit for bit what Python's float ** int gives
    from fastopt import _kernels as K
    from fastopt.optim.adam import SPEC
    opts = dict(SPEC.defaults, lr=lr, betas=betas)
    kernel, hyper = SPEC.table_kernel, SPEC.hyper(opts)
    b1, b2 = float(betas[0]), float(betas[1])
    for t in [1, 2, 3, 10, 999, 10**6, 2**40]:
        want = (float(lr) / (1 - b1 ** t), (1 - b2 ** t) ** 0.5)
        got = kernel.step_scalars(hyper, t)
        assert [x.hex() for x in got] == [x.hex() for x in want], t
    assert K.KERNELS["adam"].has_step_scalars and not K.KERNELS["sgd"].has_step_scalars
    with pytest.raises(RuntimeError):
        K.KERNELS["sgd"].step_scalars(K.KERNELS["sgd"].pack(dict.fromkeys(K.KERNELS["sgd"].fields, 0)), 1)
    with pytest.raises(ValueError):
        kernel.step_scalars(hyper[:-1], 1)
    with pytest.raises(ValueError):
        kernel.step_scalars(hyper, -1)


def test_tensors_with_different_step_counts_take_the_per_tensor_scalars(rng):
    a, b = _mlp(rng), None
    b = [fo.Parameter(p.data.copy()) for p in a]
    oa, ob = fo.Adam(a, lr=1e-2), fo.Adam(b, lr=1e-2)
    for o, ps in ((oa, a), (ob, b)):
        for p in ps:
            p.grad = np.ones(p.shape, np.float32)
        o.step()
        o.step()
        o.state[ps[1]]["step"] = 7  # an int, as the plan expects: the fast path keeps running
    _fast_equals_full(oa, ob, a, b, rng, 4)
    assert oa.state[a[1]]["step"] == 11 and oa.state[a[0]]["step"] == 6


def test_step_hooks_run_on_the_repeated_step(rng):
    ps = _mlp(rng)
    opt = fo.Adam(ps)
    _warm(opt)
    seen = []
    h = opt.register_step_pre_hook(lambda o, args, kw: seen.append("pre"))
    g = opt.register_step_post_hook(lambda o, args, kw: seen.append("post"))
    before = opt.state[ps[0]]["step"]
    opt.step()
    assert seen == ["pre", "post"] and opt.state[ps[0]]["step"] == before + 1
    h.remove()
    g.remove()
    opt.step()
    assert seen == ["pre", "post"] and opt.state[ps[0]]["step"] == before + 2


def test_several_groups_repeat_in_one_call_and_match_the_full_path(rng):
    def build(ps):
        return fo.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 1e-2, "amsgrad": True}])
    a = _mlp(rng)
    b = [fo.Parameter(p.data.copy()) for p in a]
    oa, ob = build(a), build(b)
    _fast_equals_full(oa, ob, a, b, rng, 6)
    assert len(oa._plans) == 2


def test_optimizer_lock_is_reentrant_and_exclusive():
    import threading
    from fastopt import _kernels as K
    lock = K.OptimizerLock()
    assert lock.acquire() and lock.acquire()  # the same thread again
    got = []
    t = threading.Thread(target=lambda: got.append((lock.acquire(blocking=False), lock.acquire(timeout=0.01))))
    t.start()
    t.join()
    assert got == [(False, False)]
    lock.release()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=1.0)))
    t.start()
    t.join()
    assert got[-1] is True
    with pytest.raises(RuntimeError):  # held by the other (finished) thread, not this one
        lock.release()
    with pytest.raises(ValueError):
        lock.acquire(blocking=False, timeout=1.0)
    with K.OptimizerLock() as held:
        assert held is True


@pytest.mark.parametrize("count, fast", [(7, True), (2**40, True), (2**62 - 1, True),
                                         (2**62, False)])
def test_step_count_range_of_the_fast_path(count, fast, rng):
    """The repeated step reads each tensor's count in C: an exact int in [0, 2**62); a larger one goes to the full
    path, which still takes the step."""
    ps = _mlp(rng)
    opt = fo.Adam(ps)
    _warm(opt)
    for p in ps:
        opt.state[p]["step"] = count
    plans = opt._plans
    runs = plans.runs
    opt.step()
    assert (opt._plans is plans and plans.runs == runs + 1) == fast
    assert all(opt.state[p]["step"] == count + 1 for p in ps)
