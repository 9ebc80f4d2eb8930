"""NAdam (torch.optim.NAdam)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_functional
from .._spec import Buffer, Option, Spec, flag
from .._state import scalar_dtype
from ._steps import next_steps, store_steps

__all__ = ["NAdam", "nadam"]


def _mu(beta1: float, momentum_decay: float, t: int) -> float:
    """The momentum schedule mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay)), in double."""
    return beta1 * (1.0 - 0.5 * (0.96 ** (t * momentum_decay)))


def _coefficients(scalars: np.ndarray, i: int, t: int, mu_product: float, lr: float, beta1: float, beta2: float,
                  momentum_decay: float) -> None:
    """Row i of the kernel's scalars, given step t and the product of mu_1..mu_t (double, as torch)."""
    mu = _mu(beta1, momentum_decay, t)
    mu_next = _mu(beta1, momentum_decay, t + 1)
    scalars[i, 0] = 1 - beta2 ** t
    scalars[i, 1] = -lr * (1.0 - mu) / (1.0 - mu_product)
    scalars[i, 2] = (-lr * mu_next) / (1.0 - mu_product * mu_next)


def _times_mu(mu_product: Any, mu: float, dtype: np.dtype) -> float:
    """``mu_product * mu`` rounded to ``dtype``, as torch multiplies its scalar ``mu_product`` tensor."""
    return float(dtype.type(dtype.type(mu_product) * dtype.type(mu)))


SPEC = Spec(
    "nadam",
    options=(Option("lr", 2e-3, V.lr, "lr"),
             Option("betas", (0.9, 0.999), V.betas, ("beta1", "beta2"), normalize=tuple),
             Option("eps", 1e-8, V.denominator_eps, "eps"),
             Option("weight_decay", 0, V.weight_decay, "weight_decay"),
             Option("momentum_decay", 4e-3, lambda v: V.number("momentum_decay", v, low=0.0,
                                                               message=f"Invalid momentum_decay value: {v}"), None),
             flag("decoupled_weight_decay"), flag("maximize")),
    check_order=("lr", "eps", "betas", "weight_decay", "momentum_decay", "decoupled_weight_decay", "maximize"),
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
)


def nadam(params: list[np.ndarray], grads: list[np.ndarray], exp_avgs: list[np.ndarray],
          exp_avg_sqs: list[np.ndarray], mu_products: Any, state_steps: Any, decoupled_weight_decay: bool = False,
          *, beta1: float, beta2: float, lr: float, weight_decay: float, momentum_decay: float, eps: float,
          maximize: bool) -> None:
    r"""Functional NAdam over lists of arrays (see :class:`NAdam` for the rule).

    ``params``, ``exp_avgs`` and ``exp_avg_sqs`` are updated in place; ``state_steps`` is advanced by one
    before the update, as torch does. ``mu_products`` (start at 1.0) is a float ndarray, multiplied in its
    own dtype, or a list of floats, multiplied in the parameters' scalar dtype (float64 for float64 params, as
    torch under ``set_default_dtype(float64)``; float32 otherwise, torch's default); it is updated in place.

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> exp_avgs, exp_avg_sqs, mu_products, steps = [np.zeros(2)], [np.zeros(2)], [1.0], [0]
        >>> fastopt.functional.nadam([p], [g], exp_avgs, exp_avg_sqs, mu_products, steps, beta1=0.9, beta2=0.999,
        ...                          lr=0.1, weight_decay=0.0, momentum_decay=4e-3, eps=1e-8, maximize=False)
        >>> print(np.round(p, 4), round(mu_products[0], 4), steps)
        [0.8944 2.1056] 0.4501 [1]
    """
    options = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                   decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
    checked = SPEC.check(options)  # plain Python values from here on
    lr, (beta1, beta2), momentum_decay = checked["lr"], checked["betas"], checked["momentum_decay"]
    n = len(params)
    if isinstance(mu_products, np.ndarray):
        if mu_products.shape != (n,) or mu_products.dtype.kind != "f" or not mu_products.flags.writeable:
            raise ValueError(f"mu_products must be a writeable float array of shape ({n},)")
        dtype = mu_products.dtype
    elif isinstance(mu_products, list) and len(mu_products) == n:
        dtype = scalar_dtype(getattr(params[0], "dtype", None) if n else None)
    else:
        raise ValueError(f"mu_products must be a list of {n} floats (or a float ndarray)")
    old = [float(m) for m in mu_products]
    if not all(np.isfinite(old)):
        raise ValueError("mu_products must be finite")
    steps = next_steps(state_steps, n)
    new = [_times_mu(m, _mu(float(beta1), float(momentum_decay), t), dtype) for m, t in zip(old, steps)]

    def fill(s: np.ndarray) -> None:
        for i, (t, mp) in enumerate(zip(steps, new)):
            _coefficients(s, i, t, mp, float(lr), float(beta1), float(beta2), float(momentum_decay))

    run_functional(SPEC.table_kernel, SPEC.buffer_names, params, grads, [exp_avgs, exp_avg_sqs], fill,
                   SPEC.hyper(checked))
    store_steps(state_steps, steps)
    mu_products[:] = new


