"""``fastopt bench --core``: the rows of issue 10 ("Core v2"): the cost of a whole small step, per-tensor overhead
and memory bandwidth at 2e7 elements.

Each group's implementations run interleaved round by round (fastopt.bench.step.interleave) and every figure is a
median over rounds, so each ratio compares times measured side by side in one run:

- **mlp** — Adam, float32, the tutorial's 1-20-1 MLP (4 tensors, 61 elements), 1 thread, a whole ``opt.step()``:
  fastopt with the same gradient arrays every step ("reused") and with a fresh gradient array assigned to every
  ``.grad`` before each step ("fresh": arrays from a pool of 64 sets made up front, so the time is the
  assignment and the re-validation, not NumPy's allocation; "assign only" times the assignment loop alone, so
  fresh − reused − assign only is fastopt's re-check of the new arrays); the flat-buffer NumPy step (NumpyAdam
  over one 61-element buffer per array); torch fused, reused and given fresh gradient tensors the same way.
- **model200** — Adam, float32, 1 thread: the 200-tensor model (3.7 M elements) against ONE tensor with the same
  number of elements, and against torch fused on the 200 tensors (and torch fused's own 200 / one); and the same
  200 tensors as views of one buffer per array ("200 views": the one tensor's memory layout), which splits the gap
  into the per-tensor cost (views / one tensor) and the cost of where separate arrays live (separate / views:
  small arrays come from the malloc heap in 4 KiB pages, a large one is mapped on its own and NumPy asks for
  transparent huge pages for it; with 4 or 5 streams each crossing a page every 4 KiB, TLB misses and the
  hardware prefetchers' restart at each page cost Adam's step up to 1.3x, also for ONE tensor in 4 KiB pages:
  measured with a C driver of the kernels). fastopt places a step's new state buffers of one key as consecutive
  views of one allocation (the state arena, fastopt._memory.zeros_aligned_many), so only the user's parameter and
  gradient arrays are scattered; "200 tensors, separate state" gives every state buffer its own allocation as
  before the arena (and as loading a state dict does), and its ratio to "200 tensors" is the arena's gain. "one
  tensor, 4 KiB pages" is the one tensor with its parameter and gradient in 4 KiB pages, as the 200 tensors' are
  (NumPy's huge-page advice off while they are made): the same step over memory in the same kind of pages.
- **big** — one tensor of 2e7 elements (2e6 with ``--quick``), float32, 1 thread: Adam and SGD-momentum against
  torch fused, and the same-traffic probe for each; GB/s counts the minimum traffic (read param, grad, state;
  write param, state) and each step's share of the best GB/s seen in the group; Adam's ns per element against
  the in-cache step (1e4 elements) measured in the same group; the same-traffic probe's time against fastopt's
  says how close to memory-bound each step is. Each round's batch here is at least BIG_STEPS steps.

The table goes to ``OUT/RESULTS_core.md`` and the per-round times to ``OUT/results_core.json``.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from typing import Any

import numpy as np

import fastopt as fo

from .._memory import zeros_like_aligned
from .numpy_impl import NumpyAdam
from .step import ALGOS, build, case_shapes, interleave, set_threads, torch  # torch or None


__all__ = ["run_core", "write_core"]

POOL = 64          # fresh-gradient sets cycled through in the "fresh" rows
BIG = 20_000_000   # elements of the single-tensor group
BIG_QUICK = 2_000_000
IN_CACHE = 10_000  # Adam float32 at 1e4 elements: 160 KB of arrays, resident in L2
BIG_STEPS = 4      # steps per batch, at least, in the single-tensor group (at ~0.6 ns per element)


@dataclass
class Group:
    name: str
    times: dict[str, list[float]] = field(default_factory=dict)  # per-step seconds, one value per round
    bytes: dict[str, int] = field(default_factory=dict)          # minimum traffic per step, where meaningful
    elements: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def median(self, impl: str) -> float | None:
        t = self.times.get(impl)
        return float(np.median(t)) if t else None


def _cycling(holders: list, pool: list[list], step: Callable[[], object]) -> Callable[[], None]:
    """A step that first assigns the next set of gradients from pool to every holder's .grad.

    The (holder, gradient) pairs of each set are made up front, so what the harness adds to the step is the
    training loop's own ``p.grad = g`` per parameter (measured alone: the "assign only" row), not its bookkeeping
    (a modulo, an index and a zip per step cost as much again: about 0.1 µs, 10 % of the MLP step)."""
    sets = itertools.cycle([list(zip(holders, gs)) for gs in pool])

    def fresh() -> None:
        for h, g in next(sets):
            h.grad = g
        step()
    return fresh


def _noop() -> None:
    return None


def _assign_only(shapes, dtype) -> Callable[[], None]:
    """The fresh rows' gradient assignment alone (the same harness around a step that does nothing)."""
    rng = np.random.default_rng(2)
    params = [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    pool = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(POOL)]
    return _cycling(params, pool, _noop)


