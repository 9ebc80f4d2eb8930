"""Stochastic gradient descent with momentum (torch.optim.SGD)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_functional
from .._spec import Buffer, Option, Spec, flag
from .. import _lowp

__all__ = ["SGD", "sgd"]


def _nesterov_rule(options: Mapping[str, Any]) -> None:
    if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")


def _fill(options: Mapping[str, Any], scalars: np.ndarray, steps: list[int], fresh: list[bool]) -> None:
    """Per tensor: 1.0 when its momentum buffer is new (it starts at the gradient, as torch's)."""
    scalars[:, 0] = fresh


SPEC = Spec(
    "sgd",
    options=(Option("lr", 1e-3, V.lr, "lr"),
             Option("momentum", 0, V.momentum, "momentum"),
             Option("dampening", 0, lambda v: V.number("dampening", v, low=0.0, high=1.0,
                                                       message=f"Invalid dampening value: {v} (expected in [0, 1])"),
                    "dampening"),
             Option("weight_decay", 0, V.weight_decay, "weight_decay"),
             flag("nesterov"), flag("maximize")),
    check_group=_nesterov_rule,
    buffers=(Buffer("momentum_buffer", when=lambda o: o["momentum"] != 0),),
    fill=_fill,
)


def sgd(params: list[np.ndarray], d_p_list: list[np.ndarray], momentum_buffer_list: list[np.ndarray | None], *,
        weight_decay: float, momentum: float, lr: float, dampening: float, nesterov: bool,
        maximize: bool) -> None:
    r"""Functional SGD over lists of arrays (see :class:`SGD` for the rule).

    ``params`` are updated in place. With ``momentum != 0``, a ``None`` entry of ``momentum_buffer_list`` is
    replaced by a new buffer that starts at the gradient, as torch does; existing buffers are updated in place.

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> bufs = [None]  # a new momentum buffer is made on the first step
        >>> fastopt.functional.sgd([p], [g], bufs, weight_decay=0.0, momentum=0.9, lr=0.1, dampening=0.0,
        ...                        nesterov=False, maximize=False)
        >>> print(np.round(p, 4), bufs[0])
        [0.9 2.1] [ 1. -1.]
    """
    options = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                   maximize=maximize)
    options = SPEC.check(options)
    n = len(params)
    fresh = [False] * n
    buffers = None
    if options["momentum"] != 0:
        if len(momentum_buffer_list) != n:
            raise ValueError(f"got {n} params but {len(momentum_buffer_list)} momentum buffers")
        buffers = [np.zeros(np.shape(p), np.asarray(p).dtype) if b is None else b
                   for p, b in zip(params, momentum_buffer_list)]
        fresh = [b is None for b in momentum_buffer_list]

    run_functional(SPEC.table_kernel, SPEC.buffer_names, params, d_p_list, [buffers],
                   lambda s: _fill(options, s, [], fresh), SPEC.hyper(options))
    if buffers is not None:
        momentum_buffer_list[:] = buffers


class SGD(FusedOptimizer):
    r"""Stochastic gradient descent, optionally with momentum, as ``torch.optim.SGD``.

    .. math::
        \begin{aligned}
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \quad (\text{minus if maximize})\\
        b_t &= g_t \text{ at the first step, else } \mu b_{t-1} + (1-\tau) g_t\\
        g_t &\leftarrow g_t + \mu b_t \text{ if nesterov, else } b_t \quad (\text{when } \mu \ne 0)\\
        \theta_t &= \theta_{t-1} - \gamma g_t
        \end{aligned}

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-3).
        momentum (float, optional): momentum factor :math:`\mu` in [0, 1] (default: 0).
        dampening (float, optional): dampening :math:`\tau` for momentum, in [0, 1] (default: 0).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
        nesterov (bool, optional): Nesterov momentum; needs momentum > 0 and dampening 0 (default: False).
        maximize (bool, optional): maximize the objective instead of minimizing it (default: False).
        master_weights (bool, optional): float32 master copy (state key ``master``) for float16/bfloat16 params, as
            :class:`Adam` (default: False).
        rounding (str, optional): "nearest" or "stochastic" (bfloat16 params), as :class:`Adam` (default: "nearest").
        seed (int, optional): stochastic rounding's seed, as :class:`Adam` (default: 0).
        state_dtype (str, optional): how ``momentum_buffer`` is stored, for the whole optimizer (default: "float32"):
            "bfloat16" (uint16 bfloat16 bits under the same key, nearest-even) or "int8" (bitsandbytes' blockwise
            8-bit codes ``state1``, ``absmax1`` per 256 elements and the signed map ``qmap1``; tensors under 4096
            elements keep a float32 ``momentum_buffer``); both keep a ``step`` count too. Float32 parameters only, and momentum > 0.
            Each element is the float32 update on the decoded state, then re-encoded (csrc/lowp_state.c).

    State per parameter: ``momentum_buffer`` (only when momentum != 0), as in torch (float16/bfloat16
    parameters also keep a ``step`` count: the stochastic-rounding hash reads it).

    float16 and bfloat16 (``ml_dtypes.bfloat16``) parameters keep float32 state (the buffers above, a ``step``
    count, and ``master`` with master weights); every element is computed in float32 exactly as for a float32
    parameter (from the master copy, or the parameter widened exactly), then rounded into the parameter. Gradients
    may be the parameter's dtype or float32.

    Notes:
        As in torch (and unlike Sutskever et al.), the buffer starts at the first gradient, and Nesterov's
        variant is written in terms of the gradient and the buffer, not a look-ahead point.

    Example:
        >>> opt = fastopt.SGD([w], lr=0.1, momentum=0.9)
        >>> w.grad = compute_grad(w.data); opt.step()
    """

    _spec = SPEC
    _lowp_moment = "momentum_buffer"  # compressed saved state refused clearly (state_dtype)
    _has_step = False
    _fresh_uses_grad = ("momentum_buffer",)

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: str = "float32") -> None:
        _lowp.set_state_dtype(self, state_dtype, "sgd")
        super().__init__(params, self._spec.options_from(locals()))
        _lowp.set_param_mode(self, master_weights, rounding, seed)
        _lowp.check_compressed_setup(self)
