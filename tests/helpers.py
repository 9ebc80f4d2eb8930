"""What the tests share: one relative error, one tolerance check, one torch pair, the state_dict converters between
torch and fastopt, a thread-count context manager, the bit-exact "nothing changed" snapshot, the child process run
with a forced instruction set (``FASTOPT_ISA``), and the optimizers and (lr, momentum) recorder the scheduler tests
use.

torch is imported lazily (only by the torch helpers), so files that never touch torch run without it.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import subprocess
import sys
from typing import Any, Iterator

import numpy as np
import pytest

import fastopt as fo

# Kernel against the NumPy reference (a few ulps after a few steps: fma vs separate multiply-add).
REF_TOL = {np.float32: 2e-6, np.float64: 1e-13}
# fastopt against torch after 100 steps, max|a - b| / max|b| per tensor (what the kernels reach is about
# 1e-6 / 1e-15; torch's float32 sqrt is not correctly rounded, fastopt's is).
TORCH_TOL = {np.float32: 5e-6, np.float64: 1e-14}


def _tol(table: dict, dtype) -> float:
    return table[np.dtype(dtype).type]


def rel_err(a, b) -> float:
    """max|a - b| / max|b| (the absolute difference when b is all zeros; 0 for empty arrays), in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    if a.size == 0:
        return 0.0
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    return diff / scale if scale > 0 else diff


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype, what: str = "", tol: dict = REF_TOL) -> None:
    """Elementwise within tol[dtype], relative and absolute (scaled by max(1, max|expected|))."""
    t = _tol(tol, dtype)
    scale = max(1.0, float(np.max(np.abs(expected)))) if np.size(expected) else 1.0
    np.testing.assert_allclose(actual, expected, rtol=t, atol=t * scale, err_msg=what)


def make_array(rng: np.random.Generator, n: int, dtype, strided: bool = False) -> np.ndarray:
    """A float array of n elements; strided=True gives a non-contiguous view (every other element)."""
    if strided:
        return rng.standard_normal(2 * n).astype(dtype)[::2]
    return rng.standard_normal(n).astype(dtype)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with fastopt.set_num_threads(n), restoring the previous count afterwards."""
    old = fo.get_num_threads()
    fo.set_num_threads(n)
    try:
        yield
    finally:
        fo.set_num_threads(old)


def requires_openmp() -> None:
    if not fo.have_openmp():
        pytest.skip("built without OpenMP")


def snapshot(opt: fo.Optimizer) -> list:
    """Every parameter's bytes and every state value, exactly, in a comparable form."""
    out = []
    for g in opt.param_groups:
        out.append(tuple(sorted((k, repr(v)) for k, v in g.items() if k not in ("params", "param_names"))))
        for p in g["params"]:
            out.append((p.data.dtype.str, p.data.shape, p.data.tobytes()))
            st = opt.state.get(p, {})
            for k in sorted(st):
                v = st[k]
                out.append((k, (v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else repr(v)))
    return out


@contextlib.contextmanager
def rejected(opt: fo.Optimizer, exc, match: str) -> Iterator[None]:
    """The block must raise exc (message matching match) and leave opt's parameters and state bit-identical."""
    before = snapshot(opt)
    with pytest.raises(exc, match=match):
        yield
    assert snapshot(opt) == before, "a rejected call changed parameters, options or state"


def assert_arrays_equal(xs, ys) -> None:
    xs, ys = list(xs), list(ys)
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys):
        np.testing.assert_array_equal(x, y)


# ---- torch ------------------------------------------------------------------------------------------------------

ISAS = ("baseline", "avx2", "avx512")
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
# The directory holding the fastopt under test: the checkout with its in-place build, or site-packages.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fo.__file__)))


