"""Schedule-Free AdamW's float32 kernel computes v / bc2 as the float64 product (double)v * (1 / (double)bc2) rounded
once (csrc/fo_common.h, FO_DIV_BY_INV): these tests hold it to the division's bits. The identity itself on NumPy's
IEEE float32 division over every subnormal, special and random bit pattern for many constants; the kernel's quotient,
read from z after one step from y = z = 0 with lr = 1 (z = 0 - g / (sqrt(v / bc2) + eps) exactly), against NumPy's
division of the v the kernel wrote, on every instruction set."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from helpers import runs_on_each_isa

F32_MIN = np.float32(np.finfo(np.float32).tiny)


def _constants() -> list[np.float32]:
    """bc2 = 1 - beta2^(k+1) in float32 for common beta2 and steps, the range ends, and log-uniform samples."""
    cs = [np.float32(1 - b ** (k + 1)) for b in (0.999, 0.99, 0.9, 0.9999) for k in (0, 1, 2, 5, 17, 100, 4000)]
    cs += [np.float32(1.0), F32_MIN, np.nextafter(np.float32(1), np.float32(0)), np.float32(0.1), np.float32(0.75)]
    rng = np.random.default_rng(5)
    cs += [np.float32(2.0 ** e) for e in rng.uniform(-126, 0, 12)]
    return [c for c in cs if F32_MIN <= c <= 1]


def _patterns() -> np.ndarray:
    """Every positive and negative subnormal, the specials, the largest floats (overflow) and 2^21 random patterns."""
    sub = np.arange(1, 1 << 23, dtype=np.uint32)
    special = np.array([0, 0x7F800000, 0x7FC00000, 0x7F800001, 0x7FBFFFFF, 0x7F7FFFFF, 0x00800000, 0x3F800000],
                       dtype=np.uint32)
    top = np.arange(0x7F7FFFFF - 4096, 0x7F800000, dtype=np.uint32)
    rnd = np.random.default_rng(6).integers(0, 1 << 32, 1 << 21, dtype=np.uint64).astype(np.uint32)
    bits = np.concatenate([sub, special, top, rnd])
    return np.concatenate([bits, bits | np.uint32(0x80000000)]).view(np.float32)


def test_the_product_by_the_double_inverse_is_the_float_quotient():
    x = _patterns()
    with np.errstate(all="ignore"):
        for c in _constants():
            want = x / c
            got = (x.astype(np.float64) * (1.0 / np.float64(c))).astype(np.float32)
            bad = np.flatnonzero(want.view(np.uint32) != got.view(np.uint32))
            assert bad.size == 0, f"c={float(c)!r}: x={x[bad[:3]]!r}: {want[bad[:3]]!r} != {got[bad[:3]]!r}"


def test_the_check_above_can_fail():
    """An inverse off by 2^-40 (2^16 float64 ulps, a 2^-17 float32 ulp) already shows among these patterns."""
    x, c = _patterns(), np.float32(0.1)
    with np.errstate(all="ignore"):
        off = (1.0 / np.float64(c)) * (1 + 2.0 ** -40)
        got = (x.astype(np.float64) * off).astype(np.float32)
        assert np.any((x / c).view(np.uint32) != got.view(np.uint32))


def _kernel_mismatches(dtype: np.dtype) -> int:
    """Bits where the kernel's quotient differs from NumPy's division, over extreme v, several steps and eps."""
    rng = np.random.default_rng(8)
    n = 20011  # several work items, an unaligned tail
    if dtype == np.float32:
        v0 = np.abs(rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32).view(np.float32))
        v0[:4096] = np.arange(1, 4097, dtype=np.uint32).view(np.float32)  # subnormals
    else:
        v0 = np.abs(rng.standard_normal(n)) * 10.0 ** rng.uniform(-300, 300, n)
    v0[-8:] = [0, np.inf, np.nan, 1, np.finfo(dtype).max, np.finfo(dtype).tiny, 1e-30, 3]
    bad = 0
    for k in (0, 1, 7, 300):
        for eps in (0.0, 1e-8):
            g = rng.standard_normal(n).astype(dtype)
            y, z, v = np.zeros(n, dtype), np.zeros(n, dtype), v0.astype(dtype)
            fo.functional.schedule_free_adamw([y], [g], [z], [v], lr=1.0, ckp1=0.5, k=k, beta1=0.9, beta2=0.999,
                                              eps=eps, weight_decay=0.0)
            bc2 = dtype.type(1 - 0.999 ** (k + 1))
            with np.errstate(all="ignore"):
                # z = fma(-lr, u, z) = 0 - u from z = 0 (+0 for u = -0); v: what the kernel wrote, v * beta2 + ...
                want = dtype.type(0) - g / (np.sqrt(v / bc2) + dtype.type(eps))
            ui = np.uint32 if dtype == np.float32 else np.uint64
            bad += int(np.count_nonzero((want.view(ui) != z.view(ui)) & ~(np.isnan(want) & np.isnan(z))))
    return bad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_quotient_is_the_division(dtype):
    assert _kernel_mismatches(np.dtype(dtype)) == 0


def test_kernel_quotient_is_the_division_on_each_isa(tmp_path):
    script = ("import numpy as np\nimport test_sf_kern_div as t\n"
              "print(t._kernel_mismatches(np.dtype(np.float32)), t._kernel_mismatches(np.dtype(np.float64)))")
    for isa, out in runs_on_each_isa(script, tmp_path).items():
        assert out == ["0", "0"], isa
