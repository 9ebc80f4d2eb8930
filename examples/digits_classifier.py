"""A handwritten-digit classifier on scikit-learn's bundled digits set, trained with AdamW and warm-up + cosine.

The data: 1797 images of 8x8 pixels, digits 0-9 (sklearn.datasets.load_digits, shipped inside scikit-learn, no
download); a fixed 80/20 train/test split, pixels standardised with the training set's mean and spread.
The model: a 64-128-10 ReLU network with a softmax cross-entropy loss, forward and backward in NumPy.
The optimizer: fastopt.AdamW in two parameter groups (weights with weight decay, biases without), minibatches of
64, and a per-step learning-rate schedule of a linear warm-up (fastopt.lr_scheduler.LinearLR) followed by a cosine
decay (CosineAnnealingLR), joined by SequentialLR. Prints the loss, test accuracy and learning rate per epoch
and writes the curves and the schedule to digits_classifier.png.

Needs scikit-learn (pip install scikit-learn, or pip install "fastopt[examples]").

    python examples/digits_classifier.py
    python examples/digits_classifier.py --quick
"""
from __future__ import annotations

import sys

import numpy as np
from _common import parser, pyplot, save_figure

import fastopt as fo
from fastopt import lr_scheduler


def load(seed: int = 0):
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    mean, std = X[train].mean(0), X[train].std(0) + 1e-3      # some corner pixels are always 0
    X = (X - mean) / std
    return X[train], y[train], X[test], y[test]


class Net:
    """logits = W2 relu(W1 x + b1) + b2, He-initialised."""

    def __init__(self, rng: np.random.Generator, n_in: int = 64, hidden: int = 128, n_out: int = 10) -> None:
        self.W1 = fo.Parameter((rng.standard_normal((n_in, hidden)) * np.sqrt(2 / n_in)).astype(np.float32), "W1")
        self.b1 = fo.Parameter(np.zeros(hidden, np.float32), "b1")
        self.W2 = fo.Parameter((rng.standard_normal((hidden, n_out)) * np.sqrt(1 / hidden)).astype(np.float32),
                               "W2")
        self.b2 = fo.Parameter(np.zeros(n_out, np.float32), "b2")

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.W1.data + self.b1.data, 0) @ self.W2.data + self.b2.data

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray) -> float:
        """Mean cross-entropy of softmax(logits); sets every parameter's .grad."""
        h_pre = x @ self.W1.data + self.b1.data
        h = np.maximum(h_pre, 0)
        z = h @ self.W2.data + self.b2.data
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        rows = np.arange(len(labels))
        loss = -float(log_p[rows, labels].mean())
        dz = np.exp(log_p)                       # d loss / d logits = (softmax - onehot) / batch
        dz[rows, labels] -= 1
        dz /= len(labels)
        self.W2.grad = h.T @ dz
        self.b2.grad = dz.sum(axis=0)
        dh = (dz @ self.W2.data.T) * (h_pre > 0)
        self.W1.grad = x.T @ dh
        self.b1.grad = dh.sum(axis=0)
        return loss


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default: 40, 6 with --quick)")
    args = ap.parse_args(argv)
    try:
        Xtr, ytr, Xte, yte = load()
    except ImportError:
        print("this example needs scikit-learn for its bundled digits data set: "
              "pip install scikit-learn (or pip install 'fastopt[examples]')", file=sys.stderr)
        return 1
    epochs = args.epochs or (6 if args.quick else 40)
    batch = 64
    steps_per_epoch = -(-len(ytr) // batch)
    total = epochs * steps_per_epoch
    warmup = max(1, total // 20)

    rng = np.random.default_rng(1)
    net = Net(rng)
    opt = fo.AdamW([{"params": [net.W1, net.W2]},                      # weights: decoupled weight decay
                    {"params": [net.b1, net.b2], "weight_decay": 0.0}],  # biases: none
                   lr=3e-3, weight_decay=1e-2)
    sched = lr_scheduler.SequentialLR(
        opt, [lr_scheduler.LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=warmup),
              lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=1e-5)],
        milestones=[warmup])

    print(f"digits: {len(ytr)} train / {len(yte)} test images (8x8), 64-128-10 ReLU net, AdamW(lr=3e-3, "
          f"weight_decay=1e-2 on weights), batch {batch}, {epochs} epochs = {total} steps, "
          f"linear warm-up over {warmup} steps then cosine decay")
    print("epoch  train loss  test acc        lr")
    lrs, losses, accs = [], [], []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(ytr))
        run = 0.0
        for start in range(0, len(ytr), batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            loss = net.loss_and_grads(Xtr[idx], ytr[idx])
            opt.step()
            lrs.append(opt.param_groups[0]["lr"])
            sched.step()                                     # per step, after opt.step()
            losses.append(loss)
            run += loss * len(idx)
        acc = float(np.mean(net.logits(Xte).argmax(axis=1) == yte))
        accs.append(acc)
        if epoch == 1 or epoch == epochs or epoch % max(1, epochs // 10) == 0:
            print(f"{epoch:>5}  {run / len(ytr):10.4f}  {100 * acc:7.2f}%  {lrs[-1]:.2e}")
    print(f"test accuracy: {100 * accs[-1]:.2f}% ({int(round(accs[-1] * len(yte)))}/{len(yte)})")

    plt = pyplot()
    if plt is not None:
        fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
        ax1.plot(lrs)
        ax1.set_title("learning rate (warm-up + cosine)")
        ax1.set_xlabel("step")
        ax2.plot(losses, linewidth=0.6)
        ax2.set_yscale("log")
        ax2.set_title("minibatch cross-entropy")
        ax2.set_xlabel("step")
        ax3.plot(range(1, epochs + 1), [100 * a for a in accs], marker=".")
        ax3.set_title(f"test accuracy (final {100 * accs[-1]:.1f}%)")
        ax3.set_xlabel("epoch")
        save_figure(plt, fig, args, "digits_classifier.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
