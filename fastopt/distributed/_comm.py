"""What every collective in fastopt.distributed shares: the communicator, the agreement step that turns one
rank's exception (or a mismatch between ranks) into the same exception on every rank, parameter listing with
names for messages, and streaming arrays through a reusable staging buffer one bucket at a time.

The agreement step is the reason no user error can deadlock a job: every public collective first does its local
checks inside ``try``, then calls :func:`agree`, which is itself a collective (one ``Allgather`` of 17 bytes per
rank when all is well). Only when all ranks report success and the same signature does any data move.
"""
from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from mpi4py import MPI

from ..io import CheckpointError
from ..parameter import Parameter

__all__ = ["DEFAULT_BUCKET_BYTES", "agree", "dtype_name", "first_difference", "get_comm", "labelled_params", "staging",
           "stream"]

# torch DDP's bucket_cap_mb=25: large enough that per-call latency is negligible, small enough to keep the
# staging buffer off the memory budget.
DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024

# Exception types re-raised as themselves on every rank; anything else becomes a RuntimeError naming its type.
_PORTABLE = {name: getattr(builtins, name) for name in (
    "ValueError", "TypeError", "RuntimeError", "KeyError", "IndexError", "FileNotFoundError", "FileExistsError",
    "PermissionError", "OSError", "NotImplementedError", "ZeroDivisionError", "OverflowError",
    "FloatingPointError", "MemoryError", "AttributeError", "AssertionError", "ArithmeticError", "LookupError")}
_PORTABLE["CheckpointError"] = CheckpointError


_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def dtype_name(dtype: np.dtype) -> str:
    """``str(dtype)`` without its cost (a few microseconds, times every parameter, every step)."""
    name = _NAMES.get(dtype)
    return name if name is not None else str(dtype)


def get_comm(comm: Any) -> MPI.Comm:
    """``comm`` checked to be an mpi4py intracommunicator; ``MPI.COMM_WORLD`` when None."""
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"comm must be an mpi4py intracommunicator (e.g. MPI.COMM_WORLD), got {type(comm).__name__}")
    return comm


def _describe(err: BaseException | None) -> tuple[str, str] | None:
    if err is None:
        return None
    name = type(err).__name__
    msg = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return name, msg


def _rebuild(rank: int, name: str, msg: str) -> Exception:
    cls = _PORTABLE.get(name)
    if cls is None:
        return RuntimeError(f"rank {rank}: {name}: {msg}")
    return cls(f"rank {rank}: {msg}")


def agree(comm: MPI.Comm, error: BaseException | None, signature: Sequence[Any] = (),
          labels: Sequence[str] = (), what: str = "the arguments",
          mismatch: Callable[[list[list[Any]], list[str]], str] | None = None) -> None:
    """Collective check that every rank succeeded and sees the same ``signature``; else raise on every rank.

    Each rank passes the exception its local work raised (or None) and a signature: a list of values with a
    deterministic ``repr`` (counts first, then shapes, dtypes, options), with a label for each. If some rank
    failed, every rank raises the same exception type with the same message, ``rank R: <message>``, for the
    lowest failing rank R (on R itself chained to the original). Otherwise, if the signatures differ, every rank
    raises the same ValueError naming the first entry that differs from rank 0's (rank 0's labels), or
    ``mismatch(signatures, labels)`` when given. Costs one 17-byte ``Allgather`` when all agree.
    """
    blob = repr(list(signature)).encode()
    mine = np.frombuffer(bytes([error is not None]) + hashlib.blake2b(blob, digest_size=16).digest(), np.uint8)
    if comm.size == 1:
        every = mine[None, :]
    else:
        every = np.empty((comm.size, mine.size), np.uint8)
        comm.Allgather(mine, every)
    if not every[:, 0].any() and (every[1:, 1:] == every[0, 1:]).all():
        return
    # Slow path, only on failure: exchange the messages and signatures themselves.
    mine_info = (_describe(error), list(signature), list(labels) if comm.rank == 0 else None)
    infos = comm.allgather(mine_info) if comm.size > 1 else [mine_info]
    for rank, (info, _, _) in enumerate(infos):
        if info is not None:
            exc = _rebuild(rank, *info)
            if rank == comm.rank and error is not None:
                raise exc from error
            raise exc
    sigs: list[list[Any]] = [sig for _, sig, _ in infos]
    labels0 = infos[0][2]
    assert labels0 is not None      # rank 0 always sends its labels (the other ranks send None)
    raise ValueError(mismatch(sigs, labels0) if mismatch is not None else first_difference(sigs, labels0, what))


