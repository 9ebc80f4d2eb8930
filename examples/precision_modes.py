"""How much accuracy compressed optimizer state costs: the digits classifier and the y = x^2 demo, trained with
every ``state_dtype`` of fastopt's Adam / AdamW ("float32", "bfloat16", "int8"), same data, seed and schedule.

The digits run is examples/digits_classifier.py's (64-128-10 ReLU net, AdamW lr 3e-3 with warm-up + cosine,
weight decay 1e-2 on the weights, 40 epochs); its 64x128 weight has 8192 elements, so under "int8" it keeps 8-bit
moments, while the 1280-element output weight and the biases stay float32 (tensors under 4096 elements, as in
bitsandbytes). The y = x^2 demo (fastopt.demo's 1-20-1 MLP, Adam lr 0.01, betas (0.9, 0.99), 12 epochs) has only
small tensors: "int8" keeps float32 moments for all of them and is float32 Adam exactly.

Then bfloat16 parameters (float32 state): the optimizer updates bfloat16 copies of the weights; each step the
network computes in float32 from their exact widening and hands float32 gradients back. Three ways to round the
float32 update into bfloat16: plain round-to-nearest (no master copy), ``master_weights=True`` (a float32 master
in state; the weights are its rounded image) and ``rounding="stochastic"`` (seeded, no master).

Prints one table: final test accuracy (digits) and final epoch loss (demo) per mode, and each against float32.

    python examples/precision_modes.py
    python examples/precision_modes.py --quick
"""
from __future__ import annotations

import sys

import numpy as np
from _common import parser

import fastopt as fo
from fastopt import demo, lr_scheduler

# label -> (optimizer keywords, parameter dtype name or None for float32 parameters)
MODES: dict[str, tuple[dict, str | None]] = {
    "float32": ({"state_dtype": "float32"}, None),
    "state bfloat16": ({"state_dtype": "bfloat16"}, None),
    "state int8": ({"state_dtype": "int8"}, None),
    "bf16 params, nearest, no master": ({}, "bfloat16"),
    "bf16 params, master_weights": ({"master_weights": True}, "bfloat16"),
    "bf16 params, stochastic rounding": ({"rounding": "stochastic", "seed": 0}, "bfloat16"),
}


class _Low:
    """The low-precision copies of float32 parameters the network computes with: ``load`` writes their exact
    float32 widening into the network's parameters; ``hand_grads`` gives them its float32 gradients."""

    def __init__(self, params: list, dtype_name: str | None) -> None:
        self.net_params = params
        if dtype_name is None:
            self.params = params
        else:
            import ml_dtypes
            dt = getattr(ml_dtypes, dtype_name)
            self.params = [fo.Parameter(p.data.astype(dt), p.name) for p in params]

    def load(self) -> None:
        if self.params is not self.net_params:
            for net_p, low in zip(self.net_params, self.params):
                net_p.data[...] = low.data.astype(np.float32)

    def hand_grads(self) -> None:
        if self.params is not self.net_params:
            for net_p, low in zip(self.net_params, self.params):
                low.grad = net_p.grad


def digits_accuracy(mode: str, epochs: int) -> float:
    kw, dtype_name = MODES[mode]
    from digits_classifier import Net, load

    Xtr, ytr, Xte, yte = load()
    batch = 64
    total = epochs * -(-len(ytr) // batch)
    warmup = max(1, total // 20)
    rng = np.random.default_rng(1)
    net = Net(rng)
    low = _Low([net.W1, net.W2, net.b1, net.b2], dtype_name)
    opt = fo.AdamW([{"params": low.params[:2]}, {"params": low.params[2:], "weight_decay": 0.0}],
                   lr=3e-3, weight_decay=1e-2, **kw)
    sched = lr_scheduler.SequentialLR(
        opt, [lr_scheduler.LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=warmup),
              lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=1e-5)], milestones=[warmup])
    for _ in range(epochs):
        order = rng.permutation(len(ytr))
        for start in range(0, len(ytr), batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            low.load()
            net.loss_and_grads(Xtr[idx], ytr[idx])
            low.hand_grads()
            opt.step()
            sched.step()
    low.load()
    return float(np.mean(net.logits(Xte).argmax(axis=1) == yte))


def demo_loss(mode: str, epochs: int, n: int = 1000, batch: int = 32) -> float:
    kw, dtype_name = MODES[mode]
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    y = (x ** 2 + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)
    net = demo.MLP(np.random.default_rng(1))
    low = _Low(list(net.parameters()), dtype_name)
    opt = fo.Adam(low.params, lr=0.01, betas=(0.9, 0.99), **kw)
    last = 0.0
    for _ in range(epochs):
        order = rng.permutation(n)
        total, count = 0.0, 0
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            low.load()
            total += net.loss_and_grads(x[idx], y[idx])
            low.hand_grads()
            count += 1
            opt.step()
        last = total / count
    return last


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)  # --out-dir is accepted for uniformity; nothing is written
    args = ap.parse_args(argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("this example needs scikit-learn for its bundled digits data set: pip install scikit-learn",
              file=sys.stderr)
        return 1
    d_epochs, m_epochs = (8, 4) if args.quick else (40, 12)
    acc = {m: digits_accuracy(m, d_epochs) for m in MODES}
    loss = {m: demo_loss(m, m_epochs) for m in MODES}
    print(f"digits: AdamW, {d_epochs} epochs; y = x^2 demo: Adam, {m_epochs} epochs")
    print("| mode | digits test accuracy | vs float32 | y = x^2 final loss | vs float32 |")
    print("|---|---|---|---|---|")
    for m in MODES:
        print(f"| {m} | {100 * acc[m]:.2f} % | {100 * (acc[m] - acc['float32']):+.2f} points | {loss[m]:.5f} | "
              f"{loss[m] / loss['float32'] - 1:+.1%} |")
    worst_acc = max(abs(acc[m] - acc["float32"]) for m in MODES) * 100
    worst_loss = max(abs(loss[m] / loss["float32"] - 1) for m in MODES)
    print(f"largest difference from float32: {worst_acc:.2f} accuracy points, {worst_loss:.1%} of the demo's loss")
    return 0


if __name__ == "__main__":
    sys.exit(main())
