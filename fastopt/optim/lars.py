"""LARS (You, Gitman & Ginsburg, 2017), pytorch-optimizer's ``LARS``. torch.optim has none."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _validate as V
from .._fused import FusedOptimizer, run_functional
from .._spec import Buffer, Option, Spec, flag

__all__ = ["LARS", "lars"]


SPEC = Spec(
    "lars",
    options=(Option("lr", 1e-3, V.lr, "lr"),
             Option("weight_decay", 0.0, V.weight_decay, "weight_decay"),
             Option("momentum", 0.9, lambda v: V.number("momentum", v, low=0.0, high=1.0, high_open=True),
                    "momentum"),
             Option("dampening", 0.0, lambda v: V.number("dampening", v, low=0.0, high=1.0, high_open=True),
                    "dampening"),
             Option("trust_coefficient", 1e-3, lambda v: V.number("trust_coefficient", v, low=0.0),
                    "trust_coefficient"),
             flag("nesterov"), flag("maximize"), flag("adapt", True)),
    buffers=(Buffer("momentum_buffer", when=lambda o: o["momentum"] > 0),),
)


def _adapted(arrays: list[np.ndarray]) -> list[float]:
    """The kernel's per-tensor scalar: 1.0 for arrays of more than one dimension (the ones LARS adapts)."""
    return [1.0 if a.ndim > 1 else 0.0 for a in arrays]


def lars(params: list[np.ndarray], grads: list[np.ndarray], momentum_buffers: list[np.ndarray] | None, *,
         lr: float, weight_decay: float, momentum: float, dampening: float, trust_coefficient: float,
         nesterov: bool, maximize: bool, adapt: bool = True) -> None:
    r"""Functional LARS over lists of arrays (see :class:`LARS` for the rule; one trust ratio per array of more
    than one dimension).

    ``params`` and ``momentum_buffers`` (start at zeros; None or ``[]`` when ``momentum`` is 0) are updated in
    place. LARS keeps no step count.

    Example:
        >>> p, g = np.full((2, 2), 2.0), np.full((2, 2), 0.5)
        >>> fastopt.functional.lars([p], [g], [np.zeros((2, 2))], lr=1.0, weight_decay=0.0, momentum=0.9,
        ...                         dampening=0.0, trust_coefficient=0.1, nesterov=False, maximize=False)
        >>> print(p[0])  # the step is lr * tc * |p| / |g| * g = 0.1 * 4 / 1 * 0.5 = 0.2
        [1.8 1.8]
    """
    options = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, dampening=dampening,
                   trust_coefficient=trust_coefficient, nesterov=nesterov, maximize=maximize, adapt=adapt)
    SPEC.check(options)
    flags = _adapted(list(params))

    def fill(scalars: np.ndarray) -> None:
        scalars[:, 0] = flags

    run_functional(SPEC.table_kernel, SPEC.buffer_names, params, grads,
                   [momentum_buffers if momentum > 0 else None], fill, SPEC.hyper(options))


class LARS(FusedOptimizer):
    r"""LARS (You, Gitman & Ginsburg, 2017, Algorithm 1): momentum SGD with a per-tensor learning-rate scale, in
    pytorch-optimizer's variant (``pytorch_optimizer.LARS``, 4.1: its names, defaults and order of operations;
    only arrays of more than one dimension are adapted and decayed, as in that package, so biases and
    normalisation scales take plain momentum SGD).

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1})\\
        r_t &= \frac{\eta\,\lVert\theta_{t-1}\rVert}{\lVert g_t\rVert + \lambda\lVert\theta_{t-1}\rVert}
             \quad (1 \text{ if either } \lVert\theta_{t-1}\rVert \text{ or the denominator is } 0)\\
        g_t &\leftarrow r_t\,(g_t + \lambda\theta_{t-1}) \quad (\text{adapted arrays only})\\
        b_t &= \mu b_{t-1} + (1-\tau) g_t \ (b_0 = 0), \qquad
             g_t \leftarrow g_t + \mu b_t \text{ if nesterov else } b_t \quad (\mu > 0)\\
        \theta_t &= \theta_{t-1} - \gamma g_t
        \end{aligned}

    Norms are per parameter array, computed in double with a fixed chunking and order (the same bits for any
    thread count), in one kernel call per group: a reduce pass (the two sums of squares), then the elementwise
    update; nothing is allocated per step.

    To exclude more parameters from adaptation (and weight decay), put them in a group with ``adapt=False``
    (a fastopt extension): ``LARS([{'params': weights}, {'params': others, 'adapt': False}], lr=0.1)``.

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-3).
        weight_decay (float, optional): weight decay :math:`\lambda` of the adapted arrays (default: 0.0).
        momentum (float, optional): momentum :math:`\mu \in [0, 1)` (default: 0.9).
        dampening (float, optional): dampening :math:`\tau \in [0, 1)` (default: 0.0).
        trust_coefficient (float, optional): :math:`\eta` (default: 1e-3).
        nesterov (bool, optional): Nesterov momentum (default: False).
        maximize (bool, optional): maximize the objective (default: False).
        adapt (bool, optional): adapt (and decay) this group's arrays of more than one dimension; False gives
            the whole group plain momentum SGD (default: True).

    State per parameter: ``momentum_buffer`` (when ``momentum`` > 0); no step count.

    Notes:
        The momentum buffer starts at zero (so the first step is :math:`(1-\tau) g`), as pytorch-optimizer, not
        at the first gradient as ``torch.optim.SGD``. Gradients are never written into (pytorch-optimizer
        scales ``p.grad`` in place).

    References: You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks", arXiv:1708.03888.

    Example:
        >>> opt = fastopt.LARS([w], lr=0.1, weight_decay=1e-4, trust_coefficient=1e-3)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC
    _has_step = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.9,
                 dampening: float = 0.0, trust_coefficient: float = 1e-3, nesterov: bool = False, *,
                 maximize: bool = False, adapt: bool = True) -> None:
        super().__init__(params, self._spec.options_from(locals()))

    def _table(self, key0: tuple, rows: Any, active: tuple[bool, ...]) -> Any:
        """The pointer table, with each tensor's "adapted" scalar (more than one dimension) written in."""
        table = super()._table(key0, rows, active)
        table.scalars[:, 0] = _adapted([r[0] for r in rows.rows])
        return table