def run_with_isa(script: str, isa: str | None, *args: Any, cwd: Any, timeout: float = 600) -> list[str]:
    """Run ``script`` (``python -c``, with ``args`` as ``sys.argv[1:]``) with ``FASTOPT_ISA=isa`` (unset for None)
    and return what it printed, split into tokens, ending with the instruction set its kernels used.

    The child imports the fastopt this test run imports (checked: a child that found another copy fails), then
    tests/ (for cases.py); it runs in ``cwd`` — a temporary directory, outside the checkout, so an unbuilt source
    tree there cannot shadow an installed package."""
    env = dict(os.environ)
    env.pop("FASTOPT_ISA", None)
    if isa is not None:
        env["FASTOPT_ISA"] = isa
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT, TESTS_DIR, env.get("PYTHONPATH", "")])
    wrapped = ("import fastopt as _fo_under_test\nprint(_fo_under_test.__file__)\n" + script
               + "\nfrom fastopt import _kernels as _K_used\nprint(_K_used.isa())\n")
    res = subprocess.run([sys.executable, "-c", wrapped, *map(str, args)], env=env, cwd=cwd, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr
    out = res.stdout.split()
    assert os.path.abspath(out[0]) == os.path.abspath(fo.__file__), out[0]
    return out[1:]


def runs_on_each_isa(script: str, tmp_path: Any, args: Any = lambda isa: ()) -> dict[str, list[str]]:
    """``run_with_isa`` for each of ISAS; returns {isa: printed tokens without the ISA} for the runs that got the
    variant they asked for (a variant the CPU lacks falls back to a lower one, and comparing it would prove
    nothing). The baseline must always run; the test is skipped when the CPU has no second variant to compare."""
    runs = {}
    for isa in ISAS:
        out = run_with_isa(script, isa, *args(isa), cwd=tmp_path)
        if out[-1] == isa:
            runs[isa] = out[:-1]
    assert "baseline" in runs, "FASTOPT_ISA=baseline must always select the baseline kernels"
    if len(runs) < 2:
        pytest.skip("this CPU has only the baseline variant")
    return runs


def step_with_reference(opt: fo.Optimizer, name: str, kw: dict, params: list, draw: Any, steps: int) -> tuple:
    """``steps`` steps of ``opt`` and of the NumPy reference ``reference.REFERENCES[name]`` (with options ``kw``) on
    the same gradients (``draw()`` gives one list per step, one array per parameter); returns the reference's
    parameter arrays and per-parameter state dicts, for the caller to compare."""
    from reference import REFERENCES
    ref = [p.data.copy() for p in params]
    states: list[dict] = [{} for _ in params]
    for _ in range(steps):
        grads = draw()
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for r, g, st in zip(ref, grads, states):
            REFERENCES[name](r, g, st, **kw)
    return ref, states


def _torch():
    return pytest.importorskip("torch")


@contextlib.contextmanager
def torch_default_dtype(dtype) -> Iterator[None]:
    """Run the block with torch's default dtype float64 when dtype is float64 (torch then keeps its scalar state,
    NAdam's mu_product and ASGD's eta and mu, in float64, as fastopt does for float64 params); float32 otherwise."""
    torch = _torch()
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def to_numpy(v: Any) -> Any:
    torch = _torch()
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v


def torch_state_to_numpy(sd: dict) -> dict:
    """A torch optimizer's state_dict with every tensor converted by np.asarray: what fastopt loads."""
    torch = _torch()
    return {"state": {i: {k: np.asarray(to_numpy(v)) if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                      for i, s in sd["state"].items()},
            "param_groups": [dict(g) for g in sd["param_groups"]]}


def numpy_state_to_torch(sd: dict) -> dict:
    """fastopt's state_dict with arrays as tensors, the step as torch's float tensor and other scalars (NAdam's
    mu_product) as float32 tensors: what torch's load_state_dict takes."""
    torch = _torch()

    def conv(k, v):
        if k == "step":
            return torch.tensor(float(v))
        if isinstance(v, np.ndarray):
            return torch.from_numpy(v.copy())
        return torch.tensor(float(v), dtype=torch.float32)
    return {"state": {i: {k: conv(k, v) for k, v in s.items()} for i, s in sd["state"].items()},
            "param_groups": [dict(g) for g in sd["param_groups"]]}


def default_lr(name: str, params=None) -> float:
    return getattr(fo, name)(params or [fo.Parameter(np.zeros((1, 1)))]).defaults["lr"]


class TorchPair:
    """The same problem in fastopt and torch.optim: parameters of the given shapes split into two groups (the
    second with group2's options, by default half the learning rate), stepped with the same gradients.

    torch runs its single-tensor path (foreach=False where the class takes it), for float64 parameters under
    ``torch.set_default_dtype(torch.float64)`` (so its scalar state is float64, as fastopt's is for them)."""

    def __init__(self, name: str, kwargs: dict, shapes, dtype, rng: np.random.Generator | int = 0,
                 group2: dict | None = None, torch_name: str | None = None) -> None:
        torch = _torch()
        self.name, self.kwargs, self.dtype = name, kwargs, dtype
        self.torch_name = torch_name or name
        self.rng = np.random.default_rng(rng) if isinstance(rng, int) else rng
        self.cast_by_torch: tuple[str, ...] = ()  # scalar state keys torch's load_state_dict cast
        init = [self.rng.standard_normal(s).astype(dtype) for s in shapes]
        self.fp = [fo.Parameter(a.copy()) for a in init]
        self.tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
        self.half = max(1, len(shapes) // 2)
        self.group2 = group2 if group2 is not None else {
            "lr": kwargs.get("lr", default_lr(name, self.fp[:1])) * 0.5}
        self.fo_opt = self.make_fastopt()
        self.t_opt = self.make_torch(self.tp)

    def groups(self, params) -> list[dict]:
        return [{"params": params[:self.half]}, {"params": params[self.half:], **self.group2}]

    def make_fastopt(self) -> fo.Optimizer:
        return getattr(fo, self.name)(self.groups(self.fp), **self.kwargs)

    def make_torch(self, tparams) -> Any:
        cls = getattr(_torch().optim, self.torch_name)
        extra = {"foreach": False} if "foreach" in inspect.signature(cls).parameters else {}
        with torch_default_dtype(self.dtype):
            return cls(self.groups(tparams), **extra, **self.kwargs)

    def grads(self) -> list:
        return [self.rng.standard_normal(p.data.shape).astype(self.dtype) for p in self.fp]

    def feed(self, grads) -> None:
        torch = _torch()
        for p, t, g in zip(self.fp, self.tp, grads):
            p.grad = g.copy()
            t.grad = torch.tensor(g.copy())

    def step(self, n: int = 1, grads=None, fastopt: bool = True, torch: bool = True) -> None:
        for _ in range(n):
            self.feed(self.grads() if grads is None else grads)
            if fastopt:
                self.fo_opt.step()
            if torch:
                with torch_default_dtype(self.dtype):
                    self.t_opt.step()

    def errors(self) -> dict[str, float]:
        """Worst relative error over the parameters ("param") and over each state key; asserts that both keep
        the same state keys, equal step counts and (except cast_by_torch) the same dtypes and shapes."""
        worst: dict[str, float] = {"param": 0.0}
        for f, t in zip(self.fp, self.tp):
            worst["param"] = max(worst["param"], rel_err(f.data, to_numpy(t)))
            fst, tst = self.fo_opt.state[f], self.t_opt.state[t]
            assert set(fst) == set(tst), (sorted(fst), sorted(tst))
            for key, tv in tst.items():
                tv = np.asarray(to_numpy(tv))
                if key == "step":
                    assert float(fst[key]) == float(tv)
                    continue
                assert np.shape(fst[key]) == tv.shape, key
                if isinstance(fst[key], np.ndarray) and key not in self.cast_by_torch:
                    assert fst[key].dtype == tv.dtype, key
                worst[key] = max(worst.get(key, 0.0), rel_err(fst[key], tv))
        return worst

    def worst(self) -> float:
        return max(self.errors().values())

    def check(self, tol: float | None = None, what: str = "") -> None:
        tol = _tol(TORCH_TOL, self.dtype) if tol is None else tol
        for key, err in self.errors().items():
            assert err <= tol, (f"{what or self.name} {self.kwargs} {np.dtype(self.dtype).name}: {key} differs "
                                f"from torch by {err:.3e} (relative)")

    def load_torch_state(self) -> None:
        """A fresh fastopt optimizer that loads torch's state_dict (converted with np.asarray) replaces ours;
        the parameters are set to torch's."""
        for p, t in zip(self.fp, self.tp):
            p.data[...] = to_numpy(t)
        self.fo_opt = self.make_fastopt()
        self.fo_opt.load_state_dict(torch_state_to_numpy(self.t_opt.state_dict()))

    def load_fastopt_state(self) -> None:
        """A fresh torch optimizer over fastopt's parameters loads fastopt's state_dict and replaces torch's."""
        torch = _torch()
        self.tp = [torch.tensor(f.data.copy(), requires_grad=True) for f in self.fp]
        self.t_opt = self.make_torch(self.tp)
        with torch_default_dtype(self.dtype):
            self.t_opt.load_state_dict(numpy_state_to_torch(self.fo_opt.state_dict()))


# ---- schedulers -------------------------------------------------------------------------------------------------

def sched_optimizer(kind: str, lrs: list[float], torch: Any = None) -> Any:
    """An optimizer with one 3-element parameter group per entry of lrs: 'sgd' (momentum 0.9) or 'adam';
    fastopt's, or torch's when the torch module is given."""
    if torch is None:
        rng = np.random.default_rng(0)
        params, lib = [fo.Parameter(rng.standard_normal(3)) for _ in lrs], fo
    else:
        params, lib = [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)) for _ in lrs], torch.optim
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    if kind == "sgd":
        return lib.SGD(groups, lr=lrs[0], momentum=0.9)
    return lib.Adam(groups, lr=lrs[0], betas=(0.9, 0.999))


def step_optimizer(opt: Any) -> None:
    """One optimizer step; fastopt's parameters get zero gradients first (torch's have none and are skipped)."""
    for g in opt.param_groups:
        for p in g["params"]:
            if isinstance(p, fo.Parameter):
                p.grad = np.zeros_like(p.data)
    opt.step()


def lr_momentum(groups: list[dict]) -> list:
    """(lr, momentum or beta1) of every group."""
    return [(g["lr"], g["betas"][0] if "betas" in g else g.get("momentum", None)) for g in groups]


def record(opt: Any, sched: Any, n: int, metrics: list | None = None) -> list:
    """(lr, momentum) of every group before each of n steps and after the last, stepping the optimizer, then the
    scheduler (with metrics[i] when given)."""
    trace = []
    for i in range(n):
        trace.append(lr_momentum(opt.param_groups))
        step_optimizer(opt)
        if metrics is not None:
            sched.step(metrics[i])
        else:
            sched.step()
    trace.append(lr_momentum(opt.param_groups))
    return trace
