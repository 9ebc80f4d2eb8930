"""The one-call-per-group machinery shared by every elementwise optimizer.

``FusedOptimizer.step`` validates every group (options, params, grads, existing state) before anything is
written, then creates missing state, advances step counters, fills the per-tensor scalars and runs the group's
C kernel once over all its tensors. ``run_functional`` is the same path for the functional forms, over plain
lists of arrays. A parameter or gradient that is not C-contiguous goes through a contiguous scratch copy, which
is copied back into the parameter after the kernel (so strided views are updated in place, correctly).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _kernels as K
from . import _validate as V
from ._memory import zeros_like_aligned
from ._spec import Spec
from .optimizer import Optimizer

__all__ = ["FusedOptimizer", "run_functional"]


# Option values whose equality and type pin down validity: a group whose options all have these types (or are
# tuples of them) can skip re-validation while its options are unchanged. Anything else is re-checked every step.
_IMMUTABLE = (bool, int, float, str, type(None), np.bool_, np.integer, np.floating)
_NOT_OPTIONS = ("params", "param_names")
_MISSING = object()


def _immutable(v: Any) -> bool:
    if type(v) is tuple:
        return all(isinstance(x, _IMMUTABLE) for x in v)
    return isinstance(v, _IMMUTABLE)


def _cacheable(group: dict[str, Any]) -> bool:
    """A group whose options can be compared by value (and tuples by identity) to reuse its step plan."""
    return all(_immutable(v) for k, v in group.items() if k not in _NOT_OPTIONS)


def _contiguous(a: np.ndarray) -> bool:
    return a.flags.c_contiguous and a.flags.aligned


def _scalar_value(value: Any, key: str, gi: int, j: int) -> float:
    """A per-parameter scalar state value (a 0-d float32/float64 array, as torch's scalar tensors convert with
    np.asarray, or a real number), checked finite; returned as a float."""
    if isinstance(value, np.ndarray):
        if value.shape != () or value.dtype not in V.FLOAT_DTYPES:
            raise ValueError(f"{V.where(gi, j)}: state '{key}' must be a 0-d float32 or float64 array, got "
                             f"{value.dtype}{list(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{V.where(gi, j)}: state '{key}' must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{V.where(gi, j)}: state '{key}' must be finite, got {value!r}")
    return v


class _Rows:
    """Kernel rows for a list of tensors: param (or its scratch copy), grad, then state buffers."""

    __slots__ = ("rows", "copy_back", "grads")

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.copy_back: list[tuple[np.ndarray, np.ndarray]] = []
        self.grads: list[np.ndarray] = []

    def add(self, data: np.ndarray, grad: np.ndarray, buffers: Sequence[np.ndarray | None]) -> None:
        if _contiguous(data):
            target = data
        else:
            target = np.ascontiguousarray(data)
            if target is data or np.shares_memory(target, data):
                target = data.copy(order="C")
            self.copy_back.append((data, target))
        g = grad if _contiguous(grad) else np.ascontiguousarray(grad)
        self.grads.append(g)
        self.rows.append([target, g, *buffers])

    def finish(self) -> None:
        for data, scratch in self.copy_back:
            np.copyto(data, scratch)


def run_functional(kernel: K.Kernel, names: tuple[str, ...], params: Sequence[np.ndarray],
                   grads: Sequence[np.ndarray], buffers: Sequence[Sequence[np.ndarray] | None],
                   fill_scalars: Callable[[np.ndarray], None], hyper: bytes) -> None:
    """Run ``kernel`` (a row of the C table) once over lists of arrays with the packed block ``hyper``: ``names``
    are its buffer names, ``buffers`` holds one list per state buffer (or None if unused).

    Every array is checked first (dtype, shapes, writeability, overlap); state buffers must be C-contiguous.
    """
    n = len(params)
    if len(grads) != n:
        raise ValueError(f"got {n} params but {len(grads)} grads")
    for b, name in zip(buffers, names[2:]):
        if b is not None and len(b) != n:
            raise ValueError(f"got {n} params but {len(b)} {name} buffers")
    rows = _Rows()
    for i, (d, g) in enumerate(zip(params, grads)):
        if not isinstance(d, np.ndarray) or d.dtype not in V.FLOAT_DTYPES:
            raise TypeError(f"params[{i}] must be a float32 or float64 ndarray, got "
                            f"{getattr(d, 'dtype', type(d).__name__)}")
        if not d.flags.writeable:
            raise ValueError(f"params[{i}] is read-only")
        if not isinstance(g, np.ndarray) or g.dtype != d.dtype or g.shape != d.shape:
            raise ValueError(f"grads[{i}] must be an ndarray of shape {d.shape} and dtype {d.dtype}")
        if g.size and np.shares_memory(g, d):
            raise ValueError(f"grads[{i}] shares memory with params[{i}]")
        state = []
        for b, name in zip(buffers, names[2:]):
            if b is None:
                state.append(None)
                continue
            arr = b[i]
            if not isinstance(arr, np.ndarray) or arr.shape != d.shape or arr.dtype != d.dtype:
                raise ValueError(f"{name}[{i}] must be an ndarray of shape {d.shape} and dtype {d.dtype}")
            if not (_contiguous(arr) and arr.flags.writeable):
                raise ValueError(f"{name}[{i}] must be a writeable C-contiguous array")
            state.append(arr)
        rows.add(d, g, state)
    if n == 0:
        return
    if len({r[0].dtype for r in rows.rows}) != 1:
        raise TypeError("all params of one call must share a dtype (float32 or float64)")
    table = K.TensorTable(rows.rows, names, (False, True) + (False,) * (len(names) - 2), kernel.n_scalars)
    fill_scalars(table.scalars)
    kernel(table, hyper)
    rows.finish()


class FusedOptimizer(Optimizer):
    """An optimizer whose update is one C kernel per group (see the module docstring).

    Subclasses set ``_spec`` (their ``fastopt._spec.Spec``: kernel, options, buffers, scalars) and pass
    ``self._spec.options_from(locals())`` from their explicit ``__init__``; the group check, the active buffers, the
    kernel's hyper block and the per-tensor scalars all come from the spec. ``_has_step`` says whether state keeps
    a ``step`` count.

    Optional hooks: ``_initial_buffer`` (a new state buffer's contents; zeros by default, Adagrad's start at
    ``initial_accumulator_value``), ``_scalar_state`` (per-parameter float state such as NAdam's
    ``mu_product``, ASGD's ``eta`` and ``mu``: ``(key, initial value or function of the group)`` pairs; 0-d arrays checked in the validation pass, created with the
    new state and loadable from a state dict) and ``_fill_scalars_from_state`` (like ``_fill_scalars`` but also given the
    live per-parameter state dicts, to advance such scalars as the step is committed).
    """

    _spec: Spec
    _buffers: tuple[str, ...] = ()  # from the spec
    _n_scalars: int = 0  # from the spec (the C table)
    _has_step: bool = True
    _fresh_uses_grad: tuple[str, ...] = ()  # buffers that a new state takes from the first gradient (SGD's)
    # Per-parameter scalar state: (key, initial value). Each is a 0-d array, created in float32 (torch's default
    # dtype for scalar state tensors); a loaded one keeps the dtype it was saved with (float32 or float64), so a
    # resumed run continues bit for bit and a torch state converted with np.asarray continues as torch does.
    _scalar_state: tuple[tuple[str, Any], ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("_spec")
        if spec is None:
            return
        cls._buffers = spec.buffers
        cls._n_scalars = spec.n_scalars
        # torch's explicit signature stays on the class; its defaults must be the spec's
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name in spec.defaults and param.default is not inspect.Parameter.empty:
                if param.default != spec.defaults[name] or type(param.default) is not type(spec.defaults[name]):
                    raise TypeError(f"{cls.__name__}.__init__ has {name}={param.default!r}, its spec "
                                    f"{spec.defaults[name]!r}")

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._cache: dict[int, tuple[tuple, Any]] = {}
        self._plans: list[K.StepPlan] | None = None
        self._checked_defaults = dict(defaults)  # checked by the constructor (Spec.options_from)
        super().__init__(params, defaults)

    def _groups_changed(self) -> None:
        self._cache = {}
        self._plans = None

    def _check_group(self, group: dict[str, Any]) -> None:
        """``Spec.check``, skipped when every option is the very (immutable) object the constructor checked, so
        constructing an optimizer checks its options once."""
        checked = self._checked_defaults
        for name in self._spec.names:
            if name not in group or group[name] is not checked.get(name, _MISSING) or not _immutable(group[name]):
                self._spec.check(group)
                return

    def _active(self, group: dict[str, Any]) -> tuple[bool, ...]:
        return self._spec.active(group)

    def _hyper(self, group: dict[str, Any]) -> bytes:
        return self._spec.hyper(group)

    def _fill_scalars(self, group: dict[str, Any], scalars: np.ndarray, steps: list[int], fresh: list[bool]) -> None:
        """Write the per-tensor scalars; ``steps`` are the counts after this step, ``fresh`` marks new state."""
        self._spec.fill(group, scalars, steps, fresh)

    def _fill_scalars_from_state(self, group: dict[str, Any], scalars: np.ndarray, steps: list[int],
                                 fresh: list[bool], states: list[dict[str, Any]]) -> None:
        """As ``_fill_scalars``, also given each tensor's live state dict (step already advanced): the place to
        advance ``_scalar_state`` values. Runs after validation, once per step, just before the kernel."""
        self._fill_scalars(group, scalars, steps, fresh)

    def _initial_buffer(self, group: dict[str, Any], key: str, data: np.ndarray) -> np.ndarray:
        """A new state buffer ``key`` for a parameter whose array is ``data`` (zeros unless overridden), placed at
        the same offset within a cache line as ``data`` so that the kernels' aligned loops suit both."""
        return zeros_like_aligned(data)

    def _load_param_state(self, pstate: Any, group: dict[str, Any], p: Any, gi: int, j: int) -> dict:
        if not self._scalar_state or not isinstance(pstate, dict) or not pstate:
            return super()._load_param_state(pstate, group, p, gi, j)
        rest = dict(pstate)
        scalars = {}
        for key, _ in self._scalar_state:
            if key not in rest:
                raise ValueError(f"{V.where(gi, j)}: saved state has keys {sorted(pstate)} but lacks '{key}'")
            value = rest.pop(key)
            dtype = value.dtype if isinstance(value, np.ndarray) and value.dtype in V.FLOAT_DTYPES else np.float64
            scalars[key] = np.array(_scalar_value(value, key, gi, j), dtype=dtype)
        out = super()._load_param_state(rest, group, p, gi, j)
        out.update(scalars)
        return out

    def _state_spec(self, group: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        arrays = tuple(k for k, on in zip(self._buffers, self._active(group)) if on)
        return arrays, (("step",) if self._has_step else ())

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        r"""Perform one step over every group (one kernel call per group). Returns the closure's loss."""
        plans = self._plans
        if closure is None and plans is not None and len(plans) == 1 and len(self.param_groups) == 1:
            if plans[0].step(self.param_groups[0], self.state):  # the repeated step: one call
                return None
        loss = None
        if closure is not None:
            loss = closure()
        if plans is not None and self._fast_step():
            return loss
        plans = []
        for gi, group, with_grads in self._groups_with_grads():
            active = self._active(group)
            items = []
            for j, p, g in with_grads:
                data = V.param_data(p, gi, j)
                grad = V.grad(g, gi, j, data)
                st = self.state.get(p)
                if st:
                    for key, on in zip(self._buffers, active):
                        if on and key in st:
                            V.state_buffer(st[key], key, data, gi, j)
                    if self._has_step:
                        V.step_count(st.get("step", 0), gi, j)
                    for key, _ in self._scalar_state:
                        if key in st:
                            _scalar_value(st[key], key, gi, j)
                items.append((p, data, grad, st))
            plans.append((gi, group, active, items))
        V.no_overlap(self._step_arrays(plans))
        # Pass 2: stage the new state and build (or reuse) the pointer tables; the tables check every buffer
        # again, including overlaps between parameters. Nothing visible has changed yet.
        launches = []
        for gi, group, active, items in plans:
            by_dtype: dict[np.dtype, list] = {}
            for item in items:
                by_dtype.setdefault(item[1].dtype, []).append(item)
            for dtype, its in by_dtype.items():
                launches.append(self._prepare(gi, group, active, dtype, its))
        # Pass 3: commit state and step counts, run each kernel once, copy scratch back.
        fast: list[K.StepPlan] | None = [] if len(launches) == len(self.param_groups) and self._fast_path_ok() else None
        for group, active, table, rows, commits in launches:
            steps: list[int] = []
            fresh: list[bool] = []
            states: list[dict[str, Any]] = []
            for p, st, new_keys, is_fresh in commits:
                live = self.state[p]
                live.update(new_keys)
                if self._has_step:
                    live["step"] = int(live.get("step", 0)) + 1
                    steps.append(live["step"])
                fresh.append(is_fresh)
                states.append(live)
            self._fill_scalars_from_state(group, table.scalars, steps, fresh, states)
            hyper = self._hyper(group)
            self._spec.kernel(table, hyper)
            table.release(1)
            rows.finish()
            if fast is not None:
                if (rows.copy_back or len(commits) != len(group["params"]) or group is not launches[len(fast)][0]
                        or not _cacheable(group)):
                    fast = None
                else:
                    fast.append(self._step_plan(group, table, hyper))
        self._plans = fast
        if fast is not None and len(fast) > 1:  # what the fast path checks new gradients against
            self._written = [a for group in self.param_groups for p in group["params"]
                             for a in (p.data, *(self.state[p].get(k) for k in self._buffers)) if a is not None]
        return loss

    def _step_arrays(self, plans: list) -> list[tuple[np.ndarray | None, bool, str, str]]:
        """Every array a step reads or writes, for the one overlap check across all groups and dtypes."""
        out = []
        for gi, _, active, items in plans:
            for (p, data, grad, st), j in zip(items, self._indices(gi, items)):
                place = V.where(gi, j)
                out.append((data, True, place, "data"))
                out.append((grad, False, place, "grad"))
                if st:
                    out.extend((st[k], True, place, f"state '{k}'") for k, on in zip(self._buffers, active)
                               if on and k in st)
        return out

    def _indices(self, gi: int, items: list) -> list[int]:
        ids = {id(p): j for j, p in enumerate(self.param_groups[gi]["params"])}
        return [ids[id(item[0])] for item in items]

    def _fast_path_ok(self) -> bool:
        """The cached-plan path repeats only table, step counts and ``_fill_scalars``: optimizers with scalar state
        (ASGD, NAdam) always take the full path, which checks and advances it."""
        return not self._scalar_state and type(self)._fill_scalars_from_state is FusedOptimizer._fill_scalars_from_state

    def _step_plan(self, group: dict[str, Any], table: Any, hyper: bytes) -> K.StepPlan:
        """The repeated step of ``group`` (see ``K.StepPlan``), made after a full step of it succeeded."""
        spec = self._spec
        keys = tuple(k for k in group if k not in _NOT_OPTIONS)
        n = len(group["params"])
        fresh = [False] * n  # a repeated step never creates state
        at_step = spec.at_step(group) if spec.at_step is not None else None
        fill = None
        if self._has_step and spec.n_scalars and (at_step is not None or spec._fill is not None):
            fill = lambda scalars, steps: spec.fill(group, scalars, steps, fresh)  # noqa: E731
        else:  # constant scalars: as a repeated step sees them
            spec.fill(group, table.scalars, [], fresh)
        return K.StepPlan(table, spec.kernel, hyper, group["params"], keys, tuple(group[k] for k in keys),
                          self._has_step, at_step, fill)

    def _fast_step(self) -> bool:
        """Repeat the last step's plans if nothing they relied on changed (one Cython call per group); False, with
        nothing done, otherwise."""
        plans = self._plans
        groups = self.param_groups
        if len(plans) != len(groups):
            return False
        if len(plans) == 1:
            return plans[0].step(groups[0], self.state)
        state = self.state
        for plan, group in zip(plans, groups):
            if not plan.bind(group, state):
                return False
        # each table checked its own gradients; across groups, the one overlap check
        grads = [g for plan in plans for g in plan.grads]
        if K.find_overlap(self._written + grads, [True] * len(self._written) + [False] * len(grads)) is not None:
            return False  # the full path names the conflict
        for plan in plans:
            plan.run()
        return True

    def _prepare(self, gi: int, group: dict[str, Any], active: tuple[bool, ...], dtype: np.dtype,
                 items: list) -> tuple:
        rows = _Rows()
        commits = []
        for p, data, grad, st in items:
            st = st or {}
            new_keys = {}
            is_fresh = False
            for key, on in zip(self._buffers, active):
                if on and key not in st:
                    new_keys[key] = self._initial_buffer(group, key, data)
                    is_fresh = is_fresh or key in self._fresh_uses_grad
            for key, init in self._scalar_state:
                if key not in st:
                    new_keys[key] = np.array(init(group) if callable(init) else init, dtype=np.float32)
            bufs = [(st[k] if k in st else new_keys[k]) if on else None for k, on in zip(self._buffers, active)]
            rows.add(data, grad, bufs)
            commits.append((p, st, new_keys, is_fresh))
        table = self._table((gi, dtype.num), rows, active)
        return group, active, table, rows, commits

    def _table(self, key0: tuple, rows: _Rows, active: tuple[bool, ...]) -> Any:
        """The pointer table for these rows, reused while the written arrays are the same objects."""
        key = (active, tuple(id(a) for r in rows.rows for k, a in enumerate(r) if k != 1))
        cached = self._cache.get(key0)
        if cached is not None and cached[0] == key and not rows.copy_back:
            table = cached[1]
            if table.set_grads(rows.grads) < 0:
                return table
        names = ("param", "grad") + self._buffers
        table = K.TensorTable(rows.rows, names, (False, True) + (False,) * len(self._buffers), self._n_scalars)
        if not rows.copy_back:
            self._cache[key0] = (key, table)
        return table
