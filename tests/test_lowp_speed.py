"""The fast paths of the compressed-state kernels (csrc/lowp.c) give the same bits as the simple ones.

On AVX-512 with VBMI and on AVX2 the 8-bit codes are computed arithmetically (class from the exponent, then a linear
grid, lanes near a boundary re-done by the search) instead of by the 8-step threshold search that the baseline
variant runs; both must produce the same codes for every value, boundaries included, at any block scale. The bf16 AVX-512 loop
is covered by tests/test_lowp_state.py (every size there runs it)."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from fastopt import _kernels as K
from fastopt import _lowp

import reference_lowp as L
from helpers import run_with_isa

F32 = np.float32
BIG = (1 << 20) + 777          # a large call, with a partial last block


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


def _scaled_blocks(signed: bool) -> np.ndarray:
    """Blocks of 255 boundary values plus one block maximum, at block scales from 2^-149 to 2^127 (subnormal, tiny,
    huge, Inf and NaN maxima included), so each value is quantized relative to many absmax values."""
    code = _lowp.QMAP1 if signed else _lowp.QMAP2
    rng = np.random.default_rng(5)
    vals = _boundary_values(code, rng)
    nb = -(-vals.size // 255)
    flat = np.zeros(nb * 255, F32)
    flat[:vals.size] = vals
    x = np.ones((nb, 256), F32)
    x[:, :255] = np.clip(np.nan_to_num(flat.reshape(nb, 255), nan=0.5), -1, 1)
    x[:7, :255] = flat.reshape(nb, 255)[:7]             # a few blocks keep their NaN, Inf and |x| > 1
    scale = (F32(2.0) ** rng.integers(-126, 126, nb)).astype(F32) * rng.uniform(1, 2, nb).astype(F32)
    scale[:3] = [F32(2.0 ** -149), F32(1e-40), F32(2.0 ** 127)]
    scale[3:5] = [np.inf, np.nan]
    with np.errstate(over="ignore", invalid="ignore"):
        return (x * scale[:, None]).astype(F32).ravel()


_CHILD = r"""
import sys, numpy as np
from fastopt import _lowp
x = np.load(sys.argv[1])
q, a = _lowp.quantize(x, sys.argv[2] == "1")
np.savez(sys.argv[3], q=q, a=a)
"""


@pytest.mark.parametrize("signed", [True, False])
def test_arithmetic_quantizer_equals_the_search(signed, tmp_path):
    """The default ISA's codes (the arithmetic encoder: AVX-512 with VBMI, or AVX2) equal those of the baseline
    variant (the exact threshold search) for every boundary value at every block scale, and the block maxima too."""
    if K.isa() == "baseline":
        pytest.skip("the baseline variant is the only one this machine has")
    x = _scaled_blocks(signed)
    np.save(tmp_path / "x.npy", x)
    used = run_with_isa(_CHILD, "baseline", tmp_path / "x.npy", "1" if signed else "0", tmp_path / "out.npz",
                        cwd=tmp_path, timeout=300)
    assert used[-1] == "baseline", used  # the child really ran the search
    ref = np.load(tmp_path / "out.npz")
    q, a = _lowp.quantize(x, signed)
    assert np.array_equal(a.view(np.uint32), ref["a"].view(np.uint32))
    bad = np.flatnonzero(q != ref["q"])
    assert bad.size == 0, (x[bad[:5]], q[bad[:5]], ref["q"][bad[:5]])


def test_quantizer_matches_the_reference_at_random_scales():
    """The same scaled blocks against the NumPy reference quantizer (in-process, any ISA)."""
    for signed in (True, False):
        x = _scaled_blocks(signed)[: 256 * 4000]
        q, a = _lowp.quantize(x, signed)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            rq, ra = L.quantize_blockwise(x, L.dynamic_map(signed))
        assert np.array_equal(a.view(np.uint32), ra.view(np.uint32))
        assert np.array_equal(q, rq)


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
