"""SGD, SGD with momentum, RMSprop and Adam on the same small regression problem (the `fastopt demo`).

A 1-20-1 ReLU network is fit to y = x^2 + 0.1 * noise (1000 points in [-1, 1], minibatches of 32), one network per
optimizer, all four starting from the same weights and seeing the same minibatches. The forward and backward passes
are plain NumPy (fastopt.demo.MLP); fastopt does the updates. Prints the mean loss per epoch and writes the loss
curves and the fitted curves to optimizer_comparison.png.

    python examples/optimizer_comparison.py            # 12 epochs, a few seconds
    python examples/optimizer_comparison.py --quick    # 3 epochs
"""
from __future__ import annotations

import sys

from _common import out_path, parser

from fastopt import demo


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--epochs", type=int, default=None, help="epochs per optimizer (default: 12, 3 with --quick)")
    args = ap.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 12)

    result = demo.run(epochs=epochs)
    print(f"1-20-1 ReLU MLP on y = x^2 + 0.1*noise, 1000 points, batch 32, {epochs} epochs "
          f"({result['n_steps']} steps per optimizer)")
    print("mean training loss per epoch (MSE); last row: mean time of one opt.step()")
    print(demo.table(result))
    final = {name: losses[-1] for name, losses in result["epochs"].items()}
    best = min(final, key=final.get)
    print(f"lowest final loss: {best} ({final[best]:.5f}); plain SGD: {final['SGD']:.5f} "
          f"({final['SGD'] / final[best]:.1f}x higher)")
    path = out_path(args, "optimizer_comparison.png")
    if demo.plot(result, str(path)):
        print(f"plot written to {path}")
    else:
        print("matplotlib is not installed, so no plot was written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
