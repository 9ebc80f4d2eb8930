"""Turn measurements into RESULTS.md (machine, date, command, summary of the speed targets, tables) and a chart."""
from __future__ import annotations

import datetime
import os
import platform
import sys
from typing import Any

import numpy as np

import fastopt as fo
from fastopt import _kernels as K

from .step import ALGOS, CASE_LABELS, CASES, IMPLS, SIZE_CASES, Measurement

__all__ = ["machine_info", "summary_rows", "write_markdown", "write_chart"]

IN_CACHE = ("1e4", "1e5", "1e6")
BEYOND_CACHE = ("1e7", "2e7", "5e7")


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "logical cpus": str(os.cpu_count()), "os": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__,
            "fastopt": f"{fo.__version__} (kernels: {K.isa()}, OpenMP: {'yes' if K.have_openmp() else 'no'})"}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = "not installed (torch columns skipped)"
    for level in ("2", "3"):
        try:
            with open(f"/sys/devices/system/cpu/cpu0/cache/index{level}/size") as f:
                info[f"L{level} (cpu0)"] = f.read().strip()
        except OSError:
            pass
    return info


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e3:.2f} ms"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _fmt_ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def _index(ms: list[Measurement]) -> dict[tuple, Measurement]:
    return {(m.algo, m.dtype, m.case, m.threads): m for m in ms}


def _torch_ref(m: Measurement) -> tuple[str, float | None]:
    """torch's fastest CPU path in this run: the quickest of fused, foreach and the for-loop (on one thread the
    for-loop sometimes beats foreach; RMSprop and several others have no fused CPU path)."""
    times = [(m.median(f"torch {v}"), v) for v in ("fused", "foreach", "loop")]
    times = [(t, v) for t, v in times if t is not None]
    if not times:
        return "", None
    t, v = min(times)
    return v, t


