"""Compressed optimizer state for float32 params (issue 14): state_dtype="int8" and "bfloat16" for Adam / AdamW.

The quantizer is checked against the NumPy reference (tests/reference_lowp.py) code for code; the fused kernels
against fastopt's own float32 kernel run on the decoded moments (the arithmetic is the same, so the parameter
must match bit for bit and the stored moments must be the reference encoding of the float32 kernel's result);
then accuracy after 100 steps, NaN propagation, thread-count determinism, checkpoints and errors."""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest

import fastopt as fo
from fastopt import _lowp

import reference_lowp as L

F32 = np.float32


def _magnitudes(rng, n):
    """Floats over many decades, signs mixed, with exact zeros."""
    x = rng.standard_normal(n).astype(F32) * (F32(10.0) ** rng.integers(-9, 3, n)).astype(F32)
    x[rng.random(n) < 0.02] = 0
    return x


# ------------------------------------------------------------------------------------------ maps and quantizer
@pytest.mark.parametrize("signed", [True, False])
def test_maps_are_the_reference_maps(signed):
    ours = _lowp.QMAP1 if signed else _lowp.QMAP2
    assert np.array_equal(ours.view(np.uint32), L.dynamic_map(signed).view(np.uint32))


@pytest.mark.parametrize("signed", [True, False])
def test_quantizer_codes_equal_the_reference(signed):
    rng = np.random.default_rng(1)
    n = 256 * 400 + 77                                   # a partial last block
    x = _magnitudes(rng, n)
    if not signed:
        x = np.abs(x)
    x[256:512] = 0                                        # an all-zero block
    x[1024:1280] *= F32(1e-30)                            # a block of tiny values
    code = L.dynamic_map(signed)
    q, absmax = _lowp.quantize(x, signed)
    rq, rabs = L.quantize_blockwise(x, code)
    assert np.array_equal(absmax.view(np.uint32), rabs.view(np.uint32))
    bad = np.flatnonzero(q != rq)
    assert bad.size == 0, f"{bad.size} codes differ, e.g. x={x[bad[:3]]}: {q[bad[:3]]} vs {rq[bad[:3]]}"
    d = _lowp.dequantize(q, absmax, code)
    assert np.array_equal(d.view(np.uint32), L.dequantize_blockwise(rq, rabs, code).view(np.uint32))


@pytest.mark.parametrize("signed", [True, False])
def test_nearest_code_at_every_rounding_boundary(signed):
    """Exhaustive at the boundaries: every code, every midpoint between neighbours, the kernel's thresholds and
    the floats just either side of each (where a wrong rule would pick the other code), both signs, and values
    beyond +-1, each alone in a block whose absmax is 1."""
    code = L.dynamic_map(signed)
    lev = _lowp.code_levels(code)
    thr = np.sort(lev[:255])
    mids = ((code[1:].astype(np.float64) + code[:-1]) / 2).astype(F32)
    pts = np.concatenate([code, mids, thr])
    pts = np.concatenate([pts, np.nextafter(pts, F32(np.inf)), np.nextafter(pts, F32(-np.inf))])
    x = np.concatenate([pts, -pts, [F32(1.5), F32(-1.5), F32(0.0), F32(-0.0)]]).astype(F32)
    blocks = np.zeros((x.size, 256), F32)
    blocks[:, 0] = x
    blocks[:, 1] = 1.0
    blocks[np.abs(x) > 1, 1] = np.nan                   # absmax NaN: the block is divided by 1, |x| > 1 stays
    q, _ = _lowp.quantize(blocks, signed)
    rq, _ = L.quantize_blockwise(blocks, code)
    bad = np.flatnonzero(q[:, 0] != rq[:, 0])
    assert bad.size == 0, (x[bad[:5]], q[bad[:5], 0], rq[bad[:5], 0])


def test_rounding_thresholds_are_sorted_levels():
    for code in (_lowp.QMAP1, _lowp.QMAP2):
        lev = _lowp.code_levels(code)
        thr = np.sort(lev[:255])
        assert np.all(code[:-1] < thr) and np.all(thr <= code[1:])


