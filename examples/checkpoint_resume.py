"""Stop training halfway, save a checkpoint, rebuild every object from it, and finish bit-identically.

The model is the 1-20-1 ReLU network of the demo (fastopt.demo.MLP) fit to y = x^2 + noise with shuffled
minibatches; the optimizer is fastopt.Adam with two parameter groups (weights and biases at different rates) and
the schedule is fastopt.lr_scheduler.OneCycleLR stepped every minibatch (it also cycles Adam's beta1).

1. Run A trains for all epochs without stopping.
2. Run B trains for half the epochs and saves a checkpoint with fastopt.save: the parameters, opt.state_dict(),
   sched.state_dict(), the data-shuffling generator's state and the epoch. Then every object is thrown away; new
   ones are built the same way, the checkpoint is loaded with fastopt.load (no pickle: it is an .npz holding arrays
   and a JSON structure), the states are restored, and training continues to the end.
3. The final parameters, the optimizer states and every loss and learning rate after the restart are compared:
   they are bit-identical (asserted; the script exits 1 otherwise).

    python examples/checkpoint_resume.py
    python examples/checkpoint_resume.py --quick
"""
from __future__ import annotations

import sys
import zipfile

import numpy as np
from _common import out_path, parser

import fastopt as fo
from fastopt import lr_scheduler
from fastopt.demo import MLP

N, BATCH = 512, 32


def build(total_steps: int):
    """Data, model, optimizer, scheduler and shuffling generator, always built the same way."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (N, 1)).astype(np.float32)
    y = (x ** 2 + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)
    net = MLP(np.random.default_rng(1))
    opt = fo.Adam([{"params": [net.W1, net.W2]},
                   {"params": [net.b1, net.b2], "lr": 2e-2}], lr=1e-2, betas=(0.9, 0.99))
    sched = lr_scheduler.OneCycleLR(opt, max_lr=[2e-2, 4e-2], total_steps=total_steps)
    return x, y, net, opt, sched, np.random.default_rng(2)


def train_epochs(x, y, net, opt, sched, shuffle, first: int, last: int, log: list) -> None:
    """Epochs first..last-1; appends (loss, lr) per step to log."""
    for _ in range(first, last):
        order = shuffle.permutation(N)
        for start in range(0, N, BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad()
            loss = net.loss_and_grads(x[idx], y[idx])
            opt.step()
            log.append((loss, opt.param_groups[0]["lr"]))
            sched.step()


def state_arrays(opt) -> list[np.ndarray]:
    sd = opt.state_dict()["state"]
    return [np.asarray(v) for i in sorted(sd) for _, v in sorted(sd[i].items())]


def identical(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """Same dtype, shape and bytes (so NaN payloads and -0.0 count too)."""
    return len(a) == len(b) and all(p.dtype == q.dtype and p.shape == q.shape and p.tobytes() == q.tobytes()
                                    for p, q in zip(a, b))


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    epochs = 6 if args.quick else 40
    stop = epochs // 2
    total = epochs * (N // BATCH)
    ckpt_path = out_path(args, "checkpoint_resume.npz")

    # Run A: straight through.
    x, y, net_a, opt_a, sched_a, shuffle_a = build(total)
    log_a: list = []
    train_epochs(x, y, net_a, opt_a, sched_a, shuffle_a, 0, epochs, log_a)

    # Run B, part 1: stop halfway and save.
    x, y, net, opt, sched, shuffle = build(total)
    log_b: list = []
    train_epochs(x, y, net, opt, sched, shuffle, 0, stop, log_b)
    fo.save({"model": {p.name: p.data for p in net.parameters()},
             "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(),
             "shuffle": shuffle.bit_generator.state,
             "epoch": stop}, ckpt_path)
    del x, y, net, opt, sched, shuffle

    # Run B, part 2: new objects, restored from the file, then the remaining epochs.
    x, y, net, opt, sched, shuffle = build(total)
    ckpt = fo.load(ckpt_path)
    for p in net.parameters():
        p.data[...] = ckpt["model"][p.name]
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    shuffle.bit_generator.state = ckpt["shuffle"]
    resumed_at = len(log_b)
    train_epochs(x, y, net, opt, sched, shuffle, ckpt["epoch"], epochs, log_b)

    with zipfile.ZipFile(ckpt_path) as z:
        members = z.namelist()
    print(f"1-20-1 MLP on y = x^2 + noise, Adam in 2 param groups + OneCycleLR per step, {epochs} epochs "
          f"({total} steps); run B stopped after epoch {stop} (step {resumed_at})")
    print(f"checkpoint {ckpt_path.name}: {ckpt_path.stat().st_size} bytes, {len(members)} .npz members "
          f"(arrays + 'structure' as JSON; loaded with allow_pickle=False)")
    print(f"loss at the stop: {log_b[resumed_at - 1][0]:.6f}; final loss A {log_a[-1][0]:.6f}, B {log_b[-1][0]:.6f}")
    checks = {
        "parameters": identical([p.data for p in net_a.parameters()], [p.data for p in net.parameters()]),
        "optimizer state": identical(state_arrays(opt_a), state_arrays(opt)),
        "losses after the restart": [v[0] for v in log_a[resumed_at:]] == [v[0] for v in log_b[resumed_at:]],
        "learning rates after the restart": [v[1] for v in log_a[resumed_at:]] == [v[1] for v in log_b[resumed_at:]],
        "scheduler state": sched_a.state_dict() == sched.state_dict(),
    }
    for name, ok in checks.items():
        print(f"  {name:<33} {'bit-identical' if ok else 'DIFFERENT'}")
    if all(checks.values()):
        print("resumed run is bit-identical to the uninterrupted run")
        return 0
    print("FAILED: the resumed run differs from the uninterrupted run", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
