"""Regression with fastopt.SGD: a straight line, then a parabola with a small network.

1. Linear regression: y = 2x + 5 + noise. Two parameters (w, b), the mean squared error and its gradient written
   in NumPy, full-batch fastopt.SGD. The learned (w, b) is compared with the exact least-squares solution
   (numpy.linalg.lstsq), which is what gradient descent converges to.
2. Polynomial regression: y = x^2 + noise with a 1-10-1 ReLU network (fastopt.demo.MLP, hidden=10) and
   fastopt.SGD with momentum, full batch. A straight line cannot fit a parabola; the network can.

Prints the fitted parameters and the losses; writes both fits to regression.png.

    python examples/regression.py
    python examples/regression.py --quick
"""
from __future__ import annotations

import sys

import numpy as np
from _common import parser, pyplot, save_figure

import fastopt as fo
from fastopt.demo import MLP


def linear(steps: int, rng: np.random.Generator) -> dict:
    x = rng.uniform(-3, 3, 200).astype(np.float32)
    y = (2 * x + 5 + 0.5 * rng.standard_normal(x.size)).astype(np.float32)
    w = fo.Parameter(np.zeros(1, np.float32), "w")
    b = fo.Parameter(np.zeros(1, np.float32), "b")
    opt = fo.SGD([w, b], lr=0.05)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        err = w.data * x + b.data - y                      # prediction - target
        losses.append(float(np.mean(err * err)))
        w.grad = np.array([2 * np.mean(err * x)], np.float32)   # d/dw mean(err^2)
        b.grad = np.array([2 * np.mean(err)], np.float32)       # d/db mean(err^2)
        opt.step()
    exact, *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1).astype(np.float64), y.astype(np.float64),
                                rcond=None)
    return {"x": x, "y": y, "w": float(w.data[0]), "b": float(b.data[0]), "exact": exact, "losses": losses}


def polynomial(steps: int, rng: np.random.Generator) -> dict:
    x = np.linspace(-1, 1, 100, dtype=np.float32)[:, None]
    y = (x ** 2 + 0.05 * rng.standard_normal(x.shape)).astype(np.float32)
    net = MLP(rng, hidden=10)
    opt = fo.SGD(net.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        losses.append(net.loss_and_grads(x, y))           # sets every parameter's .grad
        opt.step()
    # the best straight line through the same points, to show what the hidden layer buys
    line, *_ = np.linalg.lstsq(np.hstack([x, np.ones_like(x)]).astype(np.float64), y[:, 0].astype(np.float64),
                               rcond=None)
    line_mse = float(np.mean((x[:, 0] * line[0] + line[1] - y[:, 0]) ** 2))
    noise_mse = float(np.mean((x ** 2 - y) ** 2))
    return {"x": x, "y": y, "net": net, "losses": losses, "line": line, "line_mse": line_mse,
            "noise_mse": noise_mse}


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    rng = np.random.default_rng(0)
    lin_steps, poly_steps = (100, 300) if args.quick else (300, 3000)

    lin = linear(lin_steps, rng)
    print(f"linear regression, y = 2x + 5 + 0.5*noise, 200 points, SGD(lr=0.05), {lin_steps} full-batch steps")
    print(f"  learned:       w = {lin['w']:.4f}  b = {lin['b']:.4f}   (MSE {lin['losses'][-1]:.4f}, "
          f"from {lin['losses'][0]:.2f})")
    print(f"  least squares: w = {lin['exact'][0]:.4f}  b = {lin['exact'][1]:.4f}   "
          f"|difference| = {max(abs(lin['w'] - lin['exact'][0]), abs(lin['b'] - lin['exact'][1])):.1e}")

    poly = polynomial(poly_steps, rng)
    print(f"polynomial regression, y = x^2 + 0.05*noise, 100 points, 1-10-1 ReLU net, SGD(lr=0.1, momentum=0.9), "
          f"{poly_steps} full-batch steps")
    print(f"  network MSE {poly['losses'][-1]:.5f} (from {poly['losses'][0]:.4f}); best straight line MSE "
          f"{poly['line_mse']:.5f}; the noise alone {poly['noise_mse']:.5f}")

    plt = pyplot()
    if plt is not None:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        ax1.scatter(lin["x"], lin["y"], s=4, color="0.6", label="data")
        grid = np.linspace(-3, 3, 2)
        ax1.plot(grid, lin["w"] * grid + lin["b"], "C3", label=f"SGD: {lin['w']:.3f}x + {lin['b']:.3f}")
        ax1.plot(grid, 2 * grid + 5, "k--", linewidth=0.8, label="true: 2x + 5")
        ax1.set_title("Linear regression")
        ax1.legend()
        x = poly["x"][:, 0]
        ax2.scatter(x, poly["y"][:, 0], s=6, color="0.6", label="data")
        ax2.plot(x, poly["net"].predict(poly["x"])[:, 0], "C3", label="1-10-1 net (SGD)")
        ax2.plot(x, poly["line"][0] * x + poly["line"][1], "C0:", label="best straight line")
        ax2.set_title("Polynomial regression: y = x² + noise")
        ax2.legend()
        save_figure(plt, fig, args, "regression.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
