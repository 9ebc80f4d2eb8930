"""RAdam (torch.optim.RAdam)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag

__all__ = ["RAdam", "radam"]


def _at_step(options: Mapping[str, Any]) -> Callable[[int], tuple[float, float, float, float]]:
    """Per tensor at step t: 1 - beta1^t, sqrt(1 - beta2^t), the rectification term and whether step t is
    rectified (rho_t > 5), all in double as torch computes them."""
    beta1, beta2 = float(options["betas"][0]), float(options["betas"][1])
    rho_inf = 2 / (1 - beta2) - 1

    def at(t: int) -> tuple[float, float, float, float]:
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        rho_t = rho_inf - 2 * t * (beta2 ** t) / bias_correction2
        rectified = rho_t > 5.0
        rect = (((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
                if rectified else 1.0)
        return bias_correction1, bias_correction2 ** 0.5, rect, 1.0 if rectified else 0.0

    return at


_F32_TINY = float(np.finfo(np.float32).tiny)  # 2**-126, the smallest normal float32: 1 / it = 2**126 is finite


def _eps(value: Any) -> float:
    """``V.denominator_eps``, and large enough that ``1 / eps`` is finite in float32: torch's rectified step takes
    the reciprocal ``1 / (sqrt(v) + eps)``, which is inf for a zero ``v`` and a subnormal eps, and 0 * inf = NaN."""
    v = V.denominator_eps(value)
    if v < _F32_TINY:
        raise ValueError(f"Invalid epsilon value: {value} (RAdam's eps must be >= 2**-126 = 1.2e-38, the smallest "
                         "normal float32: the rectified step computes 1 / (sqrt(v) + eps), infinite for a zero "
                         "gradient below that)")
    return v


SPEC = Spec(
    "radam",
    options=(Option("lr", 1e-3, V.lr, "lr"),
             Option("betas", (0.9, 0.999), V.betas, ("beta1", "beta2"), normalize=tuple),
             Option("eps", 1e-8, _eps, "eps"),
             Option("weight_decay", 0, V.weight_decay, "weight_decay"),
             flag("decoupled_weight_decay"), flag("maximize")),
    check_order=("lr", "eps", "betas", "weight_decay", "decoupled_weight_decay", "maximize"),
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
    at_step=_at_step,
)


def radam(params: list[np.ndarray], grads: list[np.ndarray], exp_avgs: list[np.ndarray],
          exp_avg_sqs: list[np.ndarray], state_steps: Any, decoupled_weight_decay: bool = False, *,
          beta1: float, beta2: float, lr: float, weight_decay: float, eps: float, maximize: bool) -> None:
    r"""Functional RAdam over lists of arrays (see :class:`RAdam` for the rule).

    ``params``, ``exp_avgs`` and ``exp_avg_sqs`` are updated in place; ``state_steps`` is advanced by one
    before the update, as torch does.

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> exp_avgs, exp_avg_sqs, steps = [np.zeros(2)], [np.zeros(2)], [0]
        >>> fastopt.functional.radam([p], [g], exp_avgs, exp_avg_sqs, steps, beta1=0.9, beta2=0.999, lr=0.1,
        ...                          weight_decay=0.0, eps=1e-8, maximize=False)
        >>> print(np.round(p, 4))  # early steps are un-adapted SGD with momentum (rho_t <= 5)
        [0.9 2.1]
    """
    options = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                   decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
    run_spec(SPEC, options, params, grads, [exp_avgs, exp_avg_sqs], state_steps)


class RAdam(FusedOptimizer):
    r"""RAdam: Adam with a rectified adaptive learning rate (Liu et al., 2020), as ``torch.optim.RAdam``.

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad (\text{minus if maximize; the } \lambda \text{ term only without decoupled weight decay})\\
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \quad (\text{decoupled weight decay only})\\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,
            \qquad \hat m_t = m_t / (1-\beta_1^t)\\
        \rho_\infty &= \frac{2}{1-\beta_2} - 1, \qquad
            \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t}\\
        \theta_t &= \theta_{t-1} - \gamma\,\hat m_t\, r_t\, \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon},
            \quad r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}
            \quad (\rho_t > 5)\\
        \theta_t &= \theta_{t-1} - \gamma\,\hat m_t \quad (\rho_t \le 5:\ \text{the early steps})
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)`, each in [0, 1) (default: (0.9, 0.999)).
        eps (float, optional): :math:`\epsilon` added to the denominator, >= 2**-126 (default: 1e-8).
        weight_decay (float, optional): weight decay :math:`\lambda` (default: 0).
        decoupled_weight_decay (bool, optional): decay the weights directly, as AdamW (default: False).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step``, ``exp_avg`` and ``exp_avg_sq``.

    Notes:
        The branch is taken per parameter, from its own step count; with the default :math:`\beta_2` the
        first five steps are plain momentum SGD steps with the bias-corrected :math:`\hat m_t`.

    References: Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.

    Example:
        >>> opt = fastopt.RAdam([w], lr=1e-3)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))

