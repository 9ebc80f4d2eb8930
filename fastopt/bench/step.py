"""The measurement engine: build one problem per (algorithm, dtype, case, threads), run every implementation
over the same memory, interleaved round by round, and keep every per-step time.

All implementations share the parameter, gradient and state arrays (torch's tensors are ``torch.from_numpy``
views of fastopt's arrays, its state buffers are replaced by views of fastopt's after the first step), so the
comparison is over identical memory, alignment included, and the process holds one copy of the data.
Within a round each implementation, in a shuffled order, runs a batch of steps sized to last about
``batch_seconds``; a pause between batches lets idle OpenMP workers (torch's) stop spinning before the next runs.
"""
from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import fastopt as fo
from fastopt import _kernels as K

from .numpy_impl import NUMPY_OPTIMIZERS

def _optional_torch() -> Any:
    """torch, or None: it is optional, and its columns are skipped without it."""
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return torch


torch = _optional_torch()

__all__ = ["ALGOS", "CASES", "IMPLS", "Algo", "Measurement", "build", "case_shapes", "interleave", "run_case",
           "set_threads"]


@dataclass(frozen=True)
class Algo:
    label: str
    make_fastopt: Callable[[list], Any]
    torch_name: str | None
    torch_kwargs: dict
    numpy_kwargs: dict
    keys: tuple[str, ...]  # state buffers, in the order the probe and the NumPy version use them
    default: bool = True   # measured by a plain `fastopt bench`; the others with --algos (issue 4's family)
    # An algorithm torch.optim lacks: its reference implementation on torch CPU (the `reference` column), built
    # from the torch params (their .grad set); returns an object with .step(). None: no such column.
    make_reference: Callable[[list], Any] | None = None
    reference_label: str = ""  # e.g. "schedulefree 1.4.1"
    # An algorithm whose minimum traffic is more than one pass (an update that needs a sum over whole tensors or
    # groups first): the values it must move per element and step (None: one pass, see bytes_per_element), the
    # probe's passes (each the arrays at the probe's positions: param (INOUT), grad (IN), then INOUT states; names
    # from "param", "grad" and keys) and the text the report prints under the algorithm's table.
    min_values: int | None = None
    probe_passes: tuple[tuple[str, ...], ...] | None = None
    probe_note: str = ""
    # a probe kernel of its own (a name in _kernels.KERNELS with one field, scale), run over one table of param,
    # grad and the keys, instead of probe passes: for a kernel whose schedule the generic probe cannot follow
    probe_kernel: str | None = None
    # where the state buffers named by keys live, given the fastopt optimizer (None: its own .state)
    state_owner: Callable[[Any], Any] | None = None

    def bytes_per_element(self, itemsize: int) -> int:
        """Minimum traffic: read param, grad and each state buffer; write param and each state buffer (or
        ``min_values`` per element where that is more than one pass)."""
        return (self.min_values or 3 + 2 * len(self.keys)) * itemsize


ALGOS: dict[str, Algo] = {
    "sgd": Algo("SGD-momentum", lambda ps: fo.SGD(ps, lr=1e-2, momentum=0.9), "SGD",
                dict(lr=1e-2, momentum=0.9), dict(lr=1e-2, momentum=0.9), ("momentum_buffer",)),
    "adam": Algo("Adam", lambda ps: fo.Adam(ps, lr=1e-3), "Adam", dict(lr=1e-3), dict(lr=1e-3),
                 ("exp_avg", "exp_avg_sq")),
    "adamw": Algo("AdamW", lambda ps: fo.AdamW(ps, lr=1e-3, weight_decay=1e-2), "AdamW",
                  dict(lr=1e-3, weight_decay=1e-2), dict(lr=1e-3, weight_decay=1e-2, decoupled=True),
                  ("exp_avg", "exp_avg_sq")),
    "rmsprop": Algo("RMSprop", lambda ps: fo.RMSprop(ps, lr=1e-2), "RMSprop", dict(lr=1e-2), dict(lr=1e-2),
                    ("square_avg",)),
    # The rest of the family: fastopt against torch and the probe (no hand-written NumPy version).
    "adagrad": Algo("Adagrad", lambda ps: fo.Adagrad(ps, lr=1e-2), "Adagrad", dict(lr=1e-2), {}, ("sum",),
                    False),
    "adadelta": Algo("Adadelta", lambda ps: fo.Adadelta(ps, lr=1.0, rho=0.9), "Adadelta", dict(lr=1.0, rho=0.9),
                     {}, ("square_avg", "acc_delta"), False),
    "adamax": Algo("Adamax", lambda ps: fo.Adamax(ps, lr=2e-3), "Adamax", dict(lr=2e-3), {},
                   ("exp_avg", "exp_inf"), False),
    "nadam": Algo("NAdam", lambda ps: fo.NAdam(ps, lr=2e-3), "NAdam", dict(lr=2e-3), {},
                  ("exp_avg", "exp_avg_sq"), False),
    "radam": Algo("RAdam", lambda ps: fo.RAdam(ps, lr=1e-3), "RAdam", dict(lr=1e-3), {},
                  ("exp_avg", "exp_avg_sq"), False),
    "asgd": Algo("ASGD", lambda ps: fo.ASGD(ps, lr=1e-2, t0=0), "ASGD", dict(lr=1e-2, t0=0), {}, ("ax",), False),
    "rprop": Algo("Rprop", lambda ps: fo.Rprop(ps, lr=1e-2), "Rprop", dict(lr=1e-2), {},
                  ("prev", "step_size"), False),
    "lion": Algo("Lion", lambda ps: fo.Lion(ps, lr=1e-4, weight_decay=0.1), None, {}, {}, ("exp_avg",), False),
}

