"""Adadelta (torch.optim.Adadelta)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag

__all__ = ["Adadelta", "adadelta"]


SPEC = Spec(
    "adadelta",
    options=(Option("lr", 1.0, V.lr, "lr"),
             Option("rho", 0.9, lambda v: V.number("rho", v, low=0.0, high=1.0, message=f"Invalid rho value: {v}"),
                    "rho"),
             Option("eps", 1e-6, V.denominator_eps, "eps"),
             Option("weight_decay", 0, V.weight_decay, "weight_decay"),
             flag("maximize")),
    buffers=(Buffer("square_avg"), Buffer("acc_delta")),
)


def adadelta(params: list[np.ndarray], grads: list[np.ndarray], square_avgs: list[np.ndarray],
             acc_deltas: list[np.ndarray], state_steps: Any, *, lr: float, rho: float, eps: float,
             weight_decay: float, maximize: bool) -> None:
    r"""Functional Adadelta over lists of arrays (see :class:`Adadelta` for the rule).

    ``params``, ``square_avgs`` and ``acc_deltas`` are updated in place; ``state_steps`` is advanced by one, as
    torch does (the rule does not use it).

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> square_avgs, acc_deltas, steps = [np.zeros(2)], [np.zeros(2)], [0]
        >>> fastopt.functional.adadelta([p], [g], square_avgs, acc_deltas, steps, lr=1.0, rho=0.9, eps=1e-6,
        ...                             weight_decay=0.0, maximize=False)
        >>> print(np.round(p, 4), steps)
        [0.9968 2.0032] [1]
    """
    options = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
    run_spec(SPEC, options, params, grads, [square_avgs, acc_deltas], state_steps)


class Adadelta(FusedOptimizer):
    r"""Adadelta (Zeiler, 2012), in torch's order of operations (``torch.optim.Adadelta``).

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \quad (\text{minus if maximize})\\
        v_t &= \rho v_{t-1} + (1-\rho) g_t^2\\
        \Delta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t\\
        u_t &= \rho u_{t-1} + (1-\rho) \Delta_t^2\\
        \theta_t &= \theta_{t-1} - \gamma \Delta_t
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): coefficient :math:`\gamma` that scales the delta (default: 1.0).
        rho (float, optional): decay :math:`\rho` of the running averages, in [0, 1] (default: 0.9).
        eps (float, optional): :math:`\epsilon` added inside both square roots, > 0 (default: 1e-6).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step``, ``square_avg`` (:math:`v`) and ``acc_delta`` (:math:`u`).

    References: Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.

    Example:
        >>> opt = fastopt.Adadelta([w], rho=0.95)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))

