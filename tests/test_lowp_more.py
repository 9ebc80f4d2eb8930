"""Compressed state (issue 14, item 2) for Lion (exp_avg) and SGD-momentum (momentum_buffer): state_dtype="bfloat16"
and "int8" (csrc/lowp_state.c).

The fused step is checked bit for bit against its definition — decode the state, run fastopt's float32 optimizer,
encode again — for both modes and 1 and 2 threads; then against the NumPy reference within rounding, rejected calls,
state_dict round trips, wrong-kind loads and fastopt.io.convert_state in both directions."""
from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest

import fastopt as fo
from fastopt import _lowp

import reference as R
import reference_lowp as L
from helpers import runs_on_each_isa

F32 = np.float32
SIZES = (10000, 300, 2 * 4096 + 17)  # 300 < MIN_8BIT_SIZE: float32 in int8 mode
ALGOS = {
    "lion": (fo.Lion, "exp_avg", dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1), R.ref_lion),
    "sgd": (fo.SGD, "momentum_buffer", dict(lr=1e-2, momentum=0.9, dampening=0.1, weight_decay=0.01), R.ref_sgd),
    "sgd_nesterov": (fo.SGD, "momentum_buffer", dict(lr=1e-2, momentum=0.9, nesterov=True, maximize=True), R.ref_sgd),
}
MODES = ("bfloat16", "int8")


def _params(rng, sizes=SIZES):
    return [fo.Parameter(rng.standard_normal(n).astype(F32)) for n in sizes]


def _grads(rng, params):
    for p in params:
        p.grad = (rng.standard_normal(p.data.shape) * 10.0 ** rng.integers(-4, 1, p.data.shape)).astype(F32)


def _stepped(algo, mode, seed, steps, sizes=SIZES):
    """``algo``'s optimizer with ``state_dtype=mode`` over new parameters (rng seeded with seed), after ``steps``
    steps on random gradients: (state key, rng, params, optimizer)."""
    cls, key, hyper, _ = ALGOS[algo]
    rng = np.random.default_rng(seed)
    ps = _params(rng, sizes)
    opt = cls(ps, state_dtype=mode, **hyper)
    for _ in range(steps):
        _grads(rng, ps)
        opt.step()
    return key, rng, ps, opt


def _decode(st, key):
    if "state1" in st:
        return _lowp.dequantize(st["state1"], st["absmax1"], st["qmap1"])
    m = st[key]
    return (m.astype(np.uint32) << 16).view(F32) if m.dtype == np.uint16 else m.copy()


def _encode(m, mode, key):
    if mode == "bfloat16":
        return {key: _lowp._bf16_bits(m)}
    if m.size < _lowp.MIN_8BIT_SIZE:
        return {key: m}
    q, a = _lowp.quantize(m, True)
    return {"state1": q, "absmax1": a}


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("algo", list(ALGOS))
def test_decode_float32_step_encode_bit_for_bit(algo, mode, threads):
    cls, key, hyper, _ = ALGOS[algo]
    rng = np.random.default_rng(1)
    ps = _params(rng)
    opt = cls(ps, state_dtype=mode, **hyper)
    refs = [fo.Parameter(p.data.copy()) for p in ps]
    ref = cls(refs, **hyper)
    old = fo.get_num_threads()
    try:
        fo.set_num_threads(threads)
        for t in range(4):
            _grads(rng, ps)
            for p, r in zip(ps, refs):
                r.data[...] = p.data
                r.grad = p.grad.copy()
                if opt.state.get(p):
                    ref.state[r] = {key: _decode(opt.state[p], key)}
            opt.step()
            ref.step()
            for p, r in zip(ps, refs):
                assert np.array_equal(_bits(p.data), _bits(r.data)), (t, p.data.size)
                st = opt.state[p]
                assert st["step"] == t + 1
                for k, v in _encode(ref.state[r][key], mode, key).items():
                    assert np.array_equal(_bits(st[k]), _bits(v)), (t, k, p.data.size)
    finally:
        fo.set_num_threads(old)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("algo", list(ALGOS))
