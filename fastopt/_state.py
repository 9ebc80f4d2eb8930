"""The per-parameter state of ``FusedOptimizer``: new buffers, scalar state, and loading a saved state.

A new state buffer is zeros (or the algorithm's start value) placed at the parameter's offset within a cache line
(``fastopt._memory``), so the kernels' aligned loops suit both. Scalar state (NAdam's ``mu_product``, ASGD's
``eta`` and ``mu``) is a 0-d array per parameter, checked by ``_validate.scalar_state`` and loadable from a state
dict in its saved dtype.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import _validate as V
from ._memory import zeros_like_aligned

if TYPE_CHECKING:  # the mixin is only ever a base of FusedOptimizer, next to Optimizer (no import cycle at run time)
    from .optimizer import Optimizer as _Base
else:
    _Base = object

__all__ = ["StateMixin"]


class StateMixin(_Base):
    """Mixin of ``FusedOptimizer``: how its state is created, described and loaded."""

    _buffers: tuple[str, ...] = ()
    _has_step: bool = True
    _fresh_uses_grad: tuple[str, ...] = ()  # buffers that a new state takes from the first gradient (SGD's)
    # Per-parameter scalar state: (key, initial value). Each is a 0-d array, created in float32 (torch's default
    # dtype for scalar state tensors); a loaded one keeps the dtype it was saved with (float32 or float64), so a
    # resumed run continues bit for bit and a torch state converted with np.asarray continues as torch does.
    _scalar_state: tuple[tuple[str, Any], ...] = ()

    if TYPE_CHECKING:
        def _active(self, group: dict[str, Any]) -> tuple[bool, ...]:
            """Which state buffers the group's options use (FusedOptimizer's, from its spec)."""

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
            scalars[key] = np.array(V.scalar_state(value, key, gi, j), dtype=dtype)
        out = super()._load_param_state(rest, group, p, gi, j)
        out.update(scalars)
        return out

    def _state_spec(self, group: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        arrays = tuple(k for k, on in zip(self._buffers, self._active(group)) if on)
        return arrays, (("step",) if self._has_step else ())
