"""The one-call-per-group machinery shared by every elementwise optimizer.

This module is the step driver; the plan cache (what a repeated step reuses, and that step) is ``_plan.py``, the
state (new buffers, scalar state, loading) ``_state.py``, the checks ``_validate.py`` and the algorithm's
declaration ``_spec.py``.

``FusedOptimizer.step`` validates every group (options, params, grads, existing state) before anything is
written, then creates missing state, advances step counters, fills the per-tensor scalars and runs the group's
C kernel once over all its tensors. ``run_functional`` is the same path for the functional forms, over plain
lists of arrays. A parameter or gradient that is not C-contiguous goes through a contiguous scratch copy, which
is copied back into the parameter after the kernel (so strided views are updated in place, correctly).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _kernels as K
from . import _lowp
from . import _validate as V
from ._plan import NOT_OPTIONS, PlanCache, cacheable
from ._spec import Spec
from ._state import StateMixin
from .optim._steps import next_steps, store_steps
from .optimizer import Optimizer, _wrap_step

__all__ = ["FusedOptimizer", "run_functional", "run_spec"]




def _contiguous(a: np.ndarray) -> bool:
    return a.flags.c_contiguous and a.flags.aligned


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
        state: list[np.ndarray | None] = []
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


def run_spec(spec: Spec, options: dict[str, Any], params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
             buffers: Sequence[Sequence[np.ndarray] | None], state_steps: Any = None) -> None:
    """A functional form whose kernel is ``spec``'s: check ``options`` (the spec's one check), compute the new step
    counts (if ``state_steps`` is given), run the kernel with the spec's scalars and hyper block, then store the
    counts. Nothing is written if a check fails."""
    options = spec.check(options)  # plain Python values (NumPy scalars and 1-element arrays unwrapped)
    steps = next_steps(state_steps, len(params)) if state_steps is not None else []
    run_functional(spec.table_kernel, spec.buffer_names, params, grads, buffers,
                   lambda s: spec.fill(options, s, steps, []), spec.hyper(options))
    if state_steps is not None:
        store_steps(state_steps, steps)


class FusedOptimizer(PlanCache, StateMixin, Optimizer):
    """An optimizer whose update is one C kernel per group (see the module docstring).

    Subclasses set ``_spec`` (their ``fastopt._spec.Spec``: kernel, options, buffers, scalars) and pass
    ``self._spec.options_from(locals())`` from their explicit ``__init__``; the group check, the active buffers, the
    kernel's hyper block and the per-tensor scalars all come from the spec. ``_has_step`` says whether state keeps
    a ``step`` count.

    Optional hooks: ``_fill_buffer`` (a new state buffer's contents, set in place in the state arena; zeros by
    default, Adagrad's start at ``initial_accumulator_value``), ``_scalar_state`` (per-parameter float state such
    as NAdam's ``mu_product``, ASGD's ``eta`` and ``mu``: ``(key, initial value or function of the group)`` pairs;
    0-d arrays checked in the validation pass, created with the new state and loadable from a state dict) and
    ``_fill_scalars_from_state`` (like ``_fill_scalars`` but also given the live per-parameter state dicts, to
    advance such scalars as the step is committed).
    """

    _spec: Spec
    _n_scalars: int = 0  # from the spec (the C table); _buffers too (StateMixin)
    _lowp: Any = None  # a fastopt._lowp.Compressed when the optimizer keeps compressed state (it runs the step)
    # the first-moment state key by which a float32-state optimizer that has compressed modes (state_dtype)
    # recognises a compressed saved state, to refuse it clearly (None: no compressed mode)
    _lowp_moment: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("_spec")
        if spec is None:
            return
        cls._buffers = spec.buffers
        cls._n_scalars = spec.n_scalars

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._cache: dict[int, tuple[tuple, Any]] = {}
        self._plans: K.StepPlans | None = None
        super().__init__(params, defaults)

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

    def _load_param_state(self, pstate: Any, group: dict[str, Any], p: Any, gi: int, j: int) -> dict:
        """A low-precision mode (fastopt/_lowp.py: 16-bit params, compressed state) checks and copies its own saved
        state; otherwise a compressed saved state is refused with a clear error, then the float32 check runs."""
        if isinstance(self._lowp, _lowp.LowParams):
            return self._lowp.load_param_state(pstate, p, gi, j, group)
        if self._lowp is not None:
            return self._lowp.load_param_state(pstate, p, gi, j)
        if self._lowp_moment is not None:
            _lowp.load_state_check(self, pstate, gi, j, self._lowp_moment)
        return super()._load_param_state(pstate, group, p, gi, j)

    step = K.fused_step  # the repeated step in one call into the extension, else _full_step

    @_wrap_step
    def _full_step(self, closure: Callable[[], Any] | None = None) -> Any:
        r"""The full step (``step`` when the repeated step's plans do not hold): run the closure, then the plans if
        they hold now, else validate every group, create missing state and run each group's kernel; new plans are
        made for the next step. Runs under the lock, with the step hooks (``_wrap_step``)."""
        if self._lowp is not None:  # compressed state: its own step path (fastopt/_lowp.py), under the same lock
            return self._lowp.step(self, closure)
        loss = None
        if closure is not None:
            loss = closure()
        plans = self._plans
        if plans is not None and plans.step(self.param_groups, self.state):
            return loss
        work = []  # per group: (gi, group, active buffers, checked items)
        for gi, group, checked in self._checked_groups():
            active = self._active(group)
            items = []
            for j, p, data, grad, st in checked:
                if st:
                    for key, on in zip(self._buffers, active):
                        if on and key in st:
                            V.state_buffer(st[key], key, data, gi, j)
                    if self._has_step:
                        V.step_count(st.get("step", 0), gi, j)
                    for key, _ in self._scalar_state:
                        if key in st:
                            V.scalar_state(st[key], key, gi, j)
                items.append((p, data, grad, st))
            work.append((gi, group, active, items))
        V.no_overlap(self._step_arrays(work))
        # Pass 2: stage the new state and build (or reuse) the pointer tables; the tables check every buffer
        # again, including overlaps between parameters. Nothing visible has changed yet.
        launches = []
        for gi, group, active, items in work:
            by_dtype: dict[np.dtype, list] = {}
            for item in items:
                by_dtype.setdefault(item[1].dtype, []).append(item)
            for dtype, its in by_dtype.items():
                launches.append(self._prepare(gi, group, active, dtype, its))
        self._run_launches(launches)
        return loss

    def _run_launches(self, launches: list) -> None:
        """Pass 3 of ``step``: commit state and step counts, run each kernel once, copy scratch back. ``launches``
        holds one ``(group, active, table, rows, commits)`` per group and dtype, everything validated and staged
        (an optimizer whose step is more than one kernel per group, such as Prodigy's two passes, overrides it)."""
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
            self._spec.table_kernel(table, hyper)
            table.release(1)
            rows.finish()
            if fast is not None:
                if (rows.copy_back or len(commits) != len(group["params"]) or group is not launches[len(fast)][0]
                        or not cacheable(group)):
                    fast = None
                else:
                    fast.append(self._step_plan(group, table, hyper))
        self._set_plans(fast)

    def _fast_path_ok(self) -> bool:
        """The cached-plan path repeats only table, step counts and ``_fill_scalars``: optimizers with scalar state
        (ASGD, NAdam) always take the full path, which checks and advances it."""
        return (not self._scalar_state
                and type(self)._fill_scalars_from_state is FusedOptimizer._fill_scalars_from_state)

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

    def _prepare(self, gi: int, group: dict[str, Any], active: tuple[bool, ...], dtype: np.dtype,
                 items: list) -> tuple:
        rows = _Rows()
        commits = []
        # every new buffer of a key at once, so that they can be consecutive views of one allocation (_state.py)
        fresh = {key: iter(self._initial_buffers(group, key, [it[1] for it in items if key not in (it[3] or {})]))
                 for key, on in zip(self._buffers, active) if on}
        for p, data, grad, st in items:
            st = st or {}
            new_keys = {}
            is_fresh = False
            for key, on in zip(self._buffers, active):
                if on and key not in st:
                    new_keys[key] = next(fresh[key])
                    is_fresh = is_fresh or key in self._fresh_uses_grad
            for key, init in self._scalar_state:
                if key not in st:
                    new_keys[key] = self._initial_scalar(group, init, data)
            bufs = [(st[k] if k in st else new_keys[k]) if on else None for k, on in zip(self._buffers, active)]
            rows.add(data, grad, bufs)
            commits.append((p, st, new_keys, is_fresh))
        table = self._table((gi, dtype.num), rows, active)
        return group, active, table, rows, commits
