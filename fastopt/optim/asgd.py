"""Averaged stochastic gradient descent (torch.optim.ASGD)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_functional
from .._spec import Buffer, Option, Spec, flag
from ._steps import next_steps, store_steps

__all__ = ["ASGD", "asgd"]


def _fill(scalars: np.ndarray, etas: list[float], mus: list[float], lambd: float) -> None:
    for i, (eta, mu) in enumerate(zip(etas, mus)):
        scalars[i, 0] = 1 - lambd * eta
        scalars[i, 1] = -eta
        scalars[i, 2] = mu
        scalars[i, 3] = 1.0 if mu == 1 else 0.0


def _advance_eta_mu(eta: np.ndarray, mu: np.ndarray, step: int, lr: float, lambd: float, alpha: float,
                    t0: float) -> None:
    """After the update, as torch: eta = lr / (1 + lambd lr t)^alpha and mu = 1 / max(1, t - t0), computed in
    double, then stored (rounded) in the 0-d arrays' own dtype."""
    t = float(step)
    eta[()] = lr / ((1 + lambd * lr * t) ** alpha)
    mu[()] = 1 / max(1, t - t0)


SPEC = Spec(
    "asgd",
    options=(Option("lr", 1e-2, V.lr, None),
             # eta = lr / (1 + lambd * lr * t) ** alpha: a negative lambd can make the base 0 or negative (eta
             # infinite or NaN), a negative alpha makes the step grow with t
             Option("lambd", 1e-4, lambda v: V.number("lambd", v, low=0.0, message=f"Invalid lambd value: {v}"), None),
             Option("alpha", 0.75, lambda v: V.number("alpha", v, low=0.0, message=f"Invalid alpha value: {v}"), None),
             Option("t0", 1e6, lambda v: V.number("t0", v), None),
             Option("weight_decay", 0, V.weight_decay, "weight_decay"),
             flag("maximize")),
    check_order=("lr", "weight_decay", "lambd", "alpha", "t0", "maximize"),
    buffers=(Buffer("ax"),),
)


def asgd(params: list[np.ndarray], grads: list[np.ndarray], axs: list[np.ndarray], mus: list[np.ndarray],
         etas: list[np.ndarray], state_steps: Any, *, lambd: float, lr: float, t0: float, alpha: float,
         weight_decay: float, maximize: bool) -> None:
    r"""Functional ASGD over lists of arrays (see :class:`ASGD` for the rule).

    ``params`` and ``axs`` are updated in place; ``etas`` and ``mus`` are 0-d float arrays (one per parameter,
    start values ``lr`` and 1; torch keeps them in its default dtype, so float64 for float64 params under
    ``set_default_dtype(float64)``), rewritten in place after the update, each in its own dtype;
    ``state_steps`` (ints or an integer ndarray) is advanced by one before the update.

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> axs, steps = [np.zeros(2)], [0]
        >>> mus, etas = [np.array(1.0, np.float32)], [np.array(0.1, np.float32)]
        >>> fastopt.functional.asgd([p], [g], axs, mus, etas, steps, lambd=1e-4, lr=0.1, t0=1e6, alpha=0.75,
        ...                         weight_decay=0.0, maximize=False)
        >>> print(np.round(p, 4), np.round(axs[0], 4), steps)
        [0.9 2.1] [0.9 2.1] [1]
    """
    options = SPEC.check(dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize))
    lr, lambd, alpha, t0 = options["lr"], options["lambd"], options["alpha"], options["t0"]  # plain from here on
    n = len(params)
    for name, lst in (("mus", mus), ("etas", etas)):
        if len(lst) != n or not all(isinstance(a, np.ndarray) and a.shape == () and a.dtype in V.FLOAT_DTYPES
                                    and a.flags.writeable for a in lst):
            raise ValueError(f"{name} must be a list of {n} writeable 0-d float arrays")
    steps = next_steps(state_steps, n)
    run_functional(SPEC.table_kernel, SPEC.buffer_names, params, grads, [axs],
                   lambda s: _fill(s, [float(e) for e in etas], [float(m) for m in mus], float(lambd)),
                   SPEC.hyper(options))
    store_steps(state_steps, steps)
    for eta, mu, t in zip(etas, mus, steps):
        _advance_eta_mu(eta, mu, t, float(lr), float(lambd), float(alpha), float(t0))


class ASGD(FusedOptimizer):
    r"""Averaged stochastic gradient descent (Polyak & Juditsky, 1992), as ``torch.optim.ASGD``.

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \quad (\text{minus if maximize})\\
        \theta_t &= (1 - \lambda_d\,\eta_{t-1})\,\theta_{t-1} - \eta_{t-1}\, g_t\\
        \bar\theta_t &= \bar\theta_{t-1} + \mu_{t-1}(\theta_t - \bar\theta_{t-1})
            \quad (\bar\theta_t = \theta_t \text{ while } \mu_{t-1} = 1)\\
        \eta_t &= \gamma / (1 + \lambda_d \gamma t)^{\alpha}, \qquad \mu_t = 1 / \max(1, t - t_0)
        \end{aligned}

    with :math:`\eta_0 = \gamma`, :math:`\mu_0 = 1`; :math:`\bar\theta` is the state ``ax`` (the average; the
    parameter itself follows the plain SGD iterate).

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-2).
        lambd (float, optional): decay term :math:`\lambda_d` (default: 1e-4).
        alpha (float, optional): power :math:`\alpha` of the eta schedule, >= 0 (default: 0.75).
        t0 (float, optional): step :math:`t_0` at which averaging starts (default: 1e6).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step``, ``eta`` and ``mu`` (0-d arrays in the parameter's scalar dtype: float64 for a
    float64 parameter, float32 otherwise) and ``ax``.

    Notes:
        As torch: :math:`\eta` and :math:`\mu` are rounded to their dtype when stored and used at that precision
        (float64 for float64 parameters, as torch under ``torch.set_default_dtype(torch.float64)``; float32, torch's
        default, for float32 ones; a loaded value is cast to that dtype, as torch casts it to the parameter's),
        the schedule uses the group's current ``lr``, and ``lambd``, ``alpha`` and ``t0`` are not range-checked.

    References: Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control
        Optim. 1992.

    Example:
        >>> opt = fastopt.ASGD([w], lr=0.01, t0=100)
    """

    _spec = SPEC
    _scalar_state = (("eta", lambda group: float(group["lr"])), ("mu", 1.0))

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75,
                 t0: float = 1e6, weight_decay: float = 0, maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))

    def _fill_scalars_from_state(self, group: dict[str, Any], scalars: np.ndarray, steps: list[int],
                                 fresh: list[bool], states: list[dict[str, Any]]) -> None:
        # this step uses the current eta and mu; then, as torch does after its update, they advance (the kernel
        # reads only the scalars written here, so advancing before it runs is the same)
        lr, lambd = float(group["lr"]), float(group["lambd"])
        _fill(scalars, [float(st["eta"]) for st in states], [float(st["mu"]) for st in states], lambd)
        for st, t in zip(states, steps):
            _advance_eta_mu(st["eta"], st["mu"], t, lr, lambd, float(group["alpha"]), float(group["t0"]))
