"""float16 / bfloat16 parameters with float32 state for Adam / AdamW (issue 14, item 1): bits against float32 Adam
(fastopt's own float32 kernel, whose arithmetic the 16-bit kernel must repeat exactly) followed by the rounding of
tests/reference_lowp.py and of NumPy / ml_dtypes' own casts; master weights; seeded stochastic rounding; thread-count
determinism; state_dict round trips; errors that leave everything as it was."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import fastopt as fo

import reference as R
import reference_lowp as L
from helpers import rejected, snapshot

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
DTYPES = [pytest.param(F16, id="float16"), pytest.param(BF16, id="bfloat16")]
OPTS = [pytest.param(fo.Adam, dict(lr=1e-2), R.ref_adam, id="adam"),
        pytest.param(fo.Adam, dict(lr=1e-2, weight_decay=0.1, maximize=True), R.ref_adam, id="adam-l2-max"),
        pytest.param(fo.AdamW, dict(lr=1e-2, betas=(0.3, 0.9)), R.ref_adamw, id="adamw")]
MORE = [pytest.param(fo.SGD, dict(lr=0.05), R.ref_sgd, id="sgd"),
        pytest.param(fo.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01), R.ref_sgd,
                     id="sgd-mom-damp-wd"),
        pytest.param(fo.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True), R.ref_sgd,
                     id="sgd-nesterov-max"),
        pytest.param(fo.RMSprop, dict(lr=1e-2), R.ref_rmsprop, id="rmsprop"),
        pytest.param(fo.RMSprop, dict(lr=1e-2, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.1),
                     R.ref_rmsprop, id="rmsprop-centered-mom-wd"),
        pytest.param(fo.RMSprop, dict(lr=1e-2, momentum=0.9, maximize=True), R.ref_rmsprop, id="rmsprop-mom-max"),
        pytest.param(fo.Lion, dict(lr=1e-3), R.ref_lion, id="lion"),
        pytest.param(fo.Lion, dict(lr=1e-3, betas=(0.5, 0.9), weight_decay=0.5, maximize=True), R.ref_lion,
                     id="lion-wd-max")]
ALL = OPTS + MORE
SOME = [pytest.param(fo.AdamW, dict(lr=1e-3), R.ref_adamw, id="adamw"), MORE[1], MORE[4], MORE[7]]
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


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _random16(seed: int, step: int, tensor: int, n: int) -> np.ndarray:
    """The kernel's random bits (csrc/lowp_params.c): element e takes bits [16 (e % 4), 16 (e % 4) + 16) of a
    splitmix64 hash of (seed, step, tensor index, e // 4)."""
    with np.errstate(over="ignore"):
        base = _splitmix(np.uint64(seed) + np.uint64(step) * GOLDEN) ^ np.uint64(tensor)
        base = _splitmix(base)
        quad = np.arange(1, (n + 3) // 4 + 1, dtype=np.uint64)
        h = _splitmix(base + quad * GOLDEN)
    e = np.arange(n)
    return ((h[e // 4] >> (np.uint64(16) * (e % 4).astype(np.uint64))) & np.uint64(0xFFFF)).astype(np.uint16)


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
    for cls in (fo.SGD, fo.RMSprop, fo.Lion):
        with pytest.raises(ValueError, match="master_weights=True is for float16 or bfloat16 parameters"):
            cls([f32], master_weights=True)
        with pytest.raises(ValueError, match=r"rounding='stochastic' is for bfloat16 parameters, got float16"):
            cls([h], rounding="stochastic")
        with pytest.raises(TypeError, match=r"\['params'\]\[0\]: dtype float32: an optimizer over float16/bfloat16"):
            cls([f32, b])
    fo.NAdam([h])  # constructing is fine; stepping an optimizer without a 16-bit kernel is the usual dtype error
    opt = fo.NAdam([h], lr=0.1)
    h.grad = np.ones(3, F16)
    with pytest.raises(TypeError, match="dtype float16 is not supported"):
        opt.step()


def _trained(rng, cls=fo.AdamW, **kw):
    kw = {"lr": 1e-2, **kw}
    ps = [fo.Parameter(rng.standard_normal(s).astype(np.float32).astype(BF16)) for s in ((5,), (4, 3))]
    opt = cls([{"params": ps[:1]}, {"params": ps[1:]}], **kw)
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
# the spoilers every 16-bit optimizer refuses alike (grads and params); each list adds its state ones
_COMMON_SPOILERS = [(_spoil_grad_dtype, TypeError, _AT + "grad is float64, param is bfloat16"),
                    (_spoil_grad_f16, TypeError, _AT + "grad is float16, param is bfloat16"),
                    (_spoil_grad_shape, ValueError, _AT + "grad has shape"),
                    (_spoil_param_dtype, TypeError, _AT + "dtype float32: this optimizer was built for"),
                    (_spoil_readonly, ValueError, _AT + "data is read-only")]
SPOILERS = _COMMON_SPOILERS + [
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


def _rounded_from_master(x: np.ndarray, dtype) -> tuple:
    """A ``dtype`` Parameter whose float32 master copy holds x after a step with lr = 0: the parameter is then
    the kernel's rounding of x (and the master copy x itself)."""
    p = fo.Parameter(np.zeros(x.shape, dtype))
    opt = fo.Adam([p], lr=0.0, master_weights=True)
    p.grad = np.zeros(x.shape, np.float32)
    opt.step()
    opt.state[p]["master"][...] = x
    opt.step()
    return p, opt


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
    p, opt = _rounded_from_master(x, dtype)
    assert np.array_equal(opt.state[p]["master"].view(np.uint32), x.view(np.uint32))
    with np.errstate(over="ignore"):  # the reference cast of values beyond the format's range
        want = x.astype(dtype)
    assert np.array_equal(p.data.view(np.uint16), want.view(np.uint16))


# ---------------------------------------------------------------------------------------------------------------
# SGD, RMSprop and Lion on float16 / bfloat16 parameters (csrc/lowp_params.c runs their float32 kernels' loops)
# ---------------------------------------------------------------------------------------------------------------
def _f32_keys(opt, p):
    return sorted(k for k in opt.state[p] if k != "step")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,kw,ref", ALL)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("grad_f32", [False, True], ids=["grad16", "grad32"])
def test_nearest_matches_float32_kernel_then_rounding(dtype, cls, kw, ref, shape, grad_f32, rng):
    """Without master: each step is the float32 kernel on the widened parameter, rounded to nearest-even: bits
    against fastopt's float32 optimizer and NumPy's / ml_dtypes' cast, state bits equal."""
    p = fo.Parameter(rng.standard_normal(shape).astype(np.float32).astype(dtype))
    r32 = fo.Parameter(p.data.astype(np.float32))
    opt, ropt = cls([p], **kw), cls([r32], **kw)
    for g in _grads(rng, shape, 4):
        g16 = g.astype(dtype)
        p.grad = g if grad_f32 else g16
        r32.grad = g if grad_f32 else g16.astype(np.float32)
        r32.data[...] = p.data.astype(np.float32)
        opt.step()
        ropt.step()
        assert np.array_equal(p.data.view(np.uint16), _round(r32.data, dtype).view(np.uint16))
        with np.errstate(over="ignore"):
            assert np.array_equal(p.data.view(np.uint16), r32.data.astype(dtype).view(np.uint16))
        assert _f32_keys(opt, p) == sorted(k for k in ropt.state[r32] if k != "step")
        for key in _f32_keys(opt, p):
            assert opt.state[p][key].dtype == np.float32
            assert np.array_equal(opt.state[p][key].view(np.uint32), ropt.state[r32][key].view(np.uint32))
    assert opt.state[p]["step"] == 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,kw,ref", ALL)
def test_against_numpy_reference(dtype, cls, kw, ref, rng):
    """reference_lowp.ref_lowp_step (tests/reference.py's float32 rule, then the rounding): the parameter within one
    16-bit rounding step of it (the reference is unfused: its float32 result can sit across a rounding boundary),
    almost always equal."""
    shape = (3000,)
    kind = dtype.name
    p = fo.Parameter(rng.standard_normal(shape).astype(np.float32).astype(dtype))
    opt = cls([p], **kw)
    hyper = {k: v for k, v in kw.items()}
    for g in _grads(rng, shape, 5):
        p.grad = g.astype(dtype)
        bits = p.data.view(np.uint16).copy()
        state = {k: copy.copy(v) for k, v in opt.state[p].items()} if p in opt.state else {}
        want = L.ref_lowp_step(ref, bits, p.grad, state, kind, **hyper)
        opt.step()
        got = L.widen(p.data.view(np.uint16), kind)
        wide = L.widen(want, kind)
        ulp = np.spacing(np.abs(wide).astype(dtype)).astype(np.float32)
        assert np.all(np.abs(got - wide) <= ulp)
        assert np.mean(p.data.view(np.uint16) == want) > 0.99
        for key in _f32_keys(opt, p):
            np.testing.assert_allclose(opt.state[p][key], state[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,kw,ref", ALL)
def test_master_weights_follow_float32_kernel(dtype, cls, kw, ref, rng):
    shape = (5000,)
    init = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    p = fo.Parameter(init.copy())
    r32 = fo.Parameter(init.astype(np.float32))
    opt, ropt = cls([p], master_weights=True, **kw), cls([r32], **kw)
    for g in _grads(rng, shape, 12):
        p.grad = g.astype(dtype)
        r32.grad = p.grad.astype(np.float32)
        opt.step()
        ropt.step()
        assert np.array_equal(opt.state[p]["master"].view(np.uint32), r32.data.view(np.uint32))
        assert np.array_equal(p.data.view(np.uint16), _round(r32.data, dtype).view(np.uint16))


@pytest.mark.parametrize("seed", [0, 12345])
@pytest.mark.parametrize("cls,kw,ref", SOME)
def test_stochastic_rounding_matches_reference(seed, cls, kw, ref, rng):
    shapes = [(300,), (70001,), (17, 3)]
    ps = [fo.Parameter(rng.standard_normal(s).astype(np.float32).astype(BF16)) for s in shapes]
    refs = [fo.Parameter(p.data.astype(np.float32)) for p in ps]
    opt = cls([{"params": ps[:2]}, {"params": ps[2:]}], rounding="stochastic", seed=seed, **kw)
    ropt = cls(refs, **kw)
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


@pytest.mark.parametrize("kw", [dict(), dict(master_weights=True), dict(rounding="stochastic", seed=3)],
                         ids=["nearest", "master", "stochastic"])
@pytest.mark.parametrize("cls,okw,ref", SOME)
def test_same_bits_for_any_thread_count(kw, cls, okw, ref, rng):
    shape = (300001,)
    init = rng.standard_normal(shape).astype(np.float32).astype(BF16)
    grads = [g.astype(BF16) for g in _grads(rng, shape, 3)]
    results = []
    old = fo.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fo.set_num_threads(threads)
            p = fo.Parameter(init.copy())
            opt = cls([p], **okw, **kw)
            for g in grads:
                p.grad = g
                opt.step()
            results.append(snapshot(opt))
    finally:
        fo.set_num_threads(old)
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("master", [False, True], ids=["plain", "master"])
@pytest.mark.parametrize("cls,kw,ref", [OPTS[0], MORE[0], MORE[2], MORE[4], MORE[7]])
def test_strided_param_and_grad(master, dtype, cls, kw, ref, rng):
    base = rng.standard_normal((40, 30)).astype(np.float32).astype(dtype)
    p = fo.Parameter(base.copy()[:, ::3])
    q = fo.Parameter(np.ascontiguousarray(p.data))
    o1, o2 = cls([p], master_weights=master, **kw), cls([q], master_weights=master, **kw)
    for g in _grads(rng, (40, 10), 3):
        wide = np.zeros((40, 20), dtype)
        wide[:, ::2] = g.astype(dtype)
        p.grad, q.grad = wide[:, ::2], g.astype(dtype)
        o1.step()
        o2.step()
    assert np.array_equal(p.data.view(np.uint16), q.data.view(np.uint16))
    assert not p.data.flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("master", [False, True])
@pytest.mark.parametrize("cls,kw,ref", [OPTS[2], MORE[0], MORE[1], MORE[4], MORE[7]])
def test_state_dict_round_trip(dtype, master, cls, kw, ref, rng):
    shape = (50, 3)
    init = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    grads = [g.astype(dtype) for g in _grads(rng, shape, 6)]
    p = fo.Parameter(init.copy())
    opt = cls([p], master_weights=master, **kw)
    for g in grads[:3]:
        p.grad = g
        opt.step()
    sd = copy.deepcopy(opt.state_dict())
    saved = p.data.copy()
    f32 = cls([fo.Parameter(init.astype(np.float32))], **kw)
    f32.param_groups[0]["params"][0].grad = grads[0].astype(np.float32)
    f32.step()
    want = set(f32.state_dict()["state"].get(0, {})) | {"step"} | ({"master"} if master else set())
    assert set(sd["state"][0]) == want
    for g in grads[3:]:
        p.grad = g
        opt.step()
    q = fo.Parameter(saved)
    opt2 = cls([q], master_weights=master, **kw)
    opt2.load_state_dict(sd)
    for g in grads[3:]:
        q.grad = g
        opt2.step()
    assert snapshot(opt) == snapshot(opt2)
    bad = copy.deepcopy(sd)
    bad["state"][0]["extra"] = np.zeros(shape, np.float32)
    opt3 = cls([fo.Parameter(saved.copy())], master_weights=master, **kw)
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[0\]: state has keys"):
        opt3.load_state_dict(bad)


def test_sgd_momentum_buffer_starts_at_the_gradient(rng):
    """As torch: the first step's buffer is the gradient itself (widened), not (1 - dampening) * g."""
    p = fo.Parameter(rng.standard_normal(100).astype(np.float32).astype(BF16))
    opt = fo.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    p.grad = rng.standard_normal(100).astype(np.float32).astype(BF16)
    opt.step()
    assert np.array_equal(opt.state[p]["momentum_buffer"], p.grad.astype(np.float32))


def _spoil_state_more(opt, ps):
    st = opt.state[ps[1]]
    key = sorted(k for k in st if k != "step")[0]
    st[key] = st[key].astype(np.float64)


def _spoil_alias_more(opt, ps):
    st = opt.state[ps[1]]
    keys = sorted(k for k in st if k != "step")
    st[keys[0]] = ps[1].grad


def _spoil_nesterov(opt, ps):
    opt.param_groups[1]["momentum"] = 0.0


MORE_SPOILERS = _COMMON_SPOILERS + [
                 (_spoil_state_more, ValueError, _AT + "state '.*' is float64"),
                 (_spoil_alias_more, ValueError, "share memory|shares memory|overlap"),
                 (_spoil_nesterov, ValueError, _AT + "state has keys")]


@pytest.mark.parametrize("spoil,exc,regex", MORE_SPOILERS, ids=[s[0].__name__ for s in MORE_SPOILERS])
@pytest.mark.parametrize("master", [False, True], ids=["plain", "master"])
@pytest.mark.parametrize("cls,kw,ref", [MORE[1], MORE[4], MORE[7]])
def test_more_rejected_step_changes_nothing(spoil, exc, regex, master, cls, kw, ref, rng):
    opt, ps = _trained(rng, cls, master_weights=master, **kw)
    if spoil is _spoil_nesterov:  # a group option that changes the state layout
        if cls is fo.Lion:
            pytest.skip("Lion's state does not depend on its options")
        if cls is fo.RMSprop:
            spoil = lambda o, ps: o.param_groups[1].update(centered=False)  # noqa: E731
    spoil(opt, ps)
    with rejected(opt, exc, regex):
        opt.step()


def _f16_bits_widened(h: np.ndarray) -> np.ndarray:
    """float16 bits -> float32 bits on the integers: a NaN keeps its payload and its signalling bit, a subnormal
    becomes the normal float32 of the same value (the kernel's exact widening)."""
    h = h.astype(np.uint32)
    sign, e, m = (h & 0x8000) << 16, (h >> 10) & 0x1F, h & 0x3FF
    normal = sign | ((e + 112) << 23) | (m << 13)
    special = sign | 0x7F800000 | (m << 13)
    sub = (m.astype(np.float32) * np.float32(2.0 ** -24)).view(np.uint32) | sign
    return np.where(e == 31, special, np.where(e == 0, sub, normal)).astype(np.uint32)


SPECIAL16 = {"float16": [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x7C01, 0xFC01,
                         0x7D55, 0x7E00, 0xFE00, 0x7FFF, 0x3C00, 0x3555],
             "bfloat16": [0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x7F7F, 0x7F80, 0xFF80, 0x7F81, 0xFF81,
                          0x7FA5, 0x7FC0, 0xFFC0, 0x7FFF, 0x3F80, 0x3EAB]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [17, 1000], ids=["tail", "vector"])
def test_widening_keeps_every_bit(dtype, n, rng):
    """SGD's new momentum buffer is the gradient itself, so it shows the widening bit for bit: signalling and quiet
    NaNs with their payloads, infinities, subnormals and signed zeros (F16C's vcvtph2ps sets a signalling NaN's quiet
    bit; the kernel clears it again)."""
    special = np.array(SPECIAL16[dtype.name], np.uint16)
    bits = np.concatenate([special, rng.integers(0, 1 << 16, n, dtype=np.uint16)])[:max(n, special.size)]
    p = fo.Parameter(np.zeros(bits.shape, dtype))
    opt = fo.SGD([p], lr=0.0, momentum=0.5)
    p.grad = bits.view(dtype)
    opt.step()
    want = _f16_bits_widened(bits) if dtype == F16 else bits.astype(np.uint32) << 16
    assert np.array_equal(opt.state[p]["momentum_buffer"].view(np.uint32), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rounding_of_nan_payloads_through_master(dtype, rng):
    """A NaN in the float32 result: float16 takes 0x7E00 with the NaN's sign (whatever the payload, as the scalar
    encoder; vcvtps2ph would keep the payload's top bits); bfloat16 keeps the sign and top payload, made quiet."""
    u = np.concatenate([np.uint32([0x7F800001, 0xFF800001, 0x7FC00000, 0xFFFFFFFF, 0x7FA00000, 0x7F812345,
                                   0x7FBFFFFF]), (rng.integers(1, 1 << 23, 300) | 0x7F800000).astype(np.uint32)])
    u[200:] |= np.uint32(0x80000000)
    x = u.view(np.float32)
    p, opt = _rounded_from_master(x, dtype)
    sign = ((u >> 16) & 0x8000).astype(np.uint16)
    want = sign | np.uint16(0x7E00) if dtype == F16 else ((u >> 16) | 0x40).astype(np.uint16)
    assert np.array_equal(p.data.view(np.uint16), want)


ISA_CHILD = """
import sys
sys.path[:0] = [sys.argv[2]]
import numpy as np, ml_dtypes
import fastopt as fo
from fastopt import _kernels as K
out = {}
cases = [("adam", fo.AdamW, dict(lr=1e-2, weight_decay=0.1)), ("sgd", fo.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
         ("rmsprop", fo.RMSprop, dict(lr=1e-2, centered=True, momentum=0.5)), ("lion", fo.Lion, dict(lr=1e-3))]
special = np.array(%r, np.uint16)
for name, cls, kw in cases:
    for dt in (np.float16, ml_dtypes.bfloat16):
        for mode in ({}, {"master_weights": True}, {"rounding": "stochastic", "seed": 5}):
            if "rounding" in mode and dt is np.float16:
                continue
            rng = np.random.default_rng(1)
            base = rng.standard_normal(4100).astype(np.float32).astype(dt)
            ps = [fo.Parameter(base[1:]), fo.Parameter(rng.standard_normal(37).astype(np.float32).astype(dt))]
            opt = cls(ps, **kw, **mode)
            for k in range(3):
                for j, p in enumerate(ps):
                    g = rng.standard_normal(p.shape).astype(np.float32)
                    if j == 1:
                        g = g.astype(dt)
                        g.view(np.uint16)[:special.size] = special
                    p.grad = g
                opt.step()
            key = f"{name}_{np.dtype(dt).name}_{sorted(mode)}"
            for j, p in enumerate(ps):
                out[f"{key}_{j}"] = p.data.view(np.uint16).copy()
                for s, v in opt.state[p].items():
                    out[f"{key}_{j}_{s}"] = np.asarray(v)
np.savez(sys.argv[1], **out)
print(K.isa())
"""


def test_every_isa_variant_gives_identical_bits(tmp_path):
    """The baseline, AVX2 (+F16C) and AVX-512 (+F16C) variants of the 16-bit kernels (FASTOPT_ISA) give the same
    bytes for every optimizer and mode, special values in the gradients included."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(fo.__file__)))
    child = ISA_CHILD % (SPECIAL16["float16"] + SPECIAL16["bfloat16"],)
    runs = {}
    for isa in ("baseline", "avx2", "avx512"):
        env = {**os.environ, "FASTOPT_ISA": isa}
        path = tmp_path / f"{isa}.npz"
        res = subprocess.run([sys.executable, "-c", child, str(path), root], env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr
        if res.stdout.split()[-1] == isa:
            runs[isa] = np.load(path)
    assert "baseline" in runs
    if len(runs) < 2:
        pytest.skip("this CPU has only the baseline variant")
    first = runs["baseline"]
    for isa, got in runs.items():
        assert sorted(got.files) == sorted(first.files)
        for key in first.files:
            assert got[key].tobytes() == first[key].tobytes(), (isa, key)
