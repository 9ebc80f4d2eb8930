"""Gradient clipping: NumPy reference, torch parity, determinism, strided and read-only gradients, bad input."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import fastopt as fo
from fastopt.clip import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from helpers import assert_arrays_equal, num_threads, requires_openmp, runs_on_each_isa

NORMS = [2.0, 1.0, math.inf, -math.inf, 0.0, 3.0, 0.5, -1.5]
SIZES = [0, 1, 7, 8, 9, 65, 16385, 40000]


def ref_norm(arrays, p):
    """torch's definition in float64 NumPy: the p-norm of the per-array p-norms."""
    def vnorm(x, p):
        x = np.abs(np.asarray(x, np.float64).ravel())
        if p == 0:
            return float(np.count_nonzero(x))
        if p == math.inf:
            return float(np.max(x))
        if p == -math.inf:
            return float(np.min(x))
        with np.errstate(divide="ignore"):
            return float(np.sum(x ** p) ** (1.0 / p))
    if not arrays:
        return 0.0
    return vnorm(np.array([vnorm(a, p) for a in arrays]), p)


def make_params(rng, sizes, dtypes, strided=False):
    ps = []
    for i, n in enumerate(sizes):
        dt = dtypes[i % len(dtypes)]
        p = fo.Parameter(np.zeros(n, dt))
        g = rng.standard_normal(2 * n if strided else n).astype(dt)
        if n:
            g[rng.integers(0, n, size=max(1, n // 5)) * (2 if strided else 1)] = 0  # zeros for the 0-norm
        p.grad = g[::2] if strided else g
        ps.append(p)
    return ps


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("dtypes", [(np.float32,), (np.float64,), (np.float32, np.float64)])
@pytest.mark.parametrize("strided", [False, True])
def test_total_norm_against_reference(rng, p, dtypes, strided):
    sizes = [n for n in SIZES if n] if (p < 0 or math.isinf(p)) else SIZES
    ps = make_params(rng, sizes, dtypes, strided)
    grads = [q.grad for q in ps]
    got = get_total_norm(grads, p)
    assert isinstance(got, np.float64)
    np.testing.assert_allclose(got, ref_norm(grads, p), rtol=1e-12, atol=0)


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm", [0.5, 1e9])
def test_clip_grad_norm_against_reference(rng, p, dtype, max_norm):
    ps = make_params(rng, [5, 17, 20000] if p == math.inf else [5, 17, 0, 20000], (dtype,))
    ps.append(fo.Parameter(np.zeros(3, dtype)))  # grad None: skipped
    before = [q.grad.copy() for q in ps if q.grad is not None]
    total = clip_grad_norm_(ps, max_norm, p)
    ref_total = ref_norm(before, p)
    np.testing.assert_allclose(total, ref_total, rtol=1e-12)
    coef = min(max_norm / (float(total) + 1e-6), 1.0)
    for g0, q in zip(before, [q for q in ps if q.grad is not None]):
        assert q.grad.dtype == dtype
        np.testing.assert_array_equal(q.grad, g0 * dtype(coef))
    assert ps[-1].grad is None


def test_clip_examples_exact():
    w = fo.Parameter(np.zeros(2, np.float32))
    w.grad = np.array([3.0, 4.0], np.float32)
    assert clip_grad_norm_(w, 1.0) == 5.0
    np.testing.assert_allclose(w.grad, [0.6, 0.8], rtol=1e-6)
    assert get_total_norm([np.array([1.0, 0.0]), np.array([0.0, 0.0]), np.array([2.0])], 0) == 2.0
    assert get_total_norm([]) == 0.0
    assert get_total_norm(np.array([[1.0, -2.0]]), "inf") == 2.0


def test_nan_and_inf():
    a = np.array([1.0, np.nan, 2.0])
    for p in NORMS:
        assert math.isnan(get_total_norm([a, np.ones(2)], p)) or p == 0
    assert get_total_norm([a], 0) == 1.0  # one array with a non-zero element
    assert get_total_norm([np.array([np.nan, 0.0])], 0) == 1.0  # NaN counts as non-zero
    w = fo.Parameter(np.zeros(3))
    w.grad = a.copy()
    assert math.isnan(clip_grad_norm_(w, 1.0))
    assert np.isnan(w.grad).all()  # scaled by NaN, as torch does
    w.grad = np.array([np.inf, 1.0, 0.0])
    snapshot = w.grad.copy()
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(w, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(w.grad, snapshot)
    with pytest.raises(RuntimeError, match="non-finite"):
        get_total_norm([np.array([np.nan])], error_if_nonfinite=True)


def test_empty_array_without_identity_raises():
    for p in [math.inf, -math.inf, -2.0]:
        with pytest.raises(RuntimeError, match="empty"):
            get_total_norm([np.ones(2), np.zeros(0)], p)
    assert get_total_norm([np.zeros(0)], 2.0) == 0.0


def test_clip_grad_value(rng):
    ps = make_params(rng, [9, 40000], (np.float32, np.float64))
    ps[0].grad[3] = np.nan
    before = [q.grad.copy() for q in ps]
    clip_grad_value_(ps, 0.3)
    for g0, q in zip(before, ps):
        np.testing.assert_array_equal(q.grad, np.clip(g0, -g0.dtype.type(0.3), g0.dtype.type(0.3)))
    assert np.isnan(ps[0].grad[3])


@pytest.mark.parametrize("op", ["norm", "value", "with_norm"])
def test_strided_grads_clipped_in_place(rng, op):
    base = rng.standard_normal((6, 10)).astype(np.float32)
    w = fo.Parameter(np.zeros((6, 5), np.float32))
    w.grad = base[:, ::2]
    other = base[:, 1::2].copy()
    expect = w.grad.copy()
    if op == "norm":
        clip_grad_norm_(w, 0.1)
        expect *= np.float32(min(0.1 / (np.linalg.norm(expect.astype(np.float64)) + 1e-6), 1.0))
    elif op == "value":
        clip_grad_value_(w, 0.2)
        expect = np.clip(expect, np.float32(-0.2), np.float32(0.2))
    else:
        clip_grads_with_norm_(w, 1.0, 10.0)
        expect *= np.float32(1.0 / (10.0 + 1e-6))
    assert np.shares_memory(w.grad, base)
    np.testing.assert_array_equal(w.grad, expect)
    np.testing.assert_array_equal(base[:, 1::2], other)  # the interleaved elements are untouched


@pytest.mark.parametrize("call,expect", [
    (lambda ps: clip_grad_norm_(ps, 0.1), lambda gs: [g * (0.1 / (np.sqrt(sum(np.sum(x * x) for x in gs)) + 1e-6))
                                                      for g in gs]),
    (lambda ps: clip_grad_value_(ps, 0.1), lambda gs: [np.clip(g, -0.1, 0.1) for g in gs]),
    (lambda ps: clip_grads_with_norm_(ps, 0.1, 5.0), lambda gs: [g * (0.1 / (5.0 + 1e-6)) for g in gs]),
])
def test_readonly_grad_is_clipped_in_a_buffer_fastopt_owns_and_reuses(rng, call, expect):
    """A read-only gradient (np.asarray of a JAX array, a memory map) is clipped in a buffer fastopt owns: the
    caller's array is never written, .grad becomes the buffer, and the next read-only gradient of the same
    shape and dtype reuses it (no allocation per step)."""
    ps = make_params(rng, [10, 20], (np.float64,))
    for step in range(2):
        given = [q.grad.copy() for q in ps]
        ps[1].grad.flags.writeable = False
        caller = ps[1].grad
        want = expect(given)
        call(ps)
        assert caller.tobytes() == given[1].tobytes()                  # the read-only array is untouched
        assert ps[1].grad is not caller and ps[1].grad.flags.writeable
        if step == 0:
            owned = ps[1].grad
        else:
            assert ps[1].grad is owned                                 # the same buffer, reused
        for q, w in zip(ps, want):
            np.testing.assert_allclose(q.grad, w, rtol=1e-12, atol=0)
        ps[1].grad = rng.standard_normal(20)


def test_readonly_grad_not_copied_when_nothing_is_written(rng):
    ps = make_params(rng, [10], (np.float64,))
    ps[0].grad.flags.writeable = False
    g = ps[0].grad
    clip_grad_norm_(ps, max_norm=1e9)                                  # coefficient 1: nothing to write
    assert ps[0].grad is g


@pytest.mark.parametrize("call", [lambda ps: clip_grad_norm_(ps, 0.1), lambda ps: clip_grad_value_(ps, 0.1),
                                  lambda ps: clip_grads_with_norm_(ps, 0.1, 5.0)])
def test_grad_sharing_memory_with_a_param_rejected_nothing_changed(rng, call):
    ps = make_params(rng, [10, 20], (np.float64,))
    ps[0].grad = ps[0].data                                            # the grad IS the param
    before = [q.data.copy() for q in ps]
    with pytest.raises(ValueError, match=r"parameters\[0\] and parameters\[0\]\.grad share memory"):
        call(ps)
    for b, q in zip(before, ps):
        np.testing.assert_array_equal(q.data, b)


def test_shared_memory_grads_rejected(rng):
    a, b = fo.Parameter(np.zeros(4)), fo.Parameter(np.zeros(4))
    g = rng.standard_normal(4)
    a.grad = b.grad = g
    before = g.copy()
    with pytest.raises(ValueError, match="share memory"):
        clip_grad_norm_([a, b], 0.1)
    with pytest.raises(ValueError, match="share memory"):
        clip_grad_norm_([a, b], 1e9)  # no scaling needed: refused all the same
    b.grad = np.zeros(8)[::2]
    a.grad = b.grad.base[:4]
    with pytest.raises(ValueError, match="share memory"):
        clip_grad_value_([a, b], 0.1)
    np.testing.assert_array_equal(g, before)


def test_bad_arguments(rng):
    w = fo.Parameter(np.zeros(3))
    w.grad = np.ones(3)
    for kw, exc in [(dict(max_norm=-1.0), ValueError), (dict(max_norm=float("nan")), ValueError),
                    (dict(max_norm="1"), TypeError), (dict(max_norm=1.0, norm_type=float("nan")), ValueError),
                    (dict(max_norm=1.0, norm_type="two"), TypeError), (dict(max_norm=1.0, foreach=1), TypeError),
                    (dict(max_norm=1.0, error_if_nonfinite=None), TypeError)]:
        with pytest.raises(exc):
            clip_grad_norm_(w, **kw)
        np.testing.assert_array_equal(w.grad, np.ones(3))
    with pytest.raises(TypeError, match="ndarray"):
        clip_grad_norm_(np.ones(3), 1.0)
    with pytest.raises(TypeError, match=r"parameters\[1\]"):
        clip_grad_norm_([w, np.ones(3)], 1.0)
    with pytest.raises(ValueError):
        clip_grad_value_(w, -0.5)
    with pytest.raises(ValueError):
        clip_grads_with_norm_(w, 1.0, -2.0)
    w.grad = np.ones(3, np.int64)
    with pytest.raises(TypeError, match="float32 or float64"):
        clip_grad_norm_(w, 1.0)
    w.grad = np.ones(4)
    with pytest.raises(ValueError, match="shape"):
        clip_grad_norm_(w, 1.0)
    with pytest.raises(TypeError, match="Parameter"):
        get_total_norm([w])
    with pytest.raises(TypeError, match="float32 or float64"):
        get_total_norm([np.ones(3, np.float16)])
    for f in (True, False, None):
        w.grad = np.full(3, 2.0)
        assert clip_grad_norm_([w], 1.0, foreach=f) == np.sqrt(12.0)


def test_empty_generator_warns():
    with pytest.warns(UserWarning, match="empty generator"):
        assert clip_grad_norm_((p for p in []), 1.0) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clip_grad_norm_([], 1.0) == 0.0


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, -math.inf, 0.0, 3.0, 0.5])
def test_one_and_two_threads_bit_identical(p):
    requires_openmp()

    def run(threads):
        rng = np.random.default_rng(7)
        ps = [fo.Parameter(np.zeros(n, np.float32)) for n in (1_200_001, 5, 300_000)]
        for q in ps:
            q.grad = (rng.standard_normal(q.size) * 1e3).astype(np.float32)
        with num_threads(threads):
            total = clip_grad_norm_(ps, 1.0, p)
            clip_grad_value_(ps, 1e-4)
        return total, [q.grad.copy() for q in ps]

    t1, g1 = run(1)
    t2, g2 = run(2)
    assert t1.tobytes() == t2.tobytes()
    assert_arrays_equal(g1, g2)


# ---- torch parity -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm", [0.25, 1e6])
def test_clip_grad_norm_torch_parity(rng, p, dtype, max_norm):
    torch = pytest.importorskip("torch")
    sizes = [3, 1, 70, 20000, 5]
    ps = make_params(rng, sizes, (dtype,))
    tps = []
    for q in ps:
        t = torch.nn.Parameter(torch.zeros(q.size, dtype=torch.float32 if dtype == np.float32 else torch.float64))
        t.grad = torch.from_numpy(q.grad.copy())
        tps.append(t)
    # torch accumulates float32 in float32; we accumulate in double (see fastopt.clip)
    # (measured: torch float32 sums are off by up to ~2e-6 relative at 20000 elements; ours are exact to 1e-15)
    tol = (5e-6 if p in (2.0, 1.0, 0.0) or math.isinf(p) else 1e-5) if dtype == np.float32 else 1e-12
    assert get_total_norm([q.grad for q in ps], p) == pytest.approx(
        torch.nn.utils.get_total_norm([t.grad for t in tps], p).item(), rel=tol, abs=0)
    total = clip_grad_norm_(ps, max_norm, p)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, p)
    np.testing.assert_allclose(total, ttotal.double().item(), rtol=tol)
    for q, t in zip(ps, tps):
        np.testing.assert_allclose(q.grad, t.grad.numpy(), rtol=tol, atol=0)


def test_clip_grad_value_and_with_norm_torch_parity(rng):
    torch = pytest.importorskip("torch")
    ps = make_params(rng, [33, 7], (np.float32,))
    tps = []
    for q in ps:
        t = torch.nn.Parameter(torch.zeros(q.size))
        t.grad = torch.from_numpy(q.grad.copy())
        tps.append(t)
    clip_grad_value_(ps, 0.7)
    torch.nn.utils.clip_grad_value_(tps, 0.7)
    for q, t in zip(ps, tps):
        np.testing.assert_array_equal(q.grad, t.grad.numpy())
    clip_grads_with_norm_(ps, 0.5, 3.0)
    torch.nn.utils.clip_grads_with_norm_(tps, 0.5, torch.tensor(3.0))
    for q, t in zip(ps, tps):
        np.testing.assert_allclose(q.grad, t.grad.numpy(), rtol=2e-7)
    # NaN total scales to NaN in both
    clip_grads_with_norm_(ps, 0.5, float("nan"))
    torch.nn.utils.clip_grads_with_norm_(tps, 0.5, torch.tensor(float("nan")))
    for q, t in zip(ps, tps):
        assert np.isnan(q.grad).all() and torch.isnan(t.grad).all()


# ---- the one reduction (csrc/fo_sum.h) ------------------------------------------------------------------------

def _tree16(lanes):
    """fo_sum.h's fixed fold of 16 lanes: pairs, pairs of pairs, ..."""
    l = [float(v) for v in lanes]
    while len(l) > 1:
        l = [l[i] + l[i + 1] for i in range(0, len(l), 2)]
    return l[0]


def _fo_sum(values):
    """fastopt's one reduction written out in NumPy: items of SUM_CHUNK, element i of an item into lane
    i % SUM_LANES (each lane summed in element order), the lanes folded by the fixed tree, items added in order."""
    from fastopt import _kernels as K
    L, C = K.SUM_LANES, K.SUM_CHUNK
    assert L == 16 and C % L == 0
    total = 0.0
    for b in range(0, values.size, C):
        item = values[b:b + C]
        padded = np.zeros(-(-item.size // L) * L)
        padded[:item.size] = item
        lanes = np.zeros(L)
        for row in padded.reshape(-1, L):  # row by row: each lane in element order
            lanes = lanes + row
        total += _tree16(lanes)
    return total


@pytest.mark.parametrize("p", [2.0, 1.0, 0.0, 3.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norms_are_the_one_reduction_bit_for_bit(rng, p, dtype):
    from fastopt import _kernels as K
    sizes = [1, 15, 16, 17, 1000, K.SUM_CHUNK + 37, 2 * K.SUM_CHUNK]
    grads = [(rng.standard_normal(n) * 10).astype(dtype) for n in sizes]
    grads[3][::3] = 0
    t = K.grad_table(grads, False)
    try:
        K.grad_norm(t, p)
        norms = t.norms()
    finally:
        K.release_grad_table(t)
    for g, got in zip(grads, norms):
        x = np.abs(g.astype(np.float64))
        terms = {2.0: x * x, 1.0: x, 0.0: (x != 0).astype(np.float64)}.get(p)
        if terms is None:
            terms = np.array([math.pow(v, p) for v in x])
        s = _fo_sum(terms)
        want = math.sqrt(s) if p == 2.0 else s if p in (1.0, 0.0) else math.pow(s, 1.0 / p)
        assert got == want, (g.size, got, want)


def test_grad_table_is_cached_and_holds_no_gradient_after_release(rng):
    import weakref
    from fastopt import _kernels as K
    grads = [rng.standard_normal(n) for n in (5, 40000)]
    t = K.grad_table(grads, True)
    K.release_grad_table(t)
    fresh = [rng.standard_normal(n) for n in (5, 40000)]  # same layout, new arrays: the same table, rebound
    t2 = K.grad_table(fresh, False)
    assert t2 is t
    assert K.grad_norm(t2, 2.0) == float(get_total_norm(fresh))
    ref = weakref.ref(fresh[1])
    K.release_grad_table(t2)
    del fresh
    assert ref() is None  # the cached table keeps no gradient alive
    with pytest.raises(RuntimeError, match="released"):
        K.grad_norm(t2, 2.0)
    other = K.grad_table([rng.standard_normal(6), rng.standard_normal(3)], False)  # other sizes: a new table
    assert other is not t
    K.release_grad_table(other)
    with pytest.raises(TypeError, match="dtype"):  # a rebind checks as a new table does
        K.grad_table([np.zeros(5, np.int64), np.zeros(40000)], False)


# Every norm order and Adafactor's sums, in a subprocess per ISA variant (FASTOPT_ISA): the same bits for each.
_ISA_CHILD = """
import sys
import numpy as np
import fastopt as fo
from fastopt import _kernels as K
rng = np.random.default_rng(5)
out = {}
for dt in (np.float32, np.float64):
    gs = [(rng.standard_normal(n) * 3).astype(dt) for n in (1, 17, 4099, K.SUM_CHUNK + 5)]
    gs[2][::7] = 0
    for p in (2.0, 1.0, 0.0, float("inf"), float("-inf"), 3.0, 0.5):
        out[f"norm_{dt.__name__}_{p}"] = np.asarray(fo.clip.get_total_norm(gs, p))
    w = [fo.Parameter(rng.standard_normal(s).astype(dt)) for s in ((37, 300), (3, 20, 17), (50,))]
    opt = fo.Adafactor(w, weight_decay=0.1)
    for _ in range(3):
        for q in w:
            q.grad = rng.standard_normal(q.data.shape).astype(dt)
        opt.step()
    for j, q in enumerate(w):
        out[f"af_{dt.__name__}_{j}"] = q.data
        for k, v in opt.state[q].items():
            out[f"af_{dt.__name__}_{j}_{k}"] = np.asarray(v)
np.savez(sys.argv[1], **out)
"""


def test_every_norm_and_adafactor_same_bits_on_every_isa(tmp_path):
    runs = {isa: np.load(tmp_path / f"{isa}.npz")
            for isa in runs_on_each_isa(_ISA_CHILD, tmp_path, lambda isa: [tmp_path / f"{isa}.npz"])}
    first = runs["baseline"]
    for isa, got in runs.items():
        for key in first.files:
            assert got[key].tobytes() == first[key].tobytes(), (isa, key)


def test_concurrent_callers_never_share_a_cached_table(rng):
    """Threads clipping lists of the same layout at once: each gets its own table (a table in use is out of the
    cache), so every result is the serial one."""
    import threading
    sets = [[(rng.standard_normal(n) * (k + 1)).astype(np.float32) for n in (50_000, 7, 20_000)] for k in range(4)]
    want = [float(get_total_norm(gs)) for gs in sets]
    got: dict[int, list[float]] = {k: [] for k in range(4)}
    errors: list[BaseException] = []

    def work(k):
        try:
            for _ in range(200):
                got[k].append(float(get_total_norm(sets[k])))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        assert set(got[k]) == {want[k]}, k
