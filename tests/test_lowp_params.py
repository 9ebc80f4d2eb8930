"""float16 / bfloat16 parameters with float32 state for Adam / AdamW (issue 14, item 1): bits against float32 Adam
(fastopt's own float32 kernel, whose arithmetic the 16-bit kernel must repeat exactly) followed by the rounding of
tests/reference_lowp.py and of NumPy / ml_dtypes' own casts; master weights; seeded stochastic rounding; thread-count
determinism; state_dict round trips; errors that leave everything as it was."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import fastopt as fo

import reference_lowp as L
from helpers import rejected, snapshot

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
DTYPES = [pytest.param(F16, id="float16"), pytest.param(BF16, id="bfloat16")]
OPTS = [pytest.param(fo.Adam, dict(lr=1e-2), id="adam"),
        pytest.param(fo.Adam, dict(lr=1e-2, weight_decay=0.1, maximize=True), id="adam-l2-max"),
        pytest.param(fo.AdamW, dict(lr=1e-2, betas=(0.3, 0.9)), id="adamw")]
SHAPES = [(7,), (33, 65), (70001,)]  # 70001: several work items (FO_CHUNK) and a ragged tail


def _grads(rng, shape, steps):
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(steps)]


def _round(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 -> dtype, nearest-even: NumPy's float16 cast; bfloat16 through reference_lowp (checked against
    ml_dtypes' own cast in test_reference_rounding_is_ml_dtypes)."""
    if dtype == F16:
        return x.astype(F16)
    return L.bf16_bits_nearest(x).view(BF16)


def test_reference_rounding_is_ml_dtypes(rng):
    x = np.concatenate([rng.standard_normal(10000).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 10000),
                        np.float32([0, -0.0, np.inf, -np.inf, 3.4e38, 1e-45])]).astype(np.float32)
    assert np.array_equal(L.bf16_bits_nearest(x), x.astype(BF16).view(np.uint16))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,kw", OPTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("grad_f32", [False, True], ids=["grad16", "grad32"])
def test_nearest_matches_float32_adam_then_rounding(dtype, cls, kw, shape, grad_f32, rng):
    """Without master: each step is float32 Adam from the widened parameter, rounded to nearest-even."""
    p = fo.Parameter(rng.standard_normal(shape).astype(np.float32).astype(dtype))
    ref = fo.Parameter(p.data.astype(np.float32))
    opt, ropt = cls([p], **kw), cls([ref], **kw)
    for g in _grads(rng, shape, 4):
        g16 = g.astype(dtype)
        p.grad = g if grad_f32 else g16
        ref.grad = g if grad_f32 else g16.astype(np.float32)
        ref.data[...] = p.data.astype(np.float32)  # exact widening
        opt.step()
        ropt.step()
        assert np.array_equal(p.data.view(np.uint16), _round(ref.data, dtype).view(np.uint16))
        assert np.array_equal(p.data.view(np.uint16), ref.data.astype(dtype).view(np.uint16))  # the library cast
        for key in ("exp_avg", "exp_avg_sq"):
            assert opt.state[p][key].dtype == np.float32
            assert np.array_equal(opt.state[p][key].view(np.uint32), ropt.state[ref][key].view(np.uint32))
    assert opt.state[p]["step"] == 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,kw", OPTS)
def test_master_weights_follow_float32_adam(dtype, cls, kw, rng):
    shape = (5000,)
    init = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    p = fo.Parameter(init.copy())
    ref = fo.Parameter(init.astype(np.float32))
    opt, ropt = cls([p], master_weights=True, **kw), cls([ref], **kw)
    for g in _grads(rng, shape, 20):
        p.grad = g.astype(dtype)
        ref.grad = p.grad.astype(np.float32)
        opt.step()
        ropt.step()
        assert np.array_equal(opt.state[p]["master"].view(np.uint32), ref.data.view(np.uint32))
        assert np.array_equal(p.data.view(np.uint16), _round(ref.data, dtype).view(np.uint16))


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _random16(seed: int, step: int, tensor: int, n: int) -> np.ndarray:
    """The kernel's random bits (csrc/lowp_params.c): the top 16 bits of a splitmix64 hash of (seed, step, tensor
    index, element index)."""
    with np.errstate(over="ignore"):
        base = _splitmix(np.uint64(seed) + np.uint64(step) * GOLDEN) ^ np.uint64(tensor)
        base = _splitmix(base)
        idx = np.arange(1, n + 1, dtype=np.uint64)
        return (_splitmix(base + idx * GOLDEN) >> np.uint64(48)).astype(np.uint16)


