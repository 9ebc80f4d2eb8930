"""RMSprop (torch.optim.RMSprop)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_functional
from ._steps import next_steps, store_steps

__all__ = ["RMSprop", "rmsprop"]

_NAMES = ("param", "grad", "square_avg", "grad_avg", "momentum_buffer")


def _check(lr: Any, alpha: Any, eps: Any, weight_decay: Any, momentum: Any, centered: Any, maximize: Any) -> None:
    V.lr(lr)
    V.eps(eps)
    V.number("momentum", momentum, low=0.0)
    V.weight_decay(weight_decay)
    V.number("alpha", alpha, low=0.0)
    V.flag("centered", centered)
    V.flag("maximize", maximize)


def rmsprop(params: list[np.ndarray], grads: list[np.ndarray], square_avgs: list[np.ndarray],
            grad_avgs: list[np.ndarray], momentum_buffer_list: list[np.ndarray], state_steps: Any, *,
            lr: float, alpha: float, eps: float, weight_decay: float, momentum: float, centered: bool,
            maximize: bool) -> None:
    r"""Functional RMSprop over lists of arrays (see :class:`RMSprop` for the rule).

    ``grad_avgs`` is read only when ``centered``, ``momentum_buffer_list`` only when ``momentum > 0`` (pass
    ``[]`` otherwise). ``state_steps`` is advanced by one, as torch does (RMSprop's rule does not use it).

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> square_avgs, steps = [np.zeros(2)], [0]
        >>> fastopt.functional.rmsprop([p], [g], square_avgs, [], [], steps, lr=0.01, alpha=0.99, eps=1e-8,
        ...                            weight_decay=0.0, momentum=0.0, centered=False, maximize=False)
        >>> print(np.round(p, 4), np.round(square_avgs[0], 4))  # step lr * g / sqrt(0.01 * g**2) = 10 * lr
        [0.9 2.1] [0.01 0.01]
    """
    _check(lr, alpha, eps, weight_decay, momentum, centered, maximize)
    steps = next_steps(state_steps, len(params))
    run_functional(K.rmsprop, _NAMES, 0, params, grads,
                   [square_avgs, grad_avgs if centered else None, momentum_buffer_list if momentum > 0 else None],
                   lambda s: None,
                   (float(lr), float(alpha), float(eps), float(weight_decay), float(momentum), bool(centered),
                    bool(maximize)))
    store_steps(state_steps, steps)


class RMSprop(FusedOptimizer):
    r"""RMSprop (Hinton's lecture notes; centered form from Graves, 2013), as ``torch.optim.RMSprop``.

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \quad (\text{minus if maximize})\\
        v_t &= \alpha v_{t-1} + (1-\alpha) g_t^2\\
        \bar g_t &= \alpha \bar g_{t-1} + (1-\alpha) g_t,\quad
            \tilde v_t = v_t - \bar g_t^2 \quad (\text{centered; else } \tilde v_t = v_t)\\
        b_t &= \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon),\quad \theta_t = \theta_{t-1} - \gamma b_t
            \quad (\mu > 0)\\
        \theta_t &= \theta_{t-1} - \gamma\, g_t / (\sqrt{\tilde v_t} + \epsilon) \quad (\mu = 0)
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-2).
        alpha (float, optional): smoothing constant :math:`\alpha` (default: 0.99).
        eps (float, optional): :math:`\epsilon` added to the denominator (default: 1e-8).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
        momentum (float, optional): momentum factor :math:`\mu` (default: 0).
        centered (bool, optional): normalise by the estimated variance of the gradient (default: False).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).

    Example:
        >>> opt = fastopt.RMSprop([w], lr=0.01, alpha=0.9)
    """

    _kernel = staticmethod(K.rmsprop)
    _buffers = ("square_avg", "grad_avg", "momentum_buffer")
    _n_scalars = 0

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        _check(lr, alpha, eps, weight_decay, momentum, centered, maximize)
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        _check(group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"],
               group["centered"], group["maximize"])

    def _active(self, group: dict[str, Any]) -> tuple[bool, ...]:
        return (True, bool(group["centered"]), group["momentum"] > 0)

    def _hyper(self, group: dict[str, Any]) -> tuple:
        return (float(group["lr"]), float(group["alpha"]), float(group["eps"]), float(group["weight_decay"]),
                float(group["momentum"]), bool(group["centered"]), bool(group["maximize"]))
