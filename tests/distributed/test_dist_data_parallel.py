"""broadcast_parameters, allreduce_grads and the cross-rank clip_grad_norm_ (run under mpiexec -n 2; the tests
that need two ranks skip at world size 1)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpi4py")  # skips the module without mpi4py; under mpiexec every rank runs it

from dist_helpers import (COMM, RANK, SHAPES, WORLD, clone, everywhere, make_params, needs_two, raised, rank_grads,
                          set_grads)

import fastopt as fo
from fastopt import distributed as dist


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_broadcast_parameters_gives_every_rank_the_roots_values(dtype):
    root_values = make_params(dtype, seed=0)
    params = make_params(dtype, seed=10 + RANK)
    params[1].data = np.zeros(14, dtype)[::2]          # a strided parameter is written in place too
    view = params[1].data
    if RANK == 0:
        view[...] = root_values[1].data
        params = [params[0], params[1]] + clone(root_values[2:])
        params[0].data[...] = root_values[0].data
    dist.broadcast_parameters(params, comm=COMM, root=0, bucket_size=24)  # tiny buckets: tensors span them
    everywhere(all(np.array_equal(p.data, q.data) for p, q in zip(params, root_values)), "values differ from root")
    everywhere(params[1].data is view, "the strided parameter was replaced instead of written")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bucket", [8, 100, dist.DEFAULT_BUCKET_BYTES])
def test_allreduce_grads_averages_in_place(dtype, bucket):
    params = make_params(dtype)
    set_grads(params, rank_grads(params, 0, RANK))
    held = [p.grad for p in params]
    dist.allreduce_grads(params, comm=COMM, bucket_size=bucket)
    per_rank = [rank_grads(params, 0, r) for r in range(WORLD)]
    # every rank's gradient times 1/W, added: the reference in the same order of operations as MPI's sum of two
    want = [sum((per_rank[r][i] * dtype(1.0 / WORLD) for r in range(WORLD)), np.zeros_like(params[i].data))
            for i in range(len(params))]
    everywhere(all(np.array_equal(p.grad, w) for p, w in zip(params, want)), "not the average")
    everywhere(all(p.grad is h for p, h in zip(params, held)), "gradients were replaced, not written in place")


def test_allreduce_grads_sum_mixed_dtypes_and_strided_grads():
    params = make_params(np.float32)[:3] + make_params(np.float64)[3:]
    grads = rank_grads(params, 1, RANK)
    set_grads(params, grads)
    params[0].grad = np.asfortranarray(grads[0])                  # not C-contiguous: replaced by a new array
    params[1].grad = np.repeat(grads[1], 2)[::2]
    dist.allreduce_grads(params, comm=COMM, average=False)
    per_rank = [rank_grads(params, 1, r) for r in range(WORLD)]
    want = [sum(per_rank[r][i] for r in range(WORLD)) for i in range(len(params))]
    everywhere(all(np.array_equal(p.grad, w) and p.grad.dtype == p.data.dtype for p, w in zip(params, want)))


def test_allreduce_grads_skips_grads_that_are_none_everywhere():
    params = make_params(np.float64)
    set_grads(params, rank_grads(params, 0, RANK))
    params[2].grad = None
    dist.allreduce_grads(params, comm=COMM)
    everywhere(params[2].grad is None)


@needs_two
def test_a_grad_missing_on_one_rank_is_the_same_error_on_every_rank():
    params = make_params(np.float64)
    set_grads(params, rank_grads(params, 0, RANK))
    before = [p.grad.copy() for p in params]
    if RANK == 1:
        params[4].grad = None
    got = raised(lambda: dist.allreduce_grads([("w", params[0])] + [(f"p{i}", p) for i, p in enumerate(params[1:], 1)],
                                              comm=COMM))
    msgs = COMM.allgather(got)
    everywhere(got is not None and got[0] == "ValueError" and "params[4] ('p4')" in got[1]
               and f"rank(s) {[r for r in range(WORLD) if r != 1]}" in got[1] and "not on rank(s) [1]" in got[1],
               f"got {got}")
    everywhere(all(m == msgs[0] for m in msgs), f"messages differ: {msgs}")
    everywhere(all(p.grad is None or np.array_equal(p.grad, b) for p, b in zip(params, before)), "grads changed")


@needs_two
def test_a_bad_grad_dtype_on_one_rank_raises_everywhere_and_the_next_call_works():
    params = make_params(np.float64)
    set_grads(params, rank_grads(params, 0, RANK))
    if RANK == 1:
        params[0].grad = params[0].grad.astype(np.float32)
    got = raised(lambda: dist.allreduce_grads(params, comm=COMM))
    everywhere(got == ("TypeError", "rank 1: params[0]: grad is float32, param is float64; they must match"),
               f"got {got}")
    set_grads(params, rank_grads(params, 0, RANK))
    dist.allreduce_grads(params, comm=COMM)                       # no rank is left waiting in a collective
    everywhere(True)


@needs_two
def test_different_parameter_lists_are_the_same_error_on_every_rank():
    params = make_params(np.float64)
    mine = params if RANK == 0 else params[:-1]
    got = raised(lambda: dist.broadcast_parameters(mine, comm=COMM))
    everywhere(got is not None and got[0] == "ValueError" and "the number of parameters" in got[1], f"got {got}")
    other = make_params(np.float64, shapes=[(3, 5), (7,) if RANK == 0 else (8,)])
    got = raised(lambda: dist.broadcast_parameters(other, comm=COMM))
    everywhere(got == ("ValueError", "params[1]: ((7,), 'float64') on rank 0 but ((8,), 'float64') on rank 1; "
                                     "parameter shapes and dtypes must be the same on every rank"), f"got {got}")


def test_bad_arguments_raise_before_communicating():
    params = make_params(np.float64)
    everywhere(raised(lambda: dist.allreduce_grads(params, comm=COMM, bucket_size=0))[0] == "ValueError")
    everywhere(raised(lambda: dist.allreduce_grads(np.zeros(3), comm=COMM))[0] == "TypeError")
    everywhere(raised(lambda: dist.allreduce_grads(params, comm="world"))[0] == "TypeError")
    everywhere(raised(lambda: dist.broadcast_parameters(params, comm=COMM, root=WORLD))[0] == "ValueError")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_over_parts_uses_the_global_norm(norm_type):
    # Each rank holds a different part (its own tensors) of one gradient (no empty tensor: no inf-norm of one).
    shapes = [s for s in SHAPES if np.prod(s) > 0]
    params = make_params(np.float64, seed=RANK, shapes=shapes)
    set_grads(params, rank_grads(params, 0, RANK))
    all_grads = [g for r in range(WORLD) for g in rank_grads(make_params(np.float64, seed=r, shapes=shapes), 0, r)]
    want_norm = float(fo.get_total_norm(all_grads, norm_type))
    before = [p.grad.copy() for p in params]
    total = dist.clip_grad_norm_(params, 1.0, norm_type, comm=COMM)
    coef = min(1.0 / (want_norm + 1e-6), 1.0)
    everywhere(abs(float(total) - want_norm) <= 1e-12 * want_norm, f"{total} != {want_norm}")
    everywhere(all(np.allclose(p.grad, b * coef, rtol=1e-13, atol=0) for p, b in zip(params, before)))
    everywhere(len(set(COMM.allgather(float(total)))) == 1, "ranks disagree on the norm")