# ---- AdEMAMix, LAMB, LARS (issue #15): against pytorch-optimizer on torch CPU (its default, foreach, path) ----


def _pytorch_optimizer(name: str, **kwargs: Any) -> Callable[[list], Any]:
    def make(params: list) -> Any:
        import pytorch_optimizer  # ImportError: the bench reports the column as not installed

        return getattr(pytorch_optimizer, name)(params, **kwargs)
    return make


_PO = "pytorch-optimizer"
ALGOS.update({
    "ademamix": Algo("AdEMAMix", lambda ps: fo.AdEMAMix(ps, lr=1e-3), None, {}, {},
                     ("exp_avg", "exp_avg_sq", "exp_avg_slow"), False,
                     make_reference=_pytorch_optimizer("AdEMAMix", lr=1e-3), reference_label=_PO),
    # The trust ratio needs the norm of the whole tensor's update before any element of it is applied, so LAMB's
    # minimum is two passes: (1) read p, g, m, v, write m, v (the moments, and the sums |x|^2 and |u|^2 of the
    # decayed weights and of the update), (2) read p, m, v, write p: 10 values per element (storing u for pass 2
    # adds a write; computing the sums without writing m, v, then the moments in pass 2, adds a read: 11). The
    # kernel runs a small tensor's two passes back to back (pass 2 then reads it from cache) and a large one's pass 1
    # over the whole tensor first (fo_reduce.h); its probe (csrc/probe_two_pass.c) moves exactly those 10 values in
    # that schedule with one addition each, so fastopt / probe is what LAMB's arithmetic costs beyond its traffic.
    # (Until round 5 the probe was two generic probe passes over every tensor, moving 8 of the 10 values.)
    "lamb": Algo("LAMB", lambda ps: fo.LAMB(ps, lr=1e-3, weight_decay=1e-2), None, {}, {},
                 ("exp_avg", "exp_avg_sq"), False,
                 make_reference=_pytorch_optimizer("Lamb", lr=1e-3, weight_decay=1e-2), reference_label=_PO,
                 min_values=10, probe_kernel="probe_two_pass",
                 probe_note="LAMB's minimum is two passes (the trust ratio needs the norm of the whole tensor's "
                            "update first): read p, g, m, v and write m, v, then read p, m, v and write p, 10 values "
                            "per element (GB/s counts these). fastopt runs a small tensor's two passes back to back, "
                            "so that the second reads it from cache, and a large tensor's first pass over all of it "
                            "before the second. Its probe moves exactly those 10 values in that same order, with one "
                            "addition per value (pass 1: m += 0·g, v += 0·p; pass 2: p += 0·m + 0·v), so 100 % is "
                            "the memory ceiling of that schedule."),
    "lars": Algo("LARS", lambda ps: fo.LARS(ps, lr=1e-2, weight_decay=1e-4), None, {}, {}, ("momentum_buffer",),
                 False, make_reference=_pytorch_optimizer("LARS", lr=1e-2, weight_decay=1e-4),
                 reference_label=_PO),
})


# ---- Beyond torch.optim: Schedule-Free and Prodigy, against the packages they follow (the `reference` column) ----


def _schedulefree(name: str, **kw: Any) -> Callable[[list], Any]:
    def make(tparams: list) -> Any:
        schedulefree = importlib.import_module("schedulefree")  # optional: ImportError -> a skipped column
        opt = getattr(schedulefree, name)(tparams, **kw)  # its default foreach path, its fastest on CPU
        opt.train()
        return opt
    return make


