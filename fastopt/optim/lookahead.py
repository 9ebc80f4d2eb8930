"""Lookahead (Zhang, Lucas, Hinton & Ba, 2019), pytorch-optimizer's ``Lookahead``, wrapping any fastopt optimizer."""
from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._memory import copy_aligned, zeros_aligned_many
from ..optimizer import Optimizer, RemovableHandle, snapshot_state

__all__ = ["Lookahead"]

_KERNEL = K.KERNELS["lookahead"]
_NAMES = ("param", "slow_params", "grad")  # the planned update's table: the kernel's two buffers, then the gradient


def _contiguous(a: np.ndarray) -> bool:
    return a.flags.c_contiguous and a.flags.aligned


class Lookahead:
    r"""Lookahead (Zhang, Lucas, Hinton & Ba, 2019, Algorithm 1) around any fastopt optimizer, as
    pytorch-optimizer's ``Lookahead`` (4.1, ``pullback_momentum='none'``).

    The wrapped ("fast") optimizer steps as usual; every ``k`` of its steps, in each group, the slow weights
    :math:`\phi` move toward the fast weights :math:`\theta` and the fast weights restart from them:

    .. math::
        \theta \leftarrow \operatorname{lerp}(\theta, \phi, 1-\alpha) = \phi + \alpha(\theta - \phi), \qquad
        \phi \leftarrow \theta

    (torch's ``lerp``, then a copy: one fused kernel pass per group and dtype). Only parameters that have a
    gradient at that step are interpolated, as upstream.

    Args:
        optimizer (Optimizer): the fastopt optimizer to wrap (any: SGD, Adam, LAMB, ...).
        k (int, optional): fast steps between slow-weight updates, at least 1 (default: 5).
        alpha (float, optional): slow-weight step size :math:`\alpha \in [0, 1]` (default: 0.5).

    Attributes:
        optimizer: the wrapped optimizer; its ``param_groups`` are this object's ``param_groups`` (the same
            list), so learning-rate schedulers given the Lookahead schedule the wrapped optimizer.
        state (defaultdict[Parameter, dict]): ``{'slow_params': ndarray}`` per parameter (a copy of the
            parameter when the Lookahead, or its group, was created).
        k, alpha: the options.

    ``zero_grad``, ``step(closure)`` and ``add_param_group`` pass through to the wrapped optimizer.
    ``state_dict()`` is ``{'state': {index: {'slow_params': ...}}, 'lookahead_counters': [per group],
    'k': k, 'alpha': alpha, 'base_optimizer': optimizer.state_dict()}`` (parameters numbered in group order, as
    torch does), which :func:`fastopt.save` writes and ``load_state_dict`` reads back, checking everything before
    changing anything.

    Notes:
        pytorch-optimizer keeps the step counter in each param group (``group['counter']``); fastopt keeps it in
        the Lookahead (``lookahead_counters``), so the wrapped optimizer's groups hold only its own options (its
        repeated-step fast path stays on). pytorch-optimizer's ``pullback_momentum`` ('reset', 'pullback') is not
        implemented.

    References: Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back", NeurIPS 2019,
    arXiv:1907.08610.

    Example:
        >>> opt = fastopt.Lookahead(fastopt.Adam([w], lr=1e-3), k=5, alpha=0.5)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"Lookahead wraps a fastopt optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, Lookahead):  # pragma: no cover - Lookahead is not an Optimizer subclass
            raise TypeError("Lookahead cannot wrap another Lookahead")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"Invalid k value: {k!r} (a whole number of steps >= 1)")
        alpha = V.number("alpha", alpha, low=0.0, high=1.0)
        self._lock = threading.RLock()
        self.optimizer = optimizer
        self.k = int(k)
        self.alpha = alpha
        self.state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        self._counters: list[int] = []
        # per group: (group, alpha, plans) for the repeated update, made after a full one (see _plan_update)
        self._plans: dict[int, tuple[dict[str, Any], float, K.StepPlans]] = {}
        for group in optimizer.param_groups:
            self._init_group(group)
        self.defaults: dict[str, Any] = {"lookahead_alpha": alpha, "lookahead_k": self.k, **optimizer.defaults}

    def _init_group(self, group: dict[str, Any]) -> None:
        # the group's new slow weights, per dtype as consecutive views of one allocation (fastopt._memory: contiguous
        # and huge-page backed when large, each co-aligned with its parameter), then copied from the parameters
        by_dtype: dict[np.dtype, list] = {}
        for p in group["params"]:
            if "slow_params" not in self.state[p]:
                by_dtype.setdefault(np.asarray(p.data).dtype, []).append(p)
        for ps in by_dtype.values():
            for p, slow in zip(ps, zeros_aligned_many([np.asarray(p.data) for p in ps])):
                np.copyto(slow, p.data)
                self.state[p]["slow_params"] = slow
        self._counters.append(0)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The wrapped optimizer's ``param_groups`` (the same list)."""
        return self.optimizer.param_groups

    @property
    def _opt_called(self) -> bool:  # what the schedulers read to warn about calling order
        inner = self.optimizer
        return bool(getattr(inner, "_opt_called", False) or getattr(inner, "_lr_sched_step_called", False))

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, optimizer={self.optimizer!r})"

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The wrapped optimizer's ``zero_grad``."""
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the wrapped optimizer; its slow weights start as copies of its parameters."""
        with self._lock:
            self.optimizer.add_param_group(param_group)
            self._init_group(self.param_groups[-1])

    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        """A step pre-hook on the wrapped optimizer."""
        return self.optimizer.register_step_pre_hook(hook)

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        """A step post-hook on the wrapped optimizer."""
        return self.optimizer.register_step_post_hook(hook)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step of the wrapped optimizer (with ``closure``, whose loss is returned), then, in each group whose
        counter reaches ``k``, the slow-weight update."""
        with self._lock:
            loss = self.optimizer.step(closure)
            while len(self._counters) < len(self.param_groups):  # groups added to the wrapped optimizer directly
                self._init_group(self.param_groups[len(self._counters)])
            due = []
            for gi, group in enumerate(self.param_groups):
                self._counters[gi] += 1
                if self._counters[gi] >= self.k:
                    self._counters[gi] = 0
                    due.append((gi, group))
            for gi, group in due:
                self._update(gi, group)
            return loss

    def _update(self, gi: int, group: dict[str, Any]) -> None:
        """The slow-weight update of one group: every check first, then one kernel call per dtype. A repeated update
        (the same parameters, arrays and slow weights as the last, every parameter with a gradient) runs the plan
        made after the last full one (``_plan_update``), whose checks are in C; anything else the full path."""
        planned = self._plans.get(gi)
        if planned is not None and planned[0] is group and planned[1] == self.alpha \
                and planned[2].step([group], self.state):
            return
        self._plans.pop(gi, None)
        by_dtype: dict[np.dtype, tuple[list, list]] = {}
        for j, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            data = V.param_data(p, gi, j)
            slow = self.state[p].get("slow_params")
            if slow is None:
                slow = self.state[p]["slow_params"] = copy_aligned(data, data)
            V.state_buffer(slow, "slow_params", data, gi, j)
            if not _contiguous(slow):
                raise ValueError(f"{V.where(gi, j)}: state 'slow_params' must be C-contiguous")
            rows, back = by_dtype.setdefault(data.dtype, ([], []))
            if _contiguous(data):
                rows.append([data, slow])
            else:
                scratch = data.copy(order="C")
                rows.append([scratch, slow])
                back.append((data, scratch))
        hyper = _KERNEL.pack({"weight": 1.0 - self.alpha})
        tables = [(K.TensorTable(rows, ("param", "slow_params"), (False, False), 0), back)
                  for rows, back in by_dtype.values()]  # every buffer checked (overlaps too) before any write
        for table, back in tables:
            _KERNEL(table, hyper)
            for data, scratch in back:
                np.copyto(data, scratch)
        planned_all = sum(len(rows) for rows, _ in by_dtype.values()) == len(group["params"])
        if planned_all and all(not back for _, back in tables):  # every parameter, in place: plan the next update
            self._plan_update(gi, group, hyper)

    def _plan_update(self, gi: int, group: dict[str, Any], hyper: bytes) -> None:
        """After a full update of every parameter of ``group`` (all contiguous): its repeated update, one
        ``StepPlan`` per dtype over (param, slow_params, grad) whose bind checks in C that the group's parameters,
        their ``.data`` arrays and state dicts are the same objects, every array keeps its dtype, shape, layout
        and address, and each parameter has a gradient that the table would take (the kernel does not read it;
        a gradient the table refuses, such as a strided one, leaves the full path on)."""
        params = group["params"]
        index: dict[int, list[int]] = {}
        for j, p in enumerate(params):
            index.setdefault(p.data.dtype.num, []).append(j)
        try:
            plans = []
            for js in index.values():
                table = K.TensorTable([[params[j].data, self.state[params[j]]["slow_params"], params[j].grad]
                                       for j in js], _NAMES, (False, False, True), 0)
                table.release(2)
                plans.append(K.StepPlan(table, _KERNEL, hyper, group, self.state, (), False, None, None,
                                        index=tuple(js), grad_pos=2))
        except (TypeError, ValueError):
            return
        self._plans[gi] = (group, self.alpha, K.StepPlans(plans, {}, {}, (0,) * len(plans)))

    def state_dict(self, copy: bool = True) -> dict[str, Any]:
        """The slow weights, counters and options, and the wrapped optimizer's ``state_dict(copy=copy)``.

        Args:
            copy (bool, optional): True: a snapshot (every array copied, as ``Optimizer.state_dict``); False: the
                live arrays, which change with every later step (default: True).
        """
        if not isinstance(copy, (bool, np.bool_)):
            raise TypeError(f"state_dict: copy must be a bool, got {copy!r}")
        with self._lock:
            index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
            state = {index[id(p)]: (snapshot_state(s) if copy else dict(s)) for p, s in self.state.items()
                     if id(p) in index and s}
            return {"state": state, "lookahead_counters": list(self._counters), "k": self.k, "alpha": self.alpha,
                    "base_optimizer": self.optimizer.state_dict(copy=bool(copy))}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what ``state_dict()`` returned: the slow weights (copied; each checked against its parameter's
        shape and dtype), the counters, ``k`` and ``alpha``, then the wrapped optimizer's state. Everything is
        checked before anything changes."""
        with self._lock:
            if not isinstance(state_dict, Mapping):
                raise TypeError(f"Lookahead state_dict must be a mapping, got {type(state_dict).__name__}")
            if not {"state", "lookahead_counters", "base_optimizer"} <= set(state_dict):
                raise ValueError("Lookahead state_dict must be a dict with 'state', 'lookahead_counters' and "
                                 f"'base_optimizer'; it has {sorted(map(str, state_dict))}")
            params = [(gi, j, p) for gi, g in enumerate(self.param_groups) for j, p in enumerate(g["params"])]
            saved = state_dict["state"]
            if not isinstance(saved, dict):
                raise TypeError("Lookahead state_dict['state'] must be a dict")
            counters = state_dict["lookahead_counters"]
            if not isinstance(counters, (list, tuple)) or len(counters) != len(self.param_groups):
                raise ValueError(f"Lookahead state_dict['lookahead_counters'] must list one counter per group "
                                 f"({len(self.param_groups)}), got {counters!r}")
            counters = [V.step_count(c, None, None, "lookahead counter") for c in counters]
            k = state_dict.get("k", self.k)
            alpha = state_dict.get("alpha", self.alpha)
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"Invalid k value: {k!r} (a whole number of steps >= 1)")
            alpha = V.number("alpha", alpha, low=0.0, high=1.0)
            new_state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
            for key in saved:
                if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < len(params):
                    raise ValueError(f"Lookahead state refers to parameter {key!r}, which no group lists")
            for i, (gi, j, p) in enumerate(params):
                entry = saved.get(i)
                if entry is None:
                    continue
                if not isinstance(entry, dict) or set(entry) != {"slow_params"}:
                    raise ValueError(f"{V.where(gi, j)}: saved Lookahead state must be {{'slow_params': array}}, "
                                     f"got {entry!r:.80}")
                slow = entry["slow_params"]
                data = p.data
                if not isinstance(slow, np.ndarray) or slow.shape != data.shape or slow.dtype != data.dtype:
                    raise ValueError(f"{V.where(gi, j)}: saved state 'slow_params' is "
                                     f"{getattr(slow, 'dtype', type(slow).__name__)}"
                                     f"{list(getattr(slow, 'shape', ()))}, the parameter is "
                                     f"{data.dtype}{list(data.shape)}")
                new_state[p] = {"slow_params": copy_aligned(slow, data)}
            self.optimizer.load_state_dict(state_dict["base_optimizer"])  # checks all, then commits
            self.state = new_state
            self._plans = {}
            self._counters = counters
            self.k, self.alpha = int(k), alpha
            self.defaults["lookahead_k"], self.defaults["lookahead_alpha"] = self.k, self.alpha
