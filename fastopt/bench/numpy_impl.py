r"""The best in-place NumPy optimizers a user would write: the baseline fastopt is measured against.

Each class updates lists of arrays in place with ``out=`` on every ufunc and one preallocated scratch array per
tensor, in torch's order of operations (so they compute what fastopt and torch compute, to rounding), e.g. Adam:

.. math::
    m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
    p \leftarrow p - \frac{\gamma}{1-\beta_1^t}\,\frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

They take the state arrays from the caller, so the benchmark can run every implementation over the same memory.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["NumpySGD", "NumpyAdam", "NumpyRMSprop", "NUMPY_OPTIMIZERS"]


class _Base:
    def __init__(self, params: list[np.ndarray], grads: list[np.ndarray], state: list[list[np.ndarray]]) -> None:
        self.params = params
        self.grads = grads
        self.state = state  # state[i]: this optimizer's buffers for tensor i, in its documented order
        self.scratch = [np.empty_like(p) for p in params]


class NumpySGD(_Base):
    r"""SGD with momentum (dampening 0): :math:`b \leftarrow \mu b + g,\ p \leftarrow p - \gamma b`.

    Args:
        params, grads: lists of arrays (updated in place / read).
        state: per tensor ``[momentum_buffer]``.
        lr (float, optional): :math:`\gamma` (default: 1e-2).  momentum (float, optional): :math:`\mu` (default: 0.9).
    """

    def __init__(self, params, grads, state, lr: float = 1e-2, momentum: float = 0.9) -> None:
        super().__init__(params, grads, state)
        self.lr, self.momentum = lr, momentum

    def step(self) -> None:
        mom, neg_lr = self.momentum, -self.lr
        for p, g, (b,), s in zip(self.params, self.grads, self.state, self.scratch):
            np.multiply(b, mom, out=b)
            np.add(b, g, out=b)
            np.multiply(b, neg_lr, out=s)
            np.add(p, s, out=p)


class NumpyAdam(_Base):
    r"""Adam, or AdamW with ``decoupled=True`` (:math:`p \leftarrow p(1-\gamma\lambda)` first).

    Args:
        params, grads: lists of arrays.  state: per tensor ``[exp_avg, exp_avg_sq]``.
        lr (float, optional): (default: 1e-3).  betas (tuple, optional): (default: (0.9, 0.999)).
        eps (float, optional): (default: 1e-8).  weight_decay (float, optional): (default: 0).
        decoupled (bool, optional): AdamW's decoupled weight decay (default: False).
    """

    def __init__(self, params, grads, state, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False) -> None:
        super().__init__(params, grads, state)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1 ** self.t)
        bc2_sqrt = math.sqrt(1 - b2 ** self.t)
        decay = 1 - self.lr * self.weight_decay
        eps = self.eps
        for p, g, (m, v), s in zip(self.params, self.grads, self.state, self.scratch):
            if self.decoupled and self.weight_decay:
                np.multiply(p, decay, out=p)
            np.subtract(g, m, out=s)           # m = lerp(m, g, 1 - b1)
            np.multiply(s, 1 - b1, out=s)
            np.add(m, s, out=m)
            np.multiply(v, b2, out=v)          # v = b2 v + (1 - b2) g^2
            np.multiply(g, 1 - b2, out=s)
            np.multiply(s, g, out=s)
            np.add(v, s, out=v)
            np.sqrt(v, out=s)                  # denom = sqrt(v) / sqrt(bc2) + eps
            np.divide(s, bc2_sqrt, out=s)
            np.add(s, eps, out=s)
            np.divide(m, s, out=s)             # p -= step_size * m / denom
            np.multiply(s, -step_size, out=s)
            np.add(p, s, out=p)


class NumpyRMSprop(_Base):
    r"""RMSprop (not centered, no momentum): :math:`s \leftarrow \alpha s + (1-\alpha) g^2,\
    p \leftarrow p - \gamma g / (\sqrt{s} + \epsilon)`.

    Args:
        params, grads: lists of arrays.  state: per tensor ``[square_avg]``.
        lr (float, optional): (default: 1e-2).  alpha (float, optional): (default: 0.99).
        eps (float, optional): (default: 1e-8).
    """

    def __init__(self, params, grads, state, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8) -> None:
        super().__init__(params, grads, state)
        self.lr, self.alpha, self.eps = lr, alpha, eps

    def step(self) -> None:
        alpha, eps, neg_lr = self.alpha, self.eps, -self.lr
        for p, g, (sq,), s in zip(self.params, self.grads, self.state, self.scratch):
            np.multiply(sq, alpha, out=sq)
            np.multiply(g, 1 - alpha, out=s)
            np.multiply(s, g, out=s)
            np.add(sq, s, out=sq)
            np.sqrt(sq, out=s)
            np.add(s, eps, out=s)
            np.divide(g, s, out=s)
            np.multiply(s, neg_lr, out=s)
            np.add(p, s, out=p)


NUMPY_OPTIMIZERS = {"sgd": NumpySGD, "adam": NumpyAdam, "adamw": NumpyAdam, "rmsprop": NumpyRMSprop}
