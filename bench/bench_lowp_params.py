"""Step time on float16 / bfloat16 parameters (float32 state) against float32 parameters, for Adam, SGD with
momentum, RMSprop and Lion: one tensor each, side by side in one run, median of --rounds steps each (interleaved),
1 thread by default.

    python bench/bench_lowp_params.py --n 20000000 --rounds 9 [--algos adam,sgd,rmsprop,lion]
"""
from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

import fastopt as fo

ALGOS = {"adam": (fo.Adam, dict(lr=1e-3)), "sgd": (fo.SGD, dict(lr=1e-3, momentum=0.9)),
         "rmsprop": (fo.RMSprop, dict(lr=1e-3)), "lion": (fo.Lion, dict(lr=1e-4))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--algos", default="adam,sgd,rmsprop,lion")
    args = ap.parse_args()
    fo.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    bf16 = ml_dtypes.bfloat16
    print(f"one tensor of {args.n} elements, {args.threads} thread(s), median of {args.rounds}")
    print("| optimizer | params | ms / step | float32 time / this |")
    print("|---|---|---|---|")
    for name in args.algos.split(","):
        cls, hyper = ALGOS[name]

        def make(dt: object, **kw: object) -> fo.Optimizer:
            p = fo.Parameter(rng.standard_normal(args.n).astype(np.float32).astype(dt))
            p.grad = rng.standard_normal(args.n).astype(np.float32).astype(dt)
            opt = cls([p], **hyper, **kw)
            opt.step()
            return opt

        cases = {"float32": make(np.float32), "bfloat16": make(bf16),
                 "bfloat16, master_weights": make(bf16, master_weights=True),
                 "bfloat16, stochastic": make(bf16, rounding="stochastic"), "float16": make(np.float16)}
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.rounds):
            for k, opt in cases.items():
                t = time.perf_counter()
                opt.step()
                times[k].append(time.perf_counter() - t)
        base = float(np.median(times["float32"]))
        for k, v in times.items():
            print(f"| {cls.__name__} | {k} | {1e3 * float(np.median(v)):.2f} | {base / float(np.median(v)):.2f} |")
        del cases


if __name__ == "__main__":
    main()
