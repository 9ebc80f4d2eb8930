r"""``ZeroRedundancyOptimizer``: ZeRO stage 1 (optimizer state sharded over the ranks) for fastopt's elementwise
optimizers.

Layout. The parameters of each param group and dtype are flattened, in group order, into one vector of
:math:`N` elements; rank :math:`r` owns elements :math:`[rC, \min((r+1)C, N))` with :math:`C = \lceil N/W \rceil`,
so a parameter may be split between ranks (unlike torch's ZeroRedundancyOptimizer, which packs whole parameters
and can leave ranks unbalanced). Each owned range of a parameter is a *piece*: a Parameter of the local optimizer
``zopt.optim`` (the wrapped class, built over the pieces), whose data is a view into the parameter's own array
(or, for a parameter that is not C-contiguous, a buffer refreshed before each step). A piece that covers its whole
parameter keeps the parameter's shape; a split one is 1-D. The local optimizer therefore holds state for about
:math:`1/W` of the elements. Communication uses one buffer of the largest bucket's size per dtype (shared by all
buckets) and this rank's block of the averaged gradient.

One step, per group and dtype (bucket):

1. ``Reduce_scatter_block`` of the gradients, each multiplied by :math:`1/W` as it is copied into the send buffer:
   rank :math:`r` receives :math:`\sum_s g^{(s)}/W` for its block (skipped with ``average_grads=False``: then
   each rank's gradients are taken as already averaged);
2. the local optimizer's step on the pieces (one fused kernel call per group);
3. ``Allgather(IN_PLACE)`` of the updated blocks; the other ranks' ranges are copied into the parameters.

Because the optimizers allowed here are elementwise (each element's update depends on that element, its state
and per-tensor scalars that depend only on the step count and options), the parameters are bit-identical to
plain data parallelism (:func:`allreduce_grads` + the same optimizer) whenever the two reductions add in the same
order, which they do for two ranks (a sum of two terms commutes).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from mpi4py import MPI

from .. import _validate as V
from ..optim.adadelta import Adadelta
from ..optim.adagrad import Adagrad
from ..optim.adam import Adam, AdamW
from ..optim.adamax import Adamax
from ..optim.asgd import ASGD
from ..optim.lion import Lion
from ..optim.nadam import NAdam
from ..optim.radam import RAdam
from ..optim.rmsprop import RMSprop
from ..optim.rprop import Rprop
from ..optim.sgd import SGD
from ..optimizer import Optimizer, RemovableHandle, _locked, _run_pre_hooks, snapshot_state
from ..parameter import Parameter
from ._comm import agree, dtype_name, get_comm, staging
from ._data_parallel import grad_presence_mismatch

__all__ = ["ZeroRedundancyOptimizer", "ELEMENTWISE_OPTIMIZERS"]

# Optimizers whose update is elementwise given per-tensor scalars that depend only on the step count and the
# options, so that splitting a tensor between ranks changes nothing. Muon (orthogonalizes whole matrices),
# Adafactor (row/column factors), LBFGS and SparseAdam need whole tensors and are refused.
ELEMENTWISE_OPTIMIZERS: tuple[type[Optimizer], ...] = (SGD, Adam, AdamW, Adagrad, Adadelta, Adamax, ASGD, NAdam,
                                                       RAdam, RMSprop, Rprop, Lion)

_NOT_OPTIONS = ("params", "param_names")


class _Piece:
    """The part of parameter ``k`` (global index, in group order) that this rank owns: flat elements
    ``[start, stop)`` of the parameter, held by ``local``, a Parameter of the local optimizer. Its data is a view
    into the parameter's own array when that is C-contiguous (the kernel then updates the parameter in place and
    no copy is needed), else a buffer of its own that ``bind`` refreshes before each step."""

    __slots__ = ("k", "param", "start", "stop", "whole", "shape", "local", "grad_view", "source")

    def __init__(self, k: int, param: Parameter, start: int, stop: int, grad_view: np.ndarray) -> None:
        self.k = k
        self.param = param
        self.start = start
        self.stop = stop
        self.whole = start == 0 and stop == param.data.size
        self.shape = param.data.shape if self.whole else (stop - start,)
        self.grad_view = grad_view.reshape(self.shape)
        self.source: np.ndarray | None = None
        self.local = Parameter(np.zeros(self.shape, param.data.dtype))
        self.bind(copy=False)

    def bind(self, copy: bool = True) -> None:
        """Point ``local.data`` at the parameter's current array (a new array given to ``param.data`` is
        followed), or copy the parameter's values into the piece's own buffer if it is not C-contiguous."""
        src = self.param.data
        if src is self.source:
            return
        if src.flags.c_contiguous and src.flags.writeable:
            self.local.data = src.reshape(-1)[self.start:self.stop].reshape(self.shape)
            self.source = src
            return
        if self.source is not None:
            self.local.data = np.zeros(self.shape, src.dtype)
            self.source = None
        if copy:
            np.copyto(self.local.data.reshape(-1), src.reshape(-1)[self.start:self.stop])


class _Bucket:
    """The parameters of one dtype in one group, flattened in order, and this rank's block of them."""

    def __init__(self, gi: int, dtype: np.dtype, members: list[tuple[int, Parameter]], rank: int,
                 world: int) -> None:
        self.gi = gi
        self.dtype = dtype
        self.members = members
        self.offsets = []
        n = 0
        for _, p in members:
            self.offsets.append(n)
            n += p.data.size
        self.total = n
        self.offsets_of = {k: off for (k, _), off in zip(members, self.offsets)}
        self.chunk = -(-n // world)
        self.lo = min(n, rank * self.chunk)
        self.hi = min(n, (rank + 1) * self.chunk)
        self.local_grad = np.zeros(self.chunk, dtype)   # this rank's block of the averaged gradient
        self.pieces: list[_Piece] = []
        for (k, p), off in zip(members, self.offsets):
            size = p.data.size
            if size == 0:
                a, b = (0, 0) if rank == 0 else (1, 0)   # an empty parameter lives on rank 0
            else:
                a, b = max(off, self.lo) - off, min(off + size, self.hi) - off
            if a < b or (size == 0 and a == 0):
                at = off + a - self.lo
                self.pieces.append(_Piece(k, p, a, b, self.local_grad[at:at + b - a]))


def _options(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k not in _NOT_OPTIONS}


class ZeroRedundancyOptimizer(Optimizer):
    r"""Wraps an elementwise fastopt optimizer so that each rank keeps the state of only its shard (ZeRO-1).

    Each rank computes the gradients of its own data and calls ``step()``, which averages them over the ranks
    (``Reduce_scatter``), runs the wrapped optimizer's update on this rank's shard and gathers the updated
    parameters (``Allgather``); afterwards every rank holds the same parameters, as with
    :func:`allreduce_grads` followed by the wrapped optimizer's step. See the module docstring for the layout.

    .. math::
        \bar g = \sum_{r=0}^{W-1} \tfrac{1}{W} g^{(r)},\qquad
        \theta_{[rC,(r+1)C)} \leftarrow \mathrm{update}(\theta_{[rC,(r+1)C)},\ \bar g_{[rC,(r+1)C)},\
        \text{state}_{[rC,(r+1)C)})\ \text{on rank } r,\qquad \theta \leftarrow \mathrm{Allgather}

    Construction, ``step``, ``add_param_group``, ``consolidate_state_dict`` and ``load_state_dict`` are
    collective: call them on every rank in the same order. Whatever one rank raises in them (a bad gradient, a
    step hook, a mismatch between ranks), every rank raises, as the same exception with the same message.

    Args:
        params (iterable): Parameters, ``(name, Parameter)`` pairs or param-group dicts: the same count, shapes,
            dtypes and group options on every rank (checked here: ValueError on every rank otherwise).
        optimizer_class (type): the local optimizer's class: one of ``ELEMENTWISE_OPTIMIZERS`` (SGD, Adam,
            AdamW, Adagrad, Adadelta, Adamax, ASGD, NAdam, RAdam, RMSprop, Rprop, Lion) or a subclass.
        comm (mpi4py.MPI.Intracomm, optional): the communicator (default: None, ``MPI.COMM_WORLD``).
        average_grads (bool, optional): average the gradients over the ranks in ``step`` (default: True). With
            False each rank's gradients are used as they are, for callers that reduced them already.
        **defaults: the wrapped optimizer's options (``lr=1e-3``, ...), as given to ``optimizer_class``.

    Attributes:
        optim: the local optimizer over this rank's pieces (an ``optimizer_class`` instance).
        param_groups (list[dict]): the global groups (all parameters, options); schedulers and users change
            options here, and ``step`` passes them on to ``optim``.
        comm: the communicator.

    Example:
        >>> zopt = dist.ZeroRedundancyOptimizer(params, optimizer_class=fastopt.AdamW, lr=1e-3)
        >>> zopt.zero_grad(); set_grads(params, x, y); zopt.step()
    """

    def __init__(self, params: Iterable[Any], optimizer_class: type[Optimizer], comm: MPI.Comm | None = None, *,
                 average_grads: bool = True, **defaults: Any) -> None:
        self.comm = get_comm(comm)
        self._ready = False
        self._consolidated: dict[int, dict[str, Any]] | None = None   # parameter index -> its whole state
        self._consolidated_to: int | None = None
        self._reduced = False
        self._undo: tuple | None = None
        self._zero_pre_hooks: OrderedDict = OrderedDict()
        self._zero_post_hooks: OrderedDict = OrderedDict()
        err = None
        sig: list[Any] = []
        labels: list[str] = []
        try:
            if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, ELEMENTWISE_OPTIMIZERS)):
                names = ", ".join(c.__name__ for c in ELEMENTWISE_OPTIMIZERS)
                raise TypeError(f"optimizer_class must be an elementwise fastopt optimizer ({names}), got "
                                f"{getattr(optimizer_class, '__name__', optimizer_class)!r}: the shards split "
                                "tensors, which optimizers that need whole tensors cannot work on")
            if not isinstance(average_grads, (bool, np.bool_)):
                raise TypeError(f"average_grads must be a bool, got {average_grads!r}")
            if isinstance(params, (Parameter, np.ndarray)) or isinstance(params, (set, frozenset)):
                raise TypeError("params must be an ordered iterable of Parameters or param groups")
            params = [params] if isinstance(params, dict) else list(params)
            self.optimizer_class = optimizer_class
            self.average_grads = bool(average_grads)
            self._kwargs = dict(defaults)
            probe = optimizer_class(params, **defaults)      # the wrapped class checks params and options
            super().__init__([dict(g) for g in probe.param_groups], probe.defaults)
            sig, labels = self._signature(range(len(self.param_groups)))
            sig = [optimizer_class.__qualname__, self.average_grads, len(self.param_groups)] + sig
            labels = ["optimizer_class", "average_grads", "the number of param groups"] + labels
        except Exception as e:  # noqa: BLE001 - raised on every rank by agree()
            err = e
        agree(self.comm, err, sig, labels, "the parameters and options")
        self._buckets: list[_Bucket] = []
        self._group_buckets: list[list[_Bucket]] = []
        err = None
        try:
            local_groups = [self._local_group(gi) for gi in range(len(self.param_groups))]
            self.optim = optimizer_class(local_groups, **defaults)
        except Exception as e:  # noqa: BLE001
            err = e
        agree(self.comm, err)
        self._ready = True

    # ---- layout ------------------------------------------------------------------------------------------
    def _signature(self, gis: Iterable[int]) -> tuple[list[Any], list[str]]:
        sig: list[Any] = []
        labels: list[str] = []
        for gi in gis:
            group = self.param_groups[gi]
            sig.append(len(group["params"]))
            labels.append(f"param_groups[{gi}]: the number of params")
            _option_entries(gi, group, sig, labels)
            for j, p in enumerate(group["params"]):
                sig.append((tuple(p.data.shape), dtype_name(p.data.dtype)))
                labels.append(f"param_groups[{gi}]['params'][{j}] (shape, dtype)")
        return sig, labels

    def _local_group(self, gi: int) -> dict[str, Any]:
        """Build the buckets of global group ``gi`` and return the local optimizer's group over its pieces."""
        group = self.param_groups[gi]
        first = sum(len(g["params"]) for g in self.param_groups[:gi])
        by_dtype: dict[np.dtype, list[tuple[int, Parameter]]] = {}
        for j, p in enumerate(group["params"]):
            by_dtype.setdefault(p.data.dtype, []).append((first + j, p))
        buckets = [_Bucket(gi, dt, members, self.comm.rank, self.comm.size) for dt, members in by_dtype.items()]
        self._buckets.extend(buckets)
        self._group_buckets.append(buckets)
        pieces = [piece.local for b in buckets for piece in b.pieces]
        if not pieces:  # this rank owns nothing of the group; a group cannot be empty, so hold an empty stand-in
            pieces = [Parameter(np.zeros(0, group["params"][0].data.dtype))]
        return dict(_options(group), params=pieces)

    def _pieces(self) -> list[_Piece]:
        return [piece for b in self._buckets for piece in b.pieces]

    def shard_parameters(self) -> list[Parameter]:
        """This rank's pieces (the local optimizer's parameters that hold some part of a real parameter); after
        :meth:`reduce_gradients` their ``.grad`` is this rank's part of the averaged gradient."""
        return [piece.local for piece in self._pieces()]

    def _all_params(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    # ---- groups ------------------------------------------------------------------------------------------
    @_locked
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (collective: every rank adds the same group; the same error everywhere otherwise).
        Options it lacks take the values given to the constructor."""
        if not self._ready:
            super().add_param_group(param_group)
            return
        err = None
        sig: list[Any] = []
        labels: list[str] = []
        added = False
        try:
            probe = self.optimizer_class([param_group], **self._kwargs)
            super().add_param_group(dict(probe.param_groups[0]))
            added = True
            sig, labels = self._signature([len(self.param_groups) - 1])
        except Exception as e:  # noqa: BLE001
            err = e
        try:
            agree(self.comm, err, sig, labels, "the new param group")
        except Exception:
            if added:
                self.param_groups.pop()
            raise
        self.optim.add_param_group(self._local_group(len(self.param_groups) - 1))

    def _sync_options(self) -> None:
        """Pass the global groups' options (changed by schedulers or users) on to the local optimizer."""
        for group, local in zip(self.param_groups, self.optim.param_groups):
            for key, value in _options(group).items():
                local[key] = value

    # ---- gradients ---------------------------------------------------------------------------------------
    @_locked
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient (to None by default, as torch) and the shards' gradients."""
        super().zero_grad(set_to_none)
        for piece in self._pieces():
            piece.local.grad = None
        self._reduced = False

    def _grad_signature(self) -> tuple[list[Any], list[str]]:
        """Check every gradient locally (raises like the wrapped optimizer would) and return the presence
        signature that every rank must share."""
        sig: list[Any] = []
        labels: list[str] = []
        k = 0
        for gi, group in enumerate(self.param_groups):
            for j, p in enumerate(group["params"]):
                label = f"param_groups[{gi}]['params'][{j}]"
                data = p.data
                b_shape, b_dtype = self._layout[k]
                if not isinstance(data, np.ndarray) or data.shape != b_shape or data.dtype != b_dtype:
                    raise ValueError(f"{label}: data is no longer a {b_dtype}{list(b_shape)} array as at "
                                     "construction; the shards' layout cannot change")
                if not data.flags.writeable:
                    raise ValueError(f"{label}: data is read-only; fastopt updates parameters in place")
                g = p.grad
                if g is not None:
                    V.grad_like(g, label, data)
                sig.append((b_shape, dtype_name(b_dtype), g is not None))
                labels.append(label)
                k += 1
        # The options too: a scheduler or user that changed them on some ranks only would make the local steps
        # disagree (one rank's step rejected after another's ran).
        n = len(sig)
        for gi, group in enumerate(self.param_groups):
            _option_entries(gi, group, sig, labels)
        return [n] + sig, ["the number of parameters"] + labels

    @property
    def _layout(self) -> list[tuple[tuple[int, ...], np.dtype]]:
        layout = getattr(self, "_layout_cache", None)
        if layout is None or len(layout) != sum(len(g["params"]) for g in self.param_groups):
            layout = [(p.data.shape, p.data.dtype) for p in self._all_params()]
            self._layout_cache = layout
        return layout

    def _check_and_agree(self, run: Callable[[], Any] | None = None) -> Any:
        """Run ``run`` (hooks, closure) and the gradient checks locally, then agree with every rank."""
        err = None
        out = None
        sig: list[Any] = []
        labels: list[str] = []
        try:
            if run is not None:
                out = run()
            sig, labels = self._grad_signature()
        except Exception as e:  # noqa: BLE001
            err = e
        agree(self.comm, err, sig, labels, mismatch=grad_presence_mismatch)
        return out

    def _reduce(self) -> None:
        """Average the gradients into this rank's block of every bucket (step 1) and point the pieces at it."""
        world = self.comm.size
        scale = 1.0 / world
        for b in self._buckets:
            if b.chunk == 0:
                pass  # only empty parameters: nothing to send
            elif self.average_grads and world > 1:   # (one rank: the average is its gradient, copied below)
                send = staging(b.dtype, b.chunk * world, slot=1)
                send[b.total:] = 0  # the padding
                for (_, p), off in zip(b.members, b.offsets):
                    view = send[off:off + p.data.size].reshape(p.data.shape)
                    if p.grad is None:
                        view[...] = 0
                    else:
                        np.multiply(p.grad, scale, out=view)
                self.comm.Reduce_scatter_block(send, b.local_grad, op=MPI.SUM)
            else:
                for piece in b.pieces:
                    if piece.param.grad is not None:
                        np.copyto(piece.grad_view.reshape(-1),
                                  piece.param.grad.reshape(-1)[piece.start:piece.stop])
            for piece in b.pieces:
                piece.local.grad = piece.grad_view if piece.param.grad is not None else None
        self._reduced = True

    def reduce_gradients(self) -> None:
        """Average the gradients over the ranks into the shards now (collective); the next ``step()`` uses
        them instead of reducing again. :func:`clip_grad_norm_` on this optimizer calls it; there is rarely a
        reason to call it directly."""
        if self._reduced:
            return
        self._check_and_agree()
        self._reduce()

    # ---- hooks -------------------------------------------------------------------------------------------
    # Step hooks are kept here and run by ``step`` itself, inside the agreement with the other ranks, so that a
    # hook raising on one rank makes every rank raise instead of leaving them waiting in the reduction.
    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(optimizer, args, kwargs) -> None | (args, kwargs)`` runs at the start of each ``step``."""
        return self._register(self._zero_pre_hooks, hook)

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(optimizer, args, kwargs) -> None`` runs after each ``step``, once the parameters are gathered."""
        return self._register(self._zero_post_hooks, hook)

    # ---- step --------------------------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        r"""Average the gradients, update this rank's shard, gather the parameters (collective).

        Runs the step pre-hooks and ``closure`` (its loss is returned) first; if any rank raises there, or in
        the gradient checks, or in the local optimizer's step, every rank raises the same error and no
        parameter changes. Returns the closure's loss (None without a closure).

        If the gradients were reduced already since the last ``zero_grad`` (by :func:`clip_grad_norm_` on this
        optimizer, or :meth:`reduce_gradients`), those reduced gradients are used: gradients that the closure
        or a pre-hook sets afterwards are not reduced again.

        An error raised by the local optimizer on some ranks only (it validates before writing, and the checks
        above make that rare) is raised on every rank too; the other ranks' shards have then stepped, so reload
        a checkpoint.
        """
        args: tuple = () if closure is None else (closure,)
        kwargs: dict[str, Any] = {}

        def before() -> Any:
            nonlocal args, kwargs
            args, kwargs = _run_pre_hooks(self, self._zero_pre_hooks, args, kwargs)
            fn = args[0] if args else kwargs.get("closure")
            loss = fn() if fn is not None else None
            self._sync_options()
            return loss

        if self._reduced:
            err = None
            loss = None
            try:
                loss = before()
            except Exception as e:  # noqa: BLE001
                err = e
            agree(self.comm, err)
        else:
            loss = self._check_and_agree(before)
            self._reduce()
        self._reduced = False
        err = None
        try:
            for piece in self._pieces():
                if piece.local.grad is not None:
                    piece.bind()
            self.optim.step()
        except Exception as e:  # noqa: BLE001
            err = e
        agree(self.comm, err)
        self._gather()
        self._opt_called = True
        for hook in list(self._zero_post_hooks.values()):
            hook(self, args, kwargs)
        return loss

    def _gather(self) -> None:
        """Step 3: every rank's updated block into every parameter that had a gradient. A piece that is a view of
        its parameter was updated in place by the kernel; only the other ranks' ranges are copied in."""
        world = self.comm.size
        for b in self._buckets:
            if not any(p.grad is not None for _, p in b.members):
                continue
            own = {piece.k: piece for piece in b.pieces}
            if world == 1:
                for piece in b.pieces:
                    if piece.param.grad is not None and piece.source is None:
                        np.copyto(piece.param.data, piece.local.data.reshape(piece.param.data.shape))
                continue
            if b.chunk == 0:
                continue
            full = staging(b.dtype, b.chunk * world, slot=1)
            for piece in b.pieces:
                at = b.offsets_of[piece.k] + piece.start         # within this rank's block of full
                np.copyto(full[at:at + piece.stop - piece.start], piece.local.data.reshape(-1))
            self.comm.Allgather(MPI.IN_PLACE, full)
            for (k, p), off in zip(b.members, b.offsets):
                size = p.data.size
                if p.grad is None or size == 0:
                    continue
                mine = own.get(k)
                if mine is not None and mine.source is p.data:   # own range already in place
                    flat = p.data.reshape(-1)
                    if mine.start:
                        np.copyto(flat[:mine.start], full[off:off + mine.start])
                    if mine.stop < size:
                        np.copyto(flat[mine.stop:], full[off + mine.stop:off + size])
                else:
                    np.copyto(p.data, full[off:off + size].reshape(p.data.shape))

    # ---- state dicts -------------------------------------------------------------------------------------
    def local_records(self) -> list[dict[str, Any]]:
        """This rank's state, one record per piece: ``{'param': k, 'start': a, 'stop': b, 'state': {...}}``
        (``k`` numbers the parameters in group order, as a state dict does; ``[a, b)`` is the piece's range of
        the flattened parameter; array state is the piece's, scalar state such as ``step`` the parameter's)."""
        out = []
        for piece in self._pieces():
            st = self.optim.state.get(piece.local)
            out.append({"param": piece.k, "start": piece.start, "stop": piece.stop,
                        "state": {key: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v)
                                  for key, v in (st or {}).items()}})
        return out

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather the whole optimizer state on rank ``to`` (collective); then ``state_dict()`` there returns it
        in the wrapped optimizer's layout, as a plain optimizer over all the parameters would."""
        err = None
        try:
            if isinstance(to, bool) or not isinstance(to, (int, np.integer)) or not 0 <= to < self.comm.size:
                raise ValueError(f"to must be a rank in [0, {self.comm.size}), got {to!r}")
            records = self.local_records()
        except Exception as e:  # noqa: BLE001
            err = e
        agree(self.comm, err)
        gathered = self.comm.gather(records, root=to) if self.comm.size > 1 else [records]
        self._consolidated_to = int(to)
        self._consolidated = None
        if self.comm.rank == to:
            assert gathered is not None     # gather() returns the list on the root, None elsewhere
            self._consolidated = assemble_full_state(self._all_params(),
                                                     [r for rank_records in gathered for r in rank_records])

    @_locked
    def state_dict(self, copy: bool = True) -> dict[str, Any]:
        """The whole state in the wrapped optimizer's (torch's) layout, on the rank given to the last
        ``consolidate_state_dict``; RuntimeError on other ranks or before consolidation. Its arrays are copies made
        at consolidation; with ``copy=True`` (default, as ``Optimizer.state_dict``) each call copies them again, so
        two results never share an array; ``copy=False`` returns the consolidated arrays themselves."""
        for hook in list(self._state_dict_pre_hooks.values()):
            hook(self)
        if self._consolidated_to is None:
            raise RuntimeError("Optimizer state has not been consolidated. Call consolidate_state_dict(to) on "
                               "every rank first")
        if self.comm.rank != self._consolidated_to:
            raise RuntimeError(f"the state was consolidated on rank {self._consolidated_to}, not on this rank "
                               f"({self.comm.rank}); call state_dict() there")
        groups = []
        start = 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(packed)
        consolidated = self._consolidated or {}
        return self._state_dict_posthooked({"state": ({k: snapshot_state(v) for k, v in consolidated.items()}
                                                      if copy else dict(consolidated)), "param_groups": groups})

    @_locked
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a whole state in the wrapped optimizer's layout (from ``state_dict()``, a plain optimizer's or a
        torch one's), on every rank: each keeps its pieces (collective; checked fully first, the same error on
        every rank, nothing changed on error)."""
        err = None
        try:
            state_dict, groups, saved = self._hooked_state_dict(state_dict)
            index: dict[Any, int] = {}
            start = 0
            for g, live in zip(groups, self.param_groups):     # their sizes were checked by _hooked_state_dict
                index.update((sid, start + j) for j, sid in enumerate(g["params"]))
                start += len(live["params"])
            records = []
            params = self._all_params()
            for sid, st in saved.items():
                if sid not in index:
                    raise ValueError(f"loaded state refers to parameter {sid!r}, which no group lists")
                k = index[sid]
                records.append({"param": k, "start": 0, "stop": params[k].data.size, "state": st})
            self._load_records([_options(g) for g in groups], records)
        except Exception as e:  # noqa: BLE001
            err = e
        self.finish_load(err)
        for hook in list(self._load_state_dict_post_hooks.values()):
            hook(self)

    def _load_records(self, group_options: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
        """Stage a load: slice each parameter's saved state (records covering ranges of it) into this rank's
        pieces and load the result into the local optimizer; ``finish_load`` follows on every rank."""
        params = self._all_params()
        by_param: dict[int, list[dict[str, Any]]] = {}
        for r in records:
            by_param.setdefault(r["param"], []).append(r)
        local_state: dict[int, dict[str, Any]] = {}
        local_groups = []
        li = 0
        for gi, (local, opts) in enumerate(zip(self.optim.param_groups, group_options)):
            ids = []
            pieces = {id(piece.local): piece for b in self._group_buckets[gi] for piece in b.pieces}
            for q in local["params"]:
                piece = pieces.get(id(q))
                if piece is not None and piece.k in by_param:
                    local_state[li] = piece_state(params[piece.k], piece, by_param[piece.k], _where(self, piece.k))
                ids.append(li)
                li += 1
            local_groups.append(dict(opts, params=ids))
        self._undo = (self.optim.state_dict(),)
        self.optim.load_state_dict({"state": local_state, "param_groups": local_groups})
        self._pending_options = group_options

    def finish_load(self, err: BaseException | None) -> None:
        """Agree with every rank on a load staged by ``_load_records``: commit it, or (if any rank failed) put
        the local optimizer back as it was and raise the same error everywhere."""
        try:
            agree(self.comm, err)
        except Exception:
            undo = getattr(self, "_undo", None)
            if undo is not None:
                self.optim.load_state_dict(undo[0])
            self._undo = None
            raise
        for group, opts in zip(self.param_groups, self._pending_options):
            for key in [k for k in group if k not in _NOT_OPTIONS]:
                del group[key]
            group.update(opts)
        self._reduced = False
        self._undo = None

    def __repr__(self) -> str:
        return (f"ZeroRedundancyOptimizer({self.optimizer_class.__name__}, rank {self.comm.rank} of "
                f"{self.comm.size}, {len(self.param_groups)} group(s))")


def _option_entries(gi: int, group: dict[str, Any], sig: list[Any], labels: list[str]) -> None:
    """Signature entries for a group's options: their names, then each value (by repr: exact for floats)."""
    opts = _options(group)
    sig.append(tuple(sorted(opts)))
    labels.append(f"param_groups[{gi}]: the option names")
    for key in sorted(opts):
        sig.append(repr(opts[key]))
        labels.append(f"param_groups[{gi}]['{key}']")


