"""Golden trajectories: 100-step runs of every optimizer configuration, recorded as sha256 checkpoints.

Every registry row of tests/cases.py, plus Muon, SparseAdam, the clipping functions and the SWA/EMA averages,
runs 100 steps on deterministic inputs, in float32 and float64, with 1 and 2 threads, on two parameter groups
(the second with half the learning rate) holding a scalar-like tensor, a 2-D tensor, a strided view with a
strided gradient and one tensor large enough (> FO_PARALLEL_MIN elements per call) that the kernel really runs
on two threads; every registry row runs again on edge shapes (empty, 0-d, 1 x 1, strided) and Adafactor's rows
on 3-D and 4-D tensors. After steps 1, 2, 3, 5, 10, 20, 50 and 100 the sha256 of every parameter's bytes and, separately,
of every state value is recorded. tests/test_golden.py re-runs each trajectory and requires the same hashes: a
refactor that changes one bit of one result fails and names the row, dtype, thread count and first step.

Regenerate only when a change of results is intended (and say so in the commit):

    /work/venv/bin/python tests/golden/make_golden.py        # writes tests/golden/golden.json
    /work/venv/bin/python tests/golden/make_golden.py --only 'NAdam' --only 'ASGD('  # re-record matching rows only

``--only SUBSTRING`` (repeatable) re-records the rows whose name contains one of the substrings, plus every row not
yet recorded, and keeps every other row exactly as the fixture has it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from typing import Callable, Iterator

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
for _d in (os.path.dirname(HERE), os.path.dirname(os.path.dirname(HERE))):  # tests/ and the checkout (script use)
    if _d not in sys.path:
        sys.path.insert(0, _d)

import fastopt as fo  # noqa: E402
from cases import AVERAGING_RULES, CASES, MUON_CASES, PRODIGY_CASES, SPARSE_ADAM_CASES, case_id  # noqa: E402
from helpers import num_threads  # noqa: E402

GOLDEN = os.path.join(HERE, "golden.json")
STEPS = 100
CHECKPOINTS = (1, 2, 3, 5, 10, 20, 50, 100)
DTYPES = ("float32", "float64")
THREADS = (1, 2)
SHIFT = 7  # the gradient of step t is the window of a fixed noise pool starting at SHIFT * t

# (shape, strided) per group; the 520 x 520 tensor alone exceeds FO_PARALLEL_MIN (262144) so that the first
# group's call is split over two threads; the strided entries are every other element of a twice-as-long base.
GROUPS = [[((1,), False), ((5, 7), False), ((33,), True), ((520, 520), False)],
          [((3,), False), ((4, 6), True), ((257,), False)]]
# Edge shapes for every registry row (empty, 0-d, 1 x 1, empty 3-D, strided), and Adafactor's factored path over
# more than two axes.
EDGE_GROUPS = [[((0,), False), ((), False), ((1, 1), False)], [((2, 0, 3), False), ((5,), True)]]
FACTORED_GROUPS = [[((2, 3, 5), False), ((3, 1, 4), True)], [((4, 2, 2, 3), False), ((6, 1), False)]]
MUON_GROUPS = [[((1, 1), False), ((7, 3), False), ((4, 9), True)], [((65, 65), False), ((3, 8), False)]]

CLIP_CASES = [("clip_grad_norm_", dict(max_norm=1.0)), ("clip_grad_norm_", dict(max_norm=5.0, norm_type=1.0)),
              ("clip_grad_norm_", dict(max_norm=0.5, norm_type=math.inf)),
              ("clip_grad_norm_", dict(max_norm=2.0, norm_type=3.0)),
              ("clip_grad_norm_", dict(max_norm=1e9)),  # never clips: the coefficient clamps to 1
              ("clip_grad_value_", dict(clip_value=0.5)), ("get_total_norm", dict()),
              ("get_total_norm", dict(norm_type=0.5)), ("clip_grads_with_norm_", dict(max_norm=3.0))]


def blas_platform() -> str:
    """What NumPy's matmul results depend on (Muon's Newton-Schulz runs through it): NumPy, its BLAS, the CPU."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # pragma: no cover - NumPy builds without the dict form
        blas = "unknown BLAS"
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:  # pragma: no cover - not Linux
        pass
    return f"numpy {np.__version__}, {blas}, {cpu}"


def uses_blas(name: str) -> bool:
    """Rows whose results go through NumPy's matmul, which is exact only for the BLAS and CPU it ran on."""
    return name.startswith("Muon(")


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


