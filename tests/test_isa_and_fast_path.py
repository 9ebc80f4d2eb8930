"""Two promises of the C layer that no result comparison shows by itself, each checked against the NumPy reference:

- every ISA variant (baseline x86-64, AVX2 + FMA, AVX-512), forced with the environment variable FASTOPT_ISA in a
  subprocess, gives the same bits, for every registry row, clipping and Adafactor's factored path;
- the repeated-step fast path (the cached plans) is really taken on repeated steps (``_fast_steps`` counts them),
  and left for the full path when a gradient changes shape, layout or identity (None, another class) or a
  parameter's array is replaced.
"""
from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, GROUP_SCHEDULED, case_id, make
from helpers import assert_close, rejected, run_with_isa, runs_on_each_isa
from reference import REFERENCES


# Run in a subprocess with FASTOPT_ISA set: every registry row in both dtypes for 4 steps on sizes that reach the
# alignment peel, the vector loop and its tail (one parameter starts off a 64-byte boundary), plus clip_grad_norm_
# and Adafactor on a 2-D tensor; save every result to an .npz and print the ISA the kernels used.
CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import fastopt as fo
    from fastopt import _kernels as K
    from cases import CASES, make
    out = {}
    for r, (name, kw) in enumerate(CASES):
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(r)
            base = rng.standard_normal(4100).astype(dtype)
            arrays = [base[1:], rng.standard_normal(7).astype(dtype), rng.standard_normal((3, 65)).astype(dtype)]
            params = [fo.Parameter(a) for a in arrays]
            opt = make(name, params, **kw)
            for k in range(4):
                for j, p in enumerate(params):
                    p.grad = rng.standard_normal(p.data.shape).astype(dtype)
                    out[f"g{r}_{dtype.__name__}_{k}_{j}"] = p.grad
                opt.step()
            for j, p in enumerate(params):
                out[f"p{r}_{dtype.__name__}_{j}"] = p.data
                for key, v in opt.state[p].items():
                    out[f"s{r}_{dtype.__name__}_{j}_{key}"] = np.asarray(v)
    rng = np.random.default_rng(99)
    for dtype in (np.float32, np.float64):
        gs = [rng.standard_normal(n).astype(dtype) for n in (4099, 17, 1)]
        ps = [fo.Parameter(np.zeros_like(g)) for g in gs]
        for p, g in zip(ps, gs):
            p.grad = g.copy()
        out[f"clipnorm_{dtype.__name__}"] = np.asarray(fo.clip_grad_norm_(ps, max_norm=1.0))
        for j, p in enumerate(ps):
            out[f"clip_{dtype.__name__}_{j}"] = p.grad
    np.savez(sys.argv[1], **out)
""")


def _run_child(isa: str | None, path) -> str:
    """The instruction set the child's kernels used with FASTOPT_ISA=isa (unset for None)."""
    return run_with_isa(CHILD, isa, path, cwd=os.path.dirname(path))[-1]


def test_every_isa_variant_gives_identical_bits_and_the_reference(tmp_path):
    best = _run_child(None, tmp_path / "default.npz")
    runs = {isa: np.load(tmp_path / f"{isa}.npz")
            for isa in runs_on_each_isa(CHILD, tmp_path, lambda isa: [tmp_path / f"{isa}.npz"])}
    assert best in runs, best  # the default is the best variant the CPU has
    first = runs["baseline"]
    for isa, got in runs.items():
        assert sorted(got.files) == sorted(first.files)
        for key in first.files:
            assert got[key].dtype == first[key].dtype and got[key].tobytes() == first[key].tobytes(), (isa, key)
    # the bits they share are the reference's (within REF_TOL), checked on the baseline run's own gradients
    for r, (name, kw) in enumerate(CASES):
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(r)
            base = rng.standard_normal(4100).astype(dtype)
            ref = [base[1:].copy(), rng.standard_normal(7).astype(dtype), rng.standard_normal((3, 65)).astype(dtype)]
            states: list[dict] = [{} for _ in ref]
            for k in range(4):
                for j, (p, st) in enumerate(zip(ref, states)):
                    REFERENCES[name](p, first[f"g{r}_{dtype.__name__}_{k}_{j}"].copy(), st, **kw)
            for j, p in enumerate(ref):
                assert_close(first[f"p{r}_{dtype.__name__}_{j}"], p, dtype, f"{case_id((name, kw))} param {j}")
    for dtype in (np.float32, np.float64):
        gs = [first[f"clip_{dtype.__name__}_{j}"] for j in range(3)]
        norm = float(first[f"clipnorm_{dtype.__name__}"])
        rng = np.random.default_rng(99)
        if dtype is np.float64:  # the float32 draw came first
            [rng.standard_normal(n) for n in (4099, 17, 1)]
        raw = [rng.standard_normal(n).astype(dtype) for n in (4099, 17, 1)]
        expected = float(np.sqrt(sum(np.sum(np.square(g.astype(np.float64))) for g in raw)))
        assert abs(norm - expected) <= 1e-6 * expected
        for g, r0 in zip(gs, raw):
            assert_close(g, r0 * dtype(min(1.0, 1.0 / (expected + 1e-6))), dtype, "clipped gradient")


