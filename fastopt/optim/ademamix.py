"""AdEMAMix (Pagliardini, Ablin & Grangier, 2024), pytorch-optimizer's ``AdEMAMix``. torch.optim has none."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag

__all__ = ["AdEMAMix", "ademamix"]


def _betas3(value: Any) -> tuple[float, float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise TypeError(f"betas must be a triple of floats (beta1, beta2, beta3), got {value!r}")
    return tuple(V.number("beta", b, low=0.0, high=1.0, high_open=i < 2,  # type: ignore[return-value]
                          message=f"Invalid beta parameter at index {i}: {b}") for i, b in enumerate(value))


def _t_alpha_beta3(value: Any) -> float | None:
    if value is None:
        return None
    return V.number("t_alpha_beta3", value, low=0.0, low_open=True,
                    message=f"Invalid t_alpha_beta3 value: {value} (a positive number of steps, or None)")


def _check_group(options: Mapping[str, Any]) -> None:
    b1, _, b3 = options["betas"]
    if options["t_alpha_beta3"] is not None and (b1 <= 0 or b3 <= 0):
        raise ValueError(f"the beta3 warm-up (t_alpha_beta3={options['t_alpha_beta3']}) interpolates log(beta1) "
                         f"and log(beta3): both must be > 0, got betas={tuple(options['betas'])}")


def schedule_alpha(t_alpha_beta3: float | None, step: int, alpha: float) -> float:
    """The paper's alpha warm-up: min(t alpha / T, alpha) (alpha itself without a warm-up)."""
    return alpha if t_alpha_beta3 is None else min(step * alpha / t_alpha_beta3, alpha)


def schedule_beta3(t_alpha_beta3: float | None, step: int, beta1: float, beta3: float) -> float:
    """The paper's beta3 warm-up: the half-life grows linearly from beta1's to beta3's over T steps,
    min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3) (beta3 itself without a warm-up)."""
    if t_alpha_beta3 is None:
        return beta3
    log_b1, log_b3 = math.log(beta1), math.log(beta3)
    frac = step / t_alpha_beta3
    return min(math.exp(log_b1 * log_b3 / ((1.0 - frac) * log_b3 + frac * log_b1)), beta3)


def _at_step(options: Mapping[str, Any]) -> Callable[[int], tuple[float, float, float, float]]:
    """Per tensor at step t: 1 - beta1^t, sqrt(1 - beta2^t), alpha_t and 1 - beta3_t, in double."""
    beta1, beta2, beta3 = (float(b) for b in options["betas"])
    alpha, horizon = float(options["alpha"]), options["t_alpha_beta3"]
    return lambda t: (1 - math.pow(beta1, t), math.sqrt(1 - math.pow(beta2, t)),
                      schedule_alpha(horizon, t, alpha), 1.0 - schedule_beta3(horizon, t, beta1, beta3))


SPEC = Spec(
    "ademamix",
    options=(Option("lr", 1e-3, V.lr, "lr"),
             Option("betas", (0.9, 0.999, 0.9999), _betas3, ("beta1", "beta2"), normalize=tuple),
             Option("weight_decay", 0.0, V.weight_decay, "weight_decay"),
             flag("weight_decouple"), flag("fixed_decay"),
             Option("alpha", 5.0, lambda v: V.number("alpha", v, low=0.0), None),
             Option("t_alpha_beta3", None, _t_alpha_beta3, None),
             Option("eps", 1e-8, V.eps, "eps"),
             flag("maximize")),
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq"), Buffer("exp_avg_slow")),
    at_step=_at_step,
    check_group=_check_group,
)