def test_numpy_reference_within_rounding(algo, mode):
    cls, key, hyper, ref_fn = ALGOS[algo]
    rng = np.random.default_rng(2)
    ps = _params(rng)
    opt = cls(ps, state_dtype=mode, **hyper)
    ref_p = [p.data.copy() for p in ps]
    ref_st = [{} for _ in ps]
    for _ in range(5):
        _grads(rng, ps)
        for p, rp, rs in zip(ps, ref_p, ref_st):
            st = opt.state.get(p)
            if st:  # restart the reference from the kernel's state and param: one step's rounding is compared
                rs.clear()
                rs.update({k: v.copy() for k, v in st.items() if k in (key, "state1", "absmax1")})
                rp[...] = p.data
            L.ref_compressed_one_step(ref_fn, key, rp, p.grad.copy(), rs, mode, **hyper)
        opt.step()
        for p, rp, rs in zip(ps, ref_p, ref_st):
            if algo == "lion":  # sign(c) may flip where c rounds to ~0 differently (separate multiply-add)
                assert np.mean(p.data != rp) < 1e-3
            else:
                np.testing.assert_allclose(p.data, rp, rtol=1e-5, atol=1e-7)
            m_k = _decode(opt.state[p], key)
            m_r = L.decode_one(rs, key, L.dynamic_map(True))
            scale = np.max(np.abs(m_r)) if m_r.size else 1.0
            tol = 2.0 ** -7 if mode == "bfloat16" else 0.02  # one bf16 ulp; the 8-bit map's coarsest step
            assert np.max(np.abs(m_k - m_r) / np.maximum(np.abs(m_r), scale * 1e-3)) < tol


def test_int8_small_tensors_keep_float32():
    rng = np.random.default_rng(3)
    ps = _params(rng, (4095, 4096))
    opt = fo.SGD(ps, lr=0.1, momentum=0.5, state_dtype="int8")
    _grads(rng, ps)
    opt.step()
    assert sorted(opt.state[ps[0]]) == ["momentum_buffer", "step"]
    assert opt.state[ps[0]]["momentum_buffer"].dtype == F32
    assert sorted(opt.state[ps[1]]) == ["absmax1", "qmap1", "state1", "step"]
    assert np.array_equal(opt.state[ps[1]]["qmap1"], L.dynamic_map(True))


def _snapshot(ps, opt):
    return [p.data.copy() for p in ps], copy.deepcopy({id(p): opt.state.get(p, {}) for p in ps})


def _same(a, b):
    (pa, sa), (pb, sb) = a, b
    assert all(np.array_equal(_bits(x), _bits(y)) for x, y in zip(pa, pb))
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].keys() == sb[k].keys()
        for kk in sa[k]:
            x, y = sa[k][kk], sb[k][kk]
            assert np.array_equal(_bits(x), _bits(y)) if isinstance(x, np.ndarray) else x == y


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("algo", ["lion", "sgd"])
def test_rejected_calls_change_nothing(algo, mode):
    key, rng, ps, opt = _stepped(algo, mode, 4, 1)
    _grads(rng, ps)
    before = _snapshot(ps, opt)
    good = ps[2].grad
    ps[2].grad = np.zeros(5, F32)
    with pytest.raises(ValueError, match=re.escape("param_groups[0]['params'][2]")):
        opt.step()
    _same(before, _snapshot(ps, opt))
    ps[2].grad = good
    k = "state1" if mode == "int8" else key
    saved = opt.state[ps[0]][k]
    opt.state[ps[0]][k] = saved.astype(F32) if mode == "int8" else saved[:-1]
    with pytest.raises(ValueError, match=re.escape(f"param_groups[0]['params'][0]: state '{k}'")):
        opt.step()
    opt.state[ps[0]][k] = saved
    _same(before, _snapshot(ps, opt))
    ro = saved.copy()
    ro.setflags(write=False)
    opt.state[ps[0]][k] = ro
    with pytest.raises(ValueError, match="read-only"):
        opt.step()
    opt.state[ps[0]][k] = saved
    _same(before, _snapshot(ps, opt))


