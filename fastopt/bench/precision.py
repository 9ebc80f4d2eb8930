"""``fastopt bench --precision``: issue 14's rows: Adam with compressed state against float32 state, and against
bitsandbytes' CPU 8-bit Adam.

One group per size (2e7 elements, and 1e6 for the bitsandbytes comparison; ``--quick``: 2e6 and 1e6), one float32
tensor, 1 thread. Every implementation of a group runs interleaved round by round (fastopt.bench.step.interleave)
and every figure is a median over rounds, so each ratio compares times measured side by side in one run:

- fastopt Adam with ``state_dtype`` "float32", "bfloat16" and "int8";
- the same-traffic probe of float32 Adam (reads and writes exactly param, grad and both moments, one fma per
  element): when float32 Adam takes about as long as the probe (probe / Adam >= 0.8) the step is memory-bound
  and fewer bytes make it faster; when Adam takes much longer it is bound by arithmetic (Adam's two divisions and
  square root per element), and the compressed modes can at best match it. The table says which regime holds;
- bitsandbytes' ``Adam8bit`` on torch CPU tensors (when bitsandbytes and torch are installed; skipped otherwise);
- in the 2e7 group, Adam on float16 and bfloat16 *parameters* with float32 state (plain round-to-nearest, with
  ``master_weights=True`` and with ``rounding="stochastic"``; bfloat16 needs ml_dtypes, skipped otherwise), whose
  speed-up is over the same float32-param step.

The 2e7 group's rounds also run the three state modes on one 65536-element tensor (in cache), interleaved with the
big rows: each mode's time per element there is its arithmetic, and the table of bounds below the 2e7 group compares
it with the mode's time beyond the cache (the bound that holds for each mode) and gives the best speed-up over
float32 state that the two bounds allow.

Bytes of optimizer state per parameter are measured from the state arrays (every array in ``opt.state``, the
per-block absmax and the code maps included). Written to ``OUT/RESULTS_precision.md``.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

import fastopt as fo
from fastopt import _kernels as K

from .step import interleave, set_threads, torch  # torch or None

__all__ = ["run_precision", "write_precision"]

MODES = ("float32", "bfloat16", "int8")


def _state_bytes(opt: fo.Optimizer, n: int) -> float:
    total = sum(v.nbytes for st in opt.state.values() for v in st.values() if isinstance(v, np.ndarray))
    return total / n


PARAM_MODES: tuple[tuple[str, str, dict[str, Any]], ...] = (("float16 params", "float16", {}), ("bfloat16 params", "bfloat16", {}),
               ("bfloat16 params, master", "bfloat16", {"master_weights": True}),
               ("bfloat16 params, stochastic", "bfloat16", {"rounding": "stochastic"}))


def _lowp_params(x: np.ndarray, g: np.ndarray, steps: dict, sizes: dict, skipped: dict, n: int) -> None:
    """Adam on 16-bit parameters (float32 state), the gradient in the parameter's dtype."""
    try:
        import ml_dtypes
        bf16: Any = ml_dtypes.bfloat16
    except ImportError:
        bf16 = None
    for key, dt, kw in PARAM_MODES:
        dtype: Any = np.float16 if dt == "float16" else bf16
        if dtype is None:
            skipped[f"fastopt {key}"] = "ml_dtypes not installed"
            continue
        p = fo.Parameter(x.astype(dtype))
        p.grad = g.astype(dtype)
        opt = fo.Adam([p], lr=1e-3, **kw)
        opt.step()
        steps[f"fastopt {key}"] = opt.step
        sizes[f"fastopt {key}"] = _state_bytes(opt, n)