def _views_fastopt(algo: str, dtype, shapes) -> Callable[[], None]:
    """The step over the same tensors as separate Parameters whose data, grad and state buffers are consecutive
    views of one buffer per array (param, grad, then each state buffer): the 200 tensors in the memory layout of
    the one-tensor step (each buffer one large allocation, which NumPy backs with transparent huge pages where the
    kernel allows it) — so the ratio to the one-tensor step is the per-tensor cost alone, and the ratio of the
    separate arrays to this step is what their placement (small heap allocations in 4 KiB pages) costs."""
    a = ALGOS[algo]
    sizes = [int(np.prod(s)) for s in shapes]
    total = int(sum(sizes))
    starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    rng = np.random.default_rng(1)
    whole = {k: np.empty(total, dtype) for k in ("param", "grad", *a.keys)}
    whole["param"][:] = rng.random(total, dtype=dtype) - 0.5
    whole["grad"][:] = rng.random(total, dtype=dtype) - 0.5
    parts = {k: [v[starts[i]:starts[i + 1]].reshape(s) for i, s in enumerate(shapes)] for k, v in whole.items()}
    params = [fo.Parameter(d) for d in parts["param"]]
    for p, g in zip(params, parts["grad"]):
        p.grad = g
    opt = a.make_fastopt(params)
    opt.step()  # creates the state; then move it into the views
    return _moved_state(opt, params, a.keys, lambda k, i, data: parts[k][i])


def _moved_state(opt: Any, params: list, keys: tuple[str, ...],
                 place: Callable[[str, int, np.ndarray], np.ndarray]) -> Callable[[], None]:
    """opt.step after moving each state buffer k of params[i] into place(k, i, data) (same values), checked kept."""
    moved = {}
    for i, p in enumerate(params):
        for k in keys:
            moved[k, i] = place(k, i, p.data)
            np.copyto(moved[k, i], opt.state[p][k])
            opt.state[p][k] = moved[k, i]
    opt.step()  # the full path checks the new buffers and plans the repeated step over them
    if any(opt.state[p][k] is not moved[k, i] for i, p in enumerate(params) for k in keys):
        raise RuntimeError("the optimizer did not keep the moved state buffers")
    return opt.step


def _separate_state_fastopt(algo: str, dtype, shapes) -> Callable[[], None]:
    """The 200-tensor step with each state buffer its own allocation (fastopt before the state arena, and what
    loading a state dict gives), over separate parameter and gradient arrays made as the "200 tensors" row's."""
    a = ALGOS[algo]
    rng = np.random.default_rng(1)
    params = [fo.Parameter(rng.random(s, dtype=dtype) - 0.5) for s in shapes]
    for p in params:
        p.grad = rng.random(p.data.shape, dtype=dtype) - 0.5
    opt = a.make_fastopt(params)
    opt.step()
    return _moved_state(opt, params, a.keys, lambda k, i, data: zeros_like_aligned(data))


def _fresh_fastopt(shapes, dtype) -> Callable[[], None]:
    """Adam over new parameters whose .grad is replaced by a different array before every step."""
    rng = np.random.default_rng(2)
    params = [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    pool = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(POOL)]
    fresh = _cycling(params, pool, ALGOS["adam"].make_fastopt(params).step)
    fresh()  # creates the state
    return fresh


def _fresh_torch_fused(shapes, dtype) -> Callable[[], None] | str:
    """The same with torch fused Adam and tensors (a reason string when torch cannot run it)."""
    if torch is None:
        return "torch not installed"
    rng = np.random.default_rng(2)
    tparams = [torch.from_numpy(rng.standard_normal(s).astype(dtype)) for s in shapes]
    pool = [[torch.from_numpy(rng.standard_normal(s).astype(dtype)) for s in shapes] for _ in range(POOL)]
    try:
        fresh = _cycling(tparams, pool, torch.optim.Adam(tparams, **ALGOS["adam"].torch_kwargs, fused=True).step)
        fresh()
    except (RuntimeError, TypeError, ValueError) as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"
    return fresh