def test_quantizer_nan_block():
    x = np.linspace(-1, 1, 512, dtype=F32)
    x[3] = np.nan
    q, absmax = _lowp.quantize(x, True)
    rq, rabs = L.quantize_blockwise(x, L.dynamic_map(True))
    assert np.isnan(absmax[0]) and np.isnan(rabs[0]) and absmax[1] == rabs[1]
    assert np.array_equal(q, rq)


def test_quantizer_rejects_bad_arrays():
    x = np.zeros(300, F32)
    with pytest.raises(TypeError, match="x has dtype float64"):
        fo._kernels.q8_quantize(x.astype(np.float64), _lowp.QLEV1, np.zeros(300, np.uint8), np.zeros(2, F32))
    with pytest.raises(ValueError, match="absmax has 1 elements, expected 2"):
        fo._kernels.q8_quantize(x, _lowp.QLEV1, np.zeros(300, np.uint8), np.zeros(1, F32))


# ------------------------------------------------------------------------------------------ the fused kernels
def _params(rng, shapes):
    return [fo.Parameter((rng.standard_normal(s) * 0.1).astype(F32)) for s in shapes]


def _decoded(opt, p):
    """The moments opt holds for p, decoded to float32."""
    st = opt.state[p]
    if "state1" in st:
        return (_lowp.dequantize(st["state1"], st["absmax1"], st["qmap1"]),
                _lowp.dequantize(st["state2"], st["absmax2"], st["qmap2"]))
    m, v = st["exp_avg"], st["exp_avg_sq"]
    if m.dtype == np.uint16:
        return L.bf16_to_f32(m).reshape(m.shape), L.bf16_to_f32(v).reshape(v.shape)
    return m.copy(), v.copy()


OPTS = [
    (fo.Adam, dict(lr=1e-2)),
    (fo.Adam, dict(lr=1e-2, weight_decay=0.1, maximize=True)),
    (fo.AdamW, dict(lr=1e-2, weight_decay=0.1, betas=(0.6, 0.99))),
]


@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
@pytest.mark.parametrize("cls,kw", OPTS)
def test_step_equals_float32_kernel_on_decoded_moments(cls, kw, state_dtype):
    """Each step: float32 Adam started from the decoded moments gives the same parameter bits, and the stored
    moments are the reference encoding (blockwise 8-bit / bf16 nearest-even) of its new moments."""
    rng = np.random.default_rng(2)
    shapes = [(70, 100), (5000,), (33,), (64, 64, 2)]
    ps = _params(rng, shapes)
    opt = cls(ps, state_dtype=state_dtype, **kw)
    for it in range(6):
        grads = [(rng.standard_normal(p.data.shape) * 0.01).astype(F32) for p in ps]
        twins = [fo.Parameter(p.data.copy()) for p in ps]
        ref = cls(twins, **kw)
        if it:
            for p, t in zip(ps, twins):
                m, v = _decoded(opt, p)
                ref.state[t] = {"step": opt.state[p]["step"], "exp_avg": m, "exp_avg_sq": v}
        for p, t, g in zip(ps, twins, grads):
            p.grad, t.grad = g, g.copy()
        opt.step()
        ref.step()
        for p, t in zip(ps, twins):
            assert np.array_equal(p.data.view(np.uint32), t.data.view(np.uint32))
            st, rm, rv = opt.state[p], ref.state[t]["exp_avg"], ref.state[t]["exp_avg_sq"]
            if p.data.size < _lowp.MIN_8BIT_SIZE and state_dtype == "int8":
                assert st["exp_avg"].dtype == F32 and np.array_equal(st["exp_avg"], rm)
            elif state_dtype == "int8":
                q1, a1 = L.quantize_blockwise(rm, L.dynamic_map(True))
                q2, a2 = L.quantize_blockwise(rv, L.dynamic_map(False))
                assert np.array_equal(st["absmax1"], a1) and np.array_equal(st["absmax2"], a2)
                assert np.array_equal(st["state1"], q1) and np.array_equal(st["state2"], q2)
            else:
                assert np.array_equal(st["exp_avg"].ravel(), L.bf16_bits_nearest(rm.ravel()))
                assert np.array_equal(st["exp_avg_sq"].ravel(), L.bf16_bits_nearest(rv.ravel()))


