"""Step time of Lion and SGD-momentum with compressed state (``state_dtype`` "bfloat16" and "int8") against their
float32-state step: one float32 tensor, the three modes interleaved round by round in one run, medians, 1 thread.

    python bench/bench_lowp_state.py [--n 20000000] [--rounds 9]

(Adam's rows are in ``fastopt bench --precision``.)
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import fastopt as fo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000_000)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    fo.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(args.n) * 0.1).astype(np.float32)
    g = (rng.standard_normal(args.n) * 0.01).astype(np.float32)
    print(f"one tensor of {args.n} elements, 1 thread, median of {args.rounds} interleaved rounds")
    print("| optimizer | state_dtype | ms / step | float32-state time / this |")
    print("|---|---|---|---|")
    for name, cls, kw in (("Lion", fo.Lion, {"lr": 1e-4}), ("SGD-momentum", fo.SGD, {"lr": 1e-3, "momentum": 0.9})):
        opts = {}
        for mode in ("float32", "bfloat16", "int8"):
            p = fo.Parameter(x.copy())
            p.grad = g
            opt = cls([p], state_dtype=mode, **kw)
            opt.step()
            opts[mode] = opt
        times: dict[str, list[float]] = {m: [] for m in opts}
        for _ in range(args.rounds):
            for mode, opt in opts.items():
                t = time.perf_counter()
                opt.step()
                times[mode].append(time.perf_counter() - t)
        base = float(np.median(times["float32"]))
        for mode, v in times.items():
            med = float(np.median(v))
            print(f"| {name} | {mode} | {1e3 * med:.2f} | {base / med:.2f} |")
        del opts


if __name__ == "__main__":
    main()
