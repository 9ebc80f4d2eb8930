"""Lion (Chen et al., 2023). torch.optim has no Lion; the rule is the paper's."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag
from .. import _lowp

__all__ = ["Lion", "lion"]


SPEC = Spec(
    "lion",
    options=(Option("lr", 1e-4, V.lr, "lr"),
             Option("betas", (0.9, 0.99), V.betas, ("beta1", "beta2"), normalize=tuple),
             Option("weight_decay", 0.0, V.weight_decay, "weight_decay"),
             flag("maximize")),
    buffers=(Buffer("exp_avg"),),
)


def lion(params: list[np.ndarray], grads: list[np.ndarray], exp_avgs: list[np.ndarray], *, lr: float,
         beta1: float, beta2: float, weight_decay: float, maximize: bool) -> None:
    r"""Functional Lion over lists of arrays (see :class:`Lion` for the rule).

    ``params`` and ``exp_avgs`` (start at zeros) are updated in place. Lion keeps no step count.

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> exp_avgs = [np.zeros(2)]
        >>> fastopt.functional.lion([p], [g], exp_avgs, lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0,
        ...                         maximize=False)
        >>> print(np.round(p, 4), np.round(exp_avgs[0], 4))  # a signed step of lr; m = beta2 * m + (1 - beta2) * g
        [0.9 2.1] [ 0.01 -0.01]
    """
    options = dict(lr=lr, betas=(beta1, beta2), weight_decay=weight_decay, maximize=maximize)
    run_spec(SPEC, options, params, grads, [exp_avgs])


class Lion(FusedOptimizer):
    r"""Lion, "EvoLved Sign Momentum" (Chen et al., 2023, Algorithm 2), with decoupled weight decay.

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) \quad (\text{minus if maximize})\\
        c_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t\\
        \theta_t &= (1 - \gamma\lambda)\,\theta_{t-1} - \gamma\,\operatorname{sign}(c_t)\\
        m_t &= \beta_2 m_{t-1} + (1-\beta_2) g_t
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma`; the paper suggests 3-10x smaller than AdamW's
            (default: 1e-4).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)`, each in [0, 1) (default: (0.9, 0.99)).
        weight_decay (float, optional): decoupled weight decay :math:`\lambda`; the paper suggests 3-10x larger
            than AdamW's (default: 0.0).
        maximize (bool, optional): maximize the objective (default: False).
        master_weights (bool, optional): float32 master copy (state key ``master``) for float16/bfloat16 params, as
            :class:`Adam` (default: False).
        rounding (str, optional): "nearest" or "stochastic" (bfloat16 params), as :class:`Adam` (default: "nearest").
        seed (int, optional): stochastic rounding's seed, as :class:`Adam` (default: 0).
        state_dtype (str, optional): how ``exp_avg`` is stored, for the whole optimizer (default: "float32"):
            "bfloat16" (uint16 bfloat16 bits under the same key, nearest-even) or "int8" (bitsandbytes' blockwise
            8-bit codes ``state1``, ``absmax1`` per 256 elements and the signed map ``qmap1``; tensors under 4096
            elements keep a float32 ``exp_avg``); both keep a ``step`` count too. Float32 parameters only.
            Each element is the float32 update on the decoded state, then re-encoded (csrc/lowp_state.c).

    State per parameter: ``exp_avg`` (:math:`m`); no step count (float16/bfloat16 parameters keep one: the
    stochastic-rounding hash reads it).

    float16 and bfloat16 (``ml_dtypes.bfloat16``) parameters keep float32 state (the buffers above, a ``step``
    count, and ``master`` with master weights); every element is computed in float32 exactly as for a float32
    parameter (from the master copy, or the parameter widened exactly), then rounded into the parameter. Gradients
    may be the parameter's dtype or float32.

    Notes:
        torch.optim has no Lion; this follows the paper's Algorithm 2 (the update direction interpolates with
        :math:`\beta_1`, the momentum is tracked with :math:`\beta_2`), with
        :math:`\operatorname{sign}(0) = 0` and NaN propagated. Each interpolation is one fused multiply-add.

    References: Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023, arXiv:2302.06675.

    Example:
        >>> opt = fastopt.Lion([w], lr=1e-4, weight_decay=1.0)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC
    _lowp_moment = "exp_avg"  # compressed saved state refused clearly (state_dtype)
    _has_step = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, *, maximize: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: str = "float32") -> None:
        _lowp.set_state_dtype(self, state_dtype, "lion")
        super().__init__(params, self._spec.options_from(locals()))
        _lowp.set_param_mode(self, master_weights, rounding, seed)
        _lowp.check_compressed_setup(self)