_PRODIGY_GROWTH = 1.0  # the bench's cap on d's growth per step (see the prodigy row)


def _prodigyopt(**kw: Any) -> Callable[[list], Any]:
    def make(tparams: list) -> Any:
        return importlib.import_module("prodigyopt").Prodigy(tparams, **kw)  # (prodigyopt has a single for-loop path)
    return make


ALGOS.update({
    "sf_sgd": Algo("ScheduleFreeSGD", lambda ps: fo.ScheduleFreeSGD(ps, lr=1.0), None, {}, {}, ("z",), False,
                   _schedulefree("SGDScheduleFree", lr=1.0), "schedulefree 1.4.1"),
    "sf_adamw": Algo("ScheduleFreeAdamW", lambda ps: fo.ScheduleFreeAdamW(ps, lr=2.5e-3), None, {}, {},
                     ("z", "exp_avg_sq"), False, _schedulefree("AdamWScheduleFree", lr=2.5e-3), "schedulefree 1.4.1"),
    # The d estimate of the update needs two sums over every parameter of every group (sum g (p0 - p) and the
    # l1 norm of the new s) first, so Prodigy's minimum is two passes over the whole model: (1) read p, g, p0, s,
    # write s; (2) read p, g, m, v, write p, m, v (the moments use the old d, so they can wait for pass 2): 12
    # values per element. The probe runs two passes in that order and moves exactly those 12 (s += 0·(g + p + p0)
    # over every tensor, with exp_avg's array standing in for p0: the same size, a stream of its own; then p, m, v
    # += 0·g).
    # Both sides run growth_rate=1.0: on the bench's fixed gradient d otherwise grows to 1e15-1e16 within 100 steps
    # (the parameters to 1e19), and prodigyopt's float step weight (d / d0) d lr can overflow (a RuntimeError that
    # stopped a bench run); capping d's growth changes no operation of either step, only the value of d.
    "prodigy": Algo("Prodigy", lambda ps: fo.Prodigy(ps, growth_rate=_PRODIGY_GROWTH), None, {}, {},
                    ("exp_avg", "exp_avg_sq", "s"), False, _prodigyopt(growth_rate=_PRODIGY_GROWTH),
                    "prodigyopt 1.1.2", min_values=12,
                    probe_passes=(("s", "grad", "<param", "<exp_avg"), ("param", "grad", "exp_avg", "exp_avg_sq")),
                    probe_note="Prodigy's minimum is two passes over the whole model (the d estimate needs "
                               "sum g·(p0 − p) and the l1 norm of s over every parameter first): read p, g, p0, s and "
                               "write s, then read p, g, m, v and write p, m, v, 12 values per element (GB/s counts "
                               "these). Its probe runs two passes in that order and moves the same 12 (s += 0·(g + "
                               "p + p0), with exp_avg's array standing in for p0; then p, m, v += 0·g). Both Prodigy "
                               "columns run "
                               "growth_rate=1.0 (the same operations per step as the default): on the bench's fixed "
                               "gradient an unbounded d reaches 1e15 within 100 steps and can overflow prodigyopt's "
                               "float step weight."),
})



# ---- Lookahead (issue #15) wrapping Adam, against pytorch-optimizer's Lookahead over torch's fused Adam ----


def _lookahead_reference(tparams: list) -> Any:
    import pytorch_optimizer  # ImportError: the bench reports the column as not installed

    return pytorch_optimizer.Lookahead(torch.optim.Adam(tparams, lr=1e-3, fused=True), k=5, alpha=0.5)


ALGOS.update({
    "lookahead": Algo("Lookahead(Adam)", lambda ps: fo.Lookahead(fo.Adam(ps, lr=1e-3), k=5, alpha=0.5), None, {},
                      {}, ("exp_avg", "exp_avg_sq"), False, _lookahead_reference, _PO,
                      state_owner=lambda opt: opt.optimizer,
                      probe_note="Lookahead(Adam, k=5): the probe moves Adam's traffic (7 values per element, which "
                                 "GB/s counts); the slow-weight update every 5th step (read p and the slow weights, "
                                 "write both: 0.8 more values per element and step on average) is beyond it, so "
                                 "fastopt's best is about 7 / 7.8 = 90 % of this probe. The reference is "
                                 "pytorch-optimizer's Lookahead over torch.optim.Adam(fused=True), torch's fastest "
                                 "Adam on CPU."),
})

# Single-tensor sizes, then the two models.
SIZE_CASES = {"1e4": 10_000, "1e5": 100_000, "1e6": 1_000_000, "1e7": 10_000_000, "2e7": 20_000_000,
              "5e7": 50_000_000}
