"""The low-precision references (tests/reference_lowp.py) against independent implementations:
bfloat16 rounding against ml_dtypes' cast, the dynamic maps and blockwise quantization against
bitsandbytes (0.50.x, CPU), and 8-bit-state Adam against float32 Adam with bitsandbytes' own
acceptance bounds. Each comparison is skipped when its package is missing."""
from __future__ import annotations

import numpy as np
import pytest

import reference as REF
import reference_lowp as L


def _special_floats() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.standard_normal(20000).astype(np.float32) * np.float32(10.0) ** rng.integers(-40, 38, 20000)
    f32 = np.finfo(np.float32)
    edge = np.array([0.0, -0.0, np.inf, -np.inf, f32.max, -f32.max, f32.tiny, f32.tiny / 2,
                     1.0, 1.00390625, 1.01171875, 1.0078125 + 2 ** -23, 3.3895314e38], np.float32)
    # exact ties: the 16 low bits are 0x8000 (round to even picks the even neighbour)
    ties = (rng.integers(0, 2 ** 31, 2000, dtype=np.uint32) & np.uint32(0xFFFF0000)) | np.uint32(0x8000)
    with np.errstate(invalid="ignore"):
        return np.concatenate([base, edge, ties.view(np.float32)])


def test_bf16_nearest_equals_ml_dtypes_cast():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = _special_floats()
    x = x[~np.isnan(x)]
    ours = L.bf16_bits_nearest(x)
    theirs = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    bad = np.flatnonzero(ours != theirs)
    assert bad.size == 0, f"{bad.size} differ, e.g. {x[bad[:3]]}: {ours[bad[:3]]} vs {theirs[bad[:3]]}"


def test_bf16_nan_stays_nan_and_round_trip_is_exact():
    x = np.array([np.nan, -np.nan], np.float32)
    assert np.isnan(L.bf16_to_f32(L.bf16_bits_nearest(x))).all()
    bits = np.arange(0, 2 ** 16, dtype=np.uint32).astype(np.uint16)
    f = L.bf16_to_f32(bits)
    fin = np.isfinite(f)
    assert np.array_equal(L.bf16_bits_nearest(f[fin]), bits[fin])      # bf16 -> f32 -> bf16 exact


def test_bf16_stochastic_rounding_is_unbiased_and_picks_a_neighbour():
    rng = np.random.default_rng(3)
    x = np.full(200000, np.float32(1.0 + 2 ** -9 + 2 ** -12))    # between two bf16 values
    bits = L.bf16_bits_stochastic(x, rng.integers(0, 2 ** 16, x.size, dtype=np.uint32).astype(np.uint16))
    vals = L.bf16_to_f32(bits)
    lo, hi = np.float32(1.0), np.float32(1.0 + 2 ** -7)
    assert set(np.unique(vals).tolist()) <= {float(lo), float(hi)}
    assert abs(vals.astype(np.float64).mean() - float(x[0])) < 4 * (float(hi - lo) / np.sqrt(x.size))


def test_dynamic_maps_equal_bitsandbytes():
    pytest.importorskip("torch")
    F = pytest.importorskip("bitsandbytes.functional")
    for signed in (True, False):
        ours = L.dynamic_map(signed)
        theirs = F.create_dynamic_map(signed=signed).numpy()
        assert np.array_equal(ours, theirs), (signed, np.flatnonzero(ours != theirs)[:5])


@pytest.mark.parametrize("signed", [True, False])
def test_quantization_error_is_at_most_half_a_code_gap(signed):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(256 * 9 + 17).astype(np.float32) * np.float32(10.0) ** rng.integers(-6, 1, 256 * 9 + 17)
    if not signed:
        x = np.abs(x)
    code = L.dynamic_map(signed)
    q, absmax = L.quantize_blockwise(x, code)
    back = L.dequantize_blockwise(q, absmax, code)
    scale = np.repeat(absmax, L.BLOCK)[: x.size]
    gaps = np.diff(code.astype(np.float64)).max()            # loose global bound first
    assert np.all(np.abs(back - x) <= scale * gaps / 2 * (1 + 1e-5))   # -1 lies beyond the last code
    # exact: the chosen code is the nearest one
    best = np.abs(code[None, :].astype(np.float64) - (x / scale.astype(np.float32))[:, None]).min(axis=1)
    chosen = np.abs(code[q].astype(np.float64) - (x / scale.astype(np.float32)))
    assert np.all(chosen <= best + 1e-12), np.flatnonzero(chosen > best + 1e-12)[:5]
    top = int(np.argmax(np.abs(x)))        # a block's max maps to the end code: 1, or the most negative code
    assert code[q[top]] == (code[-1] if x[top] > 0 else code[0])


