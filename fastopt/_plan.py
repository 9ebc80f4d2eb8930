"""The plan cache of ``FusedOptimizer``: what a repeated step reuses, and the repeated step itself.

After a full step of every group succeeded, ``_step_plan`` records each as a ``fastopt._kernels.StepPlan`` (its
pointer table, a snapshot of the group and of its parameters' state, packed hyper block, scalar rule), and the
optimizer keeps them as one ``StepPlans`` (``_set_plans``; the low-precision modes of fastopt/_lowp.py make theirs
the same way, one plan per table: a group of several formats has several); the next ``step``
(``fastopt._kernels.fused_step``) runs them in one Cython call, lock and checks included, while nothing they relied
on changed. Pointer tables are also cached per (group, dtype) for the full path (``_table``), reused while the
written arrays are the same objects.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import _kernels as K

if TYPE_CHECKING:  # the mixin is only ever a base of FusedOptimizer, next to Optimizer (no import cycle at run time)
    from ._spec import Spec
    from .optimizer import Optimizer as _Base
else:
    _Base = object

__all__ = ["PlanCache", "immutable", "cacheable", "NOT_OPTIONS"]

# Option values whose equality and type pin down validity: a group whose options all have these types (or are
# tuples of them) can skip re-validation while its options are unchanged. Anything else is re-checked every step.
_IMMUTABLE = (bool, int, float, str, type(None), np.bool_, np.integer, np.floating)
NOT_OPTIONS = ("params", "param_names")


def immutable(v: Any) -> bool:
    if type(v) is tuple:
        return all(isinstance(x, _IMMUTABLE) for x in v)
    return isinstance(v, _IMMUTABLE)


def cacheable(group: dict[str, Any]) -> bool:
    """A group whose options can be compared by value (and tuples by identity) to reuse its step plan."""
    return all(immutable(v) for k, v in group.items() if k not in NOT_OPTIONS)


class PlanCache(_Base):
    """Mixin of ``FusedOptimizer``: the cached step plans and pointer tables (see the module docstring)."""

    _cache: dict[Any, tuple[tuple, Any]]
    _plans: K.StepPlans | None
    _fast_steps_done: int = 0  # repeated steps run by plans since replaced (see _fast_steps)
    # set by FusedOptimizer (from its spec) and StateMixin
    _spec: Spec
    _has_step: bool
    _buffers: tuple[str, ...]
    _n_scalars: int

    @property
    def _fast_steps(self) -> int:
        """How many steps the cached plans ran (the repeated step, in C), over this optimizer's life: the counter
        the fast-path tests assert by."""
        return self._fast_steps_done + (self._plans.runs if self._plans is not None else 0)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_cache"], state["_plans"] = {}, None  # pointer tables are rebuilt by the copy's first step
        return state

    def _step_plan(self, group: dict[str, Any], table: Any, hyper: bytes, *, kernel: K.Kernel | None = None,
                   counts: bool | None = None, **where: Any) -> K.StepPlan:
        """The repeated step of ``group``'s ``table`` (see ``K.StepPlan``), made after a full step of it succeeded.

        The table's kernel is the spec's unless ``kernel`` is given (a low-precision kernel whose per-tensor scalars
        begin with the spec's: they are filled as for the spec's kernel, from its C step scalars if it has them);
        ``counts`` says whether the state keeps step counts (default ``_has_step``: a compressed mode keeps them
        even where the float32 optimizer does not, and its scalars still depend on the step only if the float32
        optimizer's do); ``where`` passes ``StepPlan``'s table layout (index, param_pos, grad_pos, grad_dtype,
        count_col)."""
        spec = self._spec
        keys = tuple(k for k in group if k not in NOT_OPTIONS)
        fresh = [False] * table.n_tensors  # a repeated step never creates state
        at_step = spec.at_step(group) if spec.at_step is not None and not spec.kernel_scalars else None
        fill = None
        if self._has_step and spec.n_scalars and (spec.at_step is not None or spec._fill is not None):
            fill = lambda scalars, steps: spec.fill(group, scalars, steps, fresh)  # noqa: E731
        else:  # constant scalars: as a repeated step sees them
            spec.fill(group, table.scalars, [], fresh)
        if kernel is not None and kernel is not spec.table_kernel and spec.kernel_scalars:
            where["scalars_from"] = (spec.table_kernel, spec.hyper(group))
        return K.StepPlan(table, spec.table_kernel if kernel is None else kernel, hyper, group, self.state, keys,
                          self._has_step if counts is None else counts, at_step, fill, spec.kernel_scalars, **where)

    def _set_plans(self, plans: list[K.StepPlan] | None, group_of: tuple[int, ...] | None = None) -> None:
        """Keep ``plans`` (``K.StepPlans``: ``group_of`` gives each plan's group, default one plan per group) for the
        next repeated step, or none (None), counting the repeated steps the plans they replace ran."""
        if self._plans is not None:
            self._fast_steps_done += self._plans.runs
        self._plans = (K.StepPlans(plans, self._step_pre_hooks, self._step_post_hooks, group_of)
                       if plans is not None else None)

    def _table(self, key0: tuple, rows: Any, active: tuple[bool, ...]) -> Any:
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

    def _groups_changed(self) -> None:
        self._cache = {}
        self._set_plans(None)  # (the steps the plans ran still count)
