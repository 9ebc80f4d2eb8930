"""Resilient backpropagation (torch.optim.Rprop)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag

__all__ = ["Rprop", "rprop"]


def _pair(name: str, value: Any) -> tuple[float, float]:
    a, b = V.pair(name, value)
    return V.number(f"{name}[0]", a), V.number(f"{name}[1]", b)


def _etas(etas: Any) -> tuple[float, float]:
    etaminus, etaplus = _pair("etas", etas)
    if not 0.0 < etaminus < 1.0 < etaplus:
        raise ValueError(f"Invalid eta values: {etaminus}, {etaplus}")
    return etaminus, etaplus


def _step_sizes(value: Any) -> tuple[float, float]:
    """(min, max) with 0 <= min <= max and max > 0: each step size is clamped into [min, max], which is empty when
    min > max, and a negative bound would step uphill."""
    lo, hi = _pair("step_sizes", value)
    if not (0.0 <= lo <= hi and hi > 0.0):
        raise ValueError(f"Invalid step_sizes values: {lo}, {hi} (expected 0 <= min <= max and max > 0)")
    return lo, hi


SPEC = Spec(
    "rprop",
    options=(Option("lr", 1e-2, V.lr, None),  # the initial step size (_fill_buffer)
             Option("etas", (0.5, 1.2), _etas, ("etaminus", "etaplus"), normalize=tuple),
             Option("step_sizes", (1e-6, 50), _step_sizes, ("step_size_min", "step_size_max"),
                    normalize=tuple),
             flag("maximize")),
    buffers=(Buffer("prev"), Buffer("step_size")),
)


def rprop(params: list[np.ndarray], grads: list[np.ndarray], prevs: list[np.ndarray],
          step_sizes: list[np.ndarray], state_steps: Any, *, step_size_min: float, step_size_max: float,
          etaminus: float, etaplus: float, maximize: bool) -> None:
    r"""Functional Rprop over lists of arrays (see :class:`Rprop` for the rule).

    ``params``, ``prevs`` (start: zeros) and ``step_sizes`` (start: filled with the learning rate) are updated in
    place; ``state_steps`` is advanced by one, as torch does (the rule does not use it).

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> prevs, step_sizes, steps = [np.zeros(2)], [np.full(2, 0.1)], [0]
        >>> for _ in range(2):  # the same gradient sign twice: the second step grows by etaplus
        ...     fastopt.functional.rprop([p], [g], prevs, step_sizes, steps, step_size_min=1e-6, step_size_max=50.0,
        ...                              etaminus=0.5, etaplus=1.2, maximize=False)
        >>> print(np.round(p, 4), np.round(step_sizes[0], 4), steps)
        [0.78 2.22] [0.12 0.12] [2]
    """
    options = dict(lr=1.0, etas=(etaminus, etaplus), step_sizes=(step_size_min, step_size_max), maximize=maximize)
    run_spec(SPEC, options, params, grads, [prevs, step_sizes], state_steps)


class Rprop(FusedOptimizer):
    r"""Resilient backpropagation (Riedmiller & Braun, 1993), as ``torch.optim.Rprop``.

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) \quad (\text{minus if maximize})\\
        \eta_t &= \begin{cases} \eta_+ & g_t\, g_{t-1} > 0\\ \eta_- & g_t\, g_{t-1} < 0\\
            1 & \text{otherwise} \end{cases}\\
        s_t &= \min(\max(\eta_t\, s_{t-1},\ \Gamma_{\min}),\ \Gamma_{\max})\\
        g_t &\leftarrow 0 \quad \text{where } \eta_t = \eta_-\\
        \theta_t &= \theta_{t-1} - \operatorname{sign}(g_t)\, s_t
        \end{aligned}

    with :math:`s_0 = \gamma` and :math:`g_0 = 0`; :math:`g_{t-1}` is the state ``prev`` (the gradient after the
    zeroing) and :math:`s` the state ``step_size``.

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma`, the initial step size (default: 1e-2).
        etas (tuple[float, float], optional): :math:`(\eta_-, \eta_+)`, with
            :math:`0 < \eta_- < 1 < \eta_+` (default: (0.5, 1.2)).
        step_sizes (tuple[float, float], optional): :math:`(\Gamma_{\min}, \Gamma_{\max})`, with
            :math:`0 \le \Gamma_{\min} \le \Gamma_{\max}` and :math:`\Gamma_{\max} > 0` (default: (1e-6, 50)).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step``, ``prev``, ``step_size``.

    Notes:
        As torch: a NaN product :math:`g_t g_{t-1}` counts as zero (factor 1), the step size clamp lets a NaN
        through, and ``lr`` only sets the initial step size of a parameter's state.

    References: Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP
        Algorithm", ICNN 1993.

    Example:
        >>> opt = fastopt.Rprop([w], lr=0.01, etas=(0.5, 1.2))
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))

    def _fill_buffer(self, group: dict[str, Any], key: str, buf: np.ndarray, data: np.ndarray) -> None:
        if key == "step_size":  # torch starts every step size at the learning rate
            buf.fill(float(group["lr"]))
