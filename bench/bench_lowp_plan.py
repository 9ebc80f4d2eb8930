"""The low-precision modes' step time at small sizes against the float32 path: the fixed per-step overhead.

For each size (default 1e3, 1e4, 1e5 elements; one float32 tensor, 1 thread) and each optimizer, every low-precision
mode (compressed state: ``state_dtype`` "bfloat16" / "int8"; 16-bit parameters: float16, bfloat16, bfloat16 with
``master_weights=True``, bfloat16 with ``rounding="stochastic"``, gradients in the parameter's dtype) runs
interleaved round by round with the same optimizer on float32 parameters and float32 state
(``fastopt.bench.step.interleave``), and every figure is a median over rounds. The table gives each mode's time per
step, its difference from the float32 step (the fixed overhead, plus at larger sizes any difference in the
kernel's own speed) and their ratio; ``fastopt._kernels`` counts cached repeated steps (``opt._fast_steps``), printed
as the share of the measured steps that took the cached path.

    PYTHONPATH=. python bench/bench_lowp_plan.py [--rounds 5] [--sizes 1000,10000,100000] [--out FILE]

(from the checkout's root: ``PYTHONPATH=.`` measures its in-place build rather than an installed fastopt; the
table's first line names the fastopt it measured)
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import fastopt as fo
from fastopt.bench.step import interleave, set_threads

try:
    import ml_dtypes
    BF16: Any = ml_dtypes.bfloat16
except ImportError:  # bfloat16 parameter rows are skipped
    BF16 = None

ALGOS: dict[str, tuple[Callable[..., fo.Optimizer], dict[str, Any], tuple[str, ...]]] = {
    # name: (class, kwargs, compressed state_dtypes it has)
    "Adam": (fo.Adam, {"lr": 1e-3}, ("bfloat16", "int8")),
    "AdamW": (fo.AdamW, {"lr": 1e-3}, ("bfloat16", "int8")),
    "Lion": (fo.Lion, {"lr": 1e-4}, ("bfloat16", "int8")),
    "SGD": (fo.SGD, {"lr": 1e-3, "momentum": 0.9}, ("bfloat16", "int8")),
    "RMSprop": (fo.RMSprop, {"lr": 1e-3}, ()),
}
PARAM_MODES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("float16 params", "float16", {}), ("bfloat16 params", "bfloat16", {}),
    ("bfloat16 params, master", "bfloat16", {"master_weights": True}),
    ("bfloat16 params, stochastic", "bfloat16", {"rounding": "stochastic"}))


def _maker(cls: Callable[..., fo.Optimizer], kw: dict[str, Any], x: np.ndarray, g: np.ndarray,
           dtype: Any) -> tuple[Callable[[], None], fo.Optimizer]:
    p = fo.Parameter(x.astype(dtype))
    p.grad = g.astype(dtype)
    opt = cls([p], **kw)
    opt.step()
    return opt.step, opt


def run(sizes: list[int], rounds: int, batch_seconds: float) -> list[tuple]:
    set_threads(1)
    rows = []
    for n in sizes:
        rng = np.random.default_rng(5)
        x = (rng.standard_normal(n) * 0.1).astype(np.float32)
        g = (rng.standard_normal(n) * 0.01).astype(np.float32)
        steps: dict[str, Callable[[], None]] = {}
        opts: dict[str, fo.Optimizer] = {}
        base: dict[str, str] = {}
        for name, (cls, kw, state_dtypes) in ALGOS.items():
            ref = f"{name} float32"
            steps[ref], opts[ref] = _maker(cls, kw, x, g, np.float32)
            for sd in state_dtypes:
                key = f"{name} state_dtype={sd}"
                steps[key], opts[key] = _maker(cls, dict(kw, state_dtype=sd), x, g, np.float32)
                base[key] = ref
            for label, dt, extra in PARAM_MODES:
                dtype = np.float16 if dt == "float16" else BF16
                if dtype is None:
                    continue
                key = f"{name} {label}"
                steps[key], opts[key] = _maker(cls, dict(kw, **extra), x, g, dtype)
                base[key] = ref
        before = {k: o._fast_steps for k, o in opts.items()}
        calls = {k: 0 for k in steps}

        def counted(k: str, fn: Callable[[], None]) -> Callable[[], None]:
            def call() -> None:
                calls[k] += 1
                fn()
            return call

        times = interleave({k: counted(k, fn) for k, fn in steps.items()}, rounds, batch_seconds, 0.002)
        med = {k: statistics.median(v) for k, v in times.items()}
        for key, ref in base.items():
            cached = (opts[key]._fast_steps - before[key]) / max(calls[key], 1)
            rows.append((n, key, med[key] * 1e6, med[ref] * 1e6, cached))
    return rows


def table(rows: list[tuple], rounds: int) -> str:
    out = [f"fastopt {fo.__file__}: medians of {rounds} interleaved rounds, 1 thread, one tensor; cached = share of "
           "the measured steps that ran as the cached repeated step", "",
           "| elements | mode | step (µs) | float32 step (µs) | difference (µs) | ratio | cached |",
           "|---|---|---|---|---|---|---|"]
    for n, key, t, ref, cached in rows:
        out.append(f"| {n:g} | {key} | {t:.2f} | {ref:.2f} | {t - ref:+.2f} | {t / ref:.3f}× | {cached:.0%} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--batch-seconds", type=float, default=0.02)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rows = run([int(float(s)) for s in a.sizes.split(",")], a.rounds, a.batch_seconds)
    text = table(rows, a.rounds)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
