"""LAMB (You et al., 2019), pytorch-optimizer's ``Lamb``. torch.optim has none (pytorch PR #169250 was closed)."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag

__all__ = ["LAMB", "lamb"]


def _at_step(options: Mapping[str, Any]) -> Callable[[int], tuple[float]]:
    """Per tensor at step t: step_size = lr / (1 - beta1^t) (lr itself under adam_debias), in double."""
    lr, beta1 = float(options["lr"]), float(options["betas"][0])
    if options["adam_debias"]:
        return lambda t: (lr,)
    return lambda t: (lr / (1.0 - math.pow(beta1, t)),)


SPEC = Spec(
    "lamb",
    options=(Option("lr", 1e-3, V.lr, "lr"),
             Option("betas", (0.9, 0.999), V.betas, ("beta1", "beta2"), normalize=tuple),
             Option("weight_decay", 0.0, V.weight_decay, "weight_decay"),
             flag("weight_decouple", True), flag("fixed_decay"), flag("grad_averaging", True), flag("adam"),
             Option("eps", 1e-6, V.eps, "eps"),
             flag("maximize"), flag("adam_debias", field=None)),
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
    at_step=_at_step,
)


def lamb(params: list[np.ndarray], grads: list[np.ndarray], exp_avgs: list[np.ndarray],
         exp_avg_sqs: list[np.ndarray], state_steps: Any, *, lr: float, beta1: float, beta2: float,
         weight_decay: float, weight_decouple: bool, fixed_decay: bool, grad_averaging: bool, adam: bool,
         eps: float, maximize: bool, adam_debias: bool = False) -> None:
    r"""Functional LAMB over lists of arrays (see :class:`LAMB` for the rule; one trust ratio per array).

    ``params`` and the state lists (start at zeros) are updated in place; ``state_steps`` (a list of ints or an
    integer ndarray, one count per parameter) is advanced by one before the update.

    Example:
        >>> p, g = np.array([3.0, 4.0]), np.array([1.0, -1.0])
        >>> m, v, steps = [np.zeros(2)], [np.zeros(2)], [0]
        >>> fastopt.functional.lamb([p], [g], m, v, steps, lr=0.01, beta1=0.9, beta2=0.999, weight_decay=0.0,
        ...                         weight_decouple=True, fixed_decay=False, grad_averaging=True, adam=False,
        ...                         eps=1e-6, maximize=False)
        >>> print(np.round(p, 4))  # a step of norm lr / (1 - beta1) * |p| = 0.5 along u
        [2.9646 4.0354]
    """
    options = dict(lr=lr, betas=(beta1, beta2), weight_decay=weight_decay, weight_decouple=weight_decouple,
                   fixed_decay=fixed_decay, grad_averaging=grad_averaging, adam=adam, eps=eps, maximize=maximize,
                   adam_debias=adam_debias)
    run_spec(SPEC, options, params, grads, [exp_avgs, exp_avg_sqs], state_steps)


class LAMB(FusedOptimizer):
    r"""LAMB (You et al., 2019, Algorithm 2): Adam's direction rescaled per tensor by a trust ratio, in
    pytorch-optimizer's variant (``pytorch_optimizer.Lamb``, 4.1: its names, defaults and order of operations;
    the first moment's bias correction in the step size only, none on :math:`v`, the weight norm clamped to 10).

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}), \qquad c = 1-\beta_1 \text{ if grad\_averaging else } 1\\
        m_t &= \beta_1 m_{t-1} + c\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
        x_t &= (1-\gamma\lambda)\,\theta_{t-1} \text{ if weight\_decouple else } \theta_{t-1}, \qquad
             u_t = \frac{m_t}{\sqrt{v_t}+\epsilon} + \lambda x_t\ (\text{if not weight\_decouple})\\
        r_t &= \frac{\min(\lVert x_t\rVert, 10)}{\lVert u_t\rVert + \epsilon}
             \quad (1 \text{ if either norm is } 0 \text{ or adam})\\
        \theta_t &= x_t - \frac{\gamma}{1-\beta_1^t}\, r_t\, u_t
             \quad (\gamma \text{ alone under adam\_debias})
        \end{aligned}

    Norms are per parameter array, computed in double with a fixed chunking and order (the same bits for any
    thread count), in one kernel call per group: a reduce pass (moments and both sums of squares), then the
    elementwise update; nothing is allocated per step.

    To exclude biases and normalisation parameters from the trust ratio, put them in their own group with
    ``adam=True`` (and, usually, ``weight_decay=0``):
    ``LAMB([{'params': weights}, {'params': biases, 'adam': True, 'weight_decay': 0.0}], lr=1e-3)``.

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)`, each in [0, 1) (default: (0.9, 0.999)).
        weight_decay (float, optional): weight decay :math:`\lambda` (default: 0.0).
        weight_decouple (bool, optional): decay the parameters before the norms (AdamW style) instead of adding
            :math:`\lambda x_t` to the update (default: True).
        fixed_decay (bool, optional): with ``weight_decouple``, scale by :math:`1-\lambda` instead of
            :math:`1-\gamma\lambda` (default: False).
        grad_averaging (bool, optional): scale the gradient's share of :math:`m` by :math:`1-\beta_1`
            (default: True).
        adam (bool, optional): use a trust ratio of 1 (plain Adam without bias correction) (default: False).
        eps (float, optional): :math:`\epsilon` of the denominator and of the trust ratio (default: 1e-6).
        maximize (bool, optional): maximize the objective (default: False).
        adam_debias (bool, optional): leave out the :math:`1/(1-\beta_1^t)` step-size correction (pytorch-optimizer's
            ``adam_debias`` keyword) (default: False).

    State per parameter: ``step``, ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`v`).

    Notes:
        Not implemented from pytorch-optimizer's ``Lamb`` (a TypeError, never silently ignored): ``rectify``,
        ``degenerated_to_sgd``, ``n_sma_threshold``, ``adanorm``, and ``pre_norm`` / ``max_grad_norm`` (scale
        the gradients by their global norm first: call :func:`fastopt.clip_grad_norm_` before ``step``).
        pytorch-optimizer also stores each tensor's ``weight_norm``, ``adam_norm`` and ``trust_ratio`` in its
        state for logging; fastopt does not. It counts steps per group (``group['step']``); fastopt keeps torch's
        per-parameter ``state['step']``. Gradients are never written into.

    References: You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020,
    arXiv:1904.00962.

    Example:
        >>> opt = fastopt.LAMB([w], lr=1e-3, weight_decay=0.01)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 weight_decay: float = 0.0, weight_decouple: bool = True, fixed_decay: bool = False, *,
                 grad_averaging: bool = True, adam: bool = False, eps: float = 1e-6, maximize: bool = False,
                 adam_debias: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))
