"""The classic hand-written model: a sigmoid unit trained on the mean squared error, gradient and updates checked.

    p = sigmoid(X w + b),   L(w, b) = mean((p - y)^2)
    dL/dz = 2 (p - y) p (1 - p) / N,   dL/dw = X^T dL/dz,   dL/db = sum(dL/dz)

1. The hand-written gradient is checked against central finite differences (float64).
2. Steps of fastopt.SGD (momentum, Nesterov, weight decay) and fastopt.Adam are compared with the same update
   written out below in NumPy from the textbook formulas; the max difference after each step is printed (it is
   rounding: a few units in the last place, not an algorithmic difference).
3. The model is then trained with fastopt.Adam and its accuracy printed.

    python examples/sigmoid_mse.py
    python examples/sigmoid_mse.py --quick
"""
from __future__ import annotations

import sys

import numpy as np
from _common import parser

import fastopt as fo


def make_data(rng: np.random.Generator, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs in 2-D, labels 0 and 1."""
    y = (np.arange(n) % 2).astype(np.float64)
    X = rng.standard_normal((n, 2)) + np.where(y[:, None] == 1, 1.5, -1.5) * np.array([1.0, 0.5])
    return X, y


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))        # = 1 / (1 + exp(-z)), without overflow for large |z|


def loss(w: np.ndarray, b: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    p = sigmoid(X @ w + b)
    return float(np.mean((p - y) ** 2))


def loss_and_grads(w: np.ndarray, b: np.ndarray, X: np.ndarray, y: np.ndarray):
    p = sigmoid(X @ w + b)
    dz = 2.0 * (p - y) * p * (1.0 - p) / y.size
    return float(np.mean((p - y) ** 2)), X.T @ dz, np.array([dz.sum()])


def gradient_check(w: np.ndarray, b: np.ndarray, X: np.ndarray, y: np.ndarray, h: float = 1e-6) -> float:
    """max |analytic - central difference| / max |analytic| over every coordinate of (w, b)."""
    _, gw, gb = loss_and_grads(w, b, X, y)
    analytic = np.concatenate([gw, gb])
    theta = np.concatenate([w, b])
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (loss(up[:-1], up[-1:], X, y) - loss(down[:-1], down[-1:], X, y)) / (2 * h)
    return float(np.max(np.abs(analytic - numeric)) / np.max(np.abs(analytic)))


# The update rules, written out from the formulas (state kept in plain variables).
def sgd_formula(theta, g, buf, *, lr, momentum, weight_decay, nesterov):
    g = g + weight_decay * theta                   # L2 penalty folded into the gradient
    buf = g.copy() if buf is None else momentum * buf + g   # the buffer starts at the first gradient
    d = g + momentum * buf if nesterov else buf
    return theta - lr * d, buf


def adam_formula(theta, g, m, v, t, *, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return theta - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def compare_steps(name: str, make_opt, formula, n_steps: int, w0, b0, X, y) -> float:
    """Run fastopt and the formula side by side from (w0, b0); print and return the worst difference."""
    w, b = fo.Parameter(w0.copy(), "w"), fo.Parameter(b0.copy(), "b")
    opt = make_opt([w, b])
    theta = np.concatenate([w0, b0])
    state = formula.init(theta)
    worst = 0.0
    for t in range(1, n_steps + 1):
        opt.zero_grad()
        _, w.grad, b.grad = loss_and_grads(w.data, b.data, X, y)
        opt.step()
        _, gw, gb = loss_and_grads(theta[:-1], theta[-1:], X, y)
        theta, state = formula.step(theta, np.concatenate([gw, gb]), state, t)
        diff = float(np.max(np.abs(np.concatenate([w.data, b.data]) - theta)))
        worst = max(worst, diff)
        print(f"  {name} step {t}: max |fastopt - formula| = {diff:.2e}  (|theta| up to {np.max(np.abs(theta)):.3f})")
    return worst


class SGDRule:
    kw = dict(lr=0.5, momentum=0.9, weight_decay=1e-3, nesterov=True)

    @staticmethod
    def init(theta):
        return None

    @classmethod
    def step(cls, theta, g, buf, t):
        return sgd_formula(theta, g, buf, **cls.kw)


class AdamRule:
    kw = dict(lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8)

    @staticmethod
    def init(theta):
        return (np.zeros_like(theta), np.zeros_like(theta))

    @classmethod
    def step(cls, theta, g, state, t):
        theta, m, v = adam_formula(theta, g, *state, t, **cls.kw)
        return theta, (m, v)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, writes=False).parse_args(argv)
    rng = np.random.default_rng(0)
    X, y = make_data(rng)
    w0, b0 = 0.1 * rng.standard_normal(2), np.zeros(1)

    rel = gradient_check(w0, b0, X, y)
    print(f"gradient check (central differences, h = 1e-6, float64): max relative error {rel:.1e}")

    n_steps = 3
    print(f"fastopt.SGD(lr=0.5, momentum=0.9, weight_decay=1e-3, nesterov=True) vs the formula, {n_steps} steps:")
    d_sgd = compare_steps("SGD", lambda ps: fo.SGD(ps, lr=0.5, momentum=0.9, weight_decay=1e-3, nesterov=True),
                          SGDRule, n_steps, w0, b0, X, y)
    print(f"fastopt.Adam(lr=0.05) vs the formula, {n_steps} steps:")
    d_adam = compare_steps("Adam", lambda ps: fo.Adam(ps, lr=0.05), AdamRule, n_steps, w0, b0, X, y)
    print(f"max difference: SGD {d_sgd:.1e}, Adam {d_adam:.1e} (float64 rounding)")

    epochs = 50 if args.quick else 500
    w, b = fo.Parameter(w0.copy(), "w"), fo.Parameter(b0.copy(), "b")
    opt = fo.Adam([w, b], lr=0.05)
    first = None
    for _ in range(epochs):
        opt.zero_grad()
        value, w.grad, b.grad = loss_and_grads(w.data, b.data, X, y)
        first = value if first is None else first
        opt.step()
    acc = float(np.mean((sigmoid(X @ w.data + b.data) > 0.5) == (y == 1)))
    print(f"training with fastopt.Adam(lr=0.05), {epochs} full-batch steps: MSE {first:.4f} -> "
          f"{loss(w.data, b.data, X, y):.4f}, accuracy {100 * acc:.1f}%")

    ok = rel < 1e-6 and d_sgd < 1e-12 and d_adam < 1e-12
    if not ok:
        print("FAILED: a check is outside its tolerance", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
