"""AdEMAMix, LAMB, LARS and Lookahead beyond what the registry tests cover: LAMB's and LARS's per-tensor trust
ratios on matrices and multi-chunk tensors against the NumPy reference (LARS adapts only arrays of more than one
dimension), the same bits for any thread count, exclusion from adaptation through param groups, the functional
forms, and Lookahead's wrapper behaviour (slow weights, state_dict round trip, schedulers, closures, bad input).
Parity with pytorch-optimizer: tests/test_parity_beyond_more.py."""
from __future__ import annotations

import io

import numpy as np
import pytest

import fastopt as fo
from helpers import assert_close, num_threads, rejected, requires_openmp, step_with_reference

F = fo.functional
# matrices, a 3-D block, vectors, a scalar, an empty array, and a tensor of several work items (FO_CHUNK = 16384)
SHAPES = [(7, 5), (3, 4, 2), (33,), (), (0, 3), (130, 300)]


def _against_reference(name, kw, dtype, rng, strided=False, steps=4):
    def make(shape):
        a = rng.standard_normal(shape).astype(dtype)
        if strided and a.ndim >= 1 and a.size:
            a = np.repeat(a, 2, axis=-1)[..., ::2]  # a non-contiguous view with the same values
        return a

    params = [fo.Parameter(make(s)) for s in SHAPES]
    opt = getattr(fo, name)(params, **kw)
    ref, states = step_with_reference(opt, name, kw, params,
                                      lambda: [rng.standard_normal(s).astype(dtype) for s in SHAPES], steps)
    for j, (p, r, st) in enumerate(zip(params, ref, states)):
        assert_close(p.data, r, dtype, f"{name} param {j} shape {SHAPES[j]}")
        for key, value in st.items():
            if isinstance(value, np.ndarray):
                assert_close(opt.state[p][key], value, dtype, f"{name} state {key} of param {j}")
    return opt, params


TRUST_CASES = [
    ("LAMB", dict(lr=1e-2)),
    ("LAMB", dict(lr=1e-2, weight_decay=0.1, weight_decouple=False)),
    ("LAMB", dict(lr=0.5, weight_decay=0.5)),  # weight norms above 10: the clamp
    ("LARS", dict(lr=0.1)),
    ("LARS", dict(lr=0.1, momentum=0.0, weight_decay=0.1)),  # no momentum buffer
    ("LARS", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, trust_coefficient=0.1, maximize=True)),
    ("AdEMAMix", dict(lr=1e-2, t_alpha_beta3=2.0)),
]


@pytest.mark.parametrize("name,kw", TRUST_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TRUST_CASES)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strided", [False, True])
def test_matrices_match_reference(name, kw, dtype, strided, rng):
    _against_reference(name, kw, dtype, rng, strided=strided)


def test_lars_adapts_only_matrices(rng):
    """A vector takes plain momentum SGD (no trust ratio, no decay); a matrix's step is scaled by its trust ratio."""
    w = fo.Parameter(np.full((2, 2), 2.0))
    b = fo.Parameter(np.full(4, 2.0))
    opt = fo.LARS([w, b], lr=1.0, momentum=0.0, weight_decay=0.0, trust_coefficient=0.1)
    w.grad, b.grad = np.full((2, 2), 0.5), np.full(4, 0.5)
    opt.step()
    np.testing.assert_array_equal(w.data, np.full((2, 2), 2.0 - 0.1 * 4.0 / 1.0 * 0.5))
    np.testing.assert_array_equal(b.data, np.full(4, 1.5))


def test_exclusion_by_group(rng):
    """LAMB's adam=True and LARS's adapt=False groups take a trust ratio of 1: the same as the plain rule."""
    a = rng.standard_normal((6, 5))
    g = rng.standard_normal((6, 5))
    p1, p2 = fo.Parameter(a.copy()), fo.Parameter(a.copy())
    lamb = fo.LAMB([{"params": [p1]}, {"params": [p2], "adam": True}], lr=0.1)
    p1.grad, p2.grad = g, g
    lamb.step()
    m, v = 0.1 * g, (0.001 * g) * g
    np.testing.assert_allclose(p2.data, a - 0.1 / 0.1 * m / (np.sqrt(v) + 1e-6), rtol=1e-14)
    assert not np.allclose(p1.data, p2.data)
    q1, q2 = fo.Parameter(a.copy()), fo.Parameter(a.copy())
    lars = fo.LARS([{"params": [q1]}, {"params": [q2], "adapt": False}], lr=0.1, momentum=0.0, weight_decay=0.5)
    q1.grad, q2.grad = g, g
    lars.step()
    np.testing.assert_allclose(q2.data, a - 0.1 * g, rtol=0, atol=1e-15)  # one fma vs two roundings
    assert not np.allclose(q1.data, q2.data)


