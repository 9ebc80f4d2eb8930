"""A model kept as a tree of arrays, differentiated by autograd and trained by fastopt.AdamW.

The model: y = sin(3x) + noise fitted by a 1-32-32-1 tanh network whose parameters are a nested dict
{"hidden": [{"w", "b"}, {"w", "b"}], "out": {"w", "b"}} of float64 arrays - the way autograd and JAX
users keep a model. autograd.grad gives the gradient as a tree of the same shape; fastopt.tree turns the
parameter tree into named Parameters (wrapping the arrays, no copy) and hands each gradient leaf to the
Parameter at the same path, so the training loop has no loop over parameters. Prints the loss per epoch,
checks one gradient leaf against central differences, and writes autograd_tree.png.

Needs autograd (pip install autograd).

    python examples/autograd_tree.py
    python examples/autograd_tree.py --quick
"""
from __future__ import annotations

import sys

import numpy as np
from _common import out_path, parser, pyplot

import fastopt as fo


def main() -> int:
    args = parser(__doc__).parse_args()
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        print("this example needs autograd: pip install autograd", file=sys.stderr)
        return 1

    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 256)[:, None]
    y = np.sin(3 * x) + 0.05 * rng.standard_normal(x.shape)

    def layer(n_in: int, n_out: int) -> dict:
        return {"w": rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), "b": np.zeros(n_out)}

    model = {"hidden": [layer(1, 32), layer(32, 32)], "out": layer(32, 1)}

    def loss(tree: dict, xb: np.ndarray, yb: np.ndarray):
        h = xb
        for lay in tree["hidden"]:
            h = anp.tanh(h @ lay["w"] + lay["b"])
        pred = h @ tree["out"]["w"] + tree["out"]["b"]
        return anp.mean((pred - yb) ** 2)

    grad = autograd.grad(loss)

    # autograd's gradient against central differences on one leaf (float64: agreement to ~1e-9)
    g = grad(model, x, y)["hidden"][1]["w"]
    w = model["hidden"][1]["w"]
    h = 1e-6
    w[3, 5] += h
    up = loss(model, x, y)
    w[3, 5] -= 2 * h
    down = loss(model, x, y)
    w[3, 5] += h
    fd = (up - down) / (2 * h)
    print(f"gradient check hidden.1.w[3, 5]: autograd {g[3, 5]:.9f}, central difference {fd:.9f}")

    params = fo.tree.parameters(model)                        # names 'hidden.0.w', ..., 'out.b'
    print("parameters:", ", ".join(f"{p.name} {p.shape}" for p in params))
    opt = fo.AdamW(params, lr=1e-2, weight_decay=1e-4)
    epochs = 150 if args.quick else 1500
    history = []
    for epoch in range(1, epochs + 1):
        opt.zero_grad()
        fo.tree.set_grads(params, grad(model, x, y))          # the gradient tree, matched by path
        opt.step()                                            # model's arrays change in place
        history.append(float(loss(model, x, y)))
        if epoch % (epochs // 5) == 0:
            print(f"epoch {epoch:5d}  loss {history[-1]:.5f}")
    first, last = history[0], history[-1]
    print(f"final loss {last:.5f} (first epoch {first:.5f}): "
          f"{'decreased' if last < 0.5 * first else 'did NOT decrease'}")

    plt = pyplot()
    if plt is not None:
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        ax[0].semilogy(history)
        ax[0].set(xlabel="epoch", ylabel="mean squared error", title="AdamW on an autograd model tree")
        hh = x
        for lay in model["hidden"]:
            hh = np.tanh(hh @ lay["w"] + lay["b"])
        ax[1].plot(x, y, ".", ms=3, label="data")
        ax[1].plot(x, hh @ model["out"]["w"] + model["out"]["b"], label="fit")
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(out_path(args, "autograd_tree.png"), dpi=100)
    return 0 if last < 0.5 * first else 1


if __name__ == "__main__":
    sys.exit(main())