class NAdam(FusedOptimizer):
    r"""NAdam: Adam with Nesterov momentum (Dozat, 2016), in torch's order of operations (``torch.optim.NAdam``).

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad (\text{minus if maximize; the } \lambda \text{ term only without decoupled weight decay})\\
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \quad (\text{decoupled weight decay only})\\
        \mu_t &= \beta_1\bigl(1 - \tfrac12\, 0.96^{t\psi}\bigr), \qquad \Pi_t = \prod_{i=1}^{t} \mu_i\\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
        d_t &= \sqrt{v_t / (1-\beta_2^t)} + \epsilon\\
        \theta_t &= \theta_{t-1} - \gamma\frac{1-\mu_t}{1-\Pi_t}\,\frac{g_t}{d_t}
            - \gamma\frac{\mu_{t+1}}{1-\Pi_t\,\mu_{t+1}}\,\frac{m_t}{d_t}
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 2e-3).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)`, each in [0, 1) (default: (0.9, 0.999)).
        eps (float, optional): :math:`\epsilon` added to the denominator, > 0 (default: 1e-8).
        weight_decay (float, optional): weight decay :math:`\lambda` (default: 0).
        momentum_decay (float, optional): momentum decay :math:`\psi` (default: 4e-3).
        decoupled_weight_decay (bool, optional): decay the weights directly, as AdamW (NAdamW) (default: False).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step``, ``mu_product`` (:math:`\Pi_t`, a 0-d array), ``exp_avg`` and ``exp_avg_sq``.

    Notes:
        ``mu_product`` is a 0-d array in the parameter's scalar dtype: float64 for a float64 parameter (as torch
        under ``torch.set_default_dtype(torch.float64)``), float32 for a float32 one (torch's default scalar
        dtype). Each step rounds :math:`\Pi_{t-1}\mu_t` to that dtype, as torch multiplies its scalar tensor,
        and the coefficients are then computed in double from it. ``load_state_dict`` casts a saved value to that
        dtype, as torch casts it to the parameter's dtype (a torch checkpoint's float32 product continues as
        float64 on a float64 parameter).

    References: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop;
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.

    Example:
        >>> opt = fastopt.NAdam([w], lr=2e-3)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC
    _scalar_state = (("mu_product", 1.0),)

    def __init__(self, params: Iterable[Any], lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))

    def _fill_scalars_from_state(self, group: dict[str, Any], scalars: np.ndarray, steps: list[int],
                                 fresh: list[bool], states: list[dict[str, Any]]) -> None:
        lr, md = float(group["lr"]), float(group["momentum_decay"])
        b1, b2 = float(group["betas"][0]), float(group["betas"][1])
        for i, (t, st) in enumerate(zip(steps, states)):
            mp = st["mu_product"]  # a 0-d array, multiplied in its own dtype as torch's scalar tensor is
            mp[()] = _times_mu(mp, _mu(b1, md, t), mp.dtype)
            _coefficients(scalars, i, t, float(mp), lr, b1, b2, md)