@pytest.mark.parametrize("seed", [0, 12345])
def test_stochastic_rounding_matches_reference(seed, rng):
    shapes = [(300,), (70001,), (17, 3)]
    ps = [fo.Parameter(rng.standard_normal(s).astype(np.float32).astype(BF16)) for s in shapes]
    refs = [fo.Parameter(p.data.astype(np.float32)) for p in ps]
    opt = fo.AdamW([{"params": ps[:2]}, {"params": ps[2:]}], lr=1e-3, rounding="stochastic", seed=seed)
    ropt = fo.AdamW(refs, lr=1e-3)
    for step in range(1, 4):
        for p, r in zip(ps, refs):
            p.grad = rng.standard_normal(p.shape).astype(np.float32).astype(BF16)
            r.grad = p.grad.astype(np.float32)
            r.data[...] = p.data.astype(np.float32)
        opt.step()
        ropt.step()
        for t, (p, r) in enumerate(zip(ps, refs)):
            bits = L.bf16_bits_stochastic(r.data.ravel(), _random16(seed, step, t, r.size))
            assert np.array_equal(p.data.view(np.uint16).ravel(), bits)


def test_stochastic_rounding_is_unbiased_and_seeded(rng):
    """Stochastic rounding of a tiny update keeps its mean (nearest rounding would drop it) and depends on seed."""
    x = np.full(200000, 1.0, np.float32).astype(BF16)
    out = {}
    for seed in (1, 2):
        p = fo.Parameter(x.copy())
        opt = fo.Adam([p], lr=1e-4, rounding="stochastic", seed=seed)
        p.grad = np.ones(p.shape, BF16)
        opt.step()  # the float32 result is ~1 - 1e-4, between bf16 neighbours 1 - 2^-8 and 1
        out[seed] = p.data.astype(np.float32)
    mean = float(out[1].astype(np.float64).mean())
    assert abs(mean - (1 - 1e-4)) < 2e-5
    assert not np.array_equal(out[1], out[2])
    p = fo.Parameter(x.copy())  # nearest: every element stays at 1
    p.grad = np.ones(p.shape, BF16)
    o = fo.Adam([p], lr=1e-4)
    o.step()
    assert np.all(p.data.astype(np.float32) == 1)


@pytest.mark.parametrize("kw", [dict(), dict(master_weights=True), dict(rounding="stochastic", seed=7)],
                         ids=["nearest", "master", "stochastic"])
def test_same_bits_for_any_thread_count(kw, rng):
    shape = (300001,)
    init = rng.standard_normal(shape).astype(np.float32).astype(BF16)
    grads = [g.astype(BF16) for g in _grads(rng, shape, 3)]
    results = []
    old = fo.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fo.set_num_threads(threads)
            p = fo.Parameter(init.copy())
            opt = fo.AdamW([p], lr=1e-3, **kw)
            for g in grads:
                p.grad = g
                opt.step()
            results.append(snapshot(opt))
    finally:
        fo.set_num_threads(old)
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("kw", [dict(), dict(master_weights=True)], ids=["plain", "master"])
def test_strided_param_and_grad(kw, rng):
    base = rng.standard_normal((40, 30)).astype(np.float32).astype(BF16)
    p = fo.Parameter(base.copy()[:, ::3])
    q = fo.Parameter(np.ascontiguousarray(p.data))
    o1, o2 = fo.Adam([p], lr=1e-2, **kw), fo.Adam([q], lr=1e-2, **kw)
    for g in _grads(rng, (40, 10), 3):
        wide = np.zeros((40, 20), BF16)
        wide[:, ::2] = g.astype(BF16)
        p.grad, q.grad = wide[:, ::2], g.astype(BF16)
        o1.step()
        o2.step()
    assert np.array_equal(p.data.view(np.uint16), q.data.view(np.uint16))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("master", [False, True])
