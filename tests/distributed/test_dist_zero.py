"""ZeroRedundancyOptimizer under mpiexec -n 2 (and at world size 1 in the ordinary run): the issue's guarantees.

- ZeRO-1 and plain data parallelism (allreduce_grads + the same optimizer) give bit-identical parameters after
  50 steps (Adam, AdamW, SGD with momentum; float32 and float64; two groups with different lr), on every rank.
- Both equal one process stepping on the mean of the ranks' gradients within 1e-14 relative in float64: the only
  difference is the order of the summation (MPI adds g0/2 + g1/2, the reference takes mean(g0, g1) =
  (g0 + g1)/2; with two ranks and a power-of-two scale these round the same, so the measured error is 0).
- Optimizer-state bytes per rank <= (1/world + 0.02) of the single-process total, measured.
- A consolidated checkpoint loaded into a plain optimizer continues bit-identically; a sharded checkpoint
  written by 2 ranks loads on 1 rank and on 2.
- A rank that raises inside step() makes every rank raise, with the same error, and nothing changes.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpi4py")  # skips the module without mpi4py; under mpiexec every rank runs it

from dist_helpers import (COMM, RANK, WORLD, averaged, clone, everywhere, groups, make_params, needs_two, raised,
                          rank_grads, same_bits, set_grads, state_nbytes)
from mpi4py import MPI

import fastopt as fo
from fastopt import distributed as dist
from fastopt import lr_scheduler

CASES = {
    "Adam": (fo.Adam, dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-3)),
    "AdamW": (fo.AdamW, dict(lr=1e-2, weight_decay=0.05, amsgrad=True)),
    "SGD-momentum": (fo.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-3)),
}

# Every optimizer ZeRO accepts, with options that exercise its state (10 steps each, float64).
ALL = {
    "SGD": dict(lr=0.01, momentum=0.5, dampening=0.1), "Adam": dict(lr=0.01), "AdamW": dict(lr=0.01),
    "Adagrad": dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1), "Adadelta": dict(lr=0.5),
    "Adamax": dict(lr=0.01), "ASGD": dict(lr=0.01, t0=3), "NAdam": dict(lr=0.01, decoupled_weight_decay=True),
    "RAdam": dict(lr=0.01), "RMSprop": dict(lr=0.01, momentum=0.5, centered=True), "Rprop": dict(lr=0.01),
    "Lion": dict(lr=1e-3, weight_decay=0.1),
}


def mpi_average(params, step, world=WORLD):
    """The averaged gradient in MPI's order of operations (each rank's times 1/W, added in rank order): what a
    single process must step on to continue a run bit for bit. Exact for 1 and 2 ranks."""
    per_rank = [rank_grads(params, step, r) for r in range(world)]
    return [np.asarray(sum((g[i] * g[i].dtype.type(1.0 / world) for g in per_rank), np.zeros_like(params[i].data)),
                       dtype=params[i].data.dtype) for i in range(len(params))]


def run_dp(params, cls, kw, steps, start=0, hook=None):
    opt = cls(groups(params), **kw)
    for t in range(start, start + steps):
        opt.zero_grad()
        set_grads(params, rank_grads(params, t, RANK))
        dist.allreduce_grads(params, comm=COMM)
        opt.step()
    return opt


def run_zero(params, cls, kw, steps, start=0, zopt=None):
    zopt = zopt or dist.ZeroRedundancyOptimizer(groups(params), cls, comm=COMM, **kw)
    for t in range(start, start + steps):
        zopt.zero_grad()
        set_grads(params, rank_grads(params, t, RANK))
        zopt.step()
    return zopt


def run_single(params, cls, kw, steps):
    opt = cls(groups(params), **kw)
    for t in range(steps):
        opt.zero_grad()
        set_grads(params, averaged(params, t))
        opt.step()
    return opt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_zero_equals_data_parallel_bit_for_bit_after_50_steps(case, dtype):
    cls, kw = CASES[case]
    init = make_params(dtype)
    dp, zp = clone(init), clone(init)
    opt = run_dp(dp, cls, kw, 50)
    zopt = run_zero(zp, cls, kw, 50)
    everywhere(same_bits(dp, zp), f"{case} {dtype.__name__}: ZeRO and DP differ")
    everywhere(COMM.allgather([p.data.tobytes() for p in zp]) == [[p.data.tobytes() for p in zp]] * WORLD,
               "the ranks hold different parameters")
    # the state too, element for element
    zopt.consolidate_state_dict(to=0)
    if RANK == 0:
        full, plain = zopt.state_dict(), opt.state_dict()
        ok = sorted(full["state"]) == sorted(plain["state"]) and all(
            sorted(full["state"][k]) == sorted(plain["state"][k])
            and all(np.array_equal(full["state"][k][key], v) for key, v in plain["state"][k].items())
            for k in plain["state"])
        ok = ok and [{k: v for k, v in g.items()} for g in full["param_groups"]] == plain["param_groups"]
    else:
        ok = True
    everywhere(ok, "the consolidated state differs from data parallel's")


@pytest.mark.skipif(WORLD > 2, reason="the 1e-14 bound is for 2 ranks: with 3, the 1/3 scaling rounds and the "
                                      "sum's order differs (measured 3e-13 after 50 SGD-momentum steps)")
@pytest.mark.parametrize("case", sorted(CASES))
def test_both_equal_one_process_on_the_averaged_gradient(case):
    cls, kw = CASES[case]
    init = make_params(np.float64)
    dp, zp, sp = clone(init), clone(init), clone(init)
    run_dp(dp, cls, kw, 50)
    run_zero(zp, cls, kw, 50)
    run_single(sp, cls, kw, 50)
    worst = max(float(np.max(np.abs(a.data - b.data) / np.maximum(np.abs(b.data), 1e-300), initial=0.0))
                for a, b in zip(zp, sp))
    everywhere(worst <= 1e-14, f"{case}: ZeRO vs single process: max relative difference {worst:.3e}")
    everywhere(same_bits(dp, zp))


def big_model(dtype):
    rng = np.random.default_rng(3)
    shapes = [tuple(int(x) for x in rng.integers(1, 60, size=rng.integers(1, 3))) for _ in range(40)]
    return [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_bytes_per_rank_are_a_world_size_share(case):
    cls, kw = CASES[case]
    init = big_model(np.float32)
    sp, zp = clone(init), clone(init)
    single = cls(groups(sp), **kw)
    set_grads(sp, rank_grads(sp, 0, 0))
    single.step()
    zopt = dist.ZeroRedundancyOptimizer(groups(zp), cls, comm=COMM, **kw)
    set_grads(zp, rank_grads(zp, 0, RANK))
    zopt.step()
    total, mine = state_nbytes(single), state_nbytes(zopt.optim)
    share = COMM.allgather(mine)
    everywhere(total > 0 and mine <= (1 / WORLD + 0.02) * total,
               f"rank {RANK} holds {mine} of {total} state bytes ({mine / total:.4f}; bound {1 / WORLD + 0.02:.4f})")
    everywhere(sum(share) == total, f"the shards hold {sum(share)} bytes together, one process {total}")


@pytest.mark.skipif(WORLD > 2, reason="the bit-for-bit continuation assumes MPI adds in rank order (1 or 2 ranks)")
@pytest.mark.parametrize("case", sorted(CASES))
def test_consolidated_checkpoint_continues_bit_for_bit_in_a_plain_optimizer(case, tmp_path):
    cls, kw = CASES[case]
    zp = make_params(np.float64)
    zopt = run_zero(zp, cls, kw, 20)
    zopt.consolidate_state_dict(to=0)
    path = COMM.bcast(str(tmp_path / "ckpt.npz"), root=0)
    if RANK == 0:
        fo.save(zopt.state_dict(), path)
    not_root = raised(zopt.state_dict) if RANK != 0 else None
    COMM.Barrier()
    plain_params = clone(zp)
    plain = cls(groups(plain_params), **kw)
    plain.load_state_dict(fo.load(path))
    # a fresh ZeroRedundancyOptimizer loads the same file on every rank and keeps its own shard
    fresh_params = clone(zp)
    fresh = dist.ZeroRedundancyOptimizer(groups(fresh_params), cls, comm=COMM, **kw)
    fresh.load_state_dict(fo.load(path))
    run_zero(zp, cls, kw, 10, start=20, zopt=zopt)
    run_zero(fresh_params, cls, kw, 10, start=20, zopt=fresh)
    for t in range(20, 30):
        plain.zero_grad()
        set_grads(plain_params, mpi_average(plain_params, t))
        plain.step()
    everywhere(same_bits(plain_params, zp), "the plain optimizer did not continue bit for bit")
    everywhere(same_bits(fresh_params, zp), "the reloaded ZeRO optimizer did not continue bit for bit")
    everywhere(RANK == 0 or (not_root is not None and not_root[0] == "RuntimeError"))


@pytest.mark.skipif(WORLD > 2, reason="the bit-for-bit continuation assumes MPI adds in rank order (1 or 2 ranks)")
@pytest.mark.parametrize("case", ["AdamW", "SGD-momentum"])
def test_sharded_checkpoint_loads_on_one_rank_and_on_all(case, tmp_path):
    cls, kw = CASES[case]
    zp = make_params(np.float64)
    zopt = run_zero(zp, cls, kw, 20)
    directory = COMM.bcast(str(tmp_path / "sharded"), root=0)
    dist.save_sharded(zopt, directory)
    saved = clone(zp)
    run_zero(zp, cls, kw, 10, start=20, zopt=zopt)                          # the reference continuation
    # on all ranks
    again = clone(saved)
    z2 = dist.ZeroRedundancyOptimizer(groups(again), cls, comm=COMM, **kw)
    dist.load_sharded(z2, directory)
    run_zero(again, cls, kw, 10, start=20, zopt=z2)
    # on one rank (each rank alone, on MPI.COMM_SELF), stepping on the average of every rank's gradient
    alone = clone(saved)
    z1 = dist.ZeroRedundancyOptimizer(groups(alone), cls, comm=MPI.COMM_SELF, **kw)
    dist.load_sharded(z1, directory)
    for t in range(20, 30):
        z1.zero_grad()
        set_grads(alone, mpi_average(alone, t))
        z1.step()
    everywhere(same_bits(again, zp), f"loaded on {WORLD} ranks: not bit for bit")
    everywhere(same_bits(alone, zp), "loaded on 1 rank: not bit for bit")


@needs_two
def test_a_rank_raising_in_step_makes_every_rank_raise_and_nothing_changes():
    zp = make_params(np.float64)
    dp = clone(zp)
    zopt = run_zero(zp, fo.Adam, dict(lr=1e-2), 3)
    opt = run_dp(dp, fo.Adam, dict(lr=1e-2), 3)
    before = [p.data.copy() for p in zp]
    state_before = [{k: np.array(v, copy=True) for k, v in st.items()} for st in zopt.optim.state.values()]
    set_grads(zp, rank_grads(zp, 3, RANK))
    if RANK == 1:
        zp[4].grad = zp[4].grad.astype(np.float32)                          # a bad grad dtype on one rank
    bad_dtype = raised(zopt.step)
    # a step pre-hook that raises on rank 0 only
    handle = zopt.register_step_pre_hook(lambda o, a, k: (_ for _ in ()).throw(KeyError("no batch")) if RANK == 0
                                         else None)
    set_grads(zp, rank_grads(zp, 3, RANK))
    bad_hook = raised(zopt.step)
    handle.remove()
    # an option changed on one rank only (the local steps would disagree)
    zopt.param_groups[1]["lr"] = 0.5 if RANK == 1 else zopt.param_groups[1]["lr"]
    bad_option = raised(zopt.step)
    zopt.param_groups[1]["lr"] = opt.param_groups[1]["lr"]
    # a grad missing on one rank
    if RANK == 0:
        zp[0].grad = None
    missing = raised(zopt.step)
    unchanged = all(np.array_equal(p.data, b) for p, b in zip(zp, before)) and all(
        all(np.array_equal(st[k], v) for k, v in sb.items()) for st, sb in zip(zopt.optim.state.values(),
                                                                              state_before))
    # and the run goes on as if nothing had happened
    run_zero(zp, fo.Adam, dict(lr=1e-2), 5, start=3, zopt=zopt)
    run_dp(dp, fo.Adam, dict(lr=1e-2), 0)
    for t in range(3, 8):
        opt.zero_grad()
        set_grads(dp, rank_grads(dp, t, RANK))
        dist.allreduce_grads(dp, comm=COMM)
        opt.step()
    everywhere(bad_dtype == ("TypeError", "rank 1: param_groups[1]['params'][0]: grad is float32, param is float64; "
                                          "they must match"), f"bad dtype: {bad_dtype}")
    everywhere(bad_hook == ("KeyError", "'rank 0: no batch'"), f"raising hook: {bad_hook}")
    everywhere(bad_option == ("ValueError", "param_groups[1]['lr']: 0.003 on rank 0 but 0.5 on rank 1; parameter "
                                            "shapes, dtypes and options must be the same on every rank"),
               f"option: {bad_option}")
    everywhere(missing is not None and missing[0] == "ValueError" and "param_groups[0]['params'][0] has a gradient "
               f"on rank(s) {list(range(1, WORLD))} but not on rank(s) [0]" in missing[1], f"missing grad: {missing}")
    everywhere(len({repr(x) for x in COMM.allgather((bad_dtype, bad_hook, bad_option, missing))}) == 1,
               "the ranks raised different errors")
    everywhere(unchanged, "a rejected step changed parameters or state")
    everywhere(same_bits(dp, zp), "after the rejected steps ZeRO no longer matches data parallel")


@needs_two
def test_mismatches_across_ranks_are_the_same_value_error_at_construction():
    params = make_params(np.float64)
    other_lr = raised(lambda: dist.ZeroRedundancyOptimizer(
        [{"params": params[:4]}, {"params": params[4:], "lr": 0.1 * (1 + RANK)}], fo.Adam, comm=COMM))
    shapes = make_params(np.float64, shapes=[(3,), (4,) if RANK == 0 else (2, 2)])
    other_shape = raised(lambda: dist.ZeroRedundancyOptimizer(shapes, fo.SGD, comm=COMM, lr=0.1))
    count = raised(lambda: dist.ZeroRedundancyOptimizer(params[:5 + RANK], fo.SGD, comm=COMM, lr=0.1))
    bad_lr_one_rank = raised(lambda: dist.ZeroRedundancyOptimizer(params, fo.SGD, comm=COMM,
                                                                   lr=0.1 if RANK == 0 else -1.0))
    gathered = COMM.allgather((other_lr, other_shape, count, bad_lr_one_rank))
    everywhere(all(g == gathered[0] for g in gathered), f"different errors on different ranks: {gathered}")
    everywhere(other_lr == ("ValueError", "param_groups[1]['lr']: 0.1 on rank 0 but 0.2 on rank 1; the parameters "
                                          "and options must be the same on every rank"), f"{other_lr}")
    everywhere(other_shape == ("ValueError", "param_groups[0]['params'][1] (shape, dtype): ((4,), 'float64') on "
                                             "rank 0 but ((2, 2), 'float64') on rank 1; the parameters and options "
                                             "must be the same on every rank"), f"{other_shape}")
    everywhere(count is not None and count[0] == "ValueError" and "the number of params" in count[1], f"{count}")
    everywhere(bad_lr_one_rank == ("ValueError", "rank 1: Invalid learning rate: -1.0"), f"{bad_lr_one_rank}")


def test_optimizers_that_need_whole_tensors_are_refused():
    params = make_params(np.float64, shapes=[(4, 4)])
    got = raised(lambda: dist.ZeroRedundancyOptimizer(params, fo.Muon, comm=COMM, lr=0.1))
    everywhere(got is not None and got[0] == "TypeError" and "elementwise" in got[1], f"{got}")
    got = raised(lambda: dist.ZeroRedundancyOptimizer(params, fo.Adam, comm=COMM, average_grads=1))
    everywhere(got is not None and got[0] == "TypeError", f"{got}")


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_accepted_optimizer_matches_data_parallel_and_its_state(name, tmp_path):
    cls = getattr(fo, name)
    kw = ALL[name]
    init = make_params(np.float64)
    dp, zp = clone(init), clone(init)
    opt = run_dp(dp, cls, kw, 10)
    zopt = run_zero(zp, cls, kw, 10)
    zopt.consolidate_state_dict(to=0)
    if RANK == 0:
        full, plain = zopt.state_dict(), opt.state_dict()
        ok = sorted(full["state"]) == sorted(plain["state"]) and all(
            sorted(full["state"][k]) == sorted(plain["state"][k]) and all(
                np.array_equal(np.asarray(full["state"][k][key]), np.asarray(v))
                and np.asarray(full["state"][k][key]).dtype == np.asarray(v).dtype
                for key, v in plain["state"][k].items()) for k in plain["state"])
    else:
        ok = True
    everywhere(same_bits(dp, zp), f"{name}: ZeRO and DP differ")
    everywhere(ok, f"{name}: consolidated state differs")


def test_schedulers_hooks_zero_grad_and_add_param_group_work_as_on_the_wrapped_optimizer():
    init = make_params(np.float64)
    extra = make_params(np.float64, seed=5, shapes=[(9,), (2, 5)])
    dp, zp = clone(init), clone(init)
    dpx, zpx = clone(extra), clone(extra)
    opt = fo.AdamW(groups(dp), lr=1e-2)
    zopt = dist.ZeroRedundancyOptimizer(groups(zp), fo.AdamW, comm=COMM, lr=1e-2)
    s1 = lr_scheduler.CosineAnnealingLR(opt, T_max=12)
    s2 = lr_scheduler.CosineAnnealingLR(zopt, T_max=12)
    calls = []
    zopt.register_step_post_hook(lambda o, a, k: calls.append(o is zopt))
    for t in range(12):
        if t == 6:
            opt.add_param_group({"params": dpx, "lr": 5e-3, "weight_decay": 0.0})
            zopt.add_param_group({"params": zpx, "lr": 5e-3, "weight_decay": 0.0})
        pa, pb = (dp + dpx, zp + zpx) if t >= 6 else (dp, zp)
        opt.zero_grad()
        zopt.zero_grad()
        set_grads(pa, rank_grads(pa, t, RANK))
        set_grads(pb, rank_grads(pb, t, RANK))
        dist.allreduce_grads(pa, comm=COMM)
        opt.step()
        zopt.step()
        s1.step()
        s2.step()
    zopt.zero_grad()
    everywhere(same_bits(dp + dpx, zp + zpx), "ZeRO with a scheduler and an added group differs from DP")
    everywhere(calls == [True] * 12, f"post hook calls: {calls}")
    everywhere(all(p.grad is None for p in zp + zpx) and all(q.grad is None for q in zopt.shard_parameters()))
    everywhere([g["lr"] for g in zopt.param_groups] == [g["lr"] for g in opt.param_groups])


def test_average_grads_false_takes_reduced_gradients_as_they_are():
    init = make_params(np.float32)
    dp, zp = clone(init), clone(init)
    opt = fo.Adam(groups(dp), lr=1e-2)
    zopt = dist.ZeroRedundancyOptimizer(groups(zp), fo.Adam, comm=COMM, average_grads=False, lr=1e-2)
    for t in range(10):
        for ps, o in ((dp, opt), (zp, zopt)):
            o.zero_grad()
            set_grads(ps, rank_grads(ps, t, RANK))
            dist.allreduce_grads(ps, comm=COMM)
            o.step()
    everywhere(same_bits(dp, zp))


def test_clip_grad_norm_on_zero_sees_the_global_norm():
    init = make_params(np.float64)
    dp, zp = clone(init), clone(init)
    opt = fo.Adam(groups(dp), lr=1e-2)
    zopt = dist.ZeroRedundancyOptimizer(groups(zp), fo.Adam, comm=COMM, lr=1e-2)
    norms = []
    for t in range(10):
        opt.zero_grad()
        set_grads(dp, rank_grads(dp, t, RANK))
        dist.allreduce_grads(dp, comm=COMM)
        n_dp = fo.clip_grad_norm_(dp, 1.0)
        opt.step()
        zopt.zero_grad()
        set_grads(zp, rank_grads(zp, t, RANK))
        n_z = dist.clip_grad_norm_(zopt, 1.0)
        zopt.step()
        norms.append((float(n_dp), float(n_z)))
    everywhere(all(abs(a - b) <= 1e-13 * a for a, b in norms), f"norms {norms}")
    everywhere(all(np.allclose(a.data, b.data, rtol=1e-12, atol=1e-15) for a, b in zip(dp, zp)))


def test_strided_parameters_and_replaced_arrays_are_followed():
    def strided(params):
        out = clone(params)
        for i in (0, 4):                                    # two parameters become non-contiguous views
            view = np.zeros(out[i].data.shape + (2,), out[i].data.dtype)[..., 1]
            view[...] = out[i].data
            out[i].data = view
        return out

    init = make_params(np.float64)
    dp, zp = strided(init), strided(init)
    opt = fo.Adam(groups(dp), lr=1e-2)
    zopt = dist.ZeroRedundancyOptimizer(groups(zp), fo.Adam, comm=COMM, lr=1e-2)
    views = [p.data for p in zp]
    for t in range(8):
        if t == 4:                                          # the user hands in new arrays with the same values
            for ps in (dp, zp):
                ps[1].data = ps[1].data.copy()
                ps[5].data = np.asfortranarray(ps[5].data)
        for ps, o in ((dp, opt), (zp, zopt)):
            o.zero_grad()
            set_grads(ps, rank_grads(ps, t, RANK))
            if o is opt:
                dist.allreduce_grads(ps, comm=COMM)
            o.step()
    everywhere(same_bits(dp, zp), "ZeRO with strided / replaced parameters differs from DP")
    everywhere(zp[0].data is views[0] and not zp[0].data.flags.c_contiguous, "the strided array was replaced")


@needs_two
def test_a_load_rejected_on_one_rank_is_rolled_back_on_every_rank(tmp_path):
    zp = make_params(np.float64)
    dp = clone(zp)
    zopt = run_zero(zp, fo.Adam, dict(lr=1e-2), 4)
    opt = run_dp(dp, fo.Adam, dict(lr=1e-2), 4)
    zopt.consolidate_state_dict(to=0)
    sd = COMM.bcast(zopt.state_dict() if RANK == 0 else None, root=0)
    older = run_zero(clone(make_params(np.float64)), fo.Adam, dict(lr=1e-2), 2)  # another run's state...
    older.consolidate_state_dict(to=0)
    bad = COMM.bcast(older.state_dict() if RANK == 0 else None, root=0)
    if RANK == 1:                                       # ...corrupted on one rank only, in a tensor rank 1 owns
        bad["state"][7]["exp_avg_sq"] = bad["state"][7]["exp_avg_sq"][:-1]
    got = raised(lambda: zopt.load_state_dict(bad))
    missing = raised(lambda: dist.load_sharded(zopt, COMM.bcast(str(tmp_path / "nothing"), root=0)))
    for t in range(4, 8):                               # the failed loads changed nothing: the run goes on
        opt.zero_grad()
        set_grads(dp, rank_grads(dp, t, RANK))
        dist.allreduce_grads(dp, comm=COMM)
        opt.step()
    run_zero(zp, fo.Adam, dict(lr=1e-2), 4, start=4, zopt=zopt)
    everywhere(got is not None and got[0] == "ValueError" and got[1].startswith("rank 1: param_groups[1]['params'][3]")
               and "exp_avg_sq" in got[1], f"{got}")
    everywhere(missing is not None and missing[0] == "FileNotFoundError", f"{missing}")
    everywhere(same_bits(dp, zp), "a rejected load changed the optimizer")
    everywhere(sd["state"][0]["step"] == 4)


def test_mixed_dtypes_in_one_group_and_frozen_parameters():
    init = make_params(np.float32)[:4] + make_params(np.float64)[4:]
    dp, zp = clone(init), clone(init)
    opt = fo.AdamW([{"params": dp}], lr=1e-2)
    zopt = dist.ZeroRedundancyOptimizer([{"params": zp}], fo.AdamW, comm=COMM, lr=1e-2)
    for t in range(6):
        for ps, o in ((dp, opt), (zp, zopt)):
            o.zero_grad()
            set_grads(ps, rank_grads(ps, t, RANK))
            ps[5].grad = None                               # frozen on every rank: skipped, never given state
            if o is opt:
                dist.allreduce_grads(ps, comm=COMM)
            o.step()
    zopt.consolidate_state_dict(to=0)
    no_state = RANK != 0 or 5 not in zopt.state_dict()["state"]
    everywhere(same_bits(dp, zp) and no_state)


@needs_two
def test_add_param_group_that_differs_across_ranks_is_refused_everywhere():
    zp = make_params(np.float64)
    zopt = dist.ZeroRedundancyOptimizer(zp[:4], fo.SGD, comm=COMM, lr=0.1)
    got = raised(lambda: zopt.add_param_group({"params": zp[4:], "lr": 0.1 if RANK == 0 else 0.2}))
    kept = len(zopt.param_groups) == 1 and len(zopt.optim.param_groups) == 1
    zopt.add_param_group({"params": zp[4:], "lr": 0.3})
    everywhere(got is not None and got[0] == "ValueError" and got[1].startswith("param_groups[1]['lr']: 0.1 on rank 0"),
               f"{got}")
    everywhere(kept and len(zopt.param_groups) == 2 and zopt.param_groups[1]["lr"] == 0.3)