CASES = list(SIZE_CASES) + ["model200", "mlp"]
CASE_LABELS = {"model200": "200-tensor model", "mlp": "MLP 1-20-1"}

IMPLS = ["fastopt", "probe", "numpy", "torch loop", "torch foreach", "torch fused", "reference"]
_TORCH_VARIANTS = {"torch loop": dict(foreach=False), "torch foreach": dict(foreach=True),
                   "torch fused": dict(fused=True)}


def case_shapes(case: str) -> list[tuple[int, ...]]:
    """Tensor shapes of a case: one tensor, 200 tensors of log-uniform size in [100, 1e5] (seed 0), or the MLP."""
    if case in SIZE_CASES:
        return [(SIZE_CASES[case],)]
    if case == "model200":
        rng = np.random.default_rng(0)
        sizes = np.exp(rng.uniform(math.log(100), math.log(100_000), 200)).astype(np.int64)
        return [(int(s),) for s in sizes]
    if case == "mlp":  # the tutorial's 1-20-1 network: W1, b1, W2, b2
        return [(20, 1), (20,), (1, 20), (1,)]
    raise ValueError(f"unknown case {case!r}; expected one of {CASES}")


@dataclass
class Measurement:
    algo: str
    dtype: str
    case: str
    threads: int
    elements: int
    bytes_per_step: int
    times: dict[str, list[float]] = field(default_factory=dict)  # per-step seconds, one value per round
    skipped: dict[str, str] = field(default_factory=dict)       # implementation -> reason

    def median(self, impl: str) -> float | None:
        t = self.times.get(impl)
        return float(np.median(t)) if t else None


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    a = rng.random(int(np.prod(shape)), dtype=dtype).reshape(shape)
    a -= 0.5
    return a


def build(algo: Algo, dtype: np.dtype, shapes: list[tuple[int, ...]], want: list[str],
           skipped: dict[str, str]) -> dict[str, Callable[[], None]]:
    """One step function per wanted implementation, all over the same parameter, gradient and state arrays
    (reasons for the ones that cannot run go to skipped)."""
    rng = np.random.default_rng(1)
    params = [_random(rng, s, dtype) for s in shapes]
    grads = [_random(rng, s, dtype) for s in shapes]
    fparams = [fo.Parameter(p) for p in params]
    for p, g in zip(fparams, grads):
        p.grad = g
    opt = algo.make_fastopt(fparams)
    opt.step()  # creates the state every implementation shares
    owner = algo.state_owner(opt) if algo.state_owner is not None else opt
    state = [[owner.state[p][k] for k in algo.keys] for p in fparams]
    steps: dict[str, Callable[[], None]] = {}
    if "fastopt" in want:
        steps["fastopt"] = opt.step
    if "probe" in want:
        steps["probe"] = _probe(algo, params, grads, state)
    if "numpy" in want:
        if _algo_key(algo) in NUMPY_OPTIMIZERS:
            steps["numpy"] = NUMPY_OPTIMIZERS[_algo_key(algo)](params, grads, state, **algo.numpy_kwargs).step
        else:
            skipped["numpy"] = "no hand-written NumPy version"
    torch_wanted = [v for v in _TORCH_VARIANTS if v in want]
    if torch_wanted and (torch is None or algo.torch_name is None):
        for v in torch_wanted:
            skipped[v] = "torch not installed" if torch is None else "torch has no such optimizer"
    elif torch_wanted:
        assert algo.torch_name is not None  # the branch above took the None case
        tparams = [torch.from_numpy(p) for p in params]
        for tp, g in zip(tparams, grads):
            tp.grad = torch.from_numpy(g)
        cls = getattr(torch.optim, algo.torch_name)
        for v in torch_wanted:
            try:
                topt = cls(tparams, **algo.torch_kwargs, **_TORCH_VARIANTS[v])
                topt.step()
            except (RuntimeError, TypeError, ValueError) as e:
                skipped[v] = f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"
                continue
            for tp, st in zip(tparams, state):
                for k, arr in zip(algo.keys, st):
                    topt.state[tp][k] = torch.from_numpy(arr)
            steps[v] = topt.step
    if "reference" in want:
        if algo.make_reference is None:
            skipped["reference"] = "no reference implementation beside torch.optim"
        elif torch is None:
            skipped["reference"] = "torch not installed"
        else:
            rparams = [torch.from_numpy(p) for p in params]  # the same arrays; its state is its own
            for rp, g in zip(rparams, grads):
                rp.grad = torch.from_numpy(g)
            try:
                ref = algo.make_reference(rparams)
                ref.step()
            except ImportError as e:
                skipped["reference"] = f"{algo.reference_label or 'reference'} not installed ({e})"
            else:
                steps["reference"] = ref.step
    return steps


