"""Print the worst relative error between fastopt and torch.optim per optimizer and dtype: the figures README
"### Numerics" quotes.

    python tools/torch_parity_figures.py              # every registry row torch has
    python tools/torch_parity_figures.py NAdam ASGD   # only these optimizers

For each registry row (tests/cases.py) and dtype it runs the two comparisons of tests/test_torch_parity.py: a
100-step trajectory (seed 7) and torch's state dict after 10 torch steps loaded into fastopt, then 20 steps in
lockstep (seed 11), on the same shapes and groups (tests/helpers.TorchPair: float64 rows run torch under
``torch.set_default_dtype(torch.float64)``). The error of a tensor is max|a - b| / max|b|; the worst over every
parameter and state value of every row of the optimizer is printed with the row and key that reached it.
Requires torch.
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import numpy as np  # noqa: E402

from cases import CASES, TORCH_NAMES, case_id  # noqa: E402
from helpers import TorchPair  # noqa: E402

SHAPES = [(3, 5), (17,), (64,), (2, 2, 3)]  # test_torch_parity.SHAPES


def errors(name: str, kw: dict, dtype) -> dict[str, float]:
    """The worst error per state key over both comparisons of one row."""
    out: dict[str, float] = {}
    p = TorchPair(name, kw, SHAPES, dtype, 7, torch_name=TORCH_NAMES[name])
    p.step(100)
    for k, v in p.errors().items():
        out[k] = max(out.get(k, 0.0), v)
    p = TorchPair(name, kw, SHAPES, dtype, 11, torch_name=TORCH_NAMES[name])
    p.step(10, fastopt=False)
    p.load_torch_state()
    p.step(20)
    for k, v in p.errors().items():
        out[k] = max(out.get(k, 0.0), v)
    return out


def main(only: list[str]) -> None:
    worst: dict[tuple[str, str], tuple[float, str]] = {}
    for name, kw in CASES:
        if not TORCH_NAMES.get(name) or (only and name not in only):
            continue
        for dtype in (np.float32, np.float64):
            for key, err in errors(name, kw, dtype).items():
                slot = (name, np.dtype(dtype).name)
                if slot not in worst or err > worst[slot][0]:
                    worst[slot] = (err, f"{case_id((name, kw))} '{key}'")
    print(f"{'optimizer':10s} {'dtype':8s} {'worst':>9s}  reached by")
    for (name, dt), (err, where) in worst.items():
        print(f"{name:10s} {dt:8s} {err:9.1e}  {where}")


if __name__ == "__main__":
    main(sys.argv[1:])
