r"""Stochastic weight averaging and exponential moving averages of Parameters
(``torch.optim.swa_utils.AveragedModel`` for fastopt), updated by a C kernel (csrc/averaging.c).

Use with :class:`fastopt.lr_scheduler.SWALR` as in torch:

>>> avg = AveragedParameters(params)                     # SWA: equal-weight average
>>> ema = AveragedParameters(params, multi_avg_fn=get_ema_multi_avg_fn(0.999))
>>> # after each optimizer.step() in the averaging phase: avg.update_parameters(params); swa_sched.step()
>>> # evaluate with avg.params, or avg.copy_to(params) to load the average into the model

Differences from torch, on purpose:

- the averaged object is a list of Parameters (``.params``), not a module: there is no ``forward``, no
  ``device`` and no ``use_buffers`` (no buffers exist); ``update_bn`` has no counterpart.
- ``avg_fn`` / ``multi_avg_fn`` choose among the four rules torch ships — :func:`get_swa_avg_fn`,
  :func:`get_swa_multi_avg_fn`, :func:`get_ema_avg_fn`, :func:`get_ema_multi_avg_fn` (or the string ``"swa"``)
  — each computed in C exactly as torch computes it; any other callable raises TypeError (the update runs
  in C and cannot call Python per element).
- ``state_dict()`` is ``{'n_averaged': int, 'params': [arrays]}`` (plain data for :func:`fastopt.save`);
  the averaging rule is not saved, as in torch.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _kernels as K
from . import _validate as V
from .parameter import Parameter

_AVERAGE = K.KERNELS["average"]

__all__ = ["AveragedParameters", "AvgRule", "get_ema_avg_fn", "get_ema_multi_avg_fn", "get_swa_avg_fn",
           "get_swa_multi_avg_fn"]


class AvgRule:
    r"""An averaging rule that :class:`AveragedParameters` runs in C: one of torch's four.

    Made by the ``get_*_avg_fn`` functions; ``kind`` is ``'swa'`` or ``'ema'``, ``multi`` tells the multi-tensor
    (lerp) form from the single-tensor one, ``decay`` is the EMA decay (None for SWA).

    Example:
        >>> rule = fastopt.swa_utils.get_ema_multi_avg_fn(0.99)
        >>> rule
        get_ema_multi_avg_fn(0.99)
        >>> rule.kind, rule.multi, rule.decay
        ('ema', True, 0.99)
    """

    __slots__ = ("kind", "multi", "decay")

    def __init__(self, kind: str, multi: bool, decay: float | None = None) -> None:
        self.kind, self.multi, self.decay = kind, multi, decay

    def __repr__(self) -> str:
        fn = f"get_{self.kind}_{'multi_' if self.multi else ''}avg_fn"
        return f"{fn}({'' if self.decay is None else self.decay})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AvgRule) and (self.kind, self.multi, self.decay) == (other.kind, other.multi,
                                                                                      other.decay)

    def __hash__(self) -> int:
        return hash((self.kind, self.multi, self.decay))

    def _mode(self, n_averaged: int, dtype: np.dtype) -> tuple[int, float]:
        """(kernel mode, weight) for an update of ``dtype`` averages after ``n_averaged`` models were averaged."""
        if self.kind == "swa":
            if self.multi:  # torch: lerp with weight 1 / (n_averaged + 1), a tensor of torch's default dtype:
                d = np.dtype(dtype).type  # float32, or float64 for float64 params (set_default_dtype(float64))
                return K.AVG_LERP, float(d(1.0) / d(n_averaged + 1))
            return K.AVG_SWA, float(n_averaged + 1)
        assert self.decay is not None
        if self.multi:
            return K.AVG_LERP, 1.0 - self.decay
        return K.AVG_EMA, self.decay


def _decay(decay: Any) -> float:
    d = V.number("decay", decay, message=f"Invalid decay value {decay} provided. Please provide a value in "
                                         "[0,1] range.")
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")
    return d


def get_ema_multi_avg_fn(decay: float = 0.999) -> AvgRule:
    r"""EMA in torch's multi-tensor form: :math:`a \leftarrow \mathrm{lerp}(a, p, 1 - \text{decay})`.

    Args:
        decay (float, optional): the decay, in [0, 1] (default: 0.999).

    Example:
        >>> w = fastopt.Parameter(np.zeros(2))
        >>> from fastopt.swa_utils import AveragedParameters, get_ema_multi_avg_fn
        >>> ema = AveragedParameters([w], multi_avg_fn=get_ema_multi_avg_fn(0.9))
        >>> ema.update_parameters([w])  # the first update copies w
        >>> w.data[:] = 1.0
        >>> ema.update_parameters([w])
        >>> print(np.round(ema.params[0].data, 4))
        [0.1 0.1]
    """
    return AvgRule("ema", True, _decay(decay))


def get_ema_avg_fn(decay: float = 0.999) -> AvgRule:
    r"""EMA in torch's single-tensor form: :math:`a \leftarrow \text{decay}\cdot a + (1-\text{decay})\cdot p`.

    Args:
        decay (float, optional): the decay, in [0, 1] (default: 0.999).

    Example:
        >>> w = fastopt.Parameter(np.zeros(2))
        >>> from fastopt.swa_utils import AveragedParameters, get_ema_avg_fn
        >>> ema = AveragedParameters([w], avg_fn=get_ema_avg_fn(0.9))
        >>> ema.update_parameters([w])  # the first update copies w
        >>> w.data[:] = 1.0
        >>> ema.update_parameters([w])
        >>> print(np.round(ema.params[0].data, 4))
        [0.1 0.1]
    """
    return AvgRule("ema", False, _decay(decay))


def get_swa_multi_avg_fn() -> AvgRule:
    r"""SWA in torch's multi-tensor form: :math:`a \leftarrow \mathrm{lerp}(a, p, 1/(n+1))`, the weight rounded
    to the averages' dtype (float32 for float32 params, as torch's tensor weight under its default dtype; float64
    for float64 params, as torch under ``set_default_dtype(float64)``).

    Example:
        >>> w = fastopt.Parameter(np.zeros(2))
        >>> from fastopt.swa_utils import AveragedParameters, get_swa_multi_avg_fn
        >>> swa = AveragedParameters([w], multi_avg_fn=get_swa_multi_avg_fn())
        >>> for value in (1.0, 2.0, 6.0):
        ...     w.data[:] = value
        ...     swa.update_parameters([w])
        >>> print(np.round(swa.params[0].data, 4), swa.n_averaged)
        [3. 3.] 3
    """
    return AvgRule("swa", True)


def get_swa_avg_fn() -> AvgRule:
    r"""SWA in torch's single-tensor form, the default on CPU: :math:`a \leftarrow a + (p - a)/(n+1)`.

    Example:
        >>> w = fastopt.Parameter(np.zeros(2))
        >>> from fastopt.swa_utils import AveragedParameters, get_swa_avg_fn
        >>> swa = AveragedParameters([w], avg_fn=get_swa_avg_fn())
        >>> for value in (1.0, 2.0, 6.0):
        ...     w.data[:] = value
        ...     swa.update_parameters([w])
        >>> print(np.round(swa.params[0].data, 4), swa.n_averaged)
        [3. 3.] 3
    """
    return AvgRule("swa", False)


def _rule(avg_fn: Any, multi_avg_fn: Any) -> AvgRule:
    if avg_fn is not None and multi_avg_fn is not None:
        raise ValueError("Only one of avg_fn and multi_avg_fn should be provided")
    for name, value, multi in (("avg_fn", avg_fn, False), ("multi_avg_fn", multi_avg_fn, True)):
        if value is None:
            continue
        if isinstance(value, str):
            if value != "swa":
                raise ValueError(f"{name} must be 'swa' or a rule from fastopt.swa_utils.get_*_avg_fn, got {value!r}"
                                 " (for EMA use get_ema_multi_avg_fn(decay))")
            return AvgRule("swa", multi)
        if isinstance(value, AvgRule):
            return value
        raise TypeError(f"{name} must be None, 'swa' or a rule from fastopt.swa_utils.get_*_avg_fn (SWA or EMA), "
                        f"got {value!r}; arbitrary callables are not supported (the update runs in C)")
    return AvgRule("swa", False)  # torch's default on CPU


def _param_list(params: Any, what: str) -> list[Parameter]:
    if isinstance(params, Parameter):
        return [params]
    if isinstance(params, np.ndarray) or not isinstance(params, Iterable):
        raise TypeError(f"{what} must be a Parameter or an iterable of Parameters, got {type(params).__name__}")
    out = list(params)
    for i, p in enumerate(out):
        if not isinstance(p, Parameter):
            raise TypeError(f"{what}[{i}] must be a fastopt.Parameter, got {type(p).__name__}")
    return out


class AveragedParameters:
    r"""SWA or EMA copies of a list of Parameters (torch's ``AveragedModel`` over parameters).

    The first :meth:`update_parameters` copies the parameters; each later one applies the rule, with
    :math:`n` = ``n_averaged`` (the number of updates so far):

    .. math::
        \text{SWA: } a \leftarrow a + \frac{p - a}{n + 1}\qquad
        \text{EMA: } a \leftarrow \text{decay}\cdot a + (1 - \text{decay})\, p

    (the multi-tensor forms compute the same with a lerp, as torch's ``get_*_multi_avg_fn``). Arithmetic is in
    each parameter's dtype, in torch's order of operations, one C kernel call per dtype.

    Args:
        params (Parameter or iterable of Parameter): the parameters to average (float32/float64; copied, so
            later changes to them do not touch the averages).
        avg_fn (AvgRule or 'swa', optional): :func:`get_swa_avg_fn` or :func:`get_ema_avg_fn` (default: None).
        multi_avg_fn (AvgRule or 'swa', optional): :func:`get_swa_multi_avg_fn` or
            :func:`get_ema_multi_avg_fn` (default: None). With neither, equal-weight SWA as torch on CPU.

    Attributes:
        params (list[Parameter]): the averaged Parameters (C-contiguous arrays, grads None); evaluate with them.
        n_averaged (int): how many times :meth:`update_parameters` ran.

    Example:
        >>> avg = AveragedParameters([w, b], multi_avg_fn=get_ema_multi_avg_fn(0.99))
        >>> avg.update_parameters([w, b])
        >>> avg.copy_to([w, b])
    """

    def __init__(self, params: Parameter | Iterable[Parameter], avg_fn: AvgRule | str | None = None,
                 multi_avg_fn: AvgRule | str | None = None) -> None:
        self.avg_rule = _rule(avg_fn, multi_avg_fn)
        src = _param_list(params, "params")
        if not src:
            raise ValueError("AveragedParameters got an empty parameter list")
        for i, p in enumerate(src):
            if not isinstance(p.data, np.ndarray) or p.data.dtype not in V.FLOAT_DTYPES:
                raise TypeError(f"params[{i}] must hold a float32 or float64 ndarray")
        self.params: list[Parameter] = [
            Parameter(np.array(p.data, order="C", copy=True), name=p.name) for p in src]
        self.n_averaged = 0

    def __repr__(self) -> str:
        return f"AveragedParameters({len(self.params)} params, {self.avg_rule!r}, n_averaged={self.n_averaged})"

    def _check_like(self, params: Any, what: str, writeable: bool) -> list[Parameter]:
        ps = _param_list(params, what)
        if len(ps) != len(self.params):
            raise ValueError(f"{what} has {len(ps)} parameters, the average has {len(self.params)}")
        for i, (p, a) in enumerate(zip(ps, self.params)):
            d = p.data
            if not isinstance(d, np.ndarray) or d.shape != a.data.shape or d.dtype != a.data.dtype:
                raise ValueError(f"{what}[{i}] is {getattr(d, 'dtype', type(d).__name__)}"
                                 f"{list(getattr(d, 'shape', ()))}, the average is {a.data.dtype}{list(a.data.shape)}")
            if writeable and not d.flags.writeable:
                raise ValueError(f"{what}[{i}] is read-only")
        return ps

    def update_parameters(self, params: Parameter | Iterable[Parameter]) -> None:
        r"""Fold the current values of ``params`` into the averages, then count one more (``n_averaged += 1``).

        Args:
            params (Parameter or iterable of Parameter): the same parameters (count, shapes, dtypes) as given
                to the constructor, in the same order; checked before anything changes.
        """
        ps = self._check_like(params, "params", writeable=False)
        V.no_overlap([(a.data, True, f"the average of params[{i}]", "data") for i, a in enumerate(self.params)]
                     + [(p.data, False, f"params[{i}]", "data") for i, p in enumerate(ps)])
        if self.n_averaged == 0:
            for p, a in zip(ps, self.params):
                np.copyto(a.data, p.data)
        else:
            for dtype in V.FLOAT_DTYPES:
                mode, weight = self.avg_rule._mode(self.n_averaged, dtype)
                rows = [[a.data, p.data if p.data.flags.c_contiguous and p.data.flags.aligned
                         else np.ascontiguousarray(p.data)]
                        for p, a in zip(ps, self.params) if a.data.dtype == dtype]
                if rows:
                    _AVERAGE(K.TensorTable(rows, ("averaged", "param"), (False, True), 0),
                             _AVERAGE.pack({"mode": mode, "weight": weight}))
        self.n_averaged += 1

    def copy_to(self, params: Parameter | Iterable[Parameter]) -> None:
        """Copy the averaged values into ``params`` in place (same count, shapes and dtypes; all checked first)."""
        ps = self._check_like(params, "params", writeable=True)
        for p, a in zip(ps, self.params):
            np.copyto(p.data, a.data)

    def state_dict(self) -> dict[str, Any]:
        """``{'n_averaged': int, 'params': [arrays]}``; the arrays are the live averages (copy to keep a snapshot)."""
        return {"n_averaged": self.n_averaged, "params": [a.data for a in self.params]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load ``state_dict()``'s output: every array must match its averaged parameter's shape and dtype (no
        silent cast); values are copied into the existing arrays; on any error nothing changes."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"n_averaged", "params"}:
            raise ValueError("state_dict must be a dict with exactly 'n_averaged' and 'params'")
        n = V.step_count(state_dict["n_averaged"], None, None, "n_averaged")
        arrays = state_dict["params"]
        if not isinstance(arrays, (list, tuple)) or len(arrays) != len(self.params):
            raise ValueError(f"state_dict['params'] must be a list of {len(self.params)} arrays")
        for i, (x, a) in enumerate(zip(arrays, self.params)):
            if not isinstance(x, np.ndarray) or x.shape != a.data.shape or x.dtype != a.data.dtype:
                raise ValueError(f"state_dict['params'][{i}] is {getattr(x, 'dtype', type(x).__name__)}"
                                 f"{list(getattr(x, 'shape', ()))}, expected {a.data.dtype}{list(a.data.shape)}")
        for x, a in zip(arrays, self.params):
            np.copyto(a.data, x)
        self.n_averaged = n