def summary_rows(ms: list[Measurement]) -> list[tuple[str, str, str]]:
    """(target, measured figure, verdict) for every target the measured cases allow checking."""
    idx = _index(ms)
    rows: list[tuple[str, str, str]] = []
    threads = sorted({m.threads for m in ms})

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "not met")

    for t in threads:
        for case in IN_CACHE:
            m = idx.get(("adam", "float32", case, t))
            if m is None:
                continue
            fast, fused = m.median("fastopt"), m.median("torch fused")
            r = _ratio(fused, fast)
            rows.append((f"Adam f32 {case}, {t} thr: ≥ 2× faster than torch fused",
                         f"{_fmt_ratio(r)} ({_fmt_time(fast)} vs {_fmt_time(fused)}; memory ceiling allows "
                         f"{_fmt_ratio(_ratio(fused, m.median('probe')))})",
                         verdict(None if r is None else r >= 2.0)))
        for case in BEYOND_CACHE:
            m = idx.get(("adam", "float32", case, t))
            if m is None:
                continue
            fast, probe, fused = m.median("fastopt"), m.median("probe"), m.median("torch fused")
            pp, rf = _ratio(probe, fast), _ratio(fused, fast)
            ok = None if pp is None else (pp >= 0.9 and (rf is None or rf >= 1.0))
            rows.append((f"Adam f32 {case}, {t} thr: ≥ 90 % of probe and ≥ torch fused",
                         f"{'–' if pp is None else f'{100 * pp:.0f} %'} of probe; {_fmt_ratio(rf)} vs fused "
                         f"({_fmt_time(fast)}, probe {_fmt_time(probe)}, fused {_fmt_time(fused)})", verdict(ok)))
        m = idx.get(("adam", "float32", "model200", t))
        if m is not None:
            fast, fused = m.median("fastopt"), m.median("torch fused")
            rf = _ratio(fused, fast)
            ok = fast is not None and fast <= 1.6e-3 and (rf is None or rf >= 1.5)
            rows.append((f"Adam f32 200-tensor model, {t} thr: ≤ 1.6 ms and ≥ 1.5× torch fused",
                         f"{_fmt_time(fast)}, {_fmt_ratio(rf)} vs fused ({_fmt_time(fused)}; the probe alone takes "
                         f"{_fmt_time(m.median('probe'))})", verdict(ok)))
        m = idx.get(("adam", "float32", "mlp", t))
        if m is not None:
            fast = m.median("fastopt")
            rows.append((f"Adam f32 MLP 1-20-1 opt.step(), {t} thr: ≤ 5 µs",
                         f"{_fmt_time(fast)} (torch fused {_fmt_time(m.median('torch fused'))})",
                         verdict(fast is not None and fast <= 5e-6)))
    if len(threads) > 1 and 1 in threads:
        # Below K.PARALLEL_MIN elements a call runs on one thread whatever the setting (the same code runs for
        # both counts), so only larger cases test the thread policy; the others are listed for the noise level.
        small = f"{K.PARALLEL_MIN:,}".replace(",", " ")
        for label, pick in ((f"cases large enough to use threads (≥ {small} elements)",
                             lambda m: m.elements >= K.PARALLEL_MIN),
                            (f"all cases (below {small} elements a step runs on one thread, so differences "
                             f"there are noise)", lambda m: True)):
            worst, where = 0.0, ""
            for (a, d, c, t), m in idx.items():
                if t == 1 or not pick(m):
                    continue
                one = idx.get((a, d, c, 1))
                r = _ratio(m.median("fastopt"), one.median("fastopt") if one else None)
                if r is not None and r > worst:
                    worst, where = r, f"{ALGOS[a].label} {d} {c} {t} thr"
            if where:
                rows.append((f"fastopt: more threads never slower than 1 (time ratio ≤ 1.05), {label}",
                             f"worst {worst:.2f}× ({where})", verdict(worst <= 1.05)))
    rows += reference_rows(ms)
    for a in ALGOS:
        for d in ("float32", "float64"):
            if (a == "adam" and d == "float32") or ALGOS[a].make_reference is not None:
                continue
            cached: list[tuple[float, float | None, str]] = []
            beyond: list[float] = []
            refs: set[str] = set()
            for (a2, d2, c, t), m in idx.items():
                if a2 != a or d2 != d:
                    continue
                ref_name, ref = _torch_ref(m)
                r = _ratio(ref, m.median("fastopt"))
                if c in IN_CACHE and r is not None:
                    # (ratio, what the memory ceiling allows: torch's time over the probe's, where it is)
                    cached.append((r, _ratio(ref, m.median("probe")), f"{c} {t} thr"))
                    refs.add(ref_name)
                pp = _ratio(m.median("probe"), m.median("fastopt"))
                if c in BEYOND_CACHE and pp is not None:
                    beyond.append(pp)
            if not cached and not beyond:
                continue
            beyond_part = (f"beyond cache min {100 * min(beyond):.0f} % of probe", min(beyond) >= 0.81) if beyond \
                else None
            figure, ok = _target_figure(cached, f"torch {'/'.join(sorted(refs))}", 1.8, beyond_part)
            rows.append((f"{ALGOS[a].label} {d}: targets within 10 % (≥ 1.8× in cache, ≥ 81 % of probe beyond)",
                         figure, verdict(ok)))
    return rows


def _target_figure(cached: list[tuple[float, float | None, str]], vs: str, need: float,
                   beyond: tuple[str, bool] | None) -> tuple[str, bool]:
    """A speed target's measured figure and whether it is met: the in-cache clause (the lowest ratio against ``vs``,
    where it is, and what the memory ceiling allows there; met when at least ``need``), then the beyond-cache
    clause and its verdict as the caller gives them (None: no beyond-cache case was measured)."""
    parts, ok = [], True
    if cached:
        low = min(cached, key=lambda row: row[0])
        parts.append(f"in cache min {low[0]:.2f}× vs {vs} ({low[2]}; memory ceiling allows {_fmt_ratio(low[1])})")
        ok = low[0] >= need
    if beyond is not None:
        parts.append(beyond[0])
        ok = ok and beyond[1]
    return "; ".join(parts), ok


