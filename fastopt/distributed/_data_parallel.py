"""Plain data parallelism: ``broadcast_parameters``, ``allreduce_grads`` and the cross-rank ``clip_grad_norm_``."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from mpi4py import MPI

from .. import _validate as V
from ..clip import clip_grads_with_norm_, get_total_norm
from ..parameter import Parameter
from ._comm import DEFAULT_BUCKET_BYTES, agree, dtype_name, first_difference, get_comm, labelled_params, stream

__all__ = ["allreduce_grads", "broadcast_parameters", "clip_grad_norm_"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _bucket_bytes(bucket_size: Any) -> int:
    if isinstance(bucket_size, bool) or not isinstance(bucket_size, (int, np.integer)) or bucket_size < 1:
        raise ValueError(f"bucket_size must be a positive number of bytes, got {bucket_size!r}")
    return int(bucket_size)


def _by_dtype(arrays: list[np.ndarray]) -> dict[np.dtype, list[np.ndarray]]:
    out: dict[np.dtype, list[np.ndarray]] = {}
    for a in arrays:
        out.setdefault(a.dtype, []).append(a)
    return out


def _checked_locally(params: Any, fname: str, check: Callable[[list[Parameter], list[str]], int]
                     ) -> tuple[list[Parameter], list[str], int, Exception | None]:
    """This rank's checks of a collective call: the labelled parameter list, ``check(plist, labels)``'s value (the
    bucket size) and the error either raised (None if none), which the caller hands to ``agree`` so that every
    rank raises it (the list is empty if it could not be read)."""
    plist: list[Parameter] = []
    labels: list[str] = []
    try:
        plist, labels = labelled_params(params, fname)
        return plist, labels, check(plist, labels), None
    except Exception as e:  # noqa: BLE001 - every local error is turned into the same error on every rank
        return plist, labels, 0, e


def broadcast_parameters(params: Any, comm: MPI.Comm | None = None, root: int = 0, *,
                         bucket_size: int = DEFAULT_BUCKET_BYTES) -> None:
    r"""Copy the root rank's parameter values into every rank's parameters, in place (collective).

    Call it once after building the model, so that every rank starts from the same point:
    :math:`\theta^{(r)} \leftarrow \theta^{(\text{root})}` for every rank :math:`r`.
    The parameters of each dtype travel in one ``Bcast`` per bucket of ``bucket_size`` bytes.

    Args:
        params: a Parameter, an iterable of Parameters, ``(name, Parameter)`` pairs or param-group dicts, or an
            optimizer (its ``param_groups``). Every rank passes the same list (same count, shapes and dtypes).
        comm (mpi4py.MPI.Intracomm, optional): the communicator (default: None, ``MPI.COMM_WORLD``).
        root (int, optional): the rank whose values are sent (default: 0).
        bucket_size (int, optional): bytes per ``Bcast`` (default: 25 MiB, torch DDP's bucket).

    Raises:
        ValueError: the ranks pass different parameter counts, shapes or dtypes, or a read-only parameter; the
            same error on every rank, and nothing is written.

    Example:
        >>> params = [fastopt.Parameter(np.random.default_rng(comm.rank).standard_normal(3))]
        >>> dist.broadcast_parameters(params, comm=comm)     # now rank 0's values on every rank
    """
    comm = get_comm(comm)

    def check(plist: list[Parameter], labels: list[str]) -> int:
        if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < comm.size:
            raise ValueError(f"root must be a rank in [0, {comm.size}), got {root!r}")
        bucket = _bucket_bytes(bucket_size)
        for p, label in zip(plist, labels):
            if not isinstance(p.data, np.ndarray) or p.data.dtype not in _FLOATS:
                raise TypeError(f"{label}: data must be a float32 or float64 ndarray")
            if comm.rank != root and not p.data.flags.writeable:
                raise ValueError(f"{label}: data is read-only; broadcast_parameters writes it in place")
        return bucket

    plist, labels, bucket, err = _checked_locally(params, "broadcast_parameters", check)
    sig = [(tuple(p.data.shape), dtype_name(p.data.dtype)) if isinstance(p.data, np.ndarray) else None for p in plist]
    agree(comm, err, [len(sig)] + sig, ["the number of parameters"] + labels, "parameter shapes and dtypes")
    if comm.size == 1:
        return
    is_root = comm.rank == root
    for arrays in _by_dtype([p.data for p in plist]).values():
        stream(arrays, bucket, lambda buf: comm.Bcast(buf, root=root), read=is_root, write=not is_root)


def _check_grads(plist: list[Parameter], labels: list[str]) -> None:
    for p, label in zip(plist, labels):
        g = p.grad
        if g is not None:
            V.grad_like(g, label, p.data)


def grad_presence_mismatch(sigs: list[list[Any]], labels: list[str]) -> str:
    """The message for ranks that disagree on the parameter list or on which parameters have a gradient. Each
    signature is ``[count, (shape, dtype, has_grad), ...]``, possibly followed by other entries (options)."""
    def _layout(e: Any) -> Any:
        return e[:2] if isinstance(e, tuple) and len(e) == 3 else e

    layouts = [[e if k == 0 else _layout(e) for k, e in enumerate(s)] for s in sigs]
    if any(lay != layouts[0] for lay in layouts):
        return first_difference(layouts, labels, "parameter shapes, dtypes and options")
    for k in range(1, len(sigs[0])):
        if not (isinstance(sigs[0][k], tuple) and len(sigs[0][k]) == 3):
            continue
        have = [r for r, s in enumerate(sigs) if s[k][2]]
        if have and len(have) != len(sigs):
            lack = [r for r, s in enumerate(sigs) if not s[k][2]]
            return (f"{labels[k]} has a gradient on rank(s) {have} but not on rank(s) {lack}; every rank must give "
                    "the same parameters a gradient (use zeros for a parameter a rank's batch did not reach)")
    return "the ranks disagree on the gradients"


def allreduce_grads(params: Any, comm: MPI.Comm | None = None, *, bucket_size: int = DEFAULT_BUCKET_BYTES,
                    average: bool = True) -> None:
    r"""Average (or sum) every parameter's gradient over the ranks, in place (collective).

    .. math::
        g \leftarrow \sum_{r=0}^{W-1} \tfrac{1}{W}\, g^{(r)} \quad(\text{or } \textstyle\sum_r g^{(r)}
        \text{ with } \texttt{average=False})

    The gradients of each dtype are copied into one contiguous buffer, multiplied by :math:`1/W` as they are
    copied (the average folded into the copy, as torch DDP does), reduced with ``Allreduce(MPI.IN_PLACE)`` one
    bucket of at most ``bucket_size`` bytes at a time (a gradient may span buckets), and copied back into the
    gradients. A writeable C-contiguous gradient is overwritten in place; any other is replaced by a new array.

    Gradients that are None on every rank are skipped (frozen parameters). A parameter whose gradient is None
    on some ranks only is an error, as with torch DDP's ``find_unused_parameters=False``: every rank raises the
    same ValueError naming the parameter and the ranks; nothing is reduced (no rank hangs).

    Args:
        params: a Parameter, an iterable of Parameters, ``(name, Parameter)`` pairs or param-group dicts, or an
            optimizer (its ``param_groups``). The same list on every rank.
        comm (mpi4py.MPI.Intracomm, optional): the communicator (default: None, ``MPI.COMM_WORLD``).
        bucket_size (int, optional): bytes per ``Allreduce`` (default: 25 MiB, torch DDP's ``bucket_cap_mb``).
        average (bool, optional): divide by the number of ranks (default: True); False sums.

    Raises:
        TypeError, ValueError: a gradient of the wrong dtype or shape on any rank, different parameter lists or
            gradients present on some ranks only: the same error on every rank, nothing changed.

    Example:
        >>> w = fastopt.Parameter(np.zeros(2)); w.grad = np.full(2, float(comm.rank))
        >>> dist.allreduce_grads([w], comm=comm)             # with 2 ranks: w.grad == [0.5, 0.5] on both
    """
    comm = get_comm(comm)

    def check(plist: list[Parameter], labels: list[str]) -> int:
        bucket = _bucket_bytes(bucket_size)
        if not isinstance(average, (bool, np.bool_)):
            raise TypeError(f"average must be a bool, got {average!r}")
        _check_grads(plist, labels)
        return bucket

    plist, labels, bucket, err = _checked_locally(params, "allreduce_grads", check)
    sig = [(tuple(p.data.shape), dtype_name(p.data.dtype), p.grad is not None) if isinstance(p.data, np.ndarray) else None
           for p in plist]
    agree(comm, err, [len(sig)] + sig, ["the number of parameters"] + labels, mismatch=grad_presence_mismatch)
    if comm.size == 1:
        return
    grads = []
    for p in plist:
        g = p.grad
        if g is None:
            continue
        if not (g.flags.c_contiguous and g.flags.writeable):
            g = p.grad = np.array(g, order="C", copy=True)
        grads.append(g)
    scale = 1.0 / comm.size if average else None
    for arrays in _by_dtype(grads).values():
        stream(arrays, bucket, lambda buf: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM), scale=scale)


def _combine_norms(comm: MPI.Comm, local: float, p: float) -> float:
    """The norm of the concatenation of every rank's part, from each rank's own norm of its part."""
    if math.isinf(p):
        op = MPI.MAX if p > 0 else MPI.MIN
        return float(comm.allreduce(local, op=op))
    if p == 0:
        return float(comm.allreduce(local, op=MPI.SUM))
    return float(comm.allreduce(local ** p, op=MPI.SUM)) ** (1.0 / p)


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float | str = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None, *,
                    comm: MPI.Comm | None = None) -> np.float64:
    r"""Clip gradients that are split across the ranks by their global norm; returns that norm (collective).

    .. math::
        N = \Big(\sum_{r=0}^{W-1} \|g^{(r)}\|_p^p\Big)^{1/p},\qquad
        g^{(r)} \leftarrow g^{(r)}\cdot\min\Big(\frac{\text{max\_norm}}{N + 10^{-6}},\ 1\Big)

    where :math:`g^{(r)}` is the part of the gradient rank :math:`r` holds (max/min over ranks for
    :math:`p=\pm\infty`, a sum of counts for :math:`p=0`). Two cases:

    - ``parameters`` is a :class:`ZeroRedundancyOptimizer`: its gradients are averaged and scattered now (the
      step's ``Reduce_scatter``, which the following ``step()`` then skips), and the norm is that of the whole
      averaged gradient, combined from each rank's shard. This is how to clip with ZeRO: call it between the
      backward pass and ``zopt.step()``.
    - ``parameters`` are Parameters whose gradients are disjoint parts of one gradient (a model split across
      ranks, or ``zopt.optim``'s shard parameters).

    After :func:`allreduce_grads` every rank holds the whole averaged gradient, and ``fastopt.clip_grad_norm_``
    (no communication) already sees the global norm; this function would count it once per rank.

    Args:
        parameters: a ZeroRedundancyOptimizer, or a Parameter or iterable of Parameters (this rank's part).
        max_norm (float): the largest allowed global norm (non-negative; ``inf`` only measures).
        norm_type (float or str, optional): the order ``p`` (default: 2.0).
        error_if_nonfinite (bool, optional): raise RuntimeError on every rank, changing nothing, if the global
            norm is NaN or infinite (default: False).
        foreach (bool, optional): accepted for torch compatibility; no effect (default: None).
        comm (mpi4py.MPI.Intracomm, optional): the communicator (default: None: the optimizer's for a
            ZeroRedundancyOptimizer, else ``MPI.COMM_WORLD``).

    Returns:
        numpy.float64: the global norm before clipping, the same on every rank.

    Example:
        >>> zopt.zero_grad(); set_grads(params, x, y)
        >>> total = dist.clip_grad_norm_(zopt, max_norm=1.0)   # the norm of the averaged gradient
        >>> zopt.step()
    """
    from .zero import ZeroRedundancyOptimizer

    if isinstance(parameters, ZeroRedundancyOptimizer):
        if comm is not None and comm is not parameters.comm:
            raise ValueError("comm must be the ZeroRedundancyOptimizer's communicator (or None)")
        comm = parameters.comm
        parameters.reduce_gradients()
        plist = parameters.shard_parameters()
    else:
        comm = get_comm(comm)
        plist = None
    err = None
    local = 0.0
    p = 2.0
    try:
        if plist is None:
            plist, _ = labelled_params(parameters, "clip_grad_norm_")
        grads = [q.grad for q in plist if q.grad is not None]
        # get_total_norm checks norm_type, error_if_nonfinite and foreach (and the gradients) the way
        # fastopt.clip_grad_norm_ does; clip_grads_with_norm_ below checks max_norm before it writes.
        local = float(get_total_norm(grads, norm_type, False, foreach))
        if not isinstance(error_if_nonfinite, (bool, np.bool_)):
            raise TypeError(f"error_if_nonfinite must be a bool, got {error_if_nonfinite!r}")
        clip_grads_with_norm_([], max_norm, 0.0)  # checks max_norm alone
        for q in plist:
            if q.grad is not None and not q.grad.flags.writeable:
                raise ValueError("a gradient is read-only; clipping scales gradients in place")
        p = float(norm_type)
        if not grads and math.isinf(p) and p < 0:
            local = math.inf  # a rank without gradients must not win the minimum
    except Exception as e:  # noqa: BLE001
        err = e
    agree(comm, err)
    assert plist is not None        # the try above failed before setting it only if agree() raised
    total = _combine_norms(comm, local, p)
    err = None
    try:
        if error_if_nonfinite and not math.isfinite(total):
            raise RuntimeError(f"the global norm of order {p:g} of the gradients is non-finite ({total}), so they "
                               "cannot be clipped; pass error_if_nonfinite=False to scale them by it anyway")
        clip_grads_with_norm_(plist, max_norm, total)
    except Exception as e:  # noqa: BLE001
        err = e
    agree(comm, err)
    return np.float64(total)