# NumPy's switch for the transparent-huge-page advice it gives large allocations (None in a NumPy without it)
_HUGE_PAGE_ADVICE = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
NO_HUGE_PAGE_SWITCH = "this NumPy has no switch for its huge-page advice"


@contextlib.contextmanager
def huge_page_advice(on: bool) -> Iterator[None]:
    """Arrays made inside get NumPy's huge-page advice (``on``) or not (4 KiB pages); the old setting after."""
    if _HUGE_PAGE_ADVICE is None:
        raise RuntimeError(NO_HUGE_PAGE_SWITCH)
    before = _HUGE_PAGE_ADVICE(on)
    try:
        yield
    finally:
        _HUGE_PAGE_ADVICE(before)


def _one_small_pages_fastopt(algo: str, dtype, total: int) -> Callable[[], None] | str:
    """The one-tensor step with its parameter and gradient arrays in 4 KiB pages, as the 200-tensor model's small
    heap arrays are, and its state where fastopt puts it (the arena, huge pages as for the 200 tensors): NumPy's
    huge-page advice for large arrays is switched off while the two arrays are made. So 200 tensors / this step
    compares the two layouts with their memory in the same kind of pages, and 200 tensors / one tensor also counts
    the TLB misses of the user's 4 KiB pages (about one page walk per 1024 elements of each of the two arrays)."""
    if _HUGE_PAGE_ADVICE is None:
        return NO_HUGE_PAGE_SWITCH
    a = ALGOS[algo]
    rng = np.random.default_rng(1)
    with huge_page_advice(False):
        p = fo.Parameter(rng.random(total, dtype=dtype) - 0.5)
        p.grad = rng.random(total, dtype=dtype) - 0.5
    opt = a.make_fastopt([p])
    opt.step()
    return opt.step


def _flat_numpy_adam(shapes, dtype) -> Callable[[], None]:
    n = int(sum(int(np.prod(s)) for s in shapes))
    rng = np.random.default_rng(3)
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    return NumpyAdam([p], [g], [[np.zeros_like(p), np.zeros_like(p)]], **ALGOS["adam"].numpy_kwargs).step


def _add(group: Group, prefix: str, algo: str, dtype, shapes, want: list[str],
         steps: dict[str, Callable[[], None]]) -> None:
    elements = int(sum(int(np.prod(s)) for s in shapes))
    skipped: dict[str, str] = {}
    for impl, fn in build(ALGOS[algo], dtype, shapes, want, skipped).items():
        key = f"{prefix} {impl}"
        steps[key] = fn
        group.elements[key] = elements
        group.bytes[key] = elements * ALGOS[algo].bytes_per_element(np.dtype(dtype).itemsize)
    group.skipped.update({f"{prefix} {k}": v for k, v in skipped.items()})


def _measure(group: Group, steps: dict[str, Callable[[], None]], rounds: int, batch_seconds: float) -> Group:
    for fn in steps.values():
        fn()  # warm-up
    group.times.update(interleave(steps, rounds, batch_seconds, 0.002))
    return group


