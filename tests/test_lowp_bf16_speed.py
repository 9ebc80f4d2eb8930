"""The fused bfloat16 loops of Adam (csrc/fo_bf16.h: bfloat16 moments in csrc/lowp.c, bfloat16 parameters in
csrc/lowp_params.c) lane by lane: every flag combination (maximize, L2 / decoupled weight decay, the two branches of
the lerp), starts off the 64-byte boundary, lengths that leave a scalar tail, master weights, float32 gradients, and
special values (signed zeros, subnormals, values on a rounding tie, huge values that round to Inf, NaN, Inf), against
fastopt's float32 Adam on the widened values followed by nearest-even rounding to bfloat16. No timing here: the
speed is measured by bench/bench_lowp_params.py and ``fastopt bench --precision``."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = ml_dtypes.bfloat16

FLAGS = [
    pytest.param(dict(), id="plain"),
    pytest.param(dict(maximize=True, weight_decay=0.1), id="max-l2"),
    pytest.param(dict(betas=(0.3, 0.99)), id="large-w1"),
    pytest.param(dict(weight_decay=0.5, decoupled_weight_decay=True, maximize=True, betas=(0.2, 0.9)),
                 id="decoupled-max-large-w1"),
]
# (offset into a larger array, length): a start off the 64-byte boundary, lengths with a scalar tail
LAYOUTS = [(0, 16), (3, 61), (5, 1000), (0, 4099)]


def _bits16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, nearest-even, NaN quiet with its sign and top payload bits (fastopt's rule)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nearest = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    quiet = (u >> 16) | 0x40
    return np.where((u & 0x7FFFFFFF) > 0x7F800000, quiet, nearest).astype(np.uint16)


def _same32(a: np.ndarray, b: np.ndarray) -> None:
    """Equal bits, except that a NaN only has to be a NaN (its sign and payload come from whichever NaN operand
    the instruction picks, which IEEE leaves open and the compiler's operand order decides)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    np.testing.assert_array_equal(a.view(np.uint32)[ok], b.view(np.uint32)[ok])


def _same16(a: np.ndarray, b: np.ndarray) -> None:
    _same32(_widen(a.view(np.uint16)), _widen(b.view(np.uint16)))


def _widen(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << 16).view(np.float32)


def _values(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Random float32 values with special ones spread in: signed zeros, subnormals, a bf16 tie, huge, Inf, NaN."""
    x = (rng.standard_normal(n) * scale).astype(np.float32)
    special = np.array([0.0, -0.0, 1e-40, -3e-39, 1.0 + 2.0 ** -8, 3.3e38, np.inf, -np.inf, np.nan],
                       dtype=np.float32)
    where = rng.choice(n, size=min(n, len(special)), replace=False)
    x[where] = special[: len(where)]
    return x


def _float32_adam(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, kw: dict):
    """fastopt's float32 Adam's second step from param p, gradient g and moments (m, v): the new param, m and v."""
    q = fo.Parameter(p.copy())
    q.grad = g.copy()
    opt = fo.Adam([q], lr=1e-2, **kw)
    opt.step()  # the first step makes the state (step count 1); then the moments and the param are set
    st = opt.state[q]
    st["exp_avg"][:] = m
    st["exp_avg_sq"][:] = v
    q.data[:] = p
    opt.step()
    return q.data, st["exp_avg"], st["exp_avg_sq"]


@pytest.mark.parametrize("kw", FLAGS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_bf16_state_lanes_equal_decode_step_encode(kw, layout, rng):
    off, n = layout
    p = _values(rng, n, 1.0)
    g = _values(rng, n, 0.1)
    base = fo.Parameter(np.zeros(off + n, np.float32))
    q = fo.Parameter(base.data[off:])  # a view off the 64-byte boundary
    q.data[:] = p
    q.grad = g
    opt = fo.Adam([q], lr=1e-2, state_dtype="bfloat16", **kw)
    opt.step()  # state now exists; set moments with special values and the step count
    m16 = _bits16(_values(rng, n, 0.01))
    v16 = _bits16(np.abs(_values(rng, n, 1e-4)))
    st = opt.state[q]
    st["exp_avg"][:] = m16
    st["exp_avg_sq"][:] = v16
    q.data[:] = p
    p_ref, m_ref, v_ref = _float32_adam(p, g, _widen(m16), _widen(v16), kw)
    opt.step()
    _same32(q.data, p_ref)
    _same16(st["exp_avg"], _bits16(m_ref))
    _same16(st["exp_avg_sq"], _bits16(v_ref))


@pytest.mark.parametrize("kw", FLAGS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("master", [False, True], ids=["plain", "master"])
@pytest.mark.parametrize("grad_f32", [False, True], ids=["grad16", "grad32"])
def test_bf16_param_lanes_equal_float32_step_then_rounding(kw, layout, master, grad_f32, rng):
    off, n = layout
    p16 = _bits16(_values(rng, n, 1.0))
    g32 = _values(rng, n, 0.1)
    g = g32 if grad_f32 else _bits16(g32).view(BF16)
    base = fo.Parameter(np.zeros(off + n, BF16))
    q = fo.Parameter(base.data[off:])
    q.data.view(np.uint16)[:] = p16
    q.grad = g
    opt = fo.Adam([q], lr=1e-2, master_weights=master, **kw)
    opt.step()
    st = opt.state[q]
    m = _values(rng, n, 0.01)
    v = np.abs(_values(rng, n, 1e-4))
    st["exp_avg"][:] = m
    st["exp_avg_sq"][:] = v
    p32 = _widen(p16)
    if master:
        p32 = _values(rng, n, 1.0)
        st["master"][:] = p32
    else:
        q.data.view(np.uint16)[:] = p16
    g_ref = g32 if grad_f32 else _widen(_bits16(g32))
    p_ref, m_ref, v_ref = _float32_adam(p32, g_ref, m, v, kw)
    opt.step()
    _same32(st["exp_avg"], m_ref)
    _same32(st["exp_avg_sq"], v_ref)
    _same16(q.data, _bits16(p_ref))
    if master:
        _same32(st["master"], p_ref)


# SGD and Lion with bfloat16 storage run one fused loop (csrc/fo_bf16.h) instead of the staged float32 kernel
SGD_LION = [
    pytest.param(fo.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01), "momentum_buffer", id="sgd"),
    pytest.param(fo.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True), "momentum_buffer",
                 id="sgd-nesterov-max"),
    pytest.param(fo.Lion, dict(lr=1e-3, betas=(0.5, 0.9), weight_decay=0.5, maximize=True), "exp_avg", id="lion"),
]


def _float32_second_step(cls, kw, key, p, g, s):
    q = fo.Parameter(p.copy())
    q.grad = g.copy()
    opt = cls([q], **kw)
    opt.step()
    opt.state[q][key][:] = s
    q.data[:] = p
    opt.step()
    return q.data, opt.state[q][key]


@pytest.mark.parametrize("cls,kw,key", SGD_LION)
@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("master", [False, True], ids=["plain", "master"])
@pytest.mark.parametrize("grad_f32", [False, True], ids=["grad16", "grad32"])
def test_sgd_lion_bf16_param_lanes(cls, kw, key, layout, master, grad_f32, rng):
    off, n = layout
    p16 = _bits16(_values(rng, n, 1.0))
    g32 = _values(rng, n, 0.1)
    base = fo.Parameter(np.zeros(off + n, BF16))
    q = fo.Parameter(base.data[off:])
    q.data.view(np.uint16)[:] = p16
    q.grad = g32 if grad_f32 else _bits16(g32).view(BF16)
    opt = cls([q], master_weights=master, **kw)
    opt.step()
    st = opt.state[q]
    s = _values(rng, n, 0.01)
    st[key][:] = s
    p32 = _values(rng, n, 1.0) if master else _widen(p16)
    if master:
        st["master"][:] = p32
    else:
        q.data.view(np.uint16)[:] = p16
    g_ref = g32 if grad_f32 else _widen(_bits16(g32))
    p_ref, s_ref = _float32_second_step(cls, kw, key, p32, g_ref, s)
    opt.step()
    _same32(st[key], s_ref)
    _same16(q.data, _bits16(p_ref))
    if master:
        _same32(st["master"], p_ref)


@pytest.mark.parametrize("cls,kw,key", SGD_LION)
@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_sgd_lion_bf16_state_lanes(cls, kw, key, layout, rng):
    off, n = layout
    p = _values(rng, n, 1.0)
    g = _values(rng, n, 0.1)
    base = fo.Parameter(np.zeros(off + n, np.float32))
    q = fo.Parameter(base.data[off:])
    q.data[:] = p
    q.grad = g
    opt = cls([q], state_dtype="bfloat16", **kw)
    opt.step()
    s16 = _bits16(_values(rng, n, 0.01))
    opt.state[q][key][:] = s16
    q.data[:] = p
    p_ref, s_ref = _float32_second_step(cls, kw, key, p, g, _widen(s16))
    opt.step()
    _same32(q.data, p_ref)
    _same16(opt.state[q][key], _bits16(s_ref))