def test_state_dict_round_trip(dtype, master, rng):
    shape = (50, 3)
    init = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    grads = [g.astype(dtype) for g in _grads(rng, shape, 6)]
    p = fo.Parameter(init.copy())
    opt = fo.AdamW([p], lr=1e-2, master_weights=master)
    for g in grads[:3]:
        p.grad = g
        opt.step()
    sd = copy.deepcopy(opt.state_dict())
    saved = p.data.copy()
    assert sorted(sd["state"][0]) == sorted(["exp_avg", "exp_avg_sq", "step"] + (["master"] if master else []))
    for g in grads[3:]:
        p.grad = g
        opt.step()
    q = fo.Parameter(saved)
    opt2 = fo.AdamW([q], lr=1e-2, master_weights=master)
    opt2.load_state_dict(sd)
    for g in grads[3:]:
        q.grad = g
        opt2.step()
    assert snapshot(opt) == snapshot(opt2)
    if master:  # state without the master copy does not fit a master-weights optimizer
        bad = copy.deepcopy(sd)
        del bad["state"][0]["master"]
        opt3 = fo.AdamW([fo.Parameter(saved.copy())], master_weights=True)
        with pytest.raises(ValueError, match=r"expected \['exp_avg', 'exp_avg_sq', 'master', 'step'\]"):
            opt3.load_state_dict(bad)


def test_construction_errors():
    f32 = fo.Parameter(np.zeros(3, np.float32))
    h = fo.Parameter(np.zeros(3, F16))
    b = fo.Parameter(np.zeros(3, BF16))
    with pytest.raises(ValueError, match="master_weights=True is for float16 or bfloat16 parameters"):
        fo.Adam([f32], master_weights=True)
    with pytest.raises(ValueError, match="rounding='stochastic' is for float16 or bfloat16"):
        fo.Adam([f32], rounding="stochastic")
    with pytest.raises(ValueError, match=r"rounding='stochastic' is for bfloat16 parameters, got float16"):
        fo.Adam([h], rounding="stochastic")
    with pytest.raises(ValueError, match="without master weights"):
        fo.Adam([b], rounding="stochastic", master_weights=True)
    with pytest.raises(ValueError, match="Invalid rounding value"):
        fo.Adam([b], rounding="up")
    with pytest.raises(ValueError, match="Invalid seed value"):
        fo.Adam([b], rounding="stochastic", seed=-1)
    with pytest.raises(TypeError, match="master_weights must be a bool"):
        fo.Adam([b], master_weights=1)
    with pytest.raises(TypeError, match=r"\['params'\]\[0\]: dtype float32: an optimizer over float16/bfloat16"):
        fo.Adam([f32, b])
    with pytest.raises(ValueError, match="state_dtype='int8' is for float32 parameters"):
        fo.Adam([b], state_dtype="int8")
    with pytest.raises(TypeError, match="float32 or float64"):
        fo.Parameter(np.zeros(3, np.int16))
    fo.SGD([h])  # constructing is fine; stepping SGD on float16 is refused with the usual dtype error
    opt = fo.SGD([h], lr=0.1)
    h.grad = np.ones(3, F16)
    with pytest.raises(TypeError, match="dtype float16 is not supported"):
        opt.step()


def _trained(rng, **kw):
    ps = [fo.Parameter(rng.standard_normal(s).astype(np.float32).astype(BF16)) for s in ((5,), (4, 3))]
    opt = fo.AdamW([{"params": ps[:1]}, {"params": ps[1:]}], lr=1e-2, **kw)
    for _ in range(2):
        for p in ps:
            p.grad = rng.standard_normal(p.shape).astype(np.float32).astype(BF16)
        opt.step()
    for p in ps:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    return opt, ps


def _spoil_grad_dtype(opt, ps):
    ps[1].grad = ps[1].grad.astype(np.float64)


