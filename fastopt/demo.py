"""``fastopt demo``: the classic torch.optim optimizer comparison, in pure NumPy with fastopt.

A 1-20-1 ReLU network is fit to y = x^2 + 0.1 * noise on 1000 points in [-1, 1] with minibatches of 32, shuffled,
for 12 epochs — one network per optimizer, all starting from the same weights: SGD(lr=0.01),
SGD(lr=0.01, momentum=0.8), RMSprop(lr=0.01, alpha=0.9) and Adam(lr=0.01, betas=(0.9, 0.99)). The forward and
backward passes are written in NumPy; fastopt does the updates. Prints a per-epoch loss table and writes a
loss-curve PNG (if matplotlib is installed).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np

import fastopt as fo
from fastopt._progress import Progress

OPTIMIZERS = [
    ("SGD", lambda ps: fo.SGD(ps, lr=0.01)),
    ("Momentum", lambda ps: fo.SGD(ps, lr=0.01, momentum=0.8)),
    ("RMSprop", lambda ps: fo.RMSprop(ps, lr=0.01, alpha=0.9)),
    ("Adam", lambda ps: fo.Adam(ps, lr=0.01, betas=(0.9, 0.99))),
]


class MLP:
    """y = W2 relu(W1 x + b1) + b2 with torch.nn.Linear's shapes and default initialisation."""

    def __init__(self, rng: np.random.Generator, hidden: int = 20, dtype=np.float32) -> None:
        def uniform(shape, fan_in):
            bound = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-bound, bound, shape).astype(dtype)

        self.W1 = fo.Parameter(uniform((hidden, 1), 1), "W1")
        self.b1 = fo.Parameter(uniform((hidden,), 1), "b1")
        self.W2 = fo.Parameter(uniform((1, hidden), hidden), "W2")
        self.b2 = fo.Parameter(uniform((1,), hidden), "b2")

    def parameters(self) -> list[fo.Parameter]:
        return [self.W1, self.b1, self.W2, self.b2]

    def copy_from(self, other: "MLP") -> None:
        for p, q in zip(self.parameters(), other.parameters()):
            p.data[...] = q.data

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean squared error on the batch; sets every parameter's .grad."""
        h_pre = x @ self.W1.data.T + self.b1.data          # (B, H)
        h = np.maximum(h_pre, 0)
        out = h @ self.W2.data.T + self.b2.data            # (B, 1)
        diff = out - y
        loss = float(np.mean(diff * diff))
        d_out = (2.0 / diff.size) * diff                   # dL/dout
        self.W2.grad = d_out.T @ h
        self.b2.grad = d_out.sum(axis=0)
        d_h = (d_out @ self.W2.data) * (h_pre > 0)
        self.W1.grad = d_h.T @ x
        self.b1.grad = d_h.sum(axis=0)
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.W1.data.T + self.b1.data, 0) @ self.W2.data.T + self.b2.data


def run(epochs: int = 12, batch_size: int = 32, n: int = 1000, seed: int = 0,
        on_epoch: Callable[[int], None] | None = None) -> dict:
    """Train one network per optimizer; return per-step and per-epoch losses and the wall time of the steps.
    ``on_epoch(e)`` is called after each epoch e = 1 .. epochs (the command line draws its progress bar with it)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    y = (x ** 2 + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)
    init = MLP(rng)
    nets = {}
    for name, make in OPTIMIZERS:
        net = MLP(rng)
        net.copy_from(init)
        nets[name] = (net, make(net.parameters()))
    steps: dict[str, list[float]] = {name: [] for name in nets}
    epoch_loss: dict[str, list[float]] = {name: [] for name in nets}
    step_time = {name: 0.0 for name in nets}
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        sums = dict.fromkeys(nets, 0.0)
        count = 0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            bx, by = x[idx], y[idx]
            count += 1
            for name, (net, opt) in nets.items():
                opt.zero_grad()
                loss = net.loss_and_grads(bx, by)
                t0 = time.perf_counter()
                opt.step()
                step_time[name] += time.perf_counter() - t0
                steps[name].append(loss)
                sums[name] += loss
        for name in nets:
            epoch_loss[name].append(sums[name] / count)
        if on_epoch is not None:
            on_epoch(epoch)
    return {"steps": steps, "epochs": epoch_loss, "step_time": step_time, "x": x, "y": y,
            "nets": {k: v[0] for k, v in nets.items()}, "n_steps": len(steps["SGD"])}


def table(result: dict) -> str:
    names = list(result["epochs"])
    lines = ["epoch  " + "  ".join(f"{n:>9}" for n in names)]
    for e in range(len(result["epochs"][names[0]])):
        lines.append(f"{e + 1:>5}  " + "  ".join(f"{result['epochs'][n][e]:9.5f}" for n in names))
    lines.append("step   " + "  ".join(f"{1e6 * result['step_time'][n] / result['n_steps']:7.2f}us" for n in names))
    return "\n".join(lines)


def plot(result: dict, path: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, losses in result["steps"].items():
        ax1.plot(losses, label=name, linewidth=0.8)
    ax1.set_xlabel("step")
    ax1.set_ylabel("minibatch MSE")
    ax1.set_ylim(0, 0.2)
    ax1.set_title("Loss per step (1-20-1 MLP, batch 32)")
    ax1.legend()
    x, y = result["x"], result["y"]
    ax2.scatter(x[:, 0], y[:, 0], s=2, color="0.7", label="data")
    for name, net in result["nets"].items():
        ax2.plot(x[:, 0], net.predict(x)[:, 0], label=name)
    ax2.set_title("Fit after training: y = x² + 0.1·noise")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fastopt demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=12, help="epochs per optimizer (default: 12)")
    ap.add_argument("--out", default="fastopt_demo.png",
                    help="loss-curve PNG, or a directory to write fastopt_demo.png into (default: fastopt_demo.png)")
    ap.add_argument("--no-plot", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error(f"--epochs must be at least 1, got {args.epochs}")
    out = os.path.join(args.out, "fastopt_demo.png") if os.path.isdir(args.out) else args.out
    with Progress(args.epochs, "fastopt demo: training") as bar:
        bar.update(0, "epoch 0")
        result = run(epochs=args.epochs, on_epoch=lambda e: bar.update(e, f"epoch {e}"))
    print(f"fastopt {fo.__version__}: 1-20-1 ReLU MLP on y = x^2 + 0.1*noise, 1000 points, batch 32, "
          f"{args.epochs} epochs ({result['n_steps']} steps per optimizer)")
    print("mean training loss per epoch (MSE); last row: mean time of one opt.step()")
    print(table(result))
    if not args.no_plot:
        if plot(result, out):
            print(f"loss curves written to {out}")
        else:
            print("matplotlib is not installed, so no plot was written; "
                  "for the plot: pip install 'fastopt[plot]' (or pip install matplotlib)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
