"""``fastopt bench``: fastopt against NumPy in place, torch.optim (for-loop, foreach, fused) and the memory ceiling.

Run ``fastopt bench`` (or ``python -m fastopt bench``); ``--quick`` takes under a minute. The results go to a
new directory under the current one (``fastopt-bench-YYYYMMDD-HHMMSS``, or ``--out DIR``): the tables in
``RESULTS.md``, the chart in ``bench_step.png`` and the raw per-round times in ``results.json``. A checkout's
tracked ``bench/RESULTS.md`` is only rewritten when asked for with ``--out bench``. The terminal gets a progress
bar (on stderr, when it is a terminal) and a plain-text summary of the speed targets.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Sequence

from .._progress import Progress
from .report import summary_rows, write_chart, write_markdown
from .step import ALGOS, CASES, IMPLS, SIZE_CASES, Measurement, run_case

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fastopt bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="float32 only, sizes up to 1e6 and both models, 5 rounds (under a minute)")
    ap.add_argument("--algos", default=None, help=f"comma-separated subset of {','.join(ALGOS)} "
                    f"(default: {','.join(k for k, a in ALGOS.items() if a.default)})")
    ap.add_argument("--dtypes", default=None, help="comma-separated subset of float32,float64")
    ap.add_argument("--cases", default=None, help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default: 1,2)")
    ap.add_argument("--impls", default=None, help=f"comma-separated subset of {','.join(IMPLS)}")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds per case (default: 11 up to 1e6 elements, 5 at 1e7, 3 at 5e7; --quick: 5)")
    ap.add_argument("--batch-ms", type=float, default=None,
                    help="target milliseconds per timed batch (default: 10; --quick: 2)")
    ap.add_argument("--pause-ms", type=float, default=None,
                    help="idle time before each timed batch (default: 2; 10 with several threads, so that "
                         "idle OpenMP workers of the previous batch — torch's — stop spinning first)")
    ap.add_argument("--out", default=None,
                    help="output directory (default: a new ./fastopt-bench-YYYYMMDD-HHMMSS; '--out bench' in a "
                         "checkout rewrites its bench/RESULTS.md)")
    ap.add_argument("--special", action="store_true",
                    help="instead: Adafactor, Muon and SparseAdam against torch (OUT/RESULTS_special.md)")
    ap.add_argument("--core", action="store_true",
                    help="instead: issue 10's rows (small-step cost, per-tensor overhead, bandwidth at 2e7; "
                         "OUT/RESULTS_core.md)")
    ap.add_argument("--precision", action="store_true",
                    help="instead: issue 14's rows (Adam with bfloat16 / int8 state vs float32 state at 2e7, "
                         "bitsandbytes 8-bit Adam, state bytes per parameter; OUT/RESULTS_precision.md)")
    return ap


def _pick(value: str | None, allowed: Sequence[str], default: Sequence[str], what: str) -> list[str]:
    if value is None:
        return list(default)
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise SystemExit(f"fastopt bench: unknown {what} {bad or value!r}; expected some of {', '.join(allowed)}")
    return items


def _rounds(case: str, quick: bool, given: int | None) -> int:
    if given is not None:
        return max(1, given)
    if quick:
        return 5
    n = SIZE_CASES.get(case, 0)
    return 3 if n >= 50_000_000 else 5 if n >= 10_000_000 else 11


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark with command-line arguments ``argv`` (without the program name); returns 0."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    algos = _pick(args.algos, list(ALGOS), [k for k, a in ALGOS.items() if a.default], "algorithm")
    dtypes = _pick(args.dtypes, ["float32", "float64"], ["float32"] if args.quick else ["float32", "float64"],
                   "dtype")
    quick_cases = ["1e4", "1e5", "1e6", "model200", "mlp"]
    cases = _pick(args.cases, CASES, quick_cases if args.quick else CASES, "case")
    impls = _pick(args.impls, IMPLS, IMPLS, "implementation")
    if "fastopt" not in impls:
        impls = ["fastopt"] + impls
    try:
        threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        raise SystemExit(f"fastopt bench: --threads must be integers, got {args.threads!r}") from None
    if not threads or threads[0] < 1:
        raise SystemExit("fastopt bench: --threads must be positive")
    batch = (args.batch_ms if args.batch_ms is not None else 2.0 if args.quick else 10.0) / 1e3
    out = args.out if args.out is not None else new_out_dir()
    os.makedirs(out, exist_ok=True)
    command = "fastopt bench" + ("" if not (argv if argv is not None else sys.argv[1:]) else
                                 " " + " ".join(argv if argv is not None else sys.argv[1:]))
    if args.core:
        from .core import run_core, write_core
        path = write_core(args.out, run_core(args.quick, args.rounds, batch if args.batch_ms else None), command)
        print(f"fastopt bench: wrote {path}", file=sys.stderr)
        return 0
    if args.precision:
        from .precision import run_precision, write_precision
        path = write_precision(out, run_precision(args.quick, args.rounds, batch if args.batch_ms else None), command)
        print(f"fastopt bench: wrote {path}", file=sys.stderr)
        return 0
    if args.special:
        from .special import run_special, write_special
        res = run_special(dtypes, args.rounds or (3 if args.quick else 9), batch)
        path = os.path.join(out, "RESULTS_special.md")
        write_special(path, res, command)
        print(f"fastopt bench: wrote {path}", file=sys.stderr)
        return 0
    started = datetime.datetime.now().astimezone()
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else ()
    t_start = time.perf_counter()
    # Big cases last: a run cut short still has every small case.
    order = sorted(cases, key=lambda c: SIZE_CASES.get(c, 0))
    jobs = [(c, a, d, t) for c in order for a in algos for d in dtypes for t in threads]
    results: list[Measurement] = []
    with Progress(len(jobs), "fastopt bench") as bar:
        for i, (case, a, d, t) in enumerate(jobs):
            bar.update(i, f"{ALGOS[a].label} {d} {case}, {t} thread{'s' if t > 1 else ''}")
            pause = None if args.pause_ms is None else args.pause_ms / 1e3
            results.append(run_case(a, d, case, t, _rounds(case, args.quick, args.rounds), batch, impls, pause))
        bar.update(len(jobs))
    elapsed = time.perf_counter() - t_start
    load1 = os.getloadavg() if hasattr(os, "getloadavg") else ()
    chart = write_chart(os.path.join(out, "bench_step.png"), results)
    md = os.path.join(out, "RESULTS.md")
    write_markdown(md, results, command, started, elapsed, (load0, load1), chart)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"command": command, "date": started.isoformat(),
                   "results": [m.__dict__ for m in results]}, f, separators=(",", ":"))
    print(terminal_summary(results, elapsed))
    print(f"\nfull tables: {md}" + (f"; chart: {chart}" if chart else ""))
    return 0


def new_out_dir(base: str = ".") -> str:
    """A directory name under ``base`` that does not exist yet: fastopt-bench-YYYYMMDD-HHMMSS[-N]."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = os.path.join(base, f"fastopt-bench-{stamp}"), 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(base, f"fastopt-bench-{stamp}-{n}")
    return path


_VERDICT_WORDS = {"met": "target met", "not met": "TARGET NOT MET", "n/a": "not measured"}


def terminal_summary(results: list[Measurement], elapsed: float) -> str:
    """The speed targets as plain text for a terminal: one block per target, the verdict in words first."""
    rows = summary_rows(results)
    lines = [f"fastopt bench: {len(results)} cases in {elapsed:.0f} s"]
    if rows:
        missed = sum(ok == "not met" for _, _, ok in rows)
        lines.append(f"speed targets: {len(rows) - missed} of {len(rows)} met" if missed else
                     f"speed targets: all {len(rows)} met")
    for target, fig, ok in rows:
        lines += [f"  {_VERDICT_WORDS.get(ok, ok)}: {target}", f"      measured: {fig}"]
    return "\n".join(lines)
