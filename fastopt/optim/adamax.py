"""Adamax (torch.optim.Adamax)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag

__all__ = ["Adamax", "adamax"]


def _at_step(options: Mapping[str, Any]) -> Callable[[int], tuple[float]]:
    """Per tensor at step t: clr = lr / (1 - beta1^t), in double as torch computes it."""
    lr, beta1 = float(options["lr"]), float(options["betas"][0])
    return lambda t: (lr / (1 - beta1 ** t),)


SPEC = Spec(
    "adamax",
    options=(Option("lr", 2e-3, V.lr, None),
             Option("betas", (0.9, 0.999), V.betas, ("beta1", "beta2"), normalize=tuple),
             Option("eps", 1e-8, V.denominator_eps, "eps"),
             Option("weight_decay", 0, V.weight_decay, "weight_decay"),
             flag("maximize")),
    check_order=("lr", "eps", "betas", "weight_decay", "maximize"),
    buffers=(Buffer("exp_avg"), Buffer("exp_inf")),
    at_step=_at_step,
)


def adamax(params: list[np.ndarray], grads: list[np.ndarray], exp_avgs: list[np.ndarray],
           exp_infs: list[np.ndarray], state_steps: Any, *, eps: float, beta1: float, beta2: float, lr: float,
           weight_decay: float, maximize: bool) -> None:
    r"""Functional Adamax over lists of arrays (see :class:`Adamax` for the rule).

    ``params``, ``exp_avgs`` and ``exp_infs`` are updated in place; ``state_steps`` is advanced by one before
    the update, as torch does.

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> exp_avgs, exp_infs, steps = [np.zeros(2)], [np.zeros(2)], [0]
        >>> fastopt.functional.adamax([p], [g], exp_avgs, exp_infs, steps, eps=1e-8, beta1=0.9, beta2=0.999, lr=0.1,
        ...                           weight_decay=0.0, maximize=False)
        >>> print(np.round(p, 4), np.round(exp_infs[0], 4))
        [0.9 2.1] [1. 1.]
    """
    options = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, maximize=maximize)
    run_spec(SPEC, options, params, grads, [exp_avgs, exp_infs], state_steps)


class Adamax(FusedOptimizer):
    r"""Adamax, Adam's infinity-norm variant (Kingma & Ba, 2015), as ``torch.optim.Adamax``.

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \quad (\text{minus if maximize})\\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t\\
        u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon)\\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,\frac{m_t}{u_t}
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 2e-3).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)`, each in [0, 1) (default: (0.9, 0.999)).
        eps (float, optional): :math:`\epsilon`, > 0 (default: 1e-8).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step``, ``exp_avg`` (:math:`m`) and ``exp_inf`` (:math:`u`).

    Notes:
        As torch: :math:`\epsilon` is added to :math:`|g_t|` inside the maximum (the paper has no
        :math:`\epsilon`), and the maximum propagates NaN.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1.

    Example:
        >>> opt = fastopt.Adamax([w], lr=2e-3)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, *, maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))