def run_core(quick: bool = False, rounds: int | None = None, batch_seconds: float | None = None,
             big: int | None = None) -> list[Group]:
    """Measure the three groups (see the module docstring) on one thread; returns them with per-round times."""
    rounds = rounds or (3 if quick else 11)
    batch_seconds = batch_seconds or (0.002 if quick else 0.010)
    big = big or (BIG_QUICK if quick else BIG)
    f32 = np.dtype(np.float32)
    set_threads(1)
    groups = []
    steps: dict[str, Callable[[], None]]    # implementation name -> one step, per group

    mlp, steps = Group("mlp"), {}
    shapes = case_shapes("mlp")
    _add(mlp, "reused", "adam", f32, shapes, ["fastopt", "torch fused"], steps)
    steps["fresh fastopt"] = _fresh_fastopt(shapes, f32)
    fresh_torch = _fresh_torch_fused(shapes, f32)
    if isinstance(fresh_torch, str):
        mlp.skipped["fresh torch fused"] = fresh_torch
    else:
        steps["fresh torch fused"] = fresh_torch
    steps["flat numpy"] = _flat_numpy_adam(shapes, f32)
    steps["assign only"] = _assign_only(shapes, f32)
    groups.append(_measure(mlp, steps, rounds, batch_seconds))

    m200, steps = Group("model200"), {}
    shapes = case_shapes("model200")
    total = int(sum(int(np.prod(s)) for s in shapes))
    _add(m200, "200 tensors", "adam", f32, shapes, ["fastopt", "torch fused"], steps)
    _add(m200, "one tensor", "adam", f32, [(total,)], ["fastopt", "torch fused"], steps)
    steps["200 views fastopt"] = _views_fastopt("adam", f32, shapes)
    steps["200 tensors, separate state fastopt"] = _separate_state_fastopt("adam", f32, shapes)
    small_pages = _one_small_pages_fastopt("adam", f32, total)
    if isinstance(small_pages, str):
        m200.skipped["one tensor, 4 KiB pages fastopt"] = small_pages
    else:
        steps["one tensor, 4 KiB pages fastopt"] = small_pages
    for k in ("200 views fastopt", "200 tensors, separate state fastopt", "one tensor, 4 KiB pages fastopt"):
        m200.elements[k] = total
    groups.append(_measure(m200, steps, rounds, batch_seconds))

    # A step here is 10-15 ms: batches of at least BIG_STEPS steps, so that each round's time is a steady stream
    # and not one step started behind the previous implementation's dirty cache lines (single-step rounds of
    # the same kernel spread by +-15 %, more than the differences these rows compare).
    bigg, steps = Group(f"big ({_count(big)} elements; in cache: {_count(IN_CACHE)})"), {}
    for algo in ("adam", "sgd"):
        _add(bigg, algo, algo, f32, [(big,)], ["fastopt", "probe", "torch fused"], steps)
    _add(bigg, "adam in-cache", "adam", f32, [(IN_CACHE,)], ["fastopt"], steps)
    groups.append(_measure(bigg, steps, rounds, max(batch_seconds, BIG_STEPS * 1.5e-9 * big)))
    return groups


