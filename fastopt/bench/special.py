"""``fastopt bench --special``: the optimizers whose step is not one elementwise pass — Adafactor (factored second
moment), Muon (Newton–Schulz on 2-D parameters) and SparseAdam (row-sparse gradients) — against torch.optim.

Each problem is built once per implementation from the same seed; fastopt and torch run interleaved, round by
round in a shuffled order, and the figure is the median over rounds of the time per ``step()``. These steps do
different amounts of work than a same-traffic probe can model (matrix products, gathers), so only the ratio to
torch is reported.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

import fastopt as fo

from .step import interleave, set_threads

try:
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

__all__ = ["PROBLEMS", "run_special", "write_special"]


def _dense(shape: tuple[int, ...], make_fo: Callable, make_torch: Callable, dtype) -> dict[str, Callable]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype) * 0.01
    p = fo.Parameter(x.copy())
    p.grad = g
    opt = make_fo([p])
    steps = {"fastopt": opt.step}
    if torch is not None:
        for variant, kw in (("torch loop", dict(foreach=False)), ("torch foreach", dict(foreach=True))):
            tp = torch.tensor(x.copy())
            tp.grad = torch.tensor(g)
            try:
                topt = make_torch([tp], **kw)
            except (TypeError, ValueError, RuntimeError):
                continue
            steps[variant] = topt.step
    return steps


def _sparse(rows: int, cols: int, touched: int, dtype) -> dict[str, Callable]:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((rows, cols)).astype(dtype)
    idx = rng.integers(0, rows, touched)
    vals = rng.standard_normal((touched, cols)).astype(dtype)
    p = fo.Parameter(x.copy())
    p.grad = fo.SparseGrad(idx, vals)
    opt = fo.SparseAdam([p], lr=1e-3)
    steps = {"fastopt": opt.step}
    if torch is not None:
        tp = torch.tensor(x.copy())
        tp.grad = torch.sparse_coo_tensor(torch.tensor(idx)[None], torch.tensor(vals), (rows, cols))
        steps["torch loop"] = torch.optim.SparseAdam([tp], lr=1e-3).step
    return steps


PROBLEMS: dict[str, Callable[[object], dict[str, Callable]]] = {
    "Adafactor 1024x1024": lambda dt: _dense((1024, 1024), lambda ps: fo.Adafactor(ps, lr=1e-2),
                                             lambda ps, **kw: torch.optim.Adafactor(ps, lr=1e-2, **kw), dt),
    "Adafactor 1e6 (1-D)": lambda dt: _dense((1_000_000,), lambda ps: fo.Adafactor(ps, lr=1e-2),
                                             lambda ps, **kw: torch.optim.Adafactor(ps, lr=1e-2, **kw), dt),
    "Muon 512x512": lambda dt: _dense((512, 512), lambda ps: fo.Muon(ps, lr=2e-2),
                                      lambda ps, **kw: torch.optim.Muon(ps, lr=2e-2), dt),
    "SparseAdam 100000x64, 1000 rows": lambda dt: _sparse(100_000, 64, 1000, dt),
}


def run_special(dtypes: list[str], rounds: int, batch_seconds: float) -> list[tuple[str, str, dict[str, float]]]:
    """Median seconds per step of every implementation, per (problem, dtype), one thread."""
    set_threads(1)
    out = []
    for name, build in PROBLEMS.items():
        for d in dtypes:
            steps = build(np.dtype(d))
            for fn in steps.values():  # warm-up (creates state)
                fn()
            times = interleave(steps, rounds, batch_seconds, 0.002, seed=7, max_batch=1000)
            out.append((name, d, {k: float(np.median(v)) for k, v in times.items()}))
    return out


def _fmt(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def write_special(path: str, results: list, command: str) -> None:
    lines = ["# fastopt benchmark: Adafactor, Muon, SparseAdam", "", f"- command: `{command}`",
             "- one thread on both sides; median over rounds of the time per `step()`; interleaved", "",
             "| problem | dtype | fastopt | torch loop | torch foreach | vs best torch |", "|---|---|---|---|---|---|"]
    for name, d, t in results:
        torch_times = [t[k] for k in ("torch loop", "torch foreach") if k in t]
        ratio = f"{min(torch_times) / t['fastopt']:.2f}×" if torch_times else "–"
        lines.append(f"| {name} | {d} | {_fmt(t['fastopt'])} | {_fmt(t.get('torch loop'))} | "
                     f"{_fmt(t.get('torch foreach'))} | {ratio} |")
    lines += ["", "torch's Muon runs Newton–Schulz in bfloat16 (fastopt: in the parameter's dtype), so its matrix "
              "products do different arithmetic; SparseAdam has no foreach path in torch."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