def test_int8_step_against_reference_adam_8bit():
    """The NumPy reference of 8-bit Adam (no fma, its own order) agrees up to float32 rounding: parameters to a
    few ulps, codes equal except where the moment sits on a rounding boundary (counted: well under 1 %)."""
    rng = np.random.default_rng(4)
    p = fo.Parameter((rng.standard_normal((128, 96)) * 0.1).astype(F32))
    ref_p, ref_state = p.data.copy(), {}
    opt = fo.Adam([p], lr=1e-3, state_dtype="int8")
    off, total = 0, 0
    for _ in range(30):
        g = (rng.standard_normal(p.data.shape) * 0.01).astype(F32)
        p.grad = g
        opt.step()
        L.ref_adam_8bit(ref_p, g, ref_state, lr=1e-3)
        st = opt.state[p]
        for k in ("state1", "state2"):
            d = np.abs(st[k].astype(int) - ref_state[k].astype(int))
            assert d.max() <= 1
            off += int((d == 1).sum())
            total += d.size
        np.testing.assert_allclose(p.data, ref_p, rtol=1e-5, atol=1e-7)
        # keep both on the same state so differences do not compound
        ref_p[...] = p.data
        for k in ("state1", "state2", "absmax1", "absmax2"):
            ref_state[k] = st[k].copy()
    assert off < 0.01 * total, (off, total)