def _count(n: int) -> str:
    """2e7, 1e4, 2.9e6: an element count in short form."""
    return f"{n:.2g}".replace("e+0", "e").replace("e+", "e")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def rows(groups: list[Group]) -> list[tuple[str, str, str]]:
    """(what, measured, issue 10's target) for each figure; '–' where an implementation did not run."""
    g = {x.name: x for x in groups}
    out: list[tuple[str, str, str]] = []

    def add(what: str, value: float | None, fmt: str, target: str) -> None:
        out.append((what, "–" if value is None else fmt.format(value), target))

    mlp = g["mlp"]
    reused, fresh = mlp.median("reused fastopt"), mlp.median("fresh fastopt")
    add("MLP 1-20-1 Adam, whole opt.step(), reused grads (µs)", reused and reused * 1e6, "{:.2f}", "")
    add("  flat-buffer NumPy step / fastopt", _ratio(mlp.median("flat numpy"), reused), "{:.2f}×", "≥ 6×")
    add("  torch fused / fastopt", _ratio(mlp.median("reused torch fused"), reused), "{:.1f}×", "≥ 40×")
    add("MLP 1-20-1 Adam, fresh grad arrays every step (µs)", fresh and fresh * 1e6, "{:.2f}", "")
    assign = mlp.median("assign only")
    add("  fresh / reused (the fresh row's time includes assigning the 4 .grad arrays)", _ratio(fresh, reused),
        "{:.3f}×", "≤ 1.3×")
    add("  fresh step alone / reused: (fresh − assigning) / reused",
        _ratio(fresh - assign, reused) if fresh and assign else None, "{:.3f}×", "≤ 1.3×")
    add("  torch fused (fresh grad tensors) / fastopt (fresh)", _ratio(mlp.median("fresh torch fused"), fresh),
        "{:.1f}×", "≥ 40×")
    add("  of the fresh step: assigning the 4 .grad arrays (Python loop, µs)", assign and assign * 1e6, "{:.2f}",
        "")
    add("  of the fresh step: fastopt's re-check of new arrays (fresh − reused − assigning, µs)",
        (fresh - reused - assign) * 1e6 if fresh and reused and assign else None, "{:.2f}", "")
    m = g["model200"]
    t200, t1, tv = m.median("200 tensors fastopt"), m.median("one tensor fastopt"), m.median("200 views fastopt")
    n200 = m.elements.get("200 tensors fastopt")  # the issue says 2.9 M; case_shapes("model200") holds 3.7 M
    add(f"200-tensor model ({n200 / 1e6:.1f} M) Adam step (ms)" if n200 else "200-tensor model Adam step (ms)",
        t200 and t200 * 1e3, "{:.3f}", "")
    add("  200 tensors / one tensor of the same size", _ratio(t200, t1), "{:.3f}×", "≤ 1.05×")
    add("  torch fused / fastopt", _ratio(m.median("200 tensors torch fused"), t200), "{:.2f}×", "≥ 1.65×")
    add("  200 tensors as views of one buffer per array / one tensor (the per-tensor cost)", _ratio(tv, t1),
        "{:.3f}×", "")
    add("  200 separate arrays / 200 views (the arrays' placement: heap, 4 KiB pages)", _ratio(t200, tv),
        "{:.3f}×", "")
    add("  200 tensors / one tensor with its param and grad in 4 KiB pages as the 200 tensors' are",
        _ratio(t200, m.median("one tensor, 4 KiB pages fastopt")), "{:.3f}×", "")
    add("  state buffers as separate arrays (no state arena) / 200 tensors (the arena's gain)",
        _ratio(m.median("200 tensors, separate state fastopt"), t200), "{:.3f}×", "")
    add("  torch fused for reference: 200 tensors / one tensor", _ratio(m.median("200 tensors torch fused"),
                                                                         m.median("one tensor torch fused")),
        "{:.3f}×", "")
    b = next(x for x in groups if x.name.startswith("big"))
    gbs: dict[str, float] = {}
    for k in b.times:  # bandwidth beyond the cache only: an in-cache step's bytes never reach memory
        t = b.median(k) if k in b.bytes and "in-cache" not in k else None
        if t:
            gbs[k] = b.bytes[k] / t / 1e9
    best = max(gbs.values()) if gbs else None
    for algo in ("adam", "sgd"):
        fast = b.median(f"{algo} fastopt")
        label = f"{ALGOS[algo].label}, one tensor of {_count(b.elements.get(algo + ' fastopt', 0))}"
        add(f"{label}: step (ms)", fast and fast * 1e3, "{:.2f}", "")
        add("  torch fused / fastopt", _ratio(b.median(f"{algo} torch fused"), fast), "{:.2f}×", "≥ 1.0×")
        add("  fastopt GB/s", gbs.get(f"{algo} fastopt"), "{:.1f}", "")
        add("  same-traffic probe / fastopt", _ratio(b.median(f"{algo} probe"), fast), "{:.3f}×", "")
        add(f"  share of the best GB/s in the run ({best or 0:.1f}, "
            f"{max(gbs, key=gbs.__getitem__) if gbs else '–'})", _ratio(gbs.get(f"{algo} fastopt"), best), "{:.1%}",
            "≥ 95 % where memory-bound")

    def ns_per_element(key: str) -> float | None:
        t = b.median(key)
        return t / b.elements[key] * 1e9 if t else None

    ns_big, ns_cache = ns_per_element("adam fastopt"), ns_per_element("adam in-cache fastopt")
    add("Adam ns/element, one big tensor", ns_big, "{:.3f}", "")
    add("Adam ns/element, in cache", ns_cache, "{:.3f}", "")
    add("  big / in cache", _ratio(ns_big, ns_cache), "{:.3f}×", "must not grow")
    return out


def _fmt(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.2f} µs"


def write_core(out_dir: str, groups: list[Group], command: str) -> str:
    """Write OUT/RESULTS_core.md (figures, then every median) and OUT/results_core.json; returns the .md path."""
    os.makedirs(out_dir, exist_ok=True)
    lines = ["# fastopt benchmark: Core v2 rows (issue 10)", "", f"- command: `{command}`",
             "- float32, 1 thread on both sides; medians over rounds; each group's implementations interleaved "
             "round by round, so every ratio compares times measured side by side in this run", "",
             "| figure | measured | target |", "|---|---|---|"]
    lines += [f"| {w} | {v} | {t} |" for w, v, t in rows(groups)]
    lines += ["", "## Medians", "", "| group | implementation | time per step | rounds |", "|---|---|---|---|"]
    for g in groups:
        for k, v in g.times.items():
            lines.append(f"| {g.name} | {k} | {_fmt(g.median(k))} | {len(v)} |")
        for k, why in g.skipped.items():
            lines.append(f"| {g.name} | {k} | skipped: {why} | 0 |")
    path = os.path.join(out_dir, "RESULTS_core.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out_dir, "results_core.json"), "w") as f:
        json.dump({"command": command, "groups": [g.__dict__ for g in groups]}, f, separators=(",", ":"))
    return path