def _spoil_grad_f16(opt, ps):
    ps[1].grad = ps[1].grad.astype(F16)


def _spoil_grad_shape(opt, ps):
    ps[1].grad = np.zeros((3, 4), np.float32)


def _spoil_param_dtype(opt, ps):
    ps[1].data = ps[1].data.astype(np.float32)


def _spoil_readonly(opt, ps):
    ps[1].data.setflags(write=False)


def _spoil_state_dtype(opt, ps):
    opt.state[ps[1]]["exp_avg"] = opt.state[ps[1]]["exp_avg"].astype(np.float64)


def _spoil_state_key(opt, ps):
    del opt.state[ps[1]]["exp_avg_sq"]


def _spoil_alias(opt, ps):
    opt.state[ps[1]]["exp_avg_sq"] = opt.state[ps[1]]["exp_avg"]


def _spoil_amsgrad(opt, ps):
    opt.param_groups[1]["amsgrad"] = True


_AT = r"param_groups\[1\]\['params'\]\[0\]: "
SPOILERS = [(_spoil_grad_dtype, TypeError, _AT + "grad is float64, param is bfloat16"),
            (_spoil_grad_f16, TypeError, _AT + "grad is float16, param is bfloat16"),
            (_spoil_grad_shape, ValueError, _AT + "grad has shape"),
            (_spoil_param_dtype, TypeError, _AT + "dtype float32: this optimizer was built for"),
            (_spoil_readonly, ValueError, _AT + "data is read-only"),
            (_spoil_state_dtype, ValueError, _AT + "state 'exp_avg' is float64"),
            (_spoil_state_key, ValueError, _AT + "state has keys"),
            (_spoil_alias, ValueError, "share memory|shares memory|overlap"),
            (_spoil_amsgrad, ValueError, r"param_groups\[1\]: amsgrad is not supported")]


@pytest.mark.parametrize("spoil,exc,regex", SPOILERS, ids=[s[0].__name__ for s in SPOILERS])
@pytest.mark.parametrize("kw", [dict(), dict(master_weights=True)], ids=["plain", "master"])
def test_rejected_step_changes_nothing(spoil, exc, regex, kw, rng):
    opt, ps = _trained(rng, **kw)
    spoil(opt, ps)
    with rejected(opt, exc, regex):
        opt.step()


@pytest.mark.parametrize("dtype", DTYPES)
def test_rounding_edge_cases_through_master(dtype, rng):
    """lr = 0 and zero gradients leave the master as it is, so the parameter is the kernel's rounding of any float32
    we put there: ties, subnormals, overflow to Inf, signed zeros — against NumPy's float16 / ml_dtypes' cast."""
    info = ml_dtypes.finfo(dtype)
    tiny, big = np.float32(info.smallest_subnormal), np.float32(info.max)
    spacing = np.float32(np.spacing(np.float32(1).astype(dtype)).astype(np.float32))
    special = np.float32([0, -0.0, np.inf, -np.inf, 1 + spacing / 2, 1 + 3 * spacing / 2, -(1 + spacing / 2),
                          tiny / 2, tiny, tiny * 1.5, tiny * 2.5, -tiny / 2, big, -big, big * 1.001, 3e38, 65520,
                          65519.996, 1e-45, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08])
    scales = 10.0 ** rng.integers(-12, 6, 20000)
    x = np.concatenate([special, (rng.standard_normal(20000) * scales).astype(np.float32)]).astype(np.float32)
    p = fo.Parameter(np.zeros(x.shape, dtype))
    opt = fo.Adam([p], lr=0.0, master_weights=True)
    p.grad = np.zeros(x.shape, np.float32)
    opt.step()
    opt.state[p]["master"][...] = x
    opt.step()
    assert np.array_equal(opt.state[p]["master"].view(np.uint32), x.view(np.uint32))
    with np.errstate(over="ignore"):  # the reference cast of values beyond the format's range
        want = x.astype(dtype)
    assert np.array_equal(p.data.view(np.uint16), want.view(np.uint16))
