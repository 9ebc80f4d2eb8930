"""Quick A/B of the MLP 1-20-1 Adam step with reused vs fresh gradient arrays (issue 10's "fresh gradients" row).

The rows are built by ``fastopt bench --core``'s own functions (fastopt/bench/core.py), so they measure exactly
what its MLP rows measure, but only these, interleaved round by round (shuffled order) in one process, many short
rounds, medians:

- ``reused``: ``opt.step()`` with the same gradient arrays every step;
- ``fresh``: a new set of gradient arrays (a pool of 64 sets) assigned to every ``.grad``, then ``opt.step()``;
- ``assign only``: that assignment loop alone (the harness around a step that does nothing);
- ``reassigned``: the harness with a pool of one set (the same arrays assigned again every step): the
  harness and the step without new array objects, so ``fresh - reassigned`` is what new arrays cost the step.

It prints the medians and the minima, fresh / reused and fastopt's re-check of new arrays (fresh - reused - assign
only).
Run from the repository root (after an in-place build)::

    PYTHONPATH=. python bench/bench_fresh.py [--rounds 200] [--batch-seconds 0.002]

To compare two builds, run it alternately with PYTHONPATH pointing at each (the figures of one process are
comparable with each other, not with another process's under load).
"""
from __future__ import annotations

import argparse

import numpy as np

import fastopt as fo
from fastopt.bench.core import _assign_only, _cycling, _fresh_fastopt
from fastopt.bench.step import ALGOS, build, case_shapes, interleave, set_threads


def rows() -> dict:
    f32 = np.dtype(np.float32)
    shapes = case_shapes("mlp")
    steps = {"reused": build(ALGOS["adam"], f32, shapes, ["fastopt"], {})["fastopt"],
             "fresh": _fresh_fastopt(shapes, f32),
             "assign only": _assign_only(shapes, f32)}
    rng = np.random.default_rng(2)
    params = [fo.Parameter(rng.standard_normal(s).astype(f32)) for s in shapes]
    one_set = [[rng.standard_normal(s).astype(f32) for s in shapes]]
    steps["reassigned"] = _cycling(params, one_set, ALGOS["adam"].make_fastopt(params).step)
    for fn in steps.values():
        fn()  # creates the state, warms up
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--batch-seconds", type=float, default=0.002)
    ap.add_argument("--pause", type=float, default=0.0)
    args = ap.parse_args()
    set_threads(1)
    times = interleave(rows(), args.rounds, args.batch_seconds, args.pause)
    for stat in (np.median, np.min):  # under load the minimum (interference only adds time) is the steadier
        t = {k: float(stat(v)) * 1e6 for k, v in times.items()}
        print(f"{stat.__name__} of {args.rounds} rounds: " + ", ".join(f"{k} {v:.3f} µs" for k, v in t.items()))
        print(f"  fresh / reused {t['fresh'] / t['reused']:.3f}×; re-check of new arrays (fresh - reused - assign "
              f"only) {t['fresh'] - t['reused'] - t['assign only']:.3f} µs; new arrays vs the same arrays (fresh - "
              f"reassigned) {t['fresh'] - t['reassigned']:.3f} µs")


if __name__ == "__main__":
    main()
