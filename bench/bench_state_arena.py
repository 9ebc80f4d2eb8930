"""Interleaved A/B of the state arena (fastopt._memory.zeros_aligned_many) against per-tensor state buffers.

    python bench/bench_state_arena.py [--rounds 41] [--algo adam] [--case model200]

Four steps in one process, interleaved round by round: the case's tensors with the state arena ("new", fastopt's
default) and with one allocation per state buffer ("old", as before the arena), and ONE tensor of the same total
size each way. Each round times a batch of steps with ``time.thread_time`` (the CPU time of this thread, so that
time the scheduler gives to other processes on a shared machine is not counted; memory stalls still are) and the
medians over rounds are printed, with the ratios 200 / one and new / old.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fastopt._memory import zeros_like_aligned
from fastopt._state import StateMixin
from fastopt.bench.step import ALGOS, build, case_shapes, set_threads


def _step(algo: str, shapes: list[tuple[int, ...]], old: bool) -> Callable[[], None]:
    """The fastopt step over new arrays of these shapes, its state made per tensor (old) or as an arena (new)."""
    arena = StateMixin._initial_buffers
    if old:
        def per_tensor(self: Any, group: Any, key: str, datas: list[np.ndarray]) -> list[np.ndarray]:
            return [zeros_like_aligned(d) for d in datas]
        StateMixin._initial_buffers = per_tensor  # type: ignore[method-assign]
    try:
        return build(ALGOS[algo], np.dtype(np.float32), shapes, ["fastopt"], {})["fastopt"]  # state made here
    finally:
        StateMixin._initial_buffers = arena  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=41)
    ap.add_argument("--algo", default="adam", choices=sorted(ALGOS))
    ap.add_argument("--case", default="model200")
    args = ap.parse_args()
    set_threads(1)
    shapes = case_shapes(args.case)
    total = int(sum(int(np.prod(s)) for s in shapes))
    steps = {f"{'old' if old else 'new'} {label}": _step(args.algo, shp, old)
             for label, shp in (("many", shapes), ("one", [(total,)])) for old in (True, False)}
    reps = max(5, int(1e7 / total))
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for k, fn in steps.items():
            fn()
            t = time.thread_time()
            for _ in range(reps):
                fn()
            times[k].append((time.thread_time() - t) / reps)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{args.algo}, {args.case} ({len(shapes)} tensors, {total} elements), float32, 1 thread, "
          f"{args.rounds} rounds of {reps} steps")
    for k, v in med.items():
        print(f"  {k:9s} median {v * 1e3:.4f} ms")
    print(f"  old many/one {med['old many'] / med['old one']:.3f}  new many/one {med['new many'] / med['new one']:.3f}"
          f"  new/old many {med['new many'] / med['old many']:.3f}  new/old one {med['new one'] / med['old one']:.3f}")


if __name__ == "__main__":
    main()
