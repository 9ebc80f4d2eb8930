"""RMSprop (torch.optim.RMSprop)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag
from .. import _lowp

__all__ = ["RMSprop", "rmsprop"]


SPEC = Spec(
    "rmsprop",
    options=(Option("lr", 1e-2, V.lr, "lr"),
             Option("alpha", 0.99, lambda v: V.number("alpha", v, low=0.0, high=1.0,
                                                      message=f"Invalid alpha value: {v} (expected in [0, 1])"),
                    "alpha"),
             Option("eps", 1e-8, V.denominator_eps, "eps"),
             Option("weight_decay", 0, V.weight_decay, "weight_decay"),
             Option("momentum", 0, V.momentum, "momentum"),
             flag("centered"), flag("maximize")),
    check_order=("lr", "eps", "momentum", "weight_decay", "alpha", "centered", "maximize"),
    buffers=(Buffer("square_avg"), Buffer("grad_avg", when=lambda o: o["centered"]),
             Buffer("momentum_buffer", when=lambda o: o["momentum"] > 0)),
)


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
    options = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
                   maximize=maximize)
    run_spec(SPEC, options, params, grads,
             [square_avgs, grad_avgs if centered else None, momentum_buffer_list if momentum > 0 else None],
             state_steps)


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
        alpha (float, optional): smoothing constant :math:`\alpha` in [0, 1] (default: 0.99).
        eps (float, optional): :math:`\epsilon` added to the denominator, > 0 (default: 1e-8).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
        momentum (float, optional): momentum factor :math:`\mu` in [0, 1] (default: 0).
        centered (bool, optional): normalise by the estimated variance of the gradient (default: False).
        maximize (bool, optional): maximize the objective (default: False).
        master_weights (bool, optional): float32 master copy (state key ``master``) for float16/bfloat16 params, as
            :class:`Adam` (default: False).
        rounding (str, optional): "nearest" or "stochastic" (bfloat16 params), as :class:`Adam` (default: "nearest").
        seed (int, optional): stochastic rounding's seed, as :class:`Adam` (default: 0).

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).

    float16 and bfloat16 (``ml_dtypes.bfloat16``) parameters keep float32 state (the buffers above, a ``step``
    count, and ``master`` with master weights); every element is computed in float32 exactly as for a float32
    parameter (from the master copy, or the parameter widened exactly), then rounded into the parameter. Gradients
    may be the parameter's dtype or float32.

    Example:
        >>> opt = fastopt.RMSprop([w], lr=0.01, alpha=0.9)
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False, master_weights: bool = False, rounding: str = "nearest",
                 seed: int = 0) -> None:
        super().__init__(params, self._spec.options_from(locals()))
        _lowp.set_param_mode(self, master_weights, rounding, seed)
