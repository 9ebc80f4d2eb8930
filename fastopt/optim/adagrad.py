"""Adagrad (torch.optim.Adagrad)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_spec
from .._spec import Buffer, Option, Spec, flag

__all__ = ["Adagrad", "adagrad"]


def _at_step(options: Mapping[str, Any]) -> Callable[[int], tuple[float]]:
    """Per tensor at step t: clr = lr / (1 + (t - 1) * lr_decay), in double as torch computes it."""
    lr, lr_decay = float(options["lr"]), float(options["lr_decay"])
    return lambda t: (lr / (1 + (t - 1) * lr_decay),)


def _eps_or_accumulator(options: Mapping[str, Any]) -> None:
    """The denominator sqrt(sum) + eps is 0 where every gradient so far was 0 unless eps or the initial accumulator
    is positive (in float32 too): refuse eps=0 with initial_accumulator_value=0 (0/0 = NaN from finite inputs)."""
    if not (np.float32(options["eps"]) > 0 or np.float32(options["initial_accumulator_value"]) > 0):
        raise ValueError(f"Invalid epsilon value: {options['eps']} (with initial_accumulator_value="
                         f"{options['initial_accumulator_value']}, eps=0 gives 0/0 = NaN where a gradient is zero: "
                         "make eps or initial_accumulator_value positive, above 2**-150 = 7.0e-46)")


SPEC = Spec(
    "adagrad",
    options=(Option("lr", 1e-2, V.lr, None),
             Option("lr_decay", 0, lambda v: V.number("lr_decay", v, low=0.0, message=f"Invalid lr_decay value: {v}"),
                    None),
             Option("eps", 1e-10, V.eps, "eps"),
             Option("weight_decay", 0, V.weight_decay, "weight_decay"),
             Option("initial_accumulator_value", 0,
                    lambda v: V.number("initial_accumulator_value", v, low=0.0,
                                       message=f"Invalid initial_accumulator_value value: {v}"), None),
             flag("maximize")),
    check_order=("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"),
    check_group=_eps_or_accumulator,
    buffers=(Buffer("sum"),),
    at_step=_at_step,
)


def adagrad(params: list[np.ndarray], grads: list[np.ndarray], state_sums: list[np.ndarray], state_steps: Any,
            *, lr: float, weight_decay: float, lr_decay: float, eps: float, maximize: bool) -> None:
    r"""Functional Adagrad over lists of arrays (see :class:`Adagrad` for the rule).

    ``params`` and ``state_sums`` are updated in place (start the sums at ``initial_accumulator_value``);
    ``state_steps`` (a list of ints or an integer ndarray) is advanced by one before the update, as torch does.

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> state_sums, steps = [np.zeros(2)], [0]
        >>> fastopt.functional.adagrad([p], [g], state_sums, steps, lr=0.1, weight_decay=0.0, lr_decay=0.0,
        ...                            eps=1e-10, maximize=False)
        >>> print(np.round(p, 4), state_sums[0], steps)
        [0.9 2.1] [1. 1.] [1]
    """
    options = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay, initial_accumulator_value=0.0,
                   maximize=maximize)
    run_spec(SPEC, options, params, grads, [state_sums], state_steps)


class Adagrad(FusedOptimizer):
    r"""Adagrad (Duchi, Hazan & Singer, 2011), in torch's order of operations (``torch.optim.Adagrad``).

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \quad (\text{minus if maximize})\\
        \tilde\gamma_t &= \gamma / (1 + (t-1)\,\eta)\\
        s_t &= s_{t-1} + g_t^2, \qquad s_0 = \tau\\
        \theta_t &= \theta_{t-1} - \tilde\gamma_t\, \frac{g_t}{\sqrt{s_t} + \epsilon}
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-2).
        lr_decay (float, optional): learning rate decay :math:`\eta` (default: 0).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
        initial_accumulator_value (float, optional): starting value :math:`\tau` of the sum of squared
            gradients (default: 0).
        eps (float, optional): :math:`\epsilon` added to the denominator; 0 only with a positive
            ``initial_accumulator_value`` (default: 1e-10).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step`` and ``sum``. As in torch, the state of every parameter given to the
    constructor is created at once (``step`` 0, ``sum`` filled with :math:`\tau`); parameters added later
    with ``add_param_group`` get theirs at their first step.

    Notes:
        torch fills every new ``sum`` with the constructor's ``initial_accumulator_value`` even when a group
        sets its own; fastopt uses the group's value (the same thing unless a group overrides it).
        Sparse gradients are not supported.

    References: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization", JMLR 2011.

    Example:
        >>> opt = fastopt.Adagrad([w], lr=0.01, lr_decay=1e-4)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))
        for group in self.param_groups:  # the state is made eagerly, as torch's: one arena per dtype
            bufs: dict[Any, np.ndarray] = {}
            for dtype in V.FLOAT_DTYPES:
                ps = [p for p in group["params"] if isinstance(p.data, np.ndarray) and p.data.dtype == dtype]
                bufs.update(zip(ps, self._initial_buffers(group, "sum", [p.data for p in ps])))
            for p in group["params"]:  # in the parameters' order
                if p in bufs:
                    self.state[p] = {"step": 0, "sum": bufs[p]}

    def _fill_buffer(self, group: dict[str, Any], key: str, buf: np.ndarray, data: np.ndarray) -> None:
        buf.fill(group["initial_accumulator_value"])