def _group(n: int, with_fastopt: bool) -> tuple[dict[str, Callable[[], None]], dict[str, float], dict[str, str]]:
    rng = np.random.default_rng(14)
    x = (rng.standard_normal(n) * 0.1).astype(np.float32)
    g = (rng.standard_normal(n) * 0.01).astype(np.float32)
    steps: dict[str, Callable[[], None]] = {}
    sizes: dict[str, float] = {}
    skipped: dict[str, str] = {}
    if with_fastopt:
        for mode in MODES:
            p = fo.Parameter(x.copy())
            p.grad = g
            opt = fo.Adam([p], lr=1e-3, state_dtype=mode)
            opt.step()
            steps[f"fastopt {mode}"] = opt.step
            sizes[f"fastopt {mode}"] = _state_bytes(opt, n)
        _lowp_params(x, g, steps, sizes, skipped, n)
        pp, m, v = x.copy(), np.zeros_like(x), np.zeros_like(x)
        table = K.TensorTable([[pp, g, m, v]], ("param", "grad", "m", "v"), (False, True, False, False), 0)
        steps["probe"] = lambda: K.probe(table, 2, 0.0)
    else:
        p = fo.Parameter(x.copy())
        p.grad = g
        opt = fo.Adam([p], lr=1e-3, state_dtype="int8")
        opt.step()
        steps["fastopt int8"] = opt.step
        sizes["fastopt int8"] = _state_bytes(opt, n)
    try:
        import bitsandbytes as bnb
    except Exception as e:  # noqa: BLE001 - any import failure means "not available here"
        skipped["bitsandbytes Adam8bit"] = f"bitsandbytes not importable ({type(e).__name__})"
        return steps, sizes, skipped
    if torch is None:
        skipped["bitsandbytes Adam8bit"] = "torch not installed"
        return steps, sizes, skipped
    tp = torch.nn.Parameter(torch.tensor(x.copy()))
    tp.grad = torch.tensor(g)
    topt = bnb.optim.Adam8bit([tp], lr=1e-3)
    topt.step()
    steps["bitsandbytes Adam8bit"] = topt.step
    sizes["bitsandbytes Adam8bit"] = sum(t.numel() * t.element_size() for st in topt.state.values()
                                         for t in st.values() if hasattr(t, "element_size")) / n
    return steps, sizes, skipped


IN_CACHE = 65536  # elements: float32 Adam's four arrays fill 1 MiB, one core's L2 here
CACHED = "in cache: "  # the prefix of the in-cache rows, timed in the big group's rounds but not in its table


def _in_cache_group() -> dict[str, Callable[[], None]]:
    """Adam in each state mode on one L2-sized float32 tensor: each mode's own arithmetic per element."""
    rng = np.random.default_rng(15)
    steps: dict[str, Callable[[], None]] = {}
    for mode in MODES:
        p = fo.Parameter((rng.standard_normal(IN_CACHE) * 0.1).astype(np.float32))
        p.grad = (rng.standard_normal(IN_CACHE) * 0.01).astype(np.float32)
        opt = fo.Adam([p], lr=1e-3, state_dtype=mode)
        opt.step()
        steps[f"{CACHED}fastopt {mode}"] = opt.step
    return steps


def run_precision(quick: bool = False, rounds: int | None = None,
                  batch_seconds: float | None = None) -> list[dict]:
    """Measure the groups; returns one dict per group: elements, per-round times, state bytes, skipped. The big
    group's rounds also time each state mode on IN_CACHE elements (keys "in cache: fastopt <mode>"), interleaved
    with the big rows, for each mode's bound."""
    set_threads(1)
    big = 2_000_000 if quick else 20_000_000
    out = []
    for n, full in ((big, True), (1_000_000, False)):
        steps, sizes, skipped = _group(n, full)
        if full:
            steps.update(_in_cache_group())
        r = rounds if rounds is not None else (3 if quick else 5)
        times = interleave(steps, r, batch_seconds if batch_seconds is not None else 0.05, 0.002)
        out.append({"elements": n, "times": times, "state_bytes": sizes, "skipped": skipped})
    return out


# bytes moved per element by Adam's step on a float32 parameter: param read and written, grad read, each moment
# read and written (float32 4 bytes, bfloat16 2, int8 1 plus a float32 absmax per 256)
MODE_BYTES = {"float32": 4 + 4 + 4 + 2 * 4 * 2, "bfloat16": 4 + 4 + 4 + 2 * 2 * 2,
              "int8": 4 + 4 + 4 + 2 * (1 + 4 / 256) * 2}


