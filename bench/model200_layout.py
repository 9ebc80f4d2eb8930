"""Where the 200-tensor model's Adam step loses time against one tensor of the same size: by memory layout.

`fastopt bench --core` splits "200 tensors / one tensor" into the per-tensor cost (200 views of one buffer per
array / one tensor) and the arrays' placement (200 separate arrays / 200 views). This script measures layouts in
between, all steps interleaved round by round in one process, each ratio the median over rounds of the two times
measured side by side in the round:

  one tensor                 one array per buffer (NumPy backs it with transparent huge pages where allowed)
  one tensor, 4 KiB pages    the same with its param and grad in 4 KiB pages (bench/core.py's row)
  200 views                  the 200 tensors as consecutive views of one buffer per array: streams never break
  200 gapped                 the 200 tensors in one buffer per array, 1 MiB apart: every stream restarts at every
                             tensor, in huge pages
  200 gapped, 4 KiB pages    the same in 4 KiB pages (restarts plus a new page, and TLB miss, at every tensor)
  200 tensors                200 separate arrays, as the benchmark's row (the user's small heap arrays)
and, alone, the fixed cost per tensor (200 tensors of 16 elements / 200).

    PYTHONPATH=. python bench/model200_layout.py [--rounds 61] [--algo adam]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import fastopt as fo
from fastopt.bench.core import _one_small_pages_fastopt, _views_fastopt, huge_page_advice
from fastopt.bench.step import ALGOS, build, case_shapes, set_threads

GAP = 1 << 20


def _gapped(algo: str, dtype, shapes, huge: bool):
    """The step over tensors placed GAP bytes apart in one buffer per array (param, grad; the state where the
    optimizer puts it), in huge pages or, with NumPy's huge-page advice off, 4 KiB pages."""
    sizes = [int(np.prod(s)) for s in shapes]
    rng = np.random.default_rng(1)
    gap = GAP // dtype.itemsize
    with huge_page_advice(huge):
        bufs = [np.empty(sum(sizes) + gap * len(sizes), dtype) for _ in range(2)]
    starts = np.arange(len(sizes)) * gap + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    params = []
    for s, n, at in zip(shapes, sizes, starts):
        p = fo.Parameter(bufs[0][at:at + n].reshape(s))
        p.data[...] = rng.random(s, dtype=dtype) - 0.5
        p.grad = bufs[1][at:at + n].reshape(s)
        p.grad[...] = rng.random(s, dtype=dtype) - 0.5
        params.append(p)
    opt = ALGOS[algo].make_fastopt(params)
    opt.step()
    return opt.step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=61)
    ap.add_argument("--algo", default="adam")
    args = ap.parse_args()
    set_threads(1)
    f32 = np.dtype(np.float32)
    a = ALGOS[args.algo]
    shapes = case_shapes("model200")
    total = int(sum(int(np.prod(s)) for s in shapes))
    steps = {"one tensor": build(a, f32, [(total,)], ["fastopt"], {})["fastopt"]}
    small = _one_small_pages_fastopt(args.algo, f32, total)
    if not isinstance(small, str):
        steps["one tensor, 4 KiB pages"] = small
    steps["200 views"] = _views_fastopt(args.algo, f32, shapes)
    steps["200 gapped"] = _gapped(args.algo, f32, shapes, True)
    steps["200 gapped, 4 KiB pages"] = _gapped(args.algo, f32, shapes, False)
    steps["200 tensors"] = build(a, f32, shapes, ["fastopt"], {})["fastopt"]
    tiny = build(a, f32, [(16,)] * 200, ["fastopt"], {})["fastopt"]
    times: dict[str, list[float]] = {k: [] for k in [*steps, "tiny"]}
    for r in range(args.rounds):
        for k in np.random.default_rng(r).permutation(list(times)):
            fn = tiny if k == "tiny" else steps[k]
            reps = 50 if k == "tiny" else 2
            fn()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[k].append((time.perf_counter() - t0) / reps)
    t = {k: np.array(v) for k, v in times.items()}
    print(f"{args.algo} float32, 1 thread, {args.rounds} rounds; ratios: medians of per-round ratios")
    print(f"{'layout':>26} {'ms':>8} {'/ one tensor':>13} {'/ 200 views':>12}")
    for k in steps:
        print(f"{k:>26} {np.median(t[k]) * 1e3:8.3f} {np.median(t[k] / t['one tensor']):13.3f} "
              f"{np.median(t[k] / t['200 views']):12.3f}")
    print(f"fixed cost per tensor (200 tensors of 16 elements / 200): {np.median(t['tiny']) / 200 * 1e6:.3f} us")


if __name__ == "__main__":
    main()
