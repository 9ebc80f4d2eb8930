"""ZeroRedundancyOptimizer over the elementwise optimizers beyond torch.optim (issue #15): AdEMAMix and
Schedule-Free SGD/AdamW, under mpiexec -n 2 (and at world size 1 in the ordinary run).

- ZeRO-1 and plain data parallelism (allreduce_grads + the same optimizer) give bit-identical parameters, on every
  rank, and the same consolidated state and group keys (Schedule-Free's k, weight_sum, lr_max, scheduled_lr,
  train_mode agree across ranks: they depend only on the options and k, and every group advances on every rank).
- Schedule-Free's eval()/train() mid-run switch every rank's pieces and gather the parameters: the weights after
  eval() are the data-parallel optimizer's x, bit for bit, and training resumes identically; stepping in eval mode
  raises on every rank with nothing changed; a consolidated checkpoint taken in eval mode loads into a plain
  optimizer that continues bit-identically.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpi4py")  # skips the module without mpi4py; under mpiexec every rank runs it

from dist_helpers import COMM, RANK, clone, everywhere, groups, make_params, raised, rank_grads, same_bits, set_grads

import fastopt as fo
from fastopt import distributed as dist

CASES = {
    "AdEMAMix": dict(lr=0.01, betas=(0.9, 0.99, 0.999), alpha=3.0, t_alpha_beta3=6, weight_decay=0.01),
    "ScheduleFreeSGD": dict(lr=0.05, momentum=0.9, warmup_steps=3, weight_decay=1e-3),
    "ScheduleFreeAdamW": dict(lr=0.01, warmup_steps=3, weight_decay=0.01, r=0.5),
}
_NOT = ("params", "param_names")


def _step(opt, params, t, zero):
    opt.zero_grad()
    set_grads(params, rank_grads(params, t, RANK))
    if not zero:
        dist.allreduce_grads(params, comm=COMM)
    opt.step()


def _options(opt):
    return [{k: v for k, v in g.items() if k not in _NOT} for g in opt.param_groups]


def _same_state(plain, full):
    return sorted(full["state"]) == sorted(plain["state"]) and all(
        sorted(full["state"][k]) == sorted(plain["state"][k]) and all(
            np.array_equal(np.asarray(full["state"][k][key]), np.asarray(v))
            and np.asarray(full["state"][k][key]).dtype == np.asarray(v).dtype
            for key, v in plain["state"][k].items()) for k in plain["state"])


def test_the_beyond_optimizers_are_accepted():
    for name in CASES:
        assert getattr(fo, name) in dist.ELEMENTWISE_OPTIMIZERS
    for cls in (fo.LAMB, fo.LARS, fo.Prodigy):  # per-tensor trust ratios, sums over every parameter
        assert cls not in dist.ELEMENTWISE_OPTIMIZERS
        got = raised(lambda: dist.ZeroRedundancyOptimizer(make_params(np.float64), cls, comm=COMM))
        everywhere(got is not None and got[0] == "TypeError" and "elementwise" in got[1], f"{got}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_zero_matches_data_parallel_bit_for_bit_with_mode_switches(name, dtype):
    cls, kw = getattr(fo, name), CASES[name]
    init = make_params(dtype)
    dp, zp = clone(init), clone(init)
    opt = cls(groups(dp), **kw)
    zopt = dist.ZeroRedundancyOptimizer(groups(zp), cls, comm=COMM, **kw)
    sf = hasattr(opt, "eval")
    for t in range(12):
        _step(opt, dp, t, False)
        _step(zopt, zp, t, True)
        if sf and t in (4, 8):
            if t == 8:  # without gradients: every parameter is still switched and gathered
                opt.zero_grad()
                zopt.zero_grad()
            opt.eval()
            zopt.eval()
            everywhere(same_bits(dp, zp), f"{name}: the weights after eval() differ")
            everywhere(_options(zopt) == _options(opt), f"{name}: group keys after eval() differ")
            if t == 4:  # a step in eval mode: refused on every rank, nothing changed
                before = [p.data.copy() for p in zp]
                got = raised(zopt.step)
                everywhere(got is not None and got[0] == "RuntimeError" and "eval mode" in got[1], f"{got}")
                everywhere(all(np.array_equal(a, p.data) for a, p in zip(before, zp)), "eval-mode step wrote")
            opt.train()
            zopt.train()
    everywhere(same_bits(dp, zp), f"{name}: ZeRO and DP differ")
    everywhere(_options(zopt) == _options(opt), f"{name}: group keys differ {_options(zopt)} {_options(opt)}")
    everywhere(COMM.allgather(repr(_options(zopt))) == [repr(_options(zopt))] * COMM.size, "ranks disagree")
    zopt.consolidate_state_dict(to=0)
    ok = _same_state(opt.state_dict(), zopt.state_dict()) if RANK == 0 else True
    everywhere(ok, f"{name}: consolidated state differs")


def test_a_schedule_free_checkpoint_taken_in_eval_mode_continues_in_a_plain_optimizer():
    cls, kw = fo.ScheduleFreeAdamW, CASES["ScheduleFreeAdamW"]
    init = make_params(np.float64)
    dp, zp = clone(init), clone(init)
    opt = cls(groups(dp), **kw)
    zopt = dist.ZeroRedundancyOptimizer(groups(zp), cls, comm=COMM, **kw)
    for t in range(5):
        _step(opt, dp, t, False)
        _step(zopt, zp, t, True)
    opt.eval()
    zopt.eval()
    zopt.consolidate_state_dict(to=0)
    sd = zopt.state_dict() if RANK == 0 else None
    sd = COMM.bcast(sd, root=0)
    fresh = clone(zp)
    other = cls(groups(fresh), **kw)
    other.load_state_dict(sd)
    everywhere(_options(other) == _options(opt), "loaded group keys differ")
    for o in (opt, other):
        o.train()
    for t in range(5, 9):
        _step(opt, dp, t, False)
        _step(other, fresh, t, False)
    everywhere(same_bits(dp, fresh), "the plain optimizer loaded from ZeRO's checkpoint diverged")


def test_train_and_eval_need_an_optimizer_that_has_them():
    zopt = dist.ZeroRedundancyOptimizer(make_params(np.float64), fo.Adam, comm=COMM, lr=0.01)
    got = raised(zopt.eval)
    everywhere(got is not None and got[0] == "AttributeError" and "no eval()" in got[1], f"{got}")