def ademamix(params: list[np.ndarray], grads: list[np.ndarray], exp_avgs: list[np.ndarray],
             exp_avg_sqs: list[np.ndarray], exp_avg_slows: list[np.ndarray], state_steps: Any, *, lr: float,
             beta1: float, beta2: float, beta3: float, alpha: float, t_alpha_beta3: float | None,
             weight_decay: float, weight_decouple: bool, fixed_decay: bool, eps: float, maximize: bool) -> None:
    r"""Functional AdEMAMix over lists of arrays (see :class:`AdEMAMix` for the rule).

    ``params`` and the three state lists (start at zeros) are updated in place; ``state_steps`` (a list of ints
    or an integer ndarray, one count per parameter) is advanced by one before the update.

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> m1, v, m2, steps = [np.zeros(2)], [np.zeros(2)], [np.zeros(2)], [0]
        >>> fastopt.functional.ademamix([p], [g], m1, v, m2, steps, lr=0.1, beta1=0.9, beta2=0.999,
        ...                             beta3=0.9999, alpha=5.0, t_alpha_beta3=None, weight_decay=0.0,
        ...                             weight_decouple=False, fixed_decay=False, eps=1e-8, maximize=False)
        >>> print(np.round(p, 5), steps)  # Adam's first step of lr, plus lr * alpha * (1 - beta3) = 5e-5
        [0.89995 2.10005] [1]
    """
    options = dict(lr=lr, betas=(beta1, beta2, beta3), weight_decay=weight_decay, weight_decouple=weight_decouple,
                   fixed_decay=fixed_decay, alpha=alpha, t_alpha_beta3=t_alpha_beta3, eps=eps, maximize=maximize)
    run_spec(SPEC, options, params, grads, [exp_avgs, exp_avg_sqs, exp_avg_slows], state_steps)


class AdEMAMix(FusedOptimizer):
    r"""AdEMAMix (Pagliardini, Ablin & Grangier, 2024, Algorithm 1): Adam whose numerator mixes the usual fast EMA
    of the gradient with a slow one, in pytorch-optimizer's variant (``pytorch_optimizer.AdEMAMix``, 4.1: its
    argument names, defaults and order of operations).

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1}\ (\text{if not weight\_decouple}), \qquad
             \theta_{t-1} \leftarrow (1-\gamma\lambda)\,\theta_{t-1}\ (\text{if weight\_decouple})\\
        \alpha_t &= \min(t\alpha/T,\ \alpha), \qquad
             \beta_{3,t} = \min\Big(\exp\frac{\ln\beta_1\ln\beta_3}{(1-t/T)\ln\beta_3 + (t/T)\ln\beta_1},\ \beta_3\Big)
             \quad (\alpha_t=\alpha,\ \beta_{3,t}=\beta_3 \text{ without } T)\\
        m_{1,t} &= \beta_1 m_{1,t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
             m_{2,t} = \beta_{3,t} m_{2,t-1} + (1-\beta_{3,t}) g_t\\
        \theta_t &= \theta_{t-1} - \gamma\,\frac{m_{1,t}/(1-\beta_1^t) + \alpha_t m_{2,t}}
             {\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float, float], optional): :math:`(\beta_1, \beta_2, \beta_3)`: the fast EMA, the
            second moment and the slow EMA; :math:`\beta_1, \beta_2 \in [0, 1)`, :math:`\beta_3 \in [0, 1]`
            (default: (0.9, 0.999, 0.9999)).
        weight_decay (float, optional): weight decay :math:`\lambda` (default: 0.0).
        weight_decouple (bool, optional): decay the parameters (AdamW style) instead of adding
            :math:`\lambda\theta` to the gradient (default: False, as pytorch-optimizer; the paper decouples).
        fixed_decay (bool, optional): with ``weight_decouple``, scale by :math:`1-\lambda` instead of
            :math:`1-\gamma\lambda` (default: False).
        alpha (float, optional): weight :math:`\alpha \ge 0` of the slow EMA (default: 5.0).
        t_alpha_beta3 (float or None, optional): warm-up length :math:`T` (steps) of both :math:`\alpha` and
            :math:`\beta_3`; None for no warm-up (default: None). The paper warms both up over the whole run.
        eps (float, optional): :math:`\epsilon` added to the denominator (default: 1e-8).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step``, ``exp_avg`` (:math:`m_1`), ``exp_avg_sq`` (:math:`v`), ``exp_avg_slow``
    (:math:`m_2`).

    Notes:
        pytorch-optimizer counts steps per group (``group['step']``); fastopt keeps torch's per-parameter
        ``state['step']``: the same numbers while every parameter gets a gradient each step. Its ``cautious``
        and ``stable_adamw`` extras are not implemented (a TypeError, not silently ignored), and gradients are
        never written into (pytorch-optimizer negates and decays ``p.grad`` in place).

    References: Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older", ICLR 2025,
    arXiv:2409.03137.

    Example:
        >>> opt = fastopt.AdEMAMix([w], lr=1e-3, t_alpha_beta3=10_000)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float, float] = (0.9, 0.999, 0.9999), weight_decay: float = 0.0,
                 weight_decouple: bool = False, fixed_decay: bool = False, alpha: float = 5.0,
                 t_alpha_beta3: float | None = None, eps: float = 1e-8, *, maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))