def test_quantize_blockwise_agrees_with_bitsandbytes_cpu_outside_its_lookup_table_limits():
    """bitsandbytes' CPU quantizer picks codes through a 65536-entry table over [-1, 1] (bin width
    2/65535 of absmax), so it cannot resolve normalized values below ~1.5e-5 nor ones within a bin of
    a code midpoint; everywhere else the codes must be equal."""
    torch = pytest.importorskip("torch")
    F = pytest.importorskip("bitsandbytes.functional")
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(256 * 40) * np.float32(10.0) ** rng.integers(-5, 1, 256 * 40)).astype(np.float32)
    code = L.dynamic_map(True)
    ours, absmax = L.quantize_blockwise(x, code)
    qt, st = F.quantize_blockwise(torch.from_numpy(x), code=torch.from_numpy(code), blocksize=256)
    theirs = qt.numpy().reshape(x.shape)
    np.testing.assert_array_equal(absmax, st.absmax.numpy())
    normalized = x / np.repeat(absmax, 256)
    mids = (code[1:].astype(np.float64) + code[:-1]) / 2
    near_mid = np.abs(normalized[:, None] - mids[None, :]).min(axis=1) < 2 / 65535
    explained = (np.abs(normalized) < 2e-5) | near_mid
    differ = ours != theirs
    assert not np.any(differ & ~explained), f"{np.sum(differ & ~explained)} unexplained code differences"
    assert (~differ).mean() > 0.5           # most codes agree (75 % here: the data reach down to 1e-5 of absmax)


def test_adam_8bit_reference_tracks_float32_adam_as_closely_as_bitsandbytes():
    """bitsandbytes' 8-bit optimizer test problem: p ~ N(0, 0.1^2), g ~ N(0, 0.01^2), 1024 x 32,
    50 steps of lr 1e-3. The reference's distance from float32 Adam is what 8-bit state costs;
    bitsandbytes' own Adam8bit (CPU) measured 1.24e-4 mean absolute error on this problem, and the
    reference must be as close (and much closer to bitsandbytes than either is to float32)."""
    rng = np.random.default_rng(11)
    p0 = (0.1 * rng.standard_normal((1024, 32))).astype(np.float32)
    grads = [(0.01 * rng.standard_normal(p0.shape)).astype(np.float32) for _ in range(50)]
    p8, p32 = p0.copy(), p0.copy()
    s8: dict = {}
    s32: dict = {}
    for g in grads:
        L.ref_adam_8bit(p8, g, s8, lr=1e-3)
        REF.ref_adam(p32, g, s32, lr=1e-3)
    ours = np.abs(p8 - p32).mean()
    assert 1e-5 < ours < 1.6e-4                 # 8-bit state costs something, and not more than bnb's
    assert s8["state1"].dtype == np.uint8 and s8["absmax1"].shape == (1024 * 32 // 256,)
    m = L.dequantize_blockwise(s8["state1"], s8["absmax1"], s8["qmap1"])
    scale = np.repeat(s8["absmax1"], 256).reshape(m.shape)
    assert np.abs(m - s32["exp_avg"]).max() <= 0.05 * scale.max()
    try:
        import torch
        import bitsandbytes as bnb
    except ImportError:
        return
    tp = torch.nn.Parameter(torch.tensor(p0.copy()))
    opt = bnb.optim.Adam8bit([tp], lr=1e-3)
    for g in grads:
        tp.grad = torch.tensor(g)
        opt.step()
    pb = tp.detach().numpy()
    theirs = np.abs(pb - p32).mean()
    assert ours <= 1.1 * theirs, (ours, theirs)
    assert np.abs(p8 - pb).mean() <= 0.2 * theirs, (np.abs(p8 - pb).mean(), theirs)


def test_small_tensors_keep_float32_state():
    p = np.ones(100, np.float32)
    st: dict = {}
    L.ref_adam_8bit(p, np.ones(100, np.float32), st, lr=1e-3)
    assert st["exp_avg"].dtype == np.float32 and "state1" not in st
