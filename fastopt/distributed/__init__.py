r"""Data-parallel training and ZeRO-1 sharded optimizer state over MPI (mpi4py), for fastopt optimizers.

Needs mpi4py and an MPI library: ``pip install "fastopt[mpi]"`` (mpi4py and the MPICH wheel, which puts
``mpiexec`` into the environment's ``bin``). ``import fastopt`` never imports mpi4py; this module does.

Plain data parallelism::

    from mpi4py import MPI
    import fastopt as fo
    from fastopt import distributed as dist

    comm = MPI.COMM_WORLD
    dist.broadcast_parameters(params, comm=comm)       # every rank starts from rank 0's values
    opt = fo.AdamW(params, lr=1e-3)
    for x, y in my_shard_of_the_data:
        opt.zero_grad(); set_grads(params, x, y)
        dist.allreduce_grads(params, comm=comm)        # averaged over the ranks, in place
        opt.step()

ZeRO-1 (each rank keeps about 1/W of the optimizer state)::

    zopt = dist.ZeroRedundancyOptimizer(params, optimizer_class=fo.AdamW, comm=comm, lr=1e-3)
    zopt.zero_grad(); set_grads(params, x, y); zopt.step()

Launch with ``mpiexec -n 2 python -m mpi4py train.py`` (``-m mpi4py`` turns an uncaught exception on one rank
into an abort of the job instead of a hang).

Every function and method here that communicates is collective (call it on every rank, in the same order), and
checks its inputs on every rank before any data moves: an error on one rank (a bad gradient, a mismatch between
ranks) is raised on every rank, as the same exception with the same message, instead of leaving the others
waiting.
"""
try:
    from mpi4py import MPI  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised by a subprocess test that hides mpi4py
    raise ImportError('fastopt.distributed needs mpi4py and an MPI library: pip install "fastopt[mpi]" '
                      f"(or pip install mpi4py mpich); importing mpi4py failed: {e}") from e

from ._comm import DEFAULT_BUCKET_BYTES
from ._data_parallel import allreduce_grads, broadcast_parameters, clip_grad_norm_
from .checkpoint import load_sharded, save_sharded
from .zero import ELEMENTWISE_OPTIMIZERS, ZeroRedundancyOptimizer

__all__ = ["DEFAULT_BUCKET_BYTES", "ELEMENTWISE_OPTIMIZERS", "ZeroRedundancyOptimizer", "allreduce_grads",
           "broadcast_parameters", "clip_grad_norm_", "load_sharded", "save_sharded"]