def test_constructor_errors():
    p = [fo.Parameter(np.zeros(10, F32))]
    with pytest.raises(ValueError, match="momentum > 0"):
        fo.SGD(p, lr=0.1, state_dtype="bfloat16")
    with pytest.raises(ValueError, match="momentum > 0"):
        fo.SGD([{"params": p, "momentum": 0.0}], lr=0.1, momentum=0.9, state_dtype="int8")
    with pytest.raises(ValueError, match="state_dtype"):
        fo.Lion(p, state_dtype="float16")
    pytest.importorskip("ml_dtypes")
    import ml_dtypes
    q = [fo.Parameter(np.zeros(10, ml_dtypes.bfloat16))]
    with pytest.raises(ValueError, match="float32 parameters"):
        fo.Lion(q, state_dtype="bfloat16")
    opt = fo.SGD(p, lr=0.1, momentum=0.9, state_dtype="int8")
    opt.param_groups[0]["momentum"] = 0.0
    p[0].grad = np.ones(10, F32)
    with pytest.raises(ValueError, match="momentum > 0"):
        opt.step()
    assert not opt.state.get(p[0]) and np.all(p[0].data == 0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("algo", ["lion", "sgd"])
def test_state_dict_round_trip_bit_exact(algo, mode):
    cls, _, hyper, _ = ALGOS[algo]
    key, rng, ps, opt = _stepped(algo, mode, 5, 2)
    sd = copy.deepcopy(opt.state_dict())
    qs = [fo.Parameter(p.data.copy()) for p in ps]
    opt2 = cls(qs, state_dtype=mode, **hyper)
    opt2.load_state_dict(sd)
    for p, q in zip(ps, qs):
        assert opt.state[p].keys() == opt2.state[q].keys()
    _grads(rng, ps)
    for p, q in zip(ps, qs):
        q.grad = p.grad.copy()
    opt.step()
    opt2.step()
    for p, q in zip(ps, qs):
        assert np.array_equal(_bits(p.data), _bits(q.data))
        for k, v in opt.state[p].items():
            assert np.array_equal(_bits(v), _bits(opt2.state[q][k])) if isinstance(v, np.ndarray) else v == opt2.state[q][k]


@pytest.mark.parametrize("algo", ["lion", "sgd"])
def test_wrong_kind_load_is_refused(algo):
    cls, _, hyper, _ = ALGOS[algo]
    key, rng, ps, opt8 = _stepped(algo, "int8", 6, 1, (10000, 8209))
    sd = opt8.state_dict()
    for other in ("bfloat16", "float32"):
        qs = [fo.Parameter(p.data.copy()) for p in ps]
        o = cls(qs, state_dtype=other, **hyper)
        with pytest.raises(ValueError, match="state_dtype='int8'.*convert_state"):
            o.load_state_dict(sd)
        assert not any(o.state.get(q) for q in qs)


@pytest.mark.parametrize("algo", ["lion", "sgd"])
def test_convert_state_both_ways(algo):
    cls, _, hyper, _ = ALGOS[algo]
    key, rng, ps, opt8 = _stepped(algo, "int8", 7, 1)
    sd8 = opt8.state_dict()
    sd32 = fo.io.convert_state(sd8, "float32")
    for i, p in enumerate(ps):
        st = sd32["state"][i]
        assert sorted(st) == [key] and st[key].dtype == F32  # torch's layout: no step count
        assert np.array_equal(st[key], _decode(opt8.state[p], key))
    qs = [fo.Parameter(p.data.copy()) for p in ps]
    opt32 = cls(qs, **hyper)
    opt32.load_state_dict(sd32)
    with pytest.warns(UserWarning, match="lossy"):
        back = fo.io.convert_state(sd32, "int8")
    for i, p in enumerate(ps):
        assert back["state"][i]["step"] == 0  # the float32 layout keeps no count
        st8, got = opt8.state[p], back["state"][i]
        assert sorted(got) == sorted(st8)
        if "state1" in st8:  # re-quantizing decoded codes: the same codes; absmax is recomputed from the decoded
            assert np.array_equal(st8["state1"], got["state1"])  # block max (the signed map's -1 end is -0.99...)
            np.testing.assert_allclose(got["absmax1"], st8["absmax1"], rtol=0.02)
            assert np.array_equal(got["qmap1"], st8["qmap1"])
        else:
            assert np.array_equal(_bits(st8[key]), _bits(got[key]))
    with pytest.warns(UserWarning, match="lossy"):
        sd16 = fo.io.convert_state(sd32, "bfloat16")
    opt16 = cls([fo.Parameter(p.data.copy()) for p in ps], state_dtype="bfloat16", **hyper)
    opt16.load_state_dict(sd16)
    for i in range(len(ps)):
        assert np.array_equal(sd16["state"][i][key], _lowp._bf16_bits(sd32["state"][i][key]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = fo.io.convert_state(sd16, "float32")  # decoding is exact: no warning
    for i in range(len(ps)):
        assert np.array_equal(_lowp._bf16_bits(again["state"][i][key]), sd16["state"][i][key])


_ISA_SCRIPT = r"""
import hashlib, numpy as np, fastopt as fo
h = hashlib.sha256()
for cls, kw in ((fo.Lion, dict(lr=1e-3, weight_decay=0.1)), (fo.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True))):
    for mode in ("bfloat16", "int8"):
        rng = np.random.default_rng(8)
        ps = [fo.Parameter(rng.standard_normal(n).astype(np.float32)) for n in (10000, 300, 8209)]
        opt = cls(ps, state_dtype=mode, **kw)
        for _ in range(3):
            for p in ps:
                p.grad = (rng.standard_normal(p.data.shape) * 10.0 ** rng.integers(-6, 2, p.data.shape)).astype(np.float32)
            opt.step()
        for p in ps:
            h.update(p.data.tobytes())
            for k, v in sorted(opt.state[p].items()):
                h.update(k.encode() + (v.tobytes() if isinstance(v, np.ndarray) else str(v).encode()))
print(h.hexdigest())
"""


def test_same_bits_on_every_isa_variant(tmp_path):
    digests = {isa: out[0] for isa, out in runs_on_each_isa(_ISA_SCRIPT, tmp_path).items()}
    assert len(set(digests.values())) == 1, digests


@pytest.mark.parametrize("mode", MODES)
def test_strided_parameter_updates_like_contiguous(mode):
    rng = np.random.default_rng(9)
    base = rng.standard_normal((200, 60)).astype(F32)
    strided = fo.Parameter(base.copy()[:, ::2])  # a non-contiguous view (6000 elements: int8 blocks)
    dense = fo.Parameter(np.ascontiguousarray(strided.data))
    assert not strided.data.flags.c_contiguous
    a = fo.Lion([strided], lr=1e-3, state_dtype=mode)
    b = fo.Lion([dense], lr=1e-3, state_dtype=mode)
    for _ in range(3):
        g = rng.standard_normal(dense.data.shape).astype(F32)
        strided.grad, dense.grad = g, g.copy()
        a.step()
        b.step()
    assert np.array_equal(_bits(np.ascontiguousarray(strided.data)), _bits(dense.data))
    for k, v in a.state[strided].items():
        assert np.array_equal(_bits(v), _bits(b.state[dense][k])) if isinstance(v, np.ndarray) else v == b.state[dense][k]