def test_an_unknown_isa_name_keeps_the_cpus_best(tmp_path):
    assert _run_child("sse9", tmp_path / "x.npz") == _run_child(None, tmp_path / "y.npz")


# ---- the repeated-step fast path -------------------------------------------------------------------------------

def _fast_rows():
    """Registry rows whose optimizer repeats steps through the cached plans (NAdam and ASGD advance scalar state on
    the full path every step, see FusedOptimizer._fast_path_ok)."""
    rows = []
    for name, kw in CASES:
        opt = make(name, [fo.Parameter(np.zeros(2))], **kw)
        if isinstance(opt, fo._fused.FusedOptimizer):
            rows.append(((name, kw), opt._fast_path_ok()))
    return rows


class _Run:
    """An optimizer over 2-D and 1-D params in one or two groups, stepped with the reference alongside."""

    def __init__(self, case, dtype, rng, two_groups: bool) -> None:
        self.name, self.kw = case
        self.rng, self.dtype = rng, dtype
        self.params = [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in [(4, 5), (9,), (3, 3)]]
        self.ref = [p.data.copy() for p in self.params]
        self.states: list[dict] = [{} for _ in self.params]
        groups = ([{"params": self.params[:2]}, {"params": self.params[2:]}] if two_groups
                  else [{"params": self.params}])
        self.opt = make(self.name, groups, **self.kw)
        self.followed = True  # the per-parameter reference still follows the optimizer

    def grads(self):
        return [self.rng.standard_normal(p.data.shape).astype(self.dtype) for p in self.params]

    def step(self, grads=None) -> int:
        """One step (fresh gradients unless given; None entries skip a param); returns how many of the fast path's
        steps it added (0 or 1)."""
        grads = self.grads() if grads is None else grads
        for p, g in zip(self.params, grads):
            p.grad = g
        before = self.opt._fast_steps
        self.opt.step()
        for r, g, st in zip(self.ref, grads, self.states):
            if g is not None:
                REFERENCES[self.name](r, np.array(g), st, **self.kw)
        if self.name in GROUP_SCHEDULED and any(g is None for g in grads):
            self.followed = False  # the group's schedule advanced for the skipped param too: no per-param reference
        for j, (p, r) in enumerate(zip(self.params, self.ref)):
            if not self.followed:
                break
            assert_close(p.data, r, self.dtype, f"{case_id((self.name, self.kw))} param {j}")
        return self.opt._fast_steps - before


@pytest.mark.parametrize("row", _fast_rows(), ids=lambda row: case_id(row[0]))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("two_groups", [False, True], ids=["1group", "2groups"])
def test_fast_path_is_taken_on_repeated_steps_and_left_when_a_grad_changes(row, dtype, two_groups, rng):
    case, repeats = row
    run = _Run(case, dtype, rng, two_groups)
    assert run.step() == 0  # the first step validates everything and creates the state
    taken = [run.step() for _ in range(5)]  # new gradient arrays of the same shape, dtype and layout
    if not repeats:  # NAdam / ASGD: every step on the full path
        assert taken == [0] * 5
        return
    assert taken == [1] * 5
    same = run.grads()  # the very same gradient arrays again (written in place by the user's backward)
    assert run.step(same) == 1
    assert run.step(same) == 1
    # a gradient of another shape: the fast path declines, the full path refuses it, nothing changes
    bad = run.grads()
    bad[0] = bad[0].reshape(5, 4)
    for p, g in zip(run.params, bad):
        p.grad = g
    before = run.opt._fast_steps
    with rejected(run.opt, ValueError, r"param_groups\[0\]\['params'\]\[0\]"):
        run.opt.step()
    assert run.opt._fast_steps == before
    assert run.step() == 1  # the plans survived the rejected step
    # another layout (a Fortran-ordered and a strided gradient), another class (a subclass of ndarray), no gradient,
    # a replaced parameter array: each goes through the full path, which updates correctly and re-arms the plans
    g = run.grads()
    g[0] = np.asfortranarray(g[0])
    assert run.step(g) == 0
    assert run.step() == 1
    g = run.grads()
    g[2] = np.repeat(g[2], 2, axis=1)[:, ::2]
    assert not g[2].flags.c_contiguous
    assert run.step(g) == 0
    g = run.grads()
    g[1] = g[1].view(np.matrix) if g[1].ndim == 2 else g[1].view(_Grad)
    assert run.step(g) == 0
    g = run.grads()
    g[1] = None
    assert run.step(g) == 0
    assert run.step() == 0  # the param that was skipped is back: one full step rebuilds the plans
    assert run.step() == 1
    run.params[0].data = run.params[0].data.copy()
    run.ref[0] = run.params[0].data.copy()
    assert run.step() == 0
    assert run.step() == 1


class _Grad(np.ndarray):
    """An ndarray subclass: accepted as a gradient, but not the plain ndarray the fast path binds."""