class Inputs:
    """Parameters and a gradient source for one trajectory, all from a generator seeded by the row's key."""

    def __init__(self, key: str, dtype: str, groups=GROUPS) -> None:
        rng = np.random.default_rng(_seed(key + "|" + dtype))
        self.dtype = np.dtype(dtype)
        self.groups: list[list[fo.Parameter]] = []
        self._pools: list[tuple[np.ndarray, tuple, bool]] = []
        for g in groups:
            params = []
            for shape, strided in g:
                n = int(np.prod(shape))
                if strided:
                    base = rng.standard_normal((*shape[:-1], 2 * shape[-1])).astype(self.dtype)
                    data = base[..., ::2]
                else:
                    data = rng.standard_normal(shape).astype(self.dtype)
                params.append(fo.Parameter(data))
                pool = rng.standard_normal((2 if strided else 1) * n + SHIFT * (STEPS + 1)).astype(self.dtype)
                pool.setflags(write=False)
                self._pools.append((pool, shape, strided))
            self.groups.append(params)

    @property
    def params(self) -> list[fo.Parameter]:
        return [p for g in self.groups for p in g]

    def grads(self, t: int) -> list[np.ndarray]:
        """Step t's gradients: read-only windows of each tensor's noise pool (strided for strided params)."""
        out = []
        for pool, shape, strided in self._pools:
            n = int(np.prod(shape))
            if strided:
                out.append(pool[SHIFT * t: SHIFT * t + 2 * n: 2].reshape(shape))
            else:
                out.append(pool[SHIFT * t: SHIFT * t + n].reshape(shape))
        return out


def _scalar(v) -> bytes:
    if isinstance(v, (bool, np.bool_)):
        return b"bool:%d" % bool(v)
    if isinstance(v, (int, np.integer)):
        return b"int:%d" % int(v)
    if isinstance(v, (float, np.floating)):
        return b"float:" + float(v).hex().encode()
    return b"repr:" + repr(v).encode()


def _array(h, a: np.ndarray) -> None:
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())


def hash_arrays(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, np.ndarray):
            _array(h, a)
        else:
            h.update(_scalar(a))
    return h.hexdigest()


def hash_state(opt: fo.Optimizer) -> str:
    h = hashlib.sha256()
    for g in opt.param_groups:
        for p in g["params"]:
            st = opt.state.get(p, {})
            for k in sorted(st):
                h.update(k.encode())
                v = st[k]
                if isinstance(v, np.ndarray):
                    _array(h, v)
                else:
                    h.update(_scalar(v))
    return h.hexdigest()


def _optimizer_run(build: Callable[[list[dict]], fo.Optimizer], inp: Inputs, set_grads=None,
                   second_lr: float = 0.5) -> list:
    lr_groups = [{"params": g} for g in inp.groups]
    opt = build(lr_groups)
    opt.param_groups[1]["lr"] = opt.param_groups[0]["lr"] * second_lr
    out = []
    for t in range(1, STEPS + 1):
        grads = inp.grads(t)
        if set_grads is None:
            for p, g in zip(inp.params, grads):
                p.grad = g
        else:
            set_grads(inp, grads, t)
        opt.step()
        if t in CHECKPOINTS:
            out.append([t, hash_arrays([p.data for p in inp.params]), hash_state(opt)])
    return out


def _registry(name: str, kw: dict, dtype: str, key: str, groups=GROUPS) -> list:
    return _optimizer_run(lambda gs: getattr(fo, name)(gs, **kw), Inputs(key, dtype, groups))


def _muon(kw: dict, dtype: str, key: str) -> list:
    return _optimizer_run(lambda groups: fo.Muon(groups, **kw), Inputs(key, dtype, MUON_GROUPS))


def _sparse(kw: dict, dtype: str, key: str) -> list:
    rng = np.random.default_rng(_seed(key + "|rows|" + dtype))

    def set_grads(inp: Inputs, grads, t):
        for p, g in zip(inp.params, grads):
            k = int(rng.integers(0, p.shape[0] + 2))  # duplicates and empty gradients included
            rows = rng.integers(0, p.shape[0], size=k)
            vals = np.resize(g, (k,) + p.shape[1:]).astype(p.dtype)
            p.grad = fo.SparseGrad(rows, vals)

    return _optimizer_run(lambda groups: fo.SparseAdam(groups, **kw), Inputs(key, dtype), set_grads)


def _writeable_copy(g: np.ndarray) -> np.ndarray:
    """A writeable copy of g with the same layout kind: strided windows stay strided."""
    if g.flags.c_contiguous:
        return g.copy()
    out = np.zeros(g.shape[:-1] + (2 * g.shape[-1],), g.dtype)[..., ::2]
    out[...] = g
    return out


