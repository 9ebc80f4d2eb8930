"""The per-parameter state of ``FusedOptimizer``: new buffers, scalar state, and loading a saved state.

A new state buffer is zeros (or the algorithm's start value) placed at the parameter's offset within a cache line
(``fastopt._memory``), so the kernels' aligned loops suit both; a step's new zero buffers of one key are consecutive
views of one allocation (``zeros_aligned_many``), so that many small tensors' state streams are contiguous and in
huge pages. Scalar state (NAdam's ``mu_product``, ASGD's
``eta`` and ``mu``) is a 0-d array per parameter in ``scalar_dtype(param)``: float64 for a float64 parameter (torch
under ``torch.set_default_dtype(torch.float64)``), float32 otherwise (torch's default scalar dtype). It is checked by
``_validate.scalar_state``, and a saved value is loaded cast to that dtype, as torch's ``load_state_dict`` casts it to
the parameter's dtype (so a torch checkpoint's float32 scalar continues as float64 on a float64 parameter).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import _validate as V
from ._memory import zeros_aligned_many

if TYPE_CHECKING:  # the mixin is only ever a base of FusedOptimizer, next to Optimizer (no import cycle at run time)
    from .optimizer import Optimizer as _Base
else:
    _Base = object

__all__ = ["StateMixin", "scalar_dtype"]

_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)


def scalar_dtype(dtype: Any) -> np.dtype:
    """The dtype of the scalar state of a parameter of this dtype: float64 for float64 parameters, float32 (torch's
    default scalar dtype) for every other dtype. (Per-step factors are computed in double, as torch computes them in
    Python floats, and rounded to the parameter's dtype by the kernel.)"""
    return _F64 if dtype == _F64 else _F32


class StateMixin(_Base):
    """Mixin of ``FusedOptimizer``: how its state is created, described and loaded."""

    _buffers: tuple[str, ...] = ()
    _has_step: bool = True
    _fresh_uses_grad: tuple[str, ...] = ()  # buffers that a new state takes from the first gradient (SGD's)
    # Per-parameter scalar state: (key, initial value or function of the group). Each is a 0-d array in
    # scalar_dtype(param dtype), new (_initial_scalar) or loaded (cast, as torch casts it to the parameter's dtype).
    _scalar_state: tuple[tuple[str, Any], ...] = ()

    if TYPE_CHECKING:
        def _active(self, group: dict[str, Any]) -> tuple[bool, ...]:
            """Which state buffers the group's options use (FusedOptimizer's, from its spec)."""

    def _fill_buffer(self, group: dict[str, Any], key: str, buf: np.ndarray, data: np.ndarray) -> None:
        """Give a new state buffer ``key`` (zeros, shaped and typed as the parameter's array ``data``) its starting
        contents in place; the default leaves it zero (Adagrad fills its start value, Rprop its step size,
        Schedule-Free and Prodigy copy the parameter)."""

    def _initial_buffers(self, group: dict[str, Any], key: str, datas: list[np.ndarray]) -> list[np.ndarray]:
        """The new state buffers ``key`` of one step's parameters of a group (arrays ``datas``, one dtype), in order:
        consecutive views of one allocation per key (the state arena, ``fastopt._memory.zeros_aligned_many``:
        contiguous, huge-page backed when large, each co-aligned with its parameter), their contents from
        ``_fill_buffer``. So a model's many small tensors stream their state as one tensor's, whatever its start."""
        bufs = zeros_aligned_many(datas)
        if type(self)._fill_buffer is not StateMixin._fill_buffer:
            for buf, data in zip(bufs, datas):
                self._fill_buffer(group, key, buf, data)
        return bufs

    def _initial_scalar(self, group: dict[str, Any], init: Any, data: np.ndarray) -> np.ndarray:
        """A new scalar state value (``init``: a number or a function of the group) for a parameter whose array is
        ``data``: a 0-d array in ``scalar_dtype(data.dtype)``."""
        return np.array(init(group) if callable(init) else init, dtype=scalar_dtype(data.dtype))

    def _load_param_state(self, pstate: Any, group: dict[str, Any], p: Any, gi: int, j: int) -> dict:
        if not self._scalar_state or not isinstance(pstate, dict) or not pstate:
            return super()._load_param_state(pstate, group, p, gi, j)
        rest = dict(pstate)
        scalars = {}
        for key, _ in self._scalar_state:
            if key not in rest:
                raise ValueError(f"{V.where(gi, j)}: saved state has keys {sorted(pstate)} but lacks '{key}'")
            value = V.scalar_state(rest.pop(key), key, gi, j)  # checked first: a float, exact for either dtype
            scalars[key] = np.array(value, dtype=scalar_dtype(p.data.dtype))
        out = super()._load_param_state(rest, group, p, gi, j)
        out.update(scalars)
        return out

    def _state_spec(self, group: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        arrays = tuple(k for k, on in zip(self._buffers, self._active(group)) if on)
        return arrays, (("step",) if self._has_step else ())