def reference_rows(ms: list[Measurement]) -> list[tuple[str, str, str]]:
    """The targets of the algorithms torch.optim lacks, against their reference package on torch CPU (the
    `reference` column): ≥ 3× the reference in cache, ≥ 90 % of the probe beyond it (the 200-tensor model counts
    as beyond: its arrays exceed the caches)."""
    rows: list[tuple[str, str, str]] = []
    for a, algo in ALGOS.items():
        if algo.make_reference is None:
            continue
        for d in ("float32", "float64"):
            cached: list[tuple[float, float | None, str]] = []
            beyond: list[tuple[float, float | None, str]] = []
            for m in ms:
                if m.algo != a or m.dtype != d:
                    continue
                where = f"{CASE_LABELS.get(m.case, m.case)} {m.threads} thr"
                vs_ref = _ratio(m.median("reference"), m.median("fastopt"))
                if m.case in IN_CACHE and vs_ref is not None:  # with what the memory ceiling allows there
                    cached.append((vs_ref, _ratio(m.median("reference"), m.median("probe")), where))
                pp = _ratio(m.median("probe"), m.median("fastopt"))
                if (m.case in BEYOND_CACHE or m.case == "model200") and pp is not None:
                    beyond.append((pp, vs_ref, where))
            if not cached and not beyond:
                continue
            beyond_part = None
            if beyond:
                low_b = min(beyond, key=lambda row: row[0])
                beyond_part = (f"beyond cache min {100 * low_b[0]:.0f} % of probe ({low_b[2]}; "
                               f"{_fmt_ratio(low_b[1])} vs {algo.reference_label} there)", low_b[0] >= 0.9)
            figure, ok = _target_figure(cached, algo.reference_label, 3.0, beyond_part)
            rows.append((f"{algo.label} {d}: ≥ 3× {algo.reference_label} in cache, ≥ 90 % of probe beyond",
                         figure, "met" if ok else "not met"))
    return rows


def limits_text(ms: list[Measurement]) -> list[str]:
    """What bounds the targets that a run does not meet, with this run's figures."""
    idx = _index(ms)
    out = []
    m = idx.get(("adam", "float32", "1e6", 1))
    if m is not None and m.median("probe") is not None:
        out.append(f"- In cache (1e4–1e6) the step is bound by arithmetic, not memory: to keep torch's results "
                   f"the Adam kernel does one square root and two divisions per element, in the parameter's dtype, "
                   f"and these run at the divider's throughput (Adam f32 1e6, 1 thread: fastopt "
                   f"{_fmt_time(m.median('fastopt'))} against a probe of {_fmt_time(m.median('probe'))}). Approximate "
                   f"reciprocals would be faster and are ruled out because they change results. 'Memory ceiling "
                   f"allows' is torch's time over the probe's: no implementation moving that traffic can beat it, "
                   f"and where torch is already close to the probe (SGD-momentum, float64, 2 threads at 1e6) a 2× "
                   f"ratio is impossible.")
    probes = [p for k, v in idx.items() if k[:3] == ("adam", "float32", "model200")
              if (p := v.median("probe")) is not None]
    if probes:
        out.append(f"- The 200-tensor model moves about 82 MB per step; on this machine the same-traffic probe "
                   f"alone takes {_fmt_time(min(probes))} or more, so the 1.6 ms target (which assumed a 1.4 ms "
                   f"ceiling) cannot be reached here by any implementation; the ratio to torch fused is the "
                   f"comparable part.")
    out.append(f"- Below {K.PARALLEL_MIN} elements a call runs on one thread whatever the setting, so 1- and "
               f"2-thread rows there run the same code and differ only by run-to-run noise; beyond the cache a "
               f"memory-bound step at 90–100 % of the probe is within that noise of torch fused as well.")
    return out