def _where(zopt: ZeroRedundancyOptimizer, k: int) -> str:
    for gi, group in enumerate(zopt.param_groups):
        if k < len(group["params"]):
            return f"param_groups[{gi}]['params'][{k}]"
        k -= len(group["params"])
    return f"parameter {k}"


def _is_elementwise(value: Any, param: Parameter) -> bool:
    """Whether a state value is per element (an array the parameter's size, sliced with it) rather than per
    parameter (``step``, NAdam's ``mu_product``, ASGD's ``eta``: numbers and 0-d arrays)."""
    return isinstance(value, np.ndarray) and value.ndim >= 1 and param.data.ndim >= 1


def piece_state(param: Parameter, piece: _Piece, records: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """The state of ``piece`` cut from ``records``, saved pieces ``{'start', 'stop', 'state'}`` of ``param``
    (whole-parameter arrays in a full state dict, or shards written by any number of ranks)."""
    covering = [r for r in records if r["start"] < piece.stop and r["stop"] > piece.start] or records[:1]
    first = covering[0]["state"]
    if not isinstance(first, dict):
        raise TypeError(f"{where}: saved state must be a dict, got {type(first).__name__}")
    if not first:
        return {}
    out: dict[str, Any] = {}
    shape = piece.local.data.shape
    for key, value in first.items():
        if not _is_elementwise(value, param):
            out[key] = value
            continue
        target = np.empty(piece.stop - piece.start, value.dtype)
        filled = 0
        for r in covering:
            v = r["state"].get(key) if isinstance(r["state"], dict) else None
            if not isinstance(v, np.ndarray) or v.size != r["stop"] - r["start"] or v.dtype != value.dtype:
                raise ValueError(f"{where}: saved state '{key}' is "
                                 f"{getattr(v, 'dtype', type(v).__name__)}{list(getattr(v, 'shape', ()))}, "
                                 f"expected {r['stop'] - r['start']} elements like the parameter's range "
                                 f"[{r['start']}, {r['stop']})")
            if r["start"] == 0 and r["stop"] == param.data.size and v.shape != param.data.shape:
                raise ValueError(f"{where}: saved state '{key}' is {v.dtype}{list(v.shape)}, the parameter is "
                                 f"{param.data.dtype}{list(param.data.shape)}")
            a, b = max(r["start"], piece.start), min(r["stop"], piece.stop)
            target[a - piece.start:b - piece.start] = v.reshape(-1)[a - r["start"]:b - r["start"]]
            filled += b - a
        if filled != piece.stop - piece.start:
            raise ValueError(f"{where}: the saved state '{key}' covers {filled} of the {piece.stop - piece.start} "
                             f"elements [{piece.start}, {piece.stop}) this rank needs")
        out[key] = target.reshape(shape)
    return out


def assemble_full_state(params: list[Parameter], records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Whole-parameter state (a state dict's ``'state'``) from piece records covering every parameter."""
    by_param: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        by_param.setdefault(r["param"], []).append(r)
    out: dict[int, dict[str, Any]] = {}
    for k in sorted(by_param):
        rs = sorted(by_param[k], key=lambda r: r["start"])
        if not rs[0]["state"]:
            continue
        p = params[k]
        st: dict[str, Any] = {}
        for key, value in rs[0]["state"].items():
            if _is_elementwise(value, p):
                st[key] = np.concatenate([r["state"][key].reshape(-1) for r in rs]).reshape(p.data.shape)
            else:
                st[key] = value
        out[k] = st
    return out