def _regimes(big: dict) -> list[str]:
    """Per state mode: its time per element in cache (its arithmetic) against beyond it, which bound holds, and the
    best speed-up over float32 state that the two bounds leave: float32's time / max(the mode's in-cache time, the
    probe's time scaled to the mode's bytes)."""
    n, nc, t = big["elements"], IN_CACHE, big["times"]
    f32, probe = _med(t, "fastopt float32"), _med(t, "probe")
    if f32 is None or probe is None:
        return []
    lines = ["", f"### Each mode's bound (its step on {nc} elements, in cache, timed in the same rounds)", "",
             "| state | ns/element in cache | ns/element here | here / in cache | bound | best speed-up the "
             "bounds allow | measured |", "|---|---|---|---|---|---|---|"]
    for mode in MODES:
        big_t, small_t = _med(t, f"fastopt {mode}"), _med(t, f"{CACHED}fastopt {mode}")
        if big_t is None or small_t is None:
            continue
        a, b = small_t / nc, big_t / n
        mem = probe / n * MODE_BYTES[mode] / MODE_BYTES["float32"]
        bound = "arithmetic" if b <= 1.15 * a else "memory"
        lines.append(f"| {mode} | {a * 1e9:.3f} | {b * 1e9:.3f} | {b / a:.2f} | {bound} | "
                     f"{f32 / n / max(a, mem):.2f}× | {f32 / big_t:.2f}× |")
    lines += ["", "- bound: arithmetic when the step beyond the cache takes at most 1.15× its in-cache time per "
              "element; the best speed-up divides float32's time by the larger of the mode's in-cache time and the "
              "same-traffic probe's time scaled by the mode's bytes per element (float32 28, bfloat16 20, int8 "
              "about 16)"]
    return lines


def _med(times: dict[str, list[float]], key: str) -> float | None:
    t = times.get(key)
    return float(np.median(t)) if t else None


def _ms(s: float | None) -> str:
    return "–" if s is None else f"{s * 1e3:.2f} ms"


def _x(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def write_precision(out_dir: str, groups: list[dict], command: str, note: str = "") -> str:
    """Write OUT/RESULTS_precision.md; returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    lines = ["# fastopt benchmark: memory and precision (issue 14)", "", f"- command: `{command}`",
             f"- instruction set: {K.isa()}; 1 thread; one float32 tensor; medians over rounds, every group's "
             "implementations interleaved round by round"]
    if note:
        lines.append(f"- {note}")
    for grp in groups:
        n, t = grp["elements"], grp["times"]
        f32 = _med(t, "fastopt float32")
        lines += ["", f"## {n:.0e} elements".replace("e+0", "e"), "",
                  "| implementation | time per step | speed-up vs fastopt float32 state | state bytes / param |",
                  "|---|---|---|---|"]
        for key in (k for k in t if not k.startswith(CACHED)):
            s = _med(t, key)
            b = grp["state_bytes"].get(key)
            lines.append(f"| {key} | {_ms(s)} | {_x(f32, s) if f32 else '–'} | {'' if b is None else f'{b:.2f}'} |")
        for key, why in grp["skipped"].items():
            lines.append(f"| {key} | skipped: {why} | | |")
        probe = _med(t, "probe")
        if f32 is not None and probe is not None:
            share = probe / f32
            regime = "memory-bound" if share >= 0.8 else "compute-bound"
            target = ("int8 ≥ 1.5×, bfloat16 ≥ 1.25×" if regime == "memory-bound"
                      else "compressed modes ≥ 1.0× (no slower than float32 state)")
            lines += ["", f"- same-traffic probe / float32 Adam = {share:.2f}: the float32 step is **{regime}** "
                          f"here (target: {target})"]
        bfp = _med(t, "fastopt bfloat16 params")
        if f32 is not None and bfp is not None:
            lines.append(f"- float32-param Adam / bfloat16-param Adam (float32 state) = {f32 / bfp:.2f}× "
                         "(target ≥ 1.2× where the float32 step is memory-bound); the params rows' speed-up column "
                         "is over the same float32-param step, their state bytes include the master copy")
        if _med(t, "probe") is not None and any(k.startswith(CACHED) for k in t):
            lines += _regimes(grp)
        q8, bnb = _med(t, "fastopt int8"), _med(t, "bitsandbytes Adam8bit")
        if q8 is not None and bnb is not None:
            lines.append(f"- bitsandbytes Adam8bit / fastopt int8 = {bnb / q8:.1f}× (target ≥ 30×)")
    path = os.path.join(out_dir, "RESULTS_precision.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