@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
def test_moments_after_100_steps_within_quantization_bound(state_dtype):
    """bitsandbytes' test problem (p ~ N(0, 0.1^2), g ~ N(0, 0.01^2)), 100 steps against float32 Adam.

    Each step's encoding error is at most half a code spacing of its block, and decays by beta afterwards, so the
    decoded moment stays within 0.5 * (largest spacing of the map) * (largest absmax so far) / (1 - beta) of
    float32 Adam's (bf16: half an ulp, 2^-9 relative, per step); the parameters are as close to float32 Adam's as
    the NumPy reference of 8-bit Adam gets on the same run."""
    rng = np.random.default_rng(5)
    beta1, beta2 = 0.9, 0.999
    p0 = (rng.standard_normal((1024, 64)) * 0.1).astype(F32)
    p, q = fo.Parameter(p0.copy()), fo.Parameter(p0.copy())
    low, ref = fo.Adam([p], lr=1e-3, state_dtype=state_dtype), fo.Adam([q], lr=1e-3)
    r8, rs = p0.copy(), {}
    top1 = top2 = np.zeros(p0.size // 256, F32)
    for _ in range(100):
        g = (rng.standard_normal(p0.shape) * 0.01).astype(F32)
        p.grad, q.grad = g, g.copy()
        low.step()
        ref.step()
        L.ref_adam_8bit(r8, g, rs, lr=1e-3)
        if state_dtype == "int8":
            top1 = np.maximum(top1, low.state[p]["absmax1"])
            top2 = np.maximum(top2, low.state[p]["absmax2"])
    m, v = _decoded(low, p)
    rm, rv = ref.state[q]["exp_avg"], ref.state[q]["exp_avg_sq"]
    if state_dtype == "int8":
        b1 = 0.5 * np.max(np.diff(_lowp.QMAP1)) * np.repeat(top1, 256) / (1 - beta1)
        b2 = 0.5 * np.max(np.diff(_lowp.QMAP2)) * np.repeat(top2, 256) / (1 - beta2)
    else:
        b1 = 2.0 ** -9 * np.abs(rm).ravel().max() / (1 - beta1)
        b2 = 2.0 ** -9 * np.abs(rv).ravel().max() / (1 - beta2)
    assert np.all(np.abs(m - rm).ravel() <= b1) and np.all(np.abs(v - rv).ravel() <= b2)
    ours, reference = np.abs(p.data - q.data).mean(), np.abs(r8 - q.data).mean()
    assert ours <= 1.1 * reference, (ours, reference)
    if state_dtype == "bfloat16":
        assert ours < 0.2 * reference            # bf16 moments: far closer to float32 than 8-bit ones


@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
def test_nan_and_inf_gradients_propagate_as_torch(state_dtype):
    p = fo.Parameter(np.full(8192, 0.5, F32))
    opt = fo.Adam([p], lr=1e-2, state_dtype=state_dtype)
    g = np.full(8192, 0.1, F32)
    g[10], g[5000] = np.nan, np.inf
    p.grad = g
    opt.step()
    assert np.isnan(p.data[10]) and np.isnan(p.data[5000])      # torch: NaN update for NaN and Inf grads
    assert np.isfinite(p.data[300:4000]).all()
    m, _ = _decoded(opt, p)
    assert np.isnan(m[10])
    if state_dtype == "int8":
        assert np.isnan(opt.state[p]["absmax1"][0])              # the whole block decodes to NaN next step
        assert np.isfinite(opt.state[p]["absmax1"][1])


@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
def test_same_bits_for_any_thread_count(state_dtype):
    rng = np.random.default_rng(6)
    p0 = (rng.standard_normal(600_000) * 0.1).astype(F32)
    grads = [(rng.standard_normal(p0.size) * 0.01).astype(F32) for _ in range(3)]
    results = []
    old = fo.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fo.set_num_threads(threads)
            p = fo.Parameter(p0.copy())
            opt = fo.AdamW([p], lr=1e-3, state_dtype=state_dtype)
            for g in grads:
                p.grad = g
                opt.step()
            results.append((p.data.copy(), {k: np.copy(v) for k, v in opt.state[p].items()}))
    finally:
        fo.set_num_threads(old)
    for data, st in results[1:]:
        assert np.array_equal(data, results[0][0])
        for k, v in st.items():
            assert np.array_equal(v, results[0][1][k])


def test_strided_param_is_updated_in_place():
    rng = np.random.default_rng(7)
    base = (rng.standard_normal((200, 100)) * 0.1).astype(F32)
    view = base[:, ::2]                                          # 10000 elements, not contiguous
    p, q = fo.Parameter(view), fo.Parameter(np.ascontiguousarray(view))
    a, b = fo.Adam([p], state_dtype="int8"), fo.Adam([q], state_dtype="int8")
    for _ in range(3):
        g = (rng.standard_normal(view.shape) * 0.01).astype(F32)
        p.grad, q.grad = g, g.copy()
        a.step()
        b.step()
    assert np.shares_memory(p.data, base) and np.array_equal(p.data, q.data)


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
def test_checkpoint_round_trip_is_bit_exact(state_dtype):
    rng = np.random.default_rng(8)
    shapes = [(100, 80), (50,)]
    p0 = [(rng.standard_normal(s) * 0.1).astype(F32) for s in shapes]
    grads = [[(rng.standard_normal(s) * 0.01).astype(F32) for s in shapes] for _ in range(6)]
    ps = [fo.Parameter(x.copy()) for x in p0]
    opt = fo.AdamW(ps, lr=1e-3, state_dtype=state_dtype)
    for gs in grads[:3]:
        for p, g in zip(ps, gs):
            p.grad = g
        opt.step()
    buf = io.BytesIO()
    fo.save(opt.state_dict(), buf)
    buf.seek(0)
    saved = fo.load(buf)
    qs = [fo.Parameter(p.data.copy()) for p in ps]
    opt2 = fo.AdamW(qs, lr=1e-3, state_dtype=state_dtype)
    opt2.load_state_dict(saved)
    for gs in grads[3:]:
        for p, q, g in zip(ps, qs, gs):
            p.grad, q.grad = g, g.copy()
        opt.step()
        opt2.step()
    for p, q in zip(ps, qs):
        assert np.array_equal(p.data, q.data)
        for k, v in opt.state[p].items():
            assert np.array_equal(v, opt2.state[q][k]), k


def test_loading_state_of_the_wrong_kind_is_a_clear_error():
    rng = np.random.default_rng(9)
    p = fo.Parameter((rng.standard_normal((100, 80)) * 0.1).astype(F32))
    states = {}
    for sd in ("float32", "bfloat16", "int8"):
        q = fo.Parameter(p.data.copy())
        o = fo.Adam([q], state_dtype=sd)
        q.grad = np.ones_like(q.data)
        o.step()
        states[sd] = o.state_dict()
    for have in ("float32", "bfloat16", "int8"):
        for saved in ("float32", "bfloat16", "int8"):
            if have == saved:
                continue
            q = fo.Parameter(p.data.copy())
            o = fo.Adam([q], state_dtype=have)
            with pytest.raises(ValueError, match=f"state_dtype='{saved}'"):
                o.load_state_dict(copy.deepcopy(states[saved]))
            assert not o.state


# ------------------------------------------------------------------------------------------ errors
def test_option_errors():
    p = fo.Parameter(np.zeros(5000, F32))
    with pytest.raises(ValueError, match="Invalid state_dtype value: 'float16'"):
        fo.Adam([p], state_dtype="float16")
    with pytest.raises(ValueError, match="amsgrad is not supported with state_dtype='int8'"):
        o = fo.Adam([p], amsgrad=True, state_dtype="int8")
        p.grad = np.ones_like(p.data)
        o.step()
    d = fo.Parameter(np.zeros(5000))
    o = fo.Adam([d], state_dtype="bfloat16")
    d.grad = np.ones_like(d.data)
    with pytest.raises(TypeError, match="needs float32 parameters"):
        o.step()


@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
def test_rejected_step_changes_nothing(state_dtype):
    rng = np.random.default_rng(10)
    ps = _params(rng, [(100, 60), (5000,)])
    opt = fo.Adam(ps, state_dtype=state_dtype)
    for p in ps:
        p.grad = np.ones_like(p.data)
    opt.step()
    before = [p.data.copy() for p in ps], copy.deepcopy({i: opt.state[p] for i, p in enumerate(ps)})
    ps[1].grad = np.ones(5000, np.float64)
    with pytest.raises(TypeError):
        opt.step()
    ps[1].grad = np.ones(5000, F32)
    st = opt.state[ps[0]]
    key = "state1" if state_dtype == "int8" else "exp_avg"
    good = st[key]
    st[key] = good.reshape(-1)
    with pytest.raises(ValueError, match=f"state '{key}' is"):
        opt.step()
    st[key] = good
    ps[1].grad = ps[0].data.reshape(-1)[:5000]                  # aliases another param's data
    with pytest.raises(ValueError, match="shares memory"):
        opt.step()
    for i, p in enumerate(ps):
        assert np.array_equal(p.data, before[0][i])
        for k, v in before[1][i].items():
            assert np.array_equal(opt.state[p][k], v)


def _trained(state_dtype, shapes=((100, 80), (50,))):
    rng = np.random.default_rng(12)
    ps = [fo.Parameter((rng.standard_normal(s) * 0.1).astype(F32)) for s in shapes]
    opt = fo.Adam(ps, lr=1e-3, state_dtype=state_dtype)
    for _ in range(3):
        for p in ps:
            p.grad = (rng.standard_normal(p.data.shape) * 0.01).astype(F32)
        opt.step()
    return ps, opt


@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
def test_convert_to_torch_layout_is_exact_and_loads(state_dtype, recwarn):
    ps, opt = _trained(state_dtype)
    sd = fo.io.convert_state(opt.state_dict(), "float32")
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]    # decoding loses nothing
    for i, p in enumerate(ps):
        m, v = _decoded(opt, p)
        assert sd["state"][i]["exp_avg"].dtype == F32
        assert np.array_equal(sd["state"][i]["exp_avg"], m) and np.array_equal(sd["state"][i]["exp_avg_sq"], v)
    qs = [fo.Parameter(p.data.copy()) for p in ps]
    plain = fo.Adam(qs, lr=1e-3)
    plain.load_state_dict(sd)
    assert plain.state[qs[0]]["step"] == 3


def test_convert_to_compressed_warns_and_loads():
    ps, opt = _trained("float32")
    with pytest.warns(UserWarning, match="lossy"):
        sd = fo.io.convert_state(opt.state_dict(), "int8")
    st = sd["state"][0]
    q1, a1 = L.quantize_blockwise(opt.state[ps[0]]["exp_avg"], L.dynamic_map(True))
    assert np.array_equal(st["state1"], q1) and np.array_equal(st["absmax1"], a1)
    assert sd["state"][1]["exp_avg"].dtype == F32                           # 50 elements: stays float32
    qs = [fo.Parameter(p.data.copy()) for p in ps]
    o8 = fo.Adam(qs, lr=1e-3, state_dtype="int8")
    o8.load_state_dict(sd)
    with pytest.warns(UserWarning, match="lossy"):
        sb = fo.io.convert_state(opt.state_dict(), "bfloat16")
    assert np.array_equal(sb["state"][0]["exp_avg"].ravel(),
                          L.bf16_bits_nearest(opt.state[ps[0]]["exp_avg"].ravel()))
    with pytest.raises(ValueError, match="Invalid state_dtype"):
        fo.io.convert_state(opt.state_dict(), "int4")
