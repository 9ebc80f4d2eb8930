"""Prodigy's repeated step through ``fastopt._kernels.PassPlan`` (fastopt/_beyond_plan.pxi): one ``StepPlan`` per
group checks the parameters, state and gradients in C, the group dicts are compared by identity with what the last
step left, then Prodigy's two passes run. Every case compares an optimizer that may take the plan with one that
never does (its plan dropped before every step): the same bits, the same state and group keys; and counts how many
steps the plan ran. The older plan tests (tests/test_prodigy.py, tests/test_prodigy_speedpath.py) still apply."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import fastopt as fo
from fastopt import _kernels as K
from helpers import assert_arrays_equal, make_array, num_threads, rejected, requires_openmp
from test_prodigy import _step_both as _compare_step


def _pair(rng, dtype, sizes, group_kw=None, **kw):
    """Two Prodigy optimizers over copies of the same parameters (``sizes``: one list of sizes per group)."""
    data = [[make_array(rng, n, dtype) for n in ns] for ns in sizes]
    group_kw = group_kw or [{} for _ in sizes]
    out = []
    for _ in range(2):
        ps = [[fo.Parameter(a.copy()) for a in g] for g in data]
        opt = fo.Prodigy([{"params": p, **gk} for p, gk in zip(ps, group_kw)], **kw)
        out.append((opt, [p for g in ps for p in g]))
    return out


def _step_both(fast, full, grads):
    """One step of each (``full`` without its plan): tests/test_prodigy.py's exact comparison, plus each state's key
    order and value types. Returns how many steps ``fast`` planned (0 or 1)."""
    planned = _compare_step(fast, full, grads)
    for p, q in zip(fast[1], full[1]):
        assert list(fast[0].state[p]) == list(full[0].state[q])
        assert [type(v) for v in fast[0].state[p].values()] == [type(v) for v in full[0].state[q].values()]
    return planned


def _grads(rng, ps, dtype):
    return [make_array(rng, p.data.size, dtype).reshape(p.data.shape) for p in ps]


def test_the_plan_is_one_stepplan_per_group_and_runs_every_repeated_step(rng):
    sizes = [[3, 40, 7], [129], [1, 2]]
    fast, full = _pair(rng, np.float32, sizes)
    assert _step_both(fast, full, _grads(rng, fast[1], np.float32)) == 0  # the state is created
    plan = fast[0]._plan
    assert isinstance(plan, K.PassPlan) and len(plan.plans.plans) == len(sizes)
    assert [_step_both(fast, full, _grads(rng, fast[1], np.float32)) for _ in range(6)] == [1] * 6
    assert fast[0]._plan is plan and plan.runs == 6


def test_a_200_tensor_model_in_three_groups_planned_matches_the_full_path_bit_for_bit(rng):
    """The case the plan is for (many small tensors); one group has lr 0 (upstream's rule: lr equal or 0), so its
    table takes only the update pass with no partials."""
    sizes = [list(rng.integers(1, 300, 120)), list(rng.integers(1, 300, 60)), list(rng.integers(1, 300, 20))]
    fast, full = _pair(rng, np.float64, sizes, group_kw=[{}, {"weight_decay": 0.1}, {"lr": 0.0}],
                       use_bias_correction=True)
    assert [_step_both(fast, full, _grads(rng, fast[1], np.float64)) for _ in range(12)] == [0] + [1] * 11
    assert fast[0].param_groups[0]["k"] == 12


@pytest.mark.parametrize("spoil", ["equal float", "equal tuple", "new key", "deleted key"])
def test_group_values_are_compared_by_identity(spoil, rng):
    """An option replaced by an equal object, or a key added or removed, is not the group the plan checked: the
    full path runs (and validates it), then the next step plans again."""
    fast, full = _pair(rng, np.float32, [[5, 64]])
    assert [_step_both(fast, full, _grads(rng, fast[1], np.float32)) for _ in range(2)] == [0, 1]
    for opt, _ in (fast, full):
        g = opt.param_groups[0]
        if spoil == "equal float":
            g["eps"] = float(repr(g["eps"]))
        elif spoil == "equal tuple":
            g["betas"] = tuple(list(g["betas"]))
        elif spoil == "new key":
            g["note"] = "x"
        else:
            del g["d_hat"]
    assert _step_both(fast, full, _grads(rng, fast[1], np.float32)) == 0
    assert _step_both(fast, full, _grads(rng, fast[1], np.float32)) == 1


def test_user_set_step_counts_advance_on_the_plan_as_on_the_full_path(rng):
    """The plan reads each count (an exact int >= 0) instead of requiring the one it wrote: a user-set count is
    advanced as the full path advances it."""
    fast, full = _pair(rng, np.float64, [[5, 9, 17]])
    assert [_step_both(fast, full, _grads(rng, fast[1], np.float64)) for _ in range(2)] == [0, 1]
    for opt, ps in (fast, full):
        opt.state[ps[1]]["step"] = 41
    assert _step_both(fast, full, _grads(rng, fast[1], np.float64)) == 1
    assert [fast[0].state[p]["step"] for p in fast[1]] == [3, 42, 3]


def test_while_every_sum_is_zero_the_plan_leaves_the_counts_d_and_k(rng):
    """All-zero gradients from the start keep s at zero, so the l1 sum is 0: upstream returns after the moments,
    and so do both paths (no count, d or k advances); the first nonzero gradient then steps."""
    fast, full = _pair(rng, np.float32, [[8, 8], [3]])
    zeros = [np.zeros_like(p.data) for p in fast[1]]
    assert [_step_both(fast, full, zeros) for _ in range(3)] == [0, 1, 1]
    g = fast[0].param_groups[0]
    assert [fast[0].state[p]["step"] for p in fast[1]] == [0, 0, 0] and g["k"] == 0 and g["d"] == g["d0"]
    assert _step_both(fast, full, _grads(rng, fast[1], np.float32)) == 1
    assert [fast[0].state[p]["step"] for p in fast[1]] == [1, 1, 1] and g["k"] == 1


@pytest.mark.parametrize("target", ["s", "p0"])
def test_a_gradient_that_is_another_groups_state_is_refused_before_any_write(target, rng):
    """Each StepPlan checks its gradients against its own table; the PassPlan checks every gradient against every
    group's written bytes too. The full path then names the problem; nothing changed."""
    (opt, ps), _ = _pair(rng, np.float32, [[6, 10], [12]])
    for _ in range(2):
        for p in ps:
            p.grad = make_array(rng, p.data.size, np.float32)
        opt.step()
    assert opt._fast_steps == 1
    ps[0].grad = opt.state[ps[2]][target][:6]
    with rejected(opt, ValueError, "shares memory|overlap"):
        opt.step()
    assert opt._fast_steps == 1 and opt._plan is None


def test_hooks_run_once_around_a_planned_step(rng):
    fast, full = _pair(rng, np.float32, [[4, 4]])
    calls = []
    fast[0].register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    fast[0].register_step_post_hook(lambda o, a, k: calls.append("post"))
    assert [_step_both(fast, full, _grads(rng, fast[1], np.float32)) for _ in range(3)] == [0, 1, 1]
    assert calls == ["pre", "post"] * 3


def test_a_failing_pass_releases_the_gradients_and_the_plan_runs_again(rng):
    fast, full = _pair(rng, np.float64, [[7, 70]])
    assert [_step_both(fast, full, _grads(rng, fast[1], np.float64)) for _ in range(2)] == [0, 1]
    opt, ps = fast

    def boom(items):
        raise RuntimeError("boom")

    grad = np.ones(7)
    ps[0].grad = grad
    ps[1].grad = np.ones(70)
    opt._passes = boom  # the plan calls the pass function it is given
    with pytest.raises(RuntimeError, match="boom"):
        opt.step()
    del opt._passes
    ref = weakref.ref(grad)
    ps[0].grad = grad = None
    gc.collect()
    assert ref() is None  # the plan's table dropped its reference to the gradient
    assert _step_both(fast, full, _grads(rng, ps, np.float64)) == 1


@pytest.mark.parametrize("threads", [2, 3])
def test_planned_steps_give_the_same_bits_for_any_thread_count(threads, rng):
    requires_openmp()
    sizes = [[70000, 5, 40000], [33000]]  # several work items per tensor, above the parallel threshold
    data = [[make_array(rng, n, np.float32) for n in ns] for ns in sizes]
    grads = [[make_array(rng, n, np.float32) for ns in sizes for n in ns] for _ in range(4)]
    out = []
    for n_thr in (1, threads):
        ps = [[fo.Parameter(a.copy()) for a in g] for g in data]
        opt = fo.Prodigy([{"params": p} for p in ps])
        flat = [p for g in ps for p in g]
        with num_threads(n_thr):
            for gs in grads:
                for p, g in zip(flat, gs):
                    p.grad = g
                opt.step()
        assert opt._fast_steps == 3
        out.append(([p.data for p in flat], opt.param_groups[0]["d"]))
    assert_arrays_equal(out[0][0], out[1][0])
    assert out[0][1] == out[1][1]


def test_passplan_refuses_plans_that_do_not_fit():
    p = fo.Parameter(np.zeros(4))
    group = {"params": [p]}
    state = {p: {"buf": np.zeros(4), "step": 0}}
    table = K.TensorTable([[p.data, np.zeros(4), state[p]["buf"]]], ("param", "grad", "buf"), (False, True, False),
                          1)
    table.release(1)
    kernel = K.KERNELS["sgd"]
    no_count = K.StepPlan(table, kernel, bytes(kernel.hyper_size), group, state, (), False, None, None)
    with pytest.raises(ValueError, match="count steps"):
        K.PassPlan([no_count], [group], [None], {}, {})
    with pytest.raises(ValueError, match="1 plans and 0 items for 1 groups"):
        K.PassPlan([no_count], [group], [], {}, {})
