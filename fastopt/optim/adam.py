"""Adam and AdamW (torch.optim.Adam, torch.optim.AdamW)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag
from .. import _lowp

__all__ = ["Adam", "AdamW", "adam", "adamw"]


SPEC = Spec(
    "adam",
    options=(Option("lr", 1e-3, V.lr, "lr"),
             Option("betas", (0.9, 0.999), V.betas, ("beta1", "beta2"), normalize=tuple),
             Option("eps", 1e-8, V.denominator_eps, "eps"),
             Option("weight_decay", 0, V.weight_decay, "weight_decay"),
             flag("amsgrad"), flag("maximize"), flag("decoupled_weight_decay")),
    check_order=("lr", "eps", "betas", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"),
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq"), Buffer("max_exp_avg_sq", when=lambda o: o["amsgrad"])),
    kernel_scalars=True,  # per tensor at step t: lr / (1 - beta1^t) and sqrt(1 - beta2^t) (csrc/adam.c)
)


def adam(params: list[np.ndarray], grads: list[np.ndarray], exp_avgs: list[np.ndarray],
         exp_avg_sqs: list[np.ndarray], max_exp_avg_sqs: list[np.ndarray], state_steps: Any, *,
         amsgrad: bool, beta1: float, beta2: float, lr: float, weight_decay: float, eps: float, maximize: bool,
         decoupled_weight_decay: bool = False) -> None:
    r"""Functional Adam over lists of arrays (see :class:`Adam` for the rule).

    ``params`` and the state lists are updated in place; ``state_steps`` (a list of ints or an integer ndarray,
    one count per parameter) is advanced by one before the update, as torch does. ``max_exp_avg_sqs`` is only
    read when ``amsgrad`` is True (pass ``[]`` otherwise).

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> exp_avgs, exp_avg_sqs, steps = [np.zeros(2)], [np.zeros(2)], [0]
        >>> fastopt.functional.adam([p], [g], exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, beta1=0.9,
        ...                         beta2=0.999, lr=0.1, weight_decay=0.0, eps=1e-8, maximize=False)
        >>> print(np.round(p, 4), steps)  # the first step moves each entry by lr against its gradient's sign
        [0.9 2.1] [1]
    """
    options = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                   maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
    run_spec(SPEC, options, params, grads, [exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else None],
             state_steps)


def adamw(params: list[np.ndarray], grads: list[np.ndarray], exp_avgs: list[np.ndarray],
          exp_avg_sqs: list[np.ndarray], max_exp_avg_sqs: list[np.ndarray], state_steps: Any, *,
          amsgrad: bool, beta1: float, beta2: float, lr: float, weight_decay: float, eps: float,
          maximize: bool) -> None:
    r"""Functional AdamW: :func:`adam` with ``decoupled_weight_decay=True`` (see :class:`AdamW` for the rule).

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> exp_avgs, exp_avg_sqs, steps = [np.zeros(2)], [np.zeros(2)], [0]
        >>> fastopt.functional.adamw([p], [g], exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, beta1=0.9,
        ...                          beta2=0.999, lr=0.1, weight_decay=0.5, eps=1e-8, maximize=False)
        >>> print(np.round(p, 4))  # p * (1 - lr * weight_decay), then the Adam step of 0.1
        [0.85 2.  ]
    """
    adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, amsgrad=amsgrad, beta1=beta1,
         beta2=beta2, lr=lr, weight_decay=weight_decay, eps=eps, maximize=maximize, decoupled_weight_decay=True)


def _set_state_dtype(opt: "Adam", state_dtype: str) -> None:
    """The optimizer-wide ``state_dtype`` (checked first): "float32" keeps the float32 kernel; "bfloat16" and
    "int8" hand every step to the compressed-state path (fastopt/_lowp.py)."""
    _lowp.check_state_dtype(state_dtype)
    opt.state_dtype = state_dtype
    opt._lowp = None if state_dtype == "float32" else _lowp.Compressed(state_dtype)


class Adam(FusedOptimizer):
    r"""Adam (Kingma & Ba, 2015), in torch's order of operations (``torch.optim.Adam``).

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad (\text{minus if maximize; the } \lambda \text{ term only without decoupled weight decay})\\
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \quad (\text{decoupled weight decay only})\\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ if amsgrad, else } v_t\\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)`, each in [0, 1) (default: (0.9, 0.999)).
        eps (float, optional): :math:`\epsilon` added to the denominator, > 0 (default: 1e-8).
        weight_decay (float, optional): weight decay :math:`\lambda` (default: 0).
        amsgrad (bool, optional): use the AMSGrad maximum of second moments (default: False).
        maximize (bool, optional): maximize the objective (default: False).
        decoupled_weight_decay (bool, optional): decay the weights directly, as AdamW (default: False).
        state_dtype (str, optional): how the moments are stored, for the whole optimizer (default: "float32").
            "bfloat16": bfloat16 bits (uint16 arrays), rounded to nearest-even; "int8": bitsandbytes' blockwise
            8-bit codes (state keys ``state1``, ``state2``, ``absmax1``, ``absmax2``, ``qmap1``, ``qmap2``;
            tensors under 4096 elements keep float32 moments). Both compute in float32, need float32 parameters
            and no amsgrad; see ``fastopt._lowp`` and the README's "Memory and precision".
        master_weights (bool, optional): for float16/bfloat16 parameters: keep a float32 master copy in state key
            ``master``; each step updates it and the parameter becomes its rounded image (default: False).
        rounding (str, optional): how a float16/bfloat16 parameter takes the float32 result: "nearest" (to
            nearest-even) or, for bfloat16 without master weights, "stochastic" (default: "nearest").
        seed (int, optional): stochastic rounding's seed in [0, 2**31): the random bits are a hash of (seed, step,
            tensor index, element index), so results are the same for any thread count (default: 0).

    float16 and bfloat16 (``ml_dtypes.bfloat16``) parameters keep float32 ``exp_avg``/``exp_avg_sq``; every
    element is computed in float32 exactly as for a float32 parameter (from the master copy, or the parameter
    widened exactly), then rounded into the parameter. Gradients may be the parameter's dtype or float32.

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.

    Notes:
        As torch: the first moment is a lerp, the denominator divides :math:`\sqrt{v}` by
        :math:`\sqrt{1-\beta_2^t}` before adding :math:`\epsilon` (the paper adds :math:`\epsilon` to the
        corrected :math:`\sqrt{\hat v}` — the same thing), and AMSGrad keeps the maximum of the raw
        :math:`v_t`.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015;
        Reddi et al., "On the Convergence of Adam and Beyond", ICLR 2018.

    Example:
        >>> opt = fastopt.Adam([w, b], lr=1e-3)
        >>> opt.zero_grad(); w.grad, b.grad = backward(x, y); opt.step()
    """

    _spec = SPEC
    _lowp_moment = "exp_avg"  # compressed saved state refused clearly (state_dtype)
    state_dtype: str  # "float32", "bfloat16" or "int8" (see the constructor)

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False, state_dtype: str = "float32", master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0) -> None:
        _set_state_dtype(self, state_dtype)
        super().__init__(params, self._spec.options_from(locals()))
        _lowp.set_param_mode(self, master_weights, rounding, seed)


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay (``torch.optim.AdamW``).

    The rule is :class:`Adam`'s with ``decoupled_weight_decay=True``: before the moment updates the parameter is
    scaled by :math:`1 - \gamma\lambda`, and the gradient carries no :math:`\lambda\theta` term.

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)` (default: (0.9, 0.999)).
        eps (float, optional): :math:`\epsilon`, > 0 (default: 1e-8).
        weight_decay (float, optional): decoupled weight decay :math:`\lambda` (default: 1e-2).
        amsgrad (bool, optional): use AMSGrad (default: False).
        maximize (bool, optional): maximize the objective (default: False).
        state_dtype (str, optional): "float32", "bfloat16" or "int8" moments, as :class:`Adam` (default: "float32").
        master_weights (bool, optional): float32 master copy for float16/bfloat16 params, as :class:`Adam`
            (default: False).
        rounding (str, optional): "nearest" or "stochastic" (bfloat16 params), as :class:`Adam` (default: "nearest").
        seed (int, optional): stochastic rounding's seed, as :class:`Adam` (default: 0).

    References: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.

    Example:
        >>> opt = fastopt.AdamW(model_params, lr=3e-4, weight_decay=0.1)
    """

    _spec = SPEC.with_defaults(weight_decay=1e-2, decoupled_weight_decay=True)

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, state_dtype: str = "float32", master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0) -> None:
        _set_state_dtype(self, state_dtype)
        FusedOptimizer.__init__(self, params, self._spec.options_from(locals()))
        _lowp.set_param_mode(self, master_weights, rounding, seed)
