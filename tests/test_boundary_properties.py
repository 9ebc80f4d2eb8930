"""Property-based tests of the Python/C boundary (issue 11, item 12), with hypothesis.

Each example builds parameters as views into larger buffers - random shapes (0-d included), offsets,
positive, negative and zero strides, Fortran order, read-only flags, float32/float64 - with gradients
of random layout and sometimes the wrong dtype or shape, sometimes sharing memory with a parameter, in
one or two groups. It then calls ``step()`` (every registry row) or ``clip_grad_norm_``, and requires
exactly one of two outcomes:

* the inputs are valid, and the result equals the NumPy reference (tests/reference.py) run on copies,
  with every byte of the buffers outside the parameters untouched; or
* the inputs are invalid (the test knows why), and the call raises ValueError/TypeError/RuntimeError,
  leaving every buffer and the optimizer's state bit-identical.

A crash fails the run. The number of examples per test is ``FASTOPT_HYPOTHESIS_EXAMPLES`` (default 200;
CI runs the default: 200 examples x 2 tests).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastopt as fo  # noqa: E402
from cases import CASES, make  # noqa: E402
from reference import REFERENCES  # noqa: E402

EXAMPLES = int(os.environ.get("FASTOPT_HYPOTHESIS_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOL = {np.float32: 2e-6, np.float64: 1e-13}
ROWS = [c for c in CASES if c[0] in REFERENCES and c[0] != "Adafactor"]   # Adafactor: factored 2-D state


def _view(data, base: np.ndarray, what: str):
    """A random view into ``base``: 0-3 dims of 0-4 elements, random offset and step per axis (never
    stepping off the buffer); with small probability a zero-stride (self-overlapping) view, Fortran
    order, or a read-only flag. Returns (view, flags) where flags lists what makes it special."""
    flags = set()
    ndim = data.draw(st.integers(0, 3), label=f"{what} ndim")
    shape = tuple(data.draw(st.integers(0 if ndim else 1, 4), label=f"{what} dim") for _ in range(ndim))
    n = int(np.prod(shape)) if shape else 1
    kind = data.draw(st.sampled_from(["c", "c", "stepped", "negative", "fortran", "zero"]), label=f"{what} layout")
    if kind == "zero" and n > 0 and any(d > 1 for d in shape):
        axis = next(a for a, d in enumerate(shape) if d > 1)       # this axis gets stride 0
        rest = shape[:axis] + (1,) + shape[axis + 1:]
        m = int(np.prod(rest))
        start = data.draw(st.integers(0, base.size - m), label=f"{what} start")
        strides = list(np.empty(rest, base.dtype).strides)
        strides[axis] = 0
        view = np.lib.stride_tricks.as_strided(base[start:], shape=shape, strides=strides)
        flags.add("self_overlap")
    elif kind in ("stepped", "negative") and ndim >= 1:
        step = data.draw(st.sampled_from([2, 3]), label=f"{what} step")
        need = n * step
        start = data.draw(st.integers(0, max(0, base.size - need)), label=f"{what} start")
        flat = base[start:start + need:step][:n]
        if flat.size < n:
            return None, flags
        view = flat.reshape(shape) if kind == "stepped" else flat[::-1].reshape(shape)
        if kind == "negative":
            view = view[..., ::-1] if ndim else view
    else:
        start = data.draw(st.integers(0, max(0, base.size - n)), label=f"{what} start")
        flat = base[start:start + n]
        if flat.size < n:
            return None, flags
        if kind == "fortran" and ndim >= 2:
            view = flat.reshape(shape[::-1]).T
        else:
            view = flat.reshape(shape)
    if data.draw(st.integers(0, 9), label=f"{what} readonly") == 0:
        view = view.view()
        view.flags.writeable = False
        flags.add("read_only")
    return view, flags


def _params_and_grads(data, dtype):
    """1-3 parameters (views into one or two shared buffers, so some overlap) and their grads."""
    bases = [np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed")).standard_normal(64).astype(dtype)
             for _ in range(2)]
    params, grads, why = [], [], []
    for k in range(data.draw(st.integers(1, 3), label="n params")):
        base = bases[data.draw(st.integers(0, 1), label="base")]
        view, flags = _view(data, base, f"param{k}")
        if view is None:
            continue
        if "read_only" in flags:
            why.append("read-only param")
        if "self_overlap" in flags:
            why.append("param overlaps itself")
        gkind = data.draw(st.sampled_from(["own", "own", "own", "readonly", "wrong_dtype", "wrong_shape",
                                           "aliases_param", "strided"]), label=f"grad{k}")
        rng = np.random.default_rng(k)
        if gkind == "wrong_dtype":
            other = np.float64 if dtype == np.float32 else np.float32
            g = rng.standard_normal(view.shape).astype(other)
            why.append("grad dtype")
        elif gkind == "wrong_shape":
            g = rng.standard_normal(view.shape + (2,)).astype(dtype)
            why.append("grad shape")
        elif gkind == "aliases_param" and view.size > 0:
            g = np.asarray(view)
            why.append("grad shares memory with a param")
        elif gkind == "strided":
            g = rng.standard_normal(view.shape + (2,)).astype(dtype)[..., 0]
        else:
            g = rng.standard_normal(view.shape).astype(dtype)
            if gkind == "readonly":
                g.flags.writeable = False
        params.append(fo.Parameter(view))
        grads.append(g)
    for i in range(len(params)):
        for j in range(i):
            if params[i].data.size and params[j].data.size and np.shares_memory(params[i].data, params[j].data):
                why.append("params overlap")
            if grads[i].size and params[j].data.size and np.shares_memory(grads[i], params[j].data):
                why.append("grad shares memory with a param")
            if grads[j].size and params[i].data.size and np.shares_memory(grads[j], params[i].data):
                why.append("grad shares memory with a param")
    return bases, params, grads, why


def _state_bytes(opt) -> list:
    out = []
    for g in opt.param_groups:
        for p in g["params"]:
            for k, v in sorted(opt.state.get(p, {}).items()):
                out.append((k, v.tobytes() if isinstance(v, np.ndarray) else repr(v)))
    return out


@SETTINGS
@given(data=st.data())
def test_step_equals_reference_or_refuses_with_nothing_changed(data):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    name, kw = data.draw(st.sampled_from(ROWS), label="row")
    bases, params, grads, why = _params_and_grads(data, dtype)
    if not params:
        return
    split = data.draw(st.integers(0, len(params)), label="split")
    # two groups when 0 < split < n
    groups = [{"params": params[:split]}, {"params": params[split:]}] if 0 < split < len(params) else params
    try:
        opt = make(name, groups, **kw)
    except (ValueError, TypeError) as exc:     # a read-only or overlapping param may be refused here
        assert why, f"constructor refused valid params: {exc}"
        hypothesis.event(f"constructor refused: {why[0]}")
        return
    initial = [b.copy() for b in bases]
    steps = data.draw(st.integers(1, 2), label="steps")
    ref_params = [np.array(p.data, order="C") for p in params]
    ref_states = [{} for _ in params]
    for _ in range(steps):
        for p, g in zip(params, grads):
            p.grad = g
        before = [b.copy() for b in bases]
        state_before = _state_bytes(opt)
        try:
            opt.step()
        except (ValueError, TypeError, RuntimeError) as exc:
            assert why, f"{name} {kw}: step refused valid input: {exc}"
            hypothesis.event(f"step refused: {why[0]}")
            for b, b0 in zip(bases, before):
                assert b.tobytes() == b0.tobytes(), "a rejected step changed a buffer"
            assert _state_bytes(opt) == state_before, "a rejected step changed the state"
            return
        assert not why, f"{name} {kw}: step accepted invalid input ({why})"
        hypothesis.event("step ran and was compared with the reference")
        for rp, g, s in zip(ref_params, grads, ref_states):   # elementwise rules: run them flat (0-d safe)
            REFERENCES[name](rp.reshape(-1), np.array(g).reshape(-1), s, **kw)
    for j, (p, rp) in enumerate(zip(params, ref_params)):
        scale = max(1.0, float(np.max(np.abs(rp)))) if rp.size else 1.0
        np.testing.assert_allclose(p.data, rp, rtol=TOL[dtype], atol=TOL[dtype] * scale,
                                   err_msg=f"{name} {kw}: param {j}")
    for b, b0 in zip(bases, initial):                 # elements no param covers are untouched
        covered = np.zeros(b.size, bool)
        for p in params:
            covered[_elements_of(p.data, b)] = True
        assert np.array_equal(b[~covered], b0[~covered]), "a step wrote outside its parameters"


def _elements_of(view: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Indices into the 1-D ``base`` of every element of ``view`` (empty if it is not a view of it)."""
    if view.size == 0 or not np.shares_memory(view, base):
        return np.zeros(0, np.intp)
    item = base.itemsize
    offset = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
    idx = np.full(view.shape, offset, np.intp)
    for axis, (n, stride) in enumerate(zip(view.shape, view.strides)):
        shape = [1] * view.ndim
        shape[axis] = n
        idx = idx + (np.arange(n) * (stride // item)).reshape(shape)
    return idx.reshape(-1)


@SETTINGS
@given(data=st.data())
def test_clip_grad_norm_equals_reference_or_refuses_with_nothing_changed(data):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    bases, params, grads, why = _params_and_grads(data, dtype)
    # clipping reads and writes gradients only: their dtype need not match the param's (as in torch);
    # a gradient of another shape is refused (fastopt, not torch), and one that shares memory with a
    # param would change the param
    why = [w for w in why if w in ("grad shape", "grad shares memory with a param")]
    if not params:
        return
    for p, g in zip(params, grads):
        p.grad = g
    given = list(grads)                               # the caller's arrays (some read-only)
    before = [g.copy() for g in grads]
    max_norm = data.draw(st.floats(1e-3, 10.0), label="max_norm")
    try:
        total = fo.clip_grad_norm_(params, max_norm=max_norm)
    except (ValueError, TypeError, RuntimeError) as exc:
        assert why, f"clip refused valid input: {exc}"
        hypothesis.event(f"clip refused: {why[0]}")
        for g, g0 in zip(given, before):
            assert g.tobytes() == g0.tobytes()
        assert all(p.grad is g for p, g in zip(params, given))
        return
    assert not why, f"clip accepted invalid input ({why})"
    hypothesis.event("clip ran and was compared with the reference")
    norm = float(np.sqrt(sum(float(np.sum(g0.astype(np.float64) ** 2)) for g0 in before)))
    assert abs(float(total) - norm) <= 1e-12 * max(1.0, norm) + 1e-30
    coef = max_norm / (norm + 1e-6)
    for p, g, g0 in zip(params, given, before):
        if not g.flags.writeable:                     # read-only: clipped in fastopt's buffer, never in place
            assert g.tobytes() == g0.tobytes()
        want = g0 * g0.dtype.type(coef) if coef < 1 else g0
        np.testing.assert_allclose(p.grad, want, rtol=4 * np.finfo(g0.dtype).eps, atol=0)
