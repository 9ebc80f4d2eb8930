"""The fast paths of the compressed-state kernels (csrc/lowp.c) give the same bits as the simple ones.

Calls of at least 2^20 elements quantize with a bucket table on AVX-512 (one gather and one comparison per element)
instead of the 8-step threshold search that smaller calls use; both must produce the same codes for every value,
boundaries included. The bf16 AVX-512 loop is covered by tests/test_lowp_state.py (every size there runs it)."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from fastopt import _lowp

import reference_lowp as L

F32 = np.float32
BIG = (1 << 20) + 777          # above the table threshold, with a partial last block


def _boundary_values(code: np.ndarray, rng) -> np.ndarray:
    """Every threshold, code and both float neighbours of each (both signs), specials, and random values over
    many decades."""
    t = np.sort(_lowp.code_levels(code)[:255])
    base = np.concatenate([t, code])
    near = np.concatenate([base, np.nextafter(base, F32(np.inf)), np.nextafter(base, F32(-np.inf))])
    special = np.array([0, -0.0, np.nan, np.inf, -np.inf, 1, -1, 2, -2, 1e-30, -1e-30, 2.0 ** -23, -(2.0 ** -23),
                        1.5e-7, -1.5e-7], F32)
    rnd = (rng.standard_normal(200_000) * 10.0 ** rng.integers(-9, 1, 200_000)).astype(F32)
    return np.concatenate([near, -near, special, rnd, rng.uniform(-1, 1, 200_000).astype(F32)]).astype(F32)


@pytest.mark.parametrize("signed", [True, False])
def test_large_quantize_equals_the_search(signed):
    """Blocks of 255 values plus a 1.0 (absmax 1, so each value is quantized as it is), tiled past 2^20: the large
    call's codes equal those of the same data quantized in small calls, block maxima too."""
    code = _lowp.QMAP1 if signed else _lowp.QMAP2
    vals = _boundary_values(code, np.random.default_rng(5))
    nb = -(-vals.size // 255)
    x = np.ones((nb, 256), F32)
    flat = np.zeros(nb * 255, F32)
    flat[:vals.size] = vals
    x[:, :255] = flat.reshape(nb, 255)
    x = np.tile(x.ravel(), 1 + (1 << 20) // x.size)
    assert x.size >= 1 << 20
    q, a = _lowp.quantize(x, signed)
    parts = [_lowp.quantize(x[i:i + 65536], signed) for i in range(0, x.size, 65536)]
    assert np.array_equal(q, np.concatenate([p[0] for p in parts]))
    assert np.array_equal(a.view(np.uint32), np.concatenate([p[1] for p in parts]).view(np.uint32))


def _magnitudes(rng, n):
    x = rng.standard_normal(n).astype(F32) * (F32(10.0) ** rng.integers(-9, 3, n)).astype(F32)
    x[rng.random(n) < 0.02] = 0
    return x


def test_large_int8_adam_step_equals_float32_kernel_on_decoded_moments():
    """A step over > 2^20 elements (the table path) against float32 Adam from the decoded moments: same parameter
    bits, and the stored codes and block maxima are the reference quantization of its new moments."""
    rng = np.random.default_rng(3)
    ps = [fo.Parameter(_magnitudes(rng, BIG)), fo.Parameter(rng.standard_normal(5000).astype(F32))]
    kw = dict(lr=1e-2, weight_decay=0.1)
    opt = fo.Adam(ps, state_dtype="int8", **kw)
    for it in range(3):
        twins = [fo.Parameter(p.data.copy()) for p in ps]
        ref = fo.Adam(twins, **kw)
        if it:
            for p, t in zip(ps, twins):
                st = opt.state[p]
                ref.state[t] = {"step": st["step"],
                                "exp_avg": _lowp.dequantize(st["state1"], st["absmax1"], st["qmap1"]),
                                "exp_avg_sq": _lowp.dequantize(st["state2"], st["absmax2"], st["qmap2"])}
        for p, t in zip(ps, twins):
            g = _magnitudes(rng, p.data.size) * F32(0.01)
            p.grad, t.grad = g, g.copy()
        opt.step()
        ref.step()
        for p, t in zip(ps, twins):
            st = opt.state[p]
            assert np.array_equal(p.data.view(np.uint32), t.data.view(np.uint32))
            q1, a1 = L.quantize_blockwise(ref.state[t]["exp_avg"], L.dynamic_map(True))
            q2, a2 = L.quantize_blockwise(ref.state[t]["exp_avg_sq"], L.dynamic_map(False))
            assert np.array_equal(st["state1"], q1) and np.array_equal(st["state2"], q2)
            assert np.array_equal(st["absmax1"], a1) and np.array_equal(st["absmax2"], a2)
