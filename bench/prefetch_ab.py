"""A/B of the elementwise driver's software prefetch (csrc/fo_common.h, FO_PEELED; settings in csrc/table.c).

The settings are globals of the extension, set here through ctypes, so every variant runs in one process with
its rounds interleaved with the others' (medians; the machine's load shifts every variant alike). Rows: the Adam
rows of `fastopt bench --core` that the prefetch is for (200 tensors, 200 views, one tensor, one tensor in 4 KiB
pages) and the ones it must not slow (in cache, one big tensor).

    PYTHONPATH=. python bench/prefetch_ab.py --rounds 15 [--variant name:ahead,chunk,stride,min,hint ...] [--big]
"""
from __future__ import annotations

import argparse
import ctypes
import time

import numpy as np

import fastopt as fo
from fastopt import _kernels
from fastopt.bench.core import IN_CACHE, _one_small_pages_fastopt, _views_fastopt
from fastopt.bench.step import ALGOS, build, case_shapes, set_threads

KNOBS = ("fo_pf_ahead", "fo_pf_chunk", "fo_pf_stride", "fo_pf_min", "fo_pf_hint")


def knobs() -> dict[str, ctypes.c_int64]:
    lib = ctypes.CDLL(_kernels.__file__)
    return {k: ctypes.c_int64.in_dll(lib, k) for k in KNOBS}


def parse_variant(text: str) -> tuple[str, tuple[int, ...]]:
    name, _, vals = text.partition(":")
    return name, tuple(int(v) for v in vals.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=float, default=0.02, help="seconds per batch")
    ap.add_argument("--variant", action="append", default=[],
                    help="name:ahead,chunk,stride,min,hint (bytes; ahead 0 = off); default: off, one line per page "
                         "16 KiB ahead into L2, every line 4 KiB ahead into L1")
    ap.add_argument("--big", action="store_true", help="also the one-tensor 2e7 row (slow)")
    ap.add_argument("--algo", default="adam")
    args = ap.parse_args()
    k = knobs()
    default = tuple(k[n].value for n in KNOBS)
    variants = dict(parse_variant(v) for v in args.variant) or {
        "off": (0,) + default[1:], "page16k": (16384,) + default[1:], "lines4k": (4096, 4096, 64, default[3], 0)}
    set_threads(1)
    f32 = np.dtype(np.float32)
    shapes = case_shapes("model200")
    total = int(sum(int(np.prod(s)) for s in shapes))
    a = ALGOS[args.algo]
    rows = {"200 tensors": build(a, f32, shapes, ["fastopt"], {})["fastopt"],
            "one tensor": build(a, f32, [(total,)], ["fastopt"], {})["fastopt"],
            "200 views": _views_fastopt(args.algo, f32, shapes),
            "in cache": build(a, f32, [(IN_CACHE,)], ["fastopt"], {})["fastopt"]}
    small = _one_small_pages_fastopt(args.algo, f32, total)
    if not isinstance(small, str):
        rows["one tensor 4K"] = small
    if args.big:
        rows["2e7"] = build(a, f32, [(20_000_000,)], ["fastopt"], {})["fastopt"]
    for fn in rows.values():
        fn()
    reps = {}
    for name, fn in rows.items():
        t0 = time.perf_counter()
        fn()
        reps[name] = max(1, round(args.batch / max(time.perf_counter() - t0, 1e-7)))
    times = {(v, r): [] for v in variants for r in rows}
    rng = np.random.default_rng(0)
    for _ in range(args.rounds):
        for r in rows:
            for vi in rng.permutation(len(variants)):
                v = list(variants)[vi]
                for n, val in zip(KNOBS, variants[v]):
                    k[n].value = val
                fn, m = rows[r], reps[r]
                fn()
                t0 = time.perf_counter()
                for _ in range(m):
                    fn()
                times[v, r].append((time.perf_counter() - t0) / m)
    for n, val in zip(KNOBS, default):
        k[n].value = val
    med = {key: float(np.median(t)) for key, t in times.items()}
    print(f"{'variant':>12} " + " ".join(f"{r:>14}" for r in rows) + "   200t/one  views/one  200t/views  4K/one")
    for v in variants:
        cells = " ".join(f"{med[v, r] * (1e6 if r == 'in cache' else 1e3):11.3f} {'us' if r == 'in cache' else 'ms'}"
                         for r in rows)
        one = med[v, "one tensor"]
        extra = f"   {med[v, '200 tensors'] / one:8.3f}  {med[v, '200 views'] / one:9.3f}  " \
                f"{med[v, '200 tensors'] / med[v, '200 views']:10.3f}"
        if "one tensor 4K" in rows:
            extra += f"  {med[v, 'one tensor 4K'] / one:6.3f}"
        print(f"{v:>12} {cells}{extra}")
    base = list(variants)[0]
    print(f"time / {base}: median over rounds of the ratio of the two times measured side by side in the round")
    print(f"{'':>12} " + " ".join(f"{r:>14}" for r in rows))
    for v in list(variants)[1:]:
        print(f"{v:>12} " + " ".join(
            f"{np.median(np.array(times[v, r]) / np.array(times[base, r])):14.3f}" for r in rows))


if __name__ == "__main__":
    main()