def first_difference(sigs: Sequence[Sequence[Any]], labels: Sequence[str], what: str) -> str:
    """A message naming the first entry where a rank's signature differs from rank 0's (every rank computes it
    from the same gathered lists, so it is the same everywhere)."""
    ref = sigs[0]
    for rank, sig in enumerate(sigs[1:], 1):
        for k, (a, b) in enumerate(zip(ref, sig)):
            if a != b:
                label = labels[k] if k < len(labels) else f"entry {k}"
                return f"{label}: {a} on rank 0 but {b} on rank {rank}; {what} must be the same on every rank"
        if len(sig) != len(ref):
            return f"{what}: rank 0 has {len(ref)} entries, rank {rank} has {len(sig)}; they must be the same"
    return f"{what}: the ranks disagree"


def labelled_params(params: Any, fname: str) -> tuple[list[Parameter], list[str]]:
    """The Parameters in ``params`` (a Parameter; an iterable of Parameters, ``(name, Parameter)`` pairs or
    param-group dicts; or an optimizer) with a label for each, as used in error messages."""
    if hasattr(params, "param_groups") and not isinstance(params, dict):
        params = params.param_groups
    if isinstance(params, Parameter):
        return [params], ["params[0]"]
    if isinstance(params, np.ndarray) or isinstance(params, (str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(f"{fname} takes Parameters (an iterable of Parameters, (name, Parameter) pairs or param "
                        f"groups), got {type(params).__name__}")
    if isinstance(params, dict):
        params = [params]
    items = list(params)
    out: list[Parameter] = []
    labels: list[str] = []
    grouped = bool(items) and all(isinstance(x, dict) for x in items)
    groups = items if grouped else [{"params": items}]
    for gi, group in enumerate(groups):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{fname}: params mixes param groups (dicts) and Parameters")
        plist = group["params"]
        plist = [plist] if isinstance(plist, Parameter) else list(plist)
        for j, item in enumerate(plist):
            name = None
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                name, item = item
            label = f"param_groups[{gi}]['params'][{j}]" if grouped else f"params[{j}]"
            if name is None and "param_names" in group:
                name = group["param_names"][j]
            if name is not None:
                label += f" ({name!r})"
            if not isinstance(item, Parameter):
                raise TypeError(f"{label} must be a fastopt.Parameter, got {type(item).__name__}")
            out.append(item)
            labels.append(label)
    return out, labels


_BUFFERS: dict[tuple[str, int], np.ndarray] = {}


def staging(dtype: np.dtype, n: int, slot: int = 0) -> np.ndarray:
    """A reusable 1-D staging buffer of at least ``n`` elements of ``dtype`` (the first ``n`` are returned), kept
    between calls so that a training loop does not page in a fresh buffer every step."""
    key = (np.dtype(dtype).str, slot)
    buf = _BUFFERS.get(key)
    if buf is None or buf.size < n:
        buf = np.empty(max(n, 1), dtype)
        _BUFFERS[key] = buf
    return buf[:n]


def stream(arrays: Sequence[np.ndarray], bucket_bytes: int, collective: Callable[[np.ndarray], None], *,
           scale: float | None = None, read: bool = True, write: bool = True) -> None:
    """Run ``collective(buf)`` in place over the concatenation of ``arrays`` (one dtype), in buckets of at most
    ``bucket_bytes``: each bucket is packed (times ``scale`` if given, when ``read``), reduced or broadcast by
    ``collective``, and copied back (when ``write``). Arrays may span buckets and may have any strides."""
    if not arrays:
        return
    dtype = arrays[0].dtype
    total = sum(a.size for a in arrays)
    if total == 0:
        return
    cap = max(1, min(total, int(bucket_bytes) // dtype.itemsize))
    buf = staging(dtype, cap)
    flats = []
    back = []
    for a in arrays:
        if a.flags.c_contiguous:
            flats.append(a.reshape(-1))
        else:
            tmp = np.ascontiguousarray(a) if read else np.empty(a.shape, dtype)
            if tmp is a or np.shares_memory(tmp, a):
                tmp = a.copy(order="C")
            flats.append(tmp.reshape(-1))
            back.append((a, tmp))
    segments: list[tuple[np.ndarray, int, int, int]] = []  # (flat array, start in it, length, start in buf)
    fill = 0

    def flush() -> None:
        view = buf[:fill]
        if read:
            for f, t0, n, b0 in segments:
                if scale is None:
                    np.copyto(view[b0:b0 + n], f[t0:t0 + n])
                else:
                    np.multiply(f[t0:t0 + n], scale, out=view[b0:b0 + n])
        collective(view)
        if write:
            for f, t0, n, b0 in segments:
                np.copyto(f[t0:t0 + n], view[b0:b0 + n])

    for f in flats:
        t0 = 0
        while t0 < f.size:
            n = min(f.size - t0, cap - fill)
            segments.append((f, t0, n, fill))
            fill += n
            t0 += n
            if fill == cap:
                flush()
                segments.clear()
                fill = 0
    if fill:
        flush()
    if write:
        for a, tmp in back:
            np.copyto(a, tmp)
