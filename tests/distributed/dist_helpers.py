"""What the distributed tests share: the communicator, a small model whose tensors split across ranks, the
gradients each rank computes, and assertions that every rank evaluates together (so that a failure on one rank
fails the test on every rank instead of leaving the others waiting in the next collective)."""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

import fastopt as fo

COMM = MPI.COMM_WORLD
RANK = COMM.rank
WORLD = COMM.size

# Odd sizes so that tensors are split between ranks at unaligned places; a 0-d and an empty tensor too.
SHAPES = [(3, 5), (7,), (), (0, 3), (11, 4), (2, 2, 3), (1,), (33,)]

needs_two = pytest.mark.skipif(WORLD < 2, reason="needs at least 2 ranks: run under mpiexec -n 2")


def make_params(dtype, seed: int = 0, shapes=SHAPES) -> list[fo.Parameter]:
    rng = np.random.default_rng(seed)
    return [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


def clone(params: list[fo.Parameter]) -> list[fo.Parameter]:
    return [fo.Parameter(p.data.copy()) for p in params]


def rank_grads(params: list[fo.Parameter], step: int, rank: int) -> list[np.ndarray]:
    """Rank ``rank``'s gradient at ``step``: a rank-dependent quadratic pull plus noise, depending on the
    current parameters (so that any difference in the parameters would show in later steps)."""
    rng = np.random.default_rng([step, rank, 7])
    out = []
    for p in params:
        target = rng.standard_normal(p.data.shape)
        noise = rng.standard_normal(p.data.shape)
        out.append(np.asarray((1.0 + rank) * (p.data - target) + 0.1 * noise, dtype=p.data.dtype))
    return out


def set_grads(params: list[fo.Parameter], grads: list[np.ndarray]) -> None:
    for p, g in zip(params, grads):
        p.grad = g.copy()


def averaged(params: list[fo.Parameter], step: int, world: int = WORLD) -> list[np.ndarray]:
    """The gradient a single process steps on: the mean over the ranks' gradients."""
    per_rank = [rank_grads(params, step, r) for r in range(world)]
    return [np.asarray(np.mean(np.stack([g[i] for g in per_rank]), axis=0), dtype=params[i].data.dtype)
            for i in range(len(params))]


def groups(params: list[fo.Parameter]) -> list[dict]:
    """Two groups with different learning rates."""
    return [{"params": params[:4]}, {"params": params[4:], "lr": 3e-3}]


def state_nbytes(opt: fo.Optimizer) -> int:
    """Bytes of the arrays an optimizer holds in its state."""
    return sum(v.nbytes for st in opt.state.values() for v in st.values() if isinstance(v, np.ndarray))


def same_bits(a: list[fo.Parameter], b: list[fo.Parameter]) -> bool:
    return all(x.data.dtype == y.data.dtype and x.data.tobytes() == y.data.tobytes() for x, y in zip(a, b))


def everywhere(ok: bool, what: str = "", comm=COMM) -> None:
    """Assert ``ok`` on every rank at once: each rank learns which ranks failed."""
    oks = comm.allgather(bool(ok))
    bad = [r for r, v in enumerate(oks) if not v]
    assert not bad, f"failed on rank(s) {bad}: {what}"


def raised(fn) -> tuple[str, str] | None:
    """Run ``fn`` and return (exception type name, message), or None if it did not raise."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return type(e).__name__, str(e)
    return None