def _probe(algo: Algo, params: list[np.ndarray], grads: list[np.ndarray],
           state: list[list[np.ndarray]]) -> Callable[[], None]:
    """The same-traffic probe over the benchmark's arrays: one pass (param, grad, then every state buffer), or the
    algorithm's ``probe_passes``, each over every tensor before the next. In a pass the first array is written,
    the second read, then come the written ones and last the read-only ones, marked with a leading ``<`` (up to
    two: the probe's n_in); or the algorithm's own ``probe_kernel`` (a pass schedule the generic probe cannot
    express: LAMB's per-tensor one). Scale 0: every array keeps its values."""
    if algo.probe_kernel is not None:
        kernel, ns = K.KERNELS[algo.probe_kernel], len(algo.keys)
        table = K.TensorTable([[p, g, *st] for p, g, st in zip(params, grads, state)], ("param", "grad") + algo.keys,
                              (False, True) + (False,) * ns, 0)
        hyper = kernel.pack({"scale": 0.0})
        return lambda: kernel(table, hyper)
    passes = algo.probe_passes or (("param", "grad") + algo.keys,)

    def column(name: str) -> list[np.ndarray]:
        return params if name == "param" else grads if name == "grad" else [st[algo.keys.index(name)] for st in state]

    tables = []
    for names in passes:
        cols = [column(n.lstrip("<")) for n in names]
        ni = sum(n.startswith("<") for n in names)
        ns = len(names) - 2 - ni
        if any(n.startswith("<") for n in names[:2 + ns]):
            raise ValueError(f"probe pass {names}: the read-only arrays ('<name') come last")
        tables.append((K.TensorTable([list(row) for row in zip(*cols)], ("param", "grad") +
                                     tuple(f"state{k}" for k in range(ns)) + tuple(f"in{k}" for k in range(ni)),
                                     (False, True) + (False,) * ns + (True,) * ni, 0), ns, ni))

    def run() -> None:
        for table, ns, ni in tables:
            K.probe(table, ns, 0.0, ni)
    return run


def _algo_key(algo: Algo) -> str:
    return next(k for k, a in ALGOS.items() if a is algo)


def _estimate(fn: Callable[[], None]) -> float:
    """Seconds per step: median of a few single steps (after one warm-up)."""
    fn()
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return max(float(np.median(ts)), 1e-7)


def interleave(steps: dict[str, Callable[[], None]], rounds: int, batch_seconds: float, pause: float,
               seed: int = 12345, max_batch: int = 100_000) -> dict[str, list[float]]:
    """Per-step seconds of every function, one value per round: each round runs every function once, in a
    shuffled order (fixed seed), as a batch of calls sized to last about batch_seconds, each batch after an idle
    pause (libgomp's idle workers, torch's included, spin for milliseconds after a parallel region and would
    otherwise slow whichever batch runs next)."""
    order = list(steps)
    batch = {name: max(1, min(max_batch, round(batch_seconds / _estimate(fn)))) for name, fn in steps.items()}
    times: dict[str, list[float]] = {name: [] for name in order}
    shuffle = np.random.default_rng(seed)
    for _ in range(rounds):
        for j in shuffle.permutation(len(order)):
            name = order[j]
            fn, k = steps[name], batch[name]
            time.sleep(pause)
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            times[name].append((time.perf_counter() - t0) / k)
    return times


def set_threads(threads: int) -> None:
    """The same thread count for fastopt and (when installed) torch."""
    fo.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)


def run_case(algo_name: str, dtype: str, case: str, threads: int, rounds: int, batch_seconds: float,
             impls: list[str] | None = None, pause: float | None = None) -> Measurement:
    """Measure every implementation on one case (see interleave); returns the per-round per-step times.

    ``pause`` defaults to 2 ms, 10 ms with several threads."""
    if pause is None:
        pause = 0.010 if threads > 1 else 0.002
    algo = ALGOS[algo_name]
    dt = np.dtype(dtype)
    shapes = case_shapes(case)
    elements = int(sum(int(np.prod(s)) for s in shapes))
    m = Measurement(algo_name, dt.name, case, threads, elements, elements * algo.bytes_per_element(dt.itemsize))
    set_threads(threads)
    steps = build(algo, dt, shapes, impls or IMPLS, m.skipped)
    m.times.update(interleave(steps, rounds, batch_seconds, pause))
    return m
