"""The arithmetic 8-bit encoder (csrc/fo_q8.h: fo_q8_code16) against the exact threshold search, sampled: values
on a grid over [-1, 1], every rounding threshold and its neighbours up to 40 ulps away, under absmax scales that are
not powers of two (y = x * (1 / scale) is then not x / scale, which the re-done bands must absorb); the second
through Adam's 8-bit step with betas (0, 0), where the new moments are g and g * g exactly, so the kernel's codes of
both moments (the second one by the encoder's non-negative variant) can be compared with the search's. The
exhaustive version (every float32 under a few scales): `sh bench/q8_micro.sh check 0.7071 3.0 1.0 1e-3`."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from fastopt import _lowp

F32 = np.float32
BLOCK = 256


def _thresholds(levels: np.ndarray) -> np.ndarray:
    """The 255 sorted thresholds from the level-order table (fo_q8_nearest's layout)."""
    thr = np.empty(255, F32)
    for k in range(8):
        i = np.arange(2 ** k)
        thr[(i << (8 - k)) + (128 >> k) - 1] = levels[(1 << k) - 1 + i]
    assert np.all(np.diff(thr) > 0)
    return thr


def _search(y: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """The search's code of float32 y: the number of thresholds y reaches."""
    return np.searchsorted(thr, y, side="right").astype(np.uint8)


def _near(points: np.ndarray, ulps: int) -> np.ndarray:
    """Every float32 within `ulps` steps of each point (toward both infinities)."""
    out, up, dn = [points], points.copy(), points.copy()
    for _ in range(ulps):
        up = np.nextafter(up, F32(np.inf))
        dn = np.nextafter(dn, F32(-np.inf))
        out += [up, dn]
    return np.concatenate(out)


def _samples(signed: bool) -> np.ndarray:
    thr = _thresholds(_lowp.QLEV1 if signed else _lowp.QLEV2)
    grid = np.arange(0, 0x3F800001, 2053, dtype=np.uint32).view(F32)   # ~520k floats in [0, 1]
    y = np.concatenate([grid, _near(thr, 40)])
    y = y[np.abs(y) <= 1]
    return np.concatenate([y, -y]).astype(F32)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("scale", [1.0, 0.7071, 3.0, 123.456, 1e-3 / 3, 5 * 2.0 ** -100])
def test_quantize_equals_the_search_near_every_threshold(signed, scale):
    thr = _thresholds(_lowp.QLEV1 if signed else _lowp.QLEV2)
    s = F32(scale)
    x = _samples(signed) * s
    x = np.concatenate([x, np.zeros(-x.size % (BLOCK - 1), F32)]).reshape(-1, BLOCK - 1)
    x = np.concatenate([np.full((x.shape[0], 1), s), x], axis=1).ravel()   # every block's absmax is s
    q, absmax = _lowp.quantize(x, signed)
    assert np.all(absmax == s)
    want = _search(x / s, thr)
    bad = np.flatnonzero(q != want)
    assert bad.size == 0, (bad.size, x[bad[:5]], q[bad[:5]], want[bad[:5]])


def test_adam_int8_moments_equal_the_search():
    """One Adam step from the zero state with betas (0, 0): exp_avg = g, exp_avg_sq = g * g (float32), each block
    quantized by its absmax. g puts g / absmax near the signed map's thresholds and g * g / absmax near the unsigned
    map's, under block maxima that are not powers of two."""
    rng = np.random.default_rng(14)
    thr1, thr2 = _thresholds(_lowp.QLEV1), _thresholds(_lowp.QLEV2)
    big = F32(0.37)
    y1 = _near(thr1, 12)
    y1 = y1[np.abs(y1) <= 1]
    t2 = _near(thr2, 12)
    t2 = t2[(t2 >= 0) & (t2 <= 1)].astype(np.float64)
    g2 = (np.sqrt(t2 * float(big) ** 2) * (1 + rng.integers(-8, 9, t2.size) * 2.0 ** -24)).astype(F32)
    g2 *= np.where(rng.random(g2.size) < 0.5, F32(-1), F32(1))
    g = np.concatenate([y1 * big, g2, (rng.uniform(-1, 1, 20000) * float(big)).astype(F32)]).astype(F32)
    rng.shuffle(g)
    g = np.concatenate([g, np.zeros(-g.size % (BLOCK - 1), F32)]).reshape(-1, BLOCK - 1)
    g = np.concatenate([np.full((g.shape[0], 1), big), g], axis=1).ravel()   # |g| <= big in every block
    p = fo.Parameter(np.zeros(g.size, F32))
    opt = fo.Adam([p], lr=1e-3, betas=(0.0, 0.0), state_dtype="int8")
    p.grad = g.copy()
    opt.step()
    st = opt.state_dict()["state"][0]
    m, v = g, g * g
    for key_q, key_a, x, thr in (("state1", "absmax1", m, thr1), ("state2", "absmax2", v, thr2)):
        q, absmax = np.asarray(st[key_q]).ravel(), np.asarray(st[key_a]).ravel()
        ref_abs = np.abs(x).reshape(-1, BLOCK).max(axis=1)
        assert np.array_equal(absmax, ref_abs), key_a
        want = _search(x / np.repeat(ref_abs, BLOCK), thr)
        bad = np.flatnonzero(q != want)
        assert bad.size == 0, (key_q, bad.size, x[bad[:5]], q[bad[:5]], want[bad[:5]])