def write_markdown(path: str, ms: list[Measurement], command: str, started: datetime.datetime,
                   elapsed: float, load: tuple[tuple, tuple], chart: str | None, note: str = "") -> None:
    info = machine_info()
    lines = ["# fastopt benchmark results", ""]
    lines.append(f"- date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()} (run took {elapsed:.0f} s)")
    lines.append(f"- command: `{command}`")
    for k, v in info.items():
        lines.append(f"- {k}: {v}")
    lines.append(f"- load average (1/5/15 min) at start {_fmt_load(load[0])}, at end {_fmt_load(load[1])}")
    lines.append("")
    lines.append("Every implementation runs over the same arrays, interleaved round by round in one process; "
                 "times are the median over rounds of the time per `step()`. GB/s counts the minimum traffic "
                 "(read param, grad and state, write param and state: Adam/AdamW 7, SGD-momentum and RMSprop 5 "
                 "values per element). `% probe` is the probe's time over fastopt's: the probe moves exactly "
                 "that traffic with one addition per element, so 100 % is the memory ceiling. `vs torch` and "
                 "`vs NumPy` are the other implementation's time over fastopt's (higher is better for fastopt); "
                 "`vs torch` uses torch's fastest path in that row (fused, foreach or for-loop). "
                 "NumPy is the in-place version a user would write (`out=` everywhere, preallocated scratch, "
                 "fastopt/bench/numpy_impl.py) and always runs on one thread. For optimizers torch.optim lacks, "
                 "the last two columns time the package the optimizer follows (schedulefree, prodigyopt) on "
                 "torch CPU over the same arrays, and `vs <package>` is its time over fastopt's.")
    if note:
        lines += ["", note]
    lines += ["", "## Summary: speed targets", "", "| target | measured | verdict |", "|---|---|---|"]
    for target, fig, ok in summary_rows(ms):
        lines.append(f"| {target} | {fig} | {'**not met**' if ok == 'not met' else ok} |")
    lines += ["", "What limits the targets not met:", ""] + limits_text(ms)
    if chart:
        lines += ["", f"![time per element]({os.path.basename(chart)})"]
    idx = _index(ms)
    for a in ALGOS:
        for d in ("float32", "float64"):
            rows = [m for m in ms if m.algo == a and m.dtype == d]
            if not rows:
                continue
            ref_label = ALGOS[a].reference_label if ALGOS[a].make_reference is not None else ""
            extra = f" {ref_label} | vs {ref_label} |" if ref_label else ""
            lines += ["", f"## {ALGOS[a].label}, {d}", "",
                      "| case | thr | fastopt | GB/s | % probe | probe | NumPy | torch loop | torch foreach | "
                      "torch fused | vs torch | vs NumPy |" + extra, "|---|---|" + "---|" * (12 if ref_label else 10)]
            order = {c: i for i, c in enumerate(CASES)}
            for m in sorted(rows, key=lambda m: (order[m.case], m.threads)):
                fast = m.median("fastopt")
                gbs = "–" if fast is None else f"{m.bytes_per_step / fast / 1e9:.1f}"
                pp = _ratio(m.median("probe"), fast)
                _, ref = _torch_ref(m)
                label = CASE_LABELS.get(m.case, m.case)
                cells = [label, str(m.threads), _fmt_time(fast), gbs, "–" if pp is None else f"{100 * pp:.0f} %"]
                cells += [_fmt_time(m.median(i)) for i in ("probe", "numpy", "torch loop", "torch foreach",
                                                           "torch fused")]
                cells += [_fmt_ratio(_ratio(ref, fast)), _fmt_ratio(_ratio(m.median("numpy"), fast))]
                if ref_label:  # the package this algorithm follows, on torch CPU
                    cells += [_fmt_time(m.median("reference")), _fmt_ratio(_ratio(m.median("reference"), fast))]
                lines.append("| " + " | ".join(cells) + " |")
            if ALGOS[a].probe_note:
                lines += ["", ALGOS[a].probe_note]
            skipped = sorted({f"{k}: {v}" for m in rows for k, v in m.skipped.items()})
            if skipped:
                lines.append("")
                lines.append("Skipped: " + "; ".join(skipped))
    del idx
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _fmt_load(load: tuple) -> str:
    return "/".join(f"{x:.2f}" for x in load) if load else "unknown"


def write_chart(path: str, ms: list[Measurement]) -> str | None:
    """Time per element against size for the single-tensor cases, float32, one panel per algorithm and thread
    count, one line per implementation. Returns the path, or None (with a message) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("fastopt bench: matplotlib is not installed; skipping the chart (pip install matplotlib)",
              file=sys.stderr)
        return None
    sized = [m for m in ms if m.case in SIZE_CASES and m.dtype == "float32"]
    if not sized:
        return None
    algos = [a for a in ALGOS if any(m.algo == a for m in sized)]
    threads = sorted({m.threads for m in sized})
    fig, axes = plt.subplots(len(algos), len(threads), figsize=(5.5 * len(threads), 3.6 * len(algos)),
                             squeeze=False, sharex=True)
    for i, a in enumerate(algos):
        for j, t in enumerate(threads):
            ax = axes[i][j]
            for impl in IMPLS:
                pts = sorted((m.elements, med / m.elements * 1e9) for m in sized
                             if m.algo == a and m.threads == t and (med := m.median(impl)) is not None)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=impl, lw=2.2 if impl == "fastopt" else 1.2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{ALGOS[a].label} float32, {t} thread{'s' if t > 1 else ''}")
            ax.set_ylabel("ns per element")
            ax.grid(True, which="both", alpha=0.3)
            if i == len(algos) - 1:
                ax.set_xlabel("elements")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