def _clip(fname: str, kw: dict, dtype: str, key: str) -> list:
    inp = Inputs(key, dtype)
    params = inp.params
    fn = getattr(fo, fname)
    out, acc = [], hashlib.sha256()
    for t in range(1, STEPS + 1):
        for p, g in zip(params, inp.grads(t)):
            p.grad = _writeable_copy(g)  # clipping writes the gradients
        if fname == "get_total_norm":
            res = fn([p.grad for p in params], **kw)
        elif fname == "clip_grads_with_norm_":
            res = fn(params, kw["max_norm"], fo.get_total_norm([p.grad for p in params]))
        else:
            res = fn(params, **kw)
        acc.update(hash_arrays([p.grad for p in params] + [np.asarray(res) if res is not None else "None"]).encode())
        if t in CHECKPOINTS:
            out.append([t, acc.copy().hexdigest(), ""])
    return out


def _swa(rule: str, dtype: str, key: str) -> list:
    inp = Inputs(key, dtype)
    params = inp.params
    avg = fo.swa_utils.AveragedParameters(params, **AVERAGING_RULES[rule]())
    out = []
    for t in range(1, STEPS + 1):
        for p, g in zip(params, inp.grads(t)):
            p.data[...] = g
        avg.update_parameters(params)
        if t in CHECKPOINTS:
            out.append([t, hash_arrays([a.data for a in avg.params]), hash_arrays([avg.n_averaged])])
    return out


def trajectories() -> Iterator[tuple[str, Callable[[str, str], list]]]:
    """(row name, run(dtype, key)) for every trajectory the fixture holds."""
    for case in CASES:
        yield case_id(case), (lambda dtype, key, case=case: _registry(case[0], case[1], dtype, key))
    for case in CASES:
        yield case_id(case) + " [edge shapes]", (
            lambda dtype, key, case=case: _registry(case[0], case[1], dtype, key, EDGE_GROUPS))
    for case in (c for c in CASES if c[0] == "Adafactor"):
        yield case_id(case) + " [3-D and 4-D]", (
            lambda dtype, key, case=case: _registry(case[0], case[1], dtype, key, FACTORED_GROUPS))
    for kw in MUON_CASES:
        yield case_id(("Muon", kw)), (lambda dtype, key, kw=kw: _muon(kw, dtype, key))
    for kw in SPARSE_ADAM_CASES:
        yield case_id(("SparseAdam", kw)), (lambda dtype, key, kw=kw: _sparse(kw, dtype, key))
    for fname, kw in CLIP_CASES:
        yield case_id((fname, kw)), (lambda dtype, key, f=fname, kw=kw: _clip(f, kw, dtype, key))
    for rule in AVERAGING_RULES:
        yield f"AveragedParameters({rule})", (lambda dtype, key, rule=rule: _swa(rule, dtype, key))
    for kw in PRODIGY_CASES:  # every group shares Prodigy's lr (or has 0): the second group keeps the first's
        yield case_id(("Prodigy", kw)), (lambda dtype, key, kw=kw: _optimizer_run(
            lambda groups: fo.Prodigy(groups, **kw), Inputs(key, dtype), second_lr=1.0))


def run(name: str, fn: Callable[[str, str], list], dtype: str, threads: int) -> list:
    with num_threads(threads):
        return fn(dtype, name)


def record(only: list[str] | None = None, old: dict | None = None) -> dict:
    """Every trajectory's hashes; with ``only``, rows whose name contains none of its substrings are copied from
    ``old`` (the fixture) when they are there, so a deliberate change re-records just the rows it changes."""
    data: dict = {}
    for name, fn in trajectories():
        if name in data:
            raise RuntimeError(f"two trajectories named {name}")
        if only is not None and old is not None and name in old and not any(s in name for s in only):
            data[name] = old[name]
            continue
        data[name] = {dtype: {str(th): run(name, fn, dtype, th) for th in THREADS} for dtype in DTYPES}
    return data


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser(description="record the golden trajectories into tests/golden/golden.json")
    ap.add_argument("--only", action="append", metavar="SUBSTRING",
                    help="re-record only rows whose name contains SUBSTRING (repeatable); new rows are recorded too")
    args = ap.parse_args()
    old = None
    if args.only:
        with open(GOLDEN) as f:
            old = json.load(f)["trajectories"]
    data = record(args.only, old)
    with open(GOLDEN, "w") as f:
        json.dump({"steps": STEPS, "checkpoints": CHECKPOINTS, "blas_platform": blas_platform(),
                   "trajectories": data}, f, indent=0, sort_keys=True)
        f.write("\n")
    same = sum(d["1"] == d["2"] for r in data.values() for d in r.values())
    print(f"wrote {GOLDEN}: {len(data)} rows x {len(DTYPES)} dtypes x {len(THREADS)} thread counts; "
          f"{same}/{len(data) * len(DTYPES)} identical for 1 and 2 threads")


if __name__ == "__main__":
    main()