@pytest.mark.parametrize("name,kw", [("LAMB", dict(lr=1e-2, weight_decay=0.1)),
                                     ("LARS", dict(lr=0.1, weight_decay=0.01)),
                                     ("AdEMAMix", dict(lr=1e-2, t_alpha_beta3=5.0))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_for_any_thread_count(name, kw, dtype):
    """Norms over tensors of many work items, on 1, 2 and 3 threads: the same bits."""
    requires_openmp()
    shapes = [(700, 1000), (3, 5), (200_000,), (64, 64, 3)]
    results = []
    for threads in (1, 2, 3):
        rng = np.random.default_rng(7)
        params = [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
        opt = getattr(fo, name)(params, **kw)
        with num_threads(threads):
            for _ in range(3):
                for p in params:
                    p.grad = rng.standard_normal(p.data.shape).astype(dtype)
                opt.step()
        results.append([p.data.tobytes() for p in params])
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functional_forms_match_classes(dtype, rng):
    shapes = [(5, 3), (13,), (0,)]
    data = [rng.standard_normal(s).astype(dtype) for s in shapes]
    cases = [
        ("AdEMAMix", dict(lr=0.01, t_alpha_beta3=3.0, weight_decay=0.1),
         lambda a: ([np.zeros_like(x) for x in a], [np.zeros_like(x) for x in a], [np.zeros_like(x) for x in a],
                    [0] * len(a)),
         lambda p, g, s: F.ademamix(p, g, *s, lr=0.01, beta1=0.9, beta2=0.999, beta3=0.9999, alpha=5.0,
                                    t_alpha_beta3=3.0, weight_decay=0.1, weight_decouple=False, fixed_decay=False,
                                    eps=1e-8, maximize=False)),
        ("LAMB", dict(lr=0.01, weight_decay=0.1, maximize=True),
         lambda a: ([np.zeros_like(x) for x in a], [np.zeros_like(x) for x in a], [0] * len(a)),
         lambda p, g, s: F.lamb(p, g, *s, lr=0.01, beta1=0.9, beta2=0.999, weight_decay=0.1, weight_decouple=True,
                                fixed_decay=False, grad_averaging=True, adam=False, eps=1e-6, maximize=True)),
        ("LARS", dict(lr=0.1, weight_decay=0.1, nesterov=True),
         lambda a: ([np.zeros_like(x) for x in a],),
         lambda p, g, s: F.lars(p, g, s[0], lr=0.1, weight_decay=0.1, momentum=0.9, dampening=0.0,
                                trust_coefficient=1e-3, nesterov=True, maximize=False)),
        ("LARS", dict(lr=0.1, momentum=0.0),
         lambda a: (None,),
         lambda p, g, s: F.lars(p, g, s[0], lr=0.1, weight_decay=0.0, momentum=0.0, dampening=0.0,
                                trust_coefficient=1e-3, nesterov=False, maximize=False)),
    ]
    for name, kw, state, fn in cases:
        params = [fo.Parameter(d.copy()) for d in data]
        opt = getattr(fo, name)(params, **kw)
        arrays = [d.copy() for d in data]
        st = state(arrays)
        for _ in range(5):
            grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
            fn(arrays, grads, st)
        for p, a in zip(params, arrays):
            np.testing.assert_array_equal(p.data, a, err_msg=name)


def test_functional_rejects_before_writing(rng):
    p = [rng.standard_normal((4, 3))]
    m, v = [np.zeros((4, 3))], [np.zeros((4, 3), np.float32)]  # wrong dtype
    steps = [0]
    before = p[0].copy()
    with pytest.raises(ValueError, match="exp_avg_sq"):
        F.lamb(p, [np.ones((4, 3))], m, v, steps, lr=0.1, beta1=0.9, beta2=0.999, weight_decay=0.0,
               weight_decouple=True, fixed_decay=False, grad_averaging=True, adam=False, eps=1e-6, maximize=False)
    np.testing.assert_array_equal(p[0], before)
    assert steps == [0] and not m[0].any()


# ---- Lookahead -----------------------------------------------------------------------------------------------

def _ref_lookahead(data, grads_per_step, lr, k, alpha):
    """fastopt's SGD as the fast optimizer, with Lookahead's slow-weight update written in NumPy: every k steps
    p = lerp(p, slow, 1 - alpha) (torch's lerp), then slow = p."""
    from reference import _lerp

    params = [fo.Parameter(d.copy()) for d in data]
    sgd = fo.SGD(params, lr=lr)
    slow = [d.copy() for d in data]
    for t, grads in enumerate(grads_per_step, 1):
        for p, g in zip(params, grads):
            p.grad = g
        sgd.step()
        if t % k == 0:
            for p, s in zip(params, slow):
                p.data[...] = _lerp(p.data, s, 1 - alpha)
                s[...] = p.data
    return [p.data for p in params], slow


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,alpha", [(5, 0.5), (2, 0.8), (1, 0.3), (3, 0.0), (3, 1.0)])
def test_lookahead_matches_reference(dtype, k, alpha, rng):
    shapes = [(7, 3), (11,), (0,)]
    data = [rng.standard_normal(s).astype(dtype) for s in shapes]
    params = [fo.Parameter(d.copy()) for d in data]
    params[0] = fo.Parameter(np.repeat(data[0], 2, axis=1)[:, ::2])  # strided: updated through a scratch copy
    la = fo.Lookahead(fo.SGD(params, lr=0.1), k=k, alpha=alpha)
    all_grads = []
    for _ in range(11):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        all_grads.append(grads)
        for p, g in zip(params, grads):
            p.grad = g
        la.step()
    ref_p, ref_slow = _ref_lookahead(data, all_grads, 0.1, k, alpha)
    for p, r, s in zip(params, ref_p, ref_slow):  # the kernel's lerp is torch's fma; NumPy's rounds twice
        assert_close(p.data, r, dtype, "fast weights")
        assert_close(la.state[p]["slow_params"], s, dtype, "slow weights")


def test_lookahead_reuses_its_update_plan_only_while_the_arrays_are_the_same(rng):
    """After a full slow-weight update the next ones run the group's plan (checked in C) while the parameter and
    slow arrays are the same objects; a replaced array sends the update to the full path, which checks everything
    again and plans anew."""
    params = [fo.Parameter(rng.standard_normal(s)) for s in [(6,), (3, 4)]]
    la = fo.Lookahead(fo.SGD(params, lr=0.1), k=1, alpha=0.5)
    expect = [p.data.copy() for p in params]
    slow = [p.data.copy() for p in params]

    def step():
        grads = [rng.standard_normal(p.data.shape) for p in params]
        for p, g, e, s in zip(params, grads, expect, slow):
            p.grad = g
            e -= 0.1 * g
            e += 0.5 * (s - e)  # k=1: lerp toward the slow weights after every step, then slow = p
            s[...] = e
        la.step()
        for p, e, s in zip(params, expect, slow):
            np.testing.assert_allclose(p.data, e, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(la.state[p]["slow_params"], s, rtol=1e-12, atol=1e-15)

    step()
    plans = la._plans[0][2]
    assert plans.runs == 0  # the first update ran the full path and made the plan
    step()
    assert la._plans[0][2] is plans and plans.runs == 1  # the same arrays: the plan ran
    la.state[params[1]]["slow_params"] = la.state[params[1]]["slow_params"].copy()
    step()
    assert la._plans[0][2] is not plans  # a new slow array: the full path, then a new plan
    plans = la._plans[0][2]
    params[0].data = params[0].data.copy()
    step()
    assert la._plans[0][2] is not plans and plans.runs == 0  # a new parameter array: the same
    # a slow array that overlaps another parameter is refused by the new table, before anything is written
    la.state[params[0]]["slow_params"] = params[1].data.reshape(-1)[:6]
    before = [p.data.copy() for p in params]
    with pytest.raises(ValueError, match="overlap|share"):
        la._update(0, la.param_groups[0])
    assert all(np.array_equal(b, p.data) for b, p in zip(before, params))


def _lookahead_run(seed=3):
    rng = np.random.default_rng(seed)
    w = fo.Parameter(rng.standard_normal((4, 5)))
    b = fo.Parameter(rng.standard_normal(5).astype(np.float32))
    inner = fo.Adam([{"params": [w]}, {"params": [b], "lr": 0.05}], lr=0.01)
    return fo.Lookahead(inner, k=3, alpha=0.6), [w, b], rng


def test_lookahead_state_dict_round_trip():
    """Save after 4 steps (mid-cycle), load into a fresh Lookahead, continue: bit-identical to an unbroken run."""
    la, params, rng = _lookahead_run()
    grads = [[rng.standard_normal(p.data.shape).astype(p.data.dtype) for p in params] for _ in range(10)]
    for t in range(4):
        for p, g in zip(params, grads[t]):
            p.grad = g
        la.step()
    buf = io.BytesIO()
    fo.save(la.state_dict(), buf)
    saved_params = [p.data.copy() for p in params]
    for t in range(4, 10):
        for p, g in zip(params, grads[t]):
            p.grad = g
        la.step()
    buf.seek(0)
    la2, params2, _ = _lookahead_run()
    for p, d in zip(params2, saved_params):
        p.data[...] = d
    la2.load_state_dict(fo.load(buf))
    assert la2._counters == [1, 1]
    for t in range(4, 10):
        for p, g in zip(params2, grads[t]):
            p.grad = g
        la2.step()
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p.data, q.data)
        np.testing.assert_array_equal(la.state[p]["slow_params"], la2.state[q]["slow_params"])


def test_lookahead_bad_load_changes_nothing():
    la, params, rng = _lookahead_run()
    for p in params:
        p.grad = rng.standard_normal(p.data.shape).astype(p.data.dtype)
    la.step()
    sd = la.state_dict()
    bad = dict(sd, state={0: {"slow_params": np.zeros((5, 4))}, 1: sd["state"][1]})
    before_inner = la.optimizer.state_dict()
    before = [la.state[p]["slow_params"].copy() for p in params]
    with rejected(la.optimizer, ValueError, r"param_groups\[0\]\['params'\]\[0\]: saved state 'slow_params'"):
        la.load_state_dict(bad)
    with rejected(la.optimizer, ValueError, "one counter per group"):
        la.load_state_dict(dict(sd, lookahead_counters=[0]))
    with rejected(la.optimizer, ValueError, "no group lists"):
        la.load_state_dict(dict(sd, state={**sd["state"], 7: sd["state"][0]}))
    for p, s in zip(params, before):
        np.testing.assert_array_equal(la.state[p]["slow_params"], s)
    assert la.optimizer.state_dict()["param_groups"] == before_inner["param_groups"]


def test_lookahead_passthrough_and_schedulers():
    la, params, rng = _lookahead_run()
    assert la.param_groups is la.optimizer.param_groups
    sched = fo.lr_scheduler.StepLR(la, step_size=1, gamma=0.5)
    for p in params:
        p.grad = rng.standard_normal(p.data.shape).astype(p.data.dtype)
    calls = []

    def closure():
        calls.append(1)
        return 1.25

    assert la.step(closure) == 1.25 and calls == [1]
    sched.step()
    assert [g["lr"] for g in la.optimizer.param_groups] == [0.005, 0.025]
    la.zero_grad()
    assert all(p.grad is None for p in params)
    extra = fo.Parameter(np.ones(3))
    la.add_param_group({"params": [extra], "lr": 0.1})
    np.testing.assert_array_equal(la.state[extra]["slow_params"], np.ones(3))
    assert len(la.state_dict()["lookahead_counters"]) == 3


def test_lookahead_bad_arguments():
    p = fo.Parameter(np.zeros(3))
    with pytest.raises(TypeError, match="wraps a fastopt optimizer"):
        fo.Lookahead(object())
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="Invalid k value"):
            fo.Lookahead(fo.SGD([p], lr=0.1), k=k)
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="Invalid alpha value"):
            fo.Lookahead(fo.SGD([p], lr=0.1), alpha=alpha)


# ---- the benchmark rows of these optimizers (fastopt/bench/step.py) ---------------------------------------------

@pytest.mark.parametrize("key", ["prodigy", "lookahead"])  # LAMB: its own probe kernel (test_lamb_lars_speedpath)
def test_bench_probe_passes_move_what_their_note_says(key, monkeypatch):
    """A multi-pass probe runs each pass over every tensor (scale 0: values unchanged) and moves exactly the
    algorithm's minimum traffic (a one-pass probe never more), and Lookahead's state comes from the wrapped
    optimizer."""
    from fastopt import _kernels as K
    from fastopt.bench import step as S

    algo = S.ALGOS[key]
    calls = []
    real = K.probe
    monkeypatch.setattr(K, "probe", lambda t, ns, scale=1.0, ni=0: (calls.append((t.n_tensors, ns, ni, scale)),
                                                                     real(t, ns, scale, ni))[1])
    skipped: dict = {}
    steps = S.build(algo, np.dtype(np.float32), [(5,), (300,), (7,)], ["probe"], skipped)
    steps["probe"]()
    passes = algo.probe_passes or (("param", "grad") + algo.keys,)
    reads = [sum(n.startswith("<") for n in p) for p in passes]
    assert calls == [(3, len(p) - 2 - ni, ni, 0.0) for p, ni in zip(passes, reads)]
    # each pass: grad and the '<' arrays read, every other array read and written
    moved = sum(1 + ni + 2 * (len(p) - 1 - ni) for p, ni in zip(passes, reads))
    assert moved <= algo.bytes_per_element(1)
    assert algo.probe_passes is None or moved == algo.min_values == algo.bytes_per_element(1)  # the same traffic
    assert bool(algo.probe_note) == (key != "lars")
