"""Muon: momentum orthogonalised by Newton–Schulz iterations (torch.optim.Muon)."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import run_functional
from .._spec import Option, Spec, flag
from ..optimizer import Optimizer

__all__ = ["Muon", "muon"]

# Keller Jordan's coefficients and defaults, as torch.optim.Muon.
DEFAULT_A, DEFAULT_B, DEFAULT_C = 3.4445, -4.7750, 2.0315
DEFAULT_NS_STEPS = 5
EPS = 1e-7
_ADJUST = (None, "original", "match_rms_adamw")


def _adjust(value: Any) -> Any:
    if not (value is None or isinstance(value, str)) or value not in _ADJUST:
        raise ValueError(f"Adjust learning rate function {value} is not supported")
    return value


def _coefficients(value: Any) -> tuple[float, ...]:
    if isinstance(value, np.ndarray) and value.shape == (3,):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    return tuple(V.number(f"ns_coefficients[{i}]", c) for i, c in enumerate(value))


def _ns_steps(value: Any) -> int:
    steps = V.integer("ns_steps", value, -2**63)
    if steps < 0:
        raise TypeError(f"ns_steps must be a non-negative int, got {value!r}")  # torch's error type
    if steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    return steps


# Muon's step is two table kernels around a NumPy iteration, so its options feed no single C struct (kernel None).
SPEC = Spec(
    None,
    options=(Option("lr", 1e-3, lambda v: V.number("lr", v, low=0.0,
                                                message=f"Learning rate should be >= 0 but is: {v}"), None),
             Option("weight_decay", 0.1, lambda v: V.number("weight_decay", v, low=0.0,
                                                            message=f"weight decay should be >= 0 but is: {v}"), None),
             Option("momentum", 0.95, lambda v: V.momentum(v, message=f"momentum should be >= 0 but is: {v}"), None),
             flag("nesterov", True, None),
             Option("ns_coefficients", (DEFAULT_A, DEFAULT_B, DEFAULT_C), _coefficients, None, normalize=tuple),
             Option("eps", EPS, V.denominator_eps, None),  # X_0 = U / max(|U|, eps): 0/0 for U = 0 at eps=0
             Option("ns_steps", DEFAULT_NS_STEPS, _ns_steps, None),
             Option("adjust_lr_fn", None, _adjust, None)),
    check_order=("lr", "momentum", "weight_decay", "adjust_lr_fn", "nesterov", "ns_coefficients", "eps", "ns_steps"),
)


def _adjust_lr(lr: float, adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    """The learning rate scaled for the matrix shape (A, B): sqrt(max(1, A/B)) ("original", the default) or
    0.2 sqrt(max(A, B)) ("match_rms_adamw"), in double as torch."""
    a, b = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, a / b))
    else:
        ratio = 0.2 * math.sqrt(max(a, b))
    return lr * ratio


def newton_schulz(g: np.ndarray, ns_coefficients: tuple[float, float, float], ns_steps: int,
                  eps: float) -> np.ndarray:
    r"""The quintic Newton–Schulz iteration of Muon on a 2-D array, in its dtype, through NumPy's matmul.

    :math:`X_0 = G / \max(\lVert G\rVert_F, \epsilon)` (on :math:`G^\top` when :math:`G` has more rows than
    columns), then ``ns_steps`` times :math:`A = X X^\top`, :math:`X \leftarrow aX + (bA + cA^2)X`.
    Returns a new array of ``g``'s shape; ``g`` is not modified.
    """
    a, b, c = (float(x) for x in ns_coefficients)
    dt = g.dtype.type
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g
    norm = math.sqrt(float(np.sum(np.square(x, dtype=np.float64))))
    x = x / dt(max(norm, eps))
    for _ in range(ns_steps):
        gram = x @ x.T
        poly = dt(b) * gram + dt(c) * (gram @ gram)
        x = dt(a) * x + poly @ x
    return np.ascontiguousarray(x.T if tall else x)


def muon(params: list[np.ndarray], grads: list[np.ndarray], muon_momentum_bufs: list[np.ndarray], *, lr: float,
         weight_decay: float, momentum: float, nesterov: bool, ns_coefficients: tuple[float, float, float],
         ns_steps: int, eps: float, adjust_lr_fn: str | None) -> None:
    r"""Functional Muon over lists of 2-D arrays (see :class:`Muon` for the rule).

    ``params`` and ``muon_momentum_bufs`` (start: zeros) are updated in place.

    Example:
        >>> p, g = np.zeros((2, 2)), np.diag([1.0, 4.0])
        >>> bufs = [np.zeros((2, 2))]
        >>> fastopt.functional.muon([p], [g], bufs, lr=0.1, weight_decay=0.0, momentum=0.95, nesterov=True,
        ...                         ns_coefficients=(3.4445, -4.775, 2.0315), ns_steps=5, eps=1e-7,
        ...                         adjust_lr_fn=None)
        >>> print(np.round(p, 2))  # orthogonalised: the direction with 4x the gradient moves about as far
        [[-0.07  0.  ]
         [ 0.   -0.07]]
    """
    o = SPEC.check(dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))
    lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps = (
        o[k] for k in ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps"))
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray) or p.ndim != 2:
            raise ValueError(f"params[{i}]: Muon only supports 2D parameters, got shape {np.shape(p)}")
    n = len(params)
    if len(grads) != n:
        raise ValueError(f"got {n} params but {len(grads)} grads")
    # The first kernel writes the momentum buffers; the params are only read by the second, so check them here
    # (the rest — grads, buffers, overlaps — the first call checks before it writes anything).
    for i, (p, g) in enumerate(zip(params, grads)):
        if p.dtype not in V.FLOAT_DTYPES or not p.flags.writeable:
            raise ValueError(f"params[{i}] must be a writeable float32 or float64 array")
        if not isinstance(g, np.ndarray) or g.dtype != p.dtype or g.shape != p.shape:
            raise ValueError(f"grads[{i}] must be an ndarray of shape {p.shape} and dtype {p.dtype}")
        if g.size and np.shares_memory(g, p):
            raise ValueError(f"grads[{i}] shares memory with params[{i}]")
    updates = [np.empty(g.shape, dtype=g.dtype) for g in grads]
    # 1. momentum (C): b = lerp(b, g, 1 - mu); u = lerp(g, b, mu) or b. Checks every array before writing.
    mom = K.KERNELS["muon_momentum"]
    run_functional(mom, ("update", "grad", "momentum_buffer"), updates, grads, [muon_momentum_bufs], lambda s: None,
                   mom.pack({"momentum": momentum, "nesterov": nesterov}))
    # 2. orthogonalise (NumPy matmul), 3. decay and step (C)
    ortho = [newton_schulz(u, ns_coefficients, int(ns_steps), float(eps)) for u in updates]

    def fill(scalars: np.ndarray) -> None:
        for i, p in enumerate(params):
            scalars[i, 0] = _adjust_lr(float(lr), adjust_lr_fn, p.shape)

    apply = K.KERNELS["muon_apply"]
    run_functional(apply, ("param", "update"), params, ortho, [], fill,
                   apply.pack({"lr": lr, "weight_decay": weight_decay}))


class Muon(Optimizer):
    r"""Muon (Jordan et al., 2024): SGD momentum whose update is orthogonalised, as ``torch.optim.Muon``.

    For a 2-D parameter :math:`\theta \in \mathbb{R}^{A\times B}`:

    .. math::
        \begin{aligned}
        B_t &= \mu B_{t-1} + (1-\mu) g_t, \qquad
            U_t = \begin{cases} (1-\mu) g_t + \mu B_t & \text{nesterov}\\ B_t & \text{otherwise}\end{cases}\\
        O_t &= \mathrm{NS}^{(a,b,c)}_k(U_t;\epsilon):\quad X_0 = U_t / \max(\lVert U_t\rVert_F, \epsilon),\quad
            X_{j+1} = aX_j + (bX_jX_j^\top + c(X_jX_j^\top)^2)X_j\\
        \theta_t &= (1 - \gamma\lambda)\theta_{t-1} - \tilde\gamma\, O_t,\qquad
            \tilde\gamma = \gamma\sqrt{\max(1, A/B)} \text{ ("original") or } 0.2\gamma\sqrt{\max(A, B)}
            \text{ ("match_rms_adamw")}
        \end{aligned}

    (the iteration runs on :math:`U_t^\top` when :math:`A > B`). The momentum and the parameter update are C
    kernels over the whole group; the Newton–Schulz products are NumPy matrix products in the parameter's dtype.

    Args:
        params (iterable): 2-D parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma` (default: 1e-3).
        weight_decay (float, optional): decoupled weight decay :math:`\lambda` (default: 0.1).
        momentum (float, optional): momentum factor :math:`\mu` in [0, 1] (default: 0.95).
        nesterov (bool, optional): use the Nesterov form of the momentum (default: True).
        ns_coefficients (tuple[float, float, float], optional): :math:`(a, b, c)`
            (default: (3.4445, -4.7750, 2.0315)).
        eps (float, optional): :math:`\epsilon`, floor of the norm in the normalisation, > 0
            (default: 1e-7).
        ns_steps (int, optional): number :math:`k` of Newton–Schulz iterations, below 100 (default: 5).
        adjust_lr_fn (str or None, optional): ``"original"`` or ``"match_rms_adamw"``; None means
            ``"original"`` (default: None).

    State per parameter: ``momentum_buffer``.

    Notes:
        torch runs the Newton–Schulz iteration in **bfloat16** (``grad.bfloat16()``) and adds the bfloat16 update
        to the parameter; fastopt runs it in the parameter's dtype (float32 or float64). The two agree to
        bfloat16 precision only (about 3 significant digits of each update); with torch's iteration patched to
        run in the parameter's dtype they agree to the usual parity bars (see tests/test_torch_parity.py).
        Parameters of other than 2 dimensions are rejected (use AdamW for biases and embeddings).

    References: K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024
        (https://kellerjordan.github.io/posts/muon/); J. Liu et al., "Muon is Scalable for LLM Training", 2025.

    Example:
        >>> opt = fastopt.Muon([w1, w2], lr=0.02, momentum=0.95)
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = (DEFAULT_A, DEFAULT_B, DEFAULT_C),
                 eps: float = EPS, ns_steps: int = DEFAULT_NS_STEPS, adjust_lr_fn: str | None = None) -> None:
        super().__init__(params, self._spec.options_from(locals()))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        for p in group["params"]:
            if np.ndim(p.data) != 2:
                raise ValueError("Muon only supports 2D parameters whereas we found a parameter with size: "
                                 f"{tuple(np.shape(p.data))}")

    def _state_spec(self, group: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ("momentum_buffer",), ()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        r"""Perform one step over every group. Returns the closure's loss."""
        loss = None
        if closure is not None:
            loss = closure()
        plans, arrays = [], []
        for gi, group, checked in self._checked_groups():  # validate everything before writing anything
            items = []
            for j, p, data, grad, st in checked:
                buf = None
                if st and "momentum_buffer" in st:
                    buf = V.state_buffer(st["momentum_buffer"], "momentum_buffer", data, gi, j)
                    if not (buf.flags.c_contiguous and buf.flags.aligned):
                        raise ValueError(f"{V.where(gi, j)}: state 'momentum_buffer' must be C-contiguous")
                items.append((p, data, grad, buf))
                arrays += [(data, True, V.where(gi, j), "data"), (grad, False, V.where(gi, j), "grad"),
                           (buf, True, V.where(gi, j), "state 'momentum_buffer'")]
            plans.append((group, items))
        V.no_overlap(arrays)
        for group, items in plans:
            by_dtype: dict[np.dtype, list] = {}
            for item in items:
                by_dtype.setdefault(item[1].dtype, []).append(item)
            for its in by_dtype.values():
                bufs = [np.zeros(d.shape, d.dtype) if b is None else b for _, d, _, b in its]
                muon([d for _, d, _, _ in its], [g for _, _, g, _ in its], bufs, lr=group["lr"],
                     weight_decay=group["weight_decay"], momentum=group["momentum"], nesterov=group["nesterov"],
                     ns_coefficients=group["ns_coefficients"], ns_steps=group["ns_steps"], eps=group["eps"],
                     adjust_lr_fn=group["adjust_lr_fn"])
                for (p, _, _, _), b in zip(its, bufs):
                    self.state[p]["momentum_buffer"] = b
        return loss
