"""Prodigy against its NumPy reference (tests/reference_beyond.py), and the generic checks the per-parameter registry
cannot run for it (its d estimate couples every parameter of every group, and every group must share the lr):
both dtypes, odd and empty sizes, strided views, two groups, determinism across thread counts, state_dict round
trips, bad input changing nothing, the functional form. Parity with prodigyopt: tests/test_parity_beyond.py."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import fastopt as fo
import reference_beyond as R
from cases import PRODIGY_CASES
from helpers import assert_arrays_equal, assert_close, make_array, num_threads, rejected, requires_openmp

SIZES = [[0, 1, 7, 64], [65, 4099]]  # two groups


def _run_both(kw, dtype, layout, rng, steps=5, skip=lambda t, i, j: False):
    params = [[fo.Parameter(make_array(rng, n, dtype, strided=layout == "strided")) for n in ns] for ns in SIZES]
    ref_params = [[p.data.copy() for p in ps] for ps in params]
    opt = fo.Prodigy([{"params": ps} for ps in params], **kw)
    groups = [R.prodigy_group(**kw) for _ in SIZES]
    states: dict = {}
    for t in range(steps):
        grads = [[None if skip(t, i, j) else make_array(rng, n, dtype) for j, n in enumerate(ns)]
                 for i, ns in enumerate(SIZES)]
        for ps, gs in zip(params, grads):
            for p, g in zip(ps, gs):
                p.grad = g
        opt.step()
        R.ref_prodigy_step(groups, ref_params, grads, states)
    return opt, params, ref_params, groups, states


@pytest.mark.parametrize("kw", PRODIGY_CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_kernel_matches_reference(kw, dtype, layout, rng):
    skip = lambda t, i, j: (i, j) == (0, 2) and t < 2  # a parameter that joins late
    opt, params, ref_params, groups, states = _run_both(kw, dtype, layout, rng, skip=skip)
    for gi, (ps, rps) in enumerate(zip(params, ref_params)):
        for j, (p, rp) in enumerate(zip(ps, rps)):
            assert p.data.dtype == dtype
            assert_close(p.data, rp, dtype, f"param [{gi}][{j}]")
            live, st = opt.state[p], states[(gi, j)]
            assert set(live) == set(st)
            assert live["step"] == st["step"]
            for key in ("exp_avg", "exp_avg_sq", "s", "p0"):
                if key in st:
                    assert live[key].shape == p.data.shape
                    want = st[key] if st[key].shape != () else np.zeros(p.data.size, dtype)  # upstream's 0-d p0
                    assert_close(live[key].reshape(-1), want.reshape(-1), dtype, f"state {key} [{gi}][{j}]")
    for fg, rg in zip(opt.param_groups, groups):
        for key in ("d", "d_max", "d_numerator", "k"):
            assert fg[key] == pytest.approx(rg[key], rel=1e-12 if dtype == np.float64 else 1e-5), key


def test_zero_gradients_stop_after_the_moments_as_upstream():
    p = fo.Parameter(np.arange(4.0))
    opt = fo.Prodigy([p])
    p.grad = np.zeros(4)
    opt.step()
    assert opt.param_groups[0]["k"] == 0 and opt.state[p]["step"] == 0  # returned early: no update, k kept
    assert_arrays_equal([p.data], [np.arange(4.0)])
    p.grad = np.ones(4)
    opt.step()
    assert opt.param_groups[0]["k"] == 1 and opt.state[p]["step"] == 1


@pytest.mark.parametrize("kw", PRODIGY_CASES, ids=str)
def test_one_and_two_threads_bit_identical(kw):
    requires_openmp()
    sizes = [700_001, 3, 130_000]

    def run(threads):
        rng = np.random.default_rng(0)
        params = [fo.Parameter(rng.standard_normal(n).astype(np.float32)) for n in sizes]
        opt = fo.Prodigy(params, **kw)
        with num_threads(threads):
            for _ in range(3):
                for p in params:
                    p.grad = rng.standard_normal(p.shape).astype(np.float32)
                opt.step()
        return [p.data.copy() for p in params] + [np.array(opt.param_groups[0]["d"])]

    assert_arrays_equal(run(1), run(2))


@pytest.mark.parametrize("kw", PRODIGY_CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_round_trip_continues_bit_identically(kw, dtype, tmp_path):
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s).astype(dtype) for s in [(5,), (3, 4), (1,)]]
    grads = [[rng.standard_normal(x.shape).astype(dtype) for x in init] for _ in range(12)]

    def run(split):
        params = [fo.Parameter(x.copy()) for x in init]
        opt = fo.Prodigy([{"params": params[:2]}, {"params": params[2:]}], **kw)
        for t in range(12):
            if t == split:
                fo.save(opt.state_dict(), tmp_path / "p.npz")
                params = [fo.Parameter(p.data.copy()) for p in params]
                opt = fo.Prodigy([{"params": params[:2]}, {"params": params[2:]}], **kw)
                opt.load_state_dict(fo.load(tmp_path / "p.npz"))
            for p, g in zip(params, grads[t]):
                p.grad = g
            opt.step()
        return [p.data for p in params] + [np.array(opt.param_groups[1]["d"])]

    assert_arrays_equal(run(-1), run(6))


def _trained(rng, **kw):
    params = [fo.Parameter(rng.standard_normal(n)) for n in (5, 3, 4)]
    opt = fo.Prodigy([{"params": params[:1]}, {"params": params[1:]}], **kw)
    for _ in range(3):
        for p in params:
            p.grad = rng.standard_normal(p.shape)
        opt.step()
    for p in params:
        p.grad = rng.standard_normal(p.shape)
    return opt, params


@pytest.mark.parametrize("spoil,exc,regex", [
    (lambda o, ps: o.param_groups[1].update(lr=0.5), RuntimeError, r"param_groups\[1\]: Setting different lr"),
    (lambda o, ps: o.param_groups[1].update(betas=(0.8, 0.999)), ValueError, r"param_groups\[1\]: betas"),
    (lambda o, ps: o.param_groups[1].update(d=-1.0), ValueError, r"param_groups\[1\]: Invalid d value"),
    (lambda o, ps: o.param_groups[1].update(slice_p=2), ValueError, r"param_groups\[1\]: slice_p=2"),
    (lambda o, ps: setattr(ps[2], "grad", np.ones(7)), ValueError, r"param_groups\[1\]\['params'\]\[1\]"),
    (lambda o, ps: o.state[ps[2]].update(s=np.zeros(2)), ValueError, r"param_groups\[1\]\['params'\]\[1\]: state 's'"),
    (lambda o, ps: setattr(ps[1], "grad", ps[2].data[:3]), ValueError, "overlap|share"),
])
def test_bad_step_changes_nothing(spoil, exc, regex, rng):
    opt, params = _trained(rng)
    spoil(opt, params)
    with rejected(opt, exc, regex):
        opt.step()


@pytest.mark.parametrize("kw,exc,regex", [
    (dict(d0=0.0), ValueError, "Invalid d0 value: 0.0"),
    (dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    (dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0"),
    (dict(betas=(1.0, 0.999)), ValueError, "Invalid beta parameter at index 0: 1.0"),
    (dict(betas=(0.9, 1.0)), ValueError, "Invalid beta parameter at index 1: 1.0"),
    (dict(beta3=1.5), ValueError, "Invalid beta3 value"),
    (dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    (dict(growth_rate=0.5), ValueError, "Invalid growth_rate value"),
    (dict(d_coef=0.0), ValueError, "Invalid d_coef value"),
    (dict(slice_p=11), ValueError, "slice_p=11 is not supported"),
    (dict(fsdp_in_use=True), ValueError, "fsdp_in_use=True is not supported"),
    (dict(decouple=1), TypeError, "decouple must be a bool"),
])
def test_constructor_errors(kw, exc, regex):
    with pytest.raises(exc, match=regex):
        fo.Prodigy([fo.Parameter(np.zeros(2))], **kw)


def test_defaults_and_group_keys_follow_prodigyopt():
    opt = fo.Prodigy([fo.Parameter(np.ones(3))], d0=1e-4)
    g = opt.param_groups[0]
    assert (g["d"], g["d_max"], g["d_numerator"], g["k"]) == (1e-4, 1e-4, 0.0, 0)
    assert g["lr"] == 1.0 and g["betas"] == (0.9, 0.999) and g["beta3"] is None and g["decouple"] is True
    assert g["growth_rate"] == float("inf") and g["slice_p"] == 1


def test_a_group_with_lr_zero_only_decays():
    rng = np.random.default_rng(2)
    a, b = fo.Parameter(rng.standard_normal(4)), fo.Parameter(rng.standard_normal(4))
    opt = fo.Prodigy([{"params": [a]}, {"params": [b], "lr": 0.0}], weight_decay=0.1)
    groups = [R.prodigy_group(weight_decay=0.1), R.prodigy_group(weight_decay=0.1, lr=0.0)]
    ra, rb = a.data.copy(), b.data.copy()
    b0 = b.data.copy()
    states: dict = {}
    for _ in range(4):
        ga, gb = rng.standard_normal(4), rng.standard_normal(4)
        a.grad, b.grad = ga, gb
        opt.step()
        R.ref_prodigy_step(groups, [[ra], [rb]], [[ga], [gb]], states)
    assert_close(a.data, ra, np.float64)
    assert_close(b.data, rb, np.float64)
    assert np.all(np.abs(b.data) < np.abs(b0))  # lr 0: no step of its own, but the decay (with the shared dlr)


def test_loads_prodigyopt_layout_flat_s_and_zero_p0():
    p = fo.Parameter(np.zeros((2, 3)))
    opt = fo.Prodigy([p])
    sd = {"state": {0: {"step": 2, "s": np.ones(6), "p0": np.array(0.0), "exp_avg": np.zeros((2, 3)),
                        "exp_avg_sq": np.zeros((2, 3))}},
          "param_groups": [{**copy.deepcopy(opt.param_groups[0]), "params": [0], "foreach": None}]}
    del sd["param_groups"][0]["params"]
    sd["param_groups"][0]["params"] = [0]
    opt.load_state_dict(sd)
    st = opt.state[p]
    assert st["s"].shape == (2, 3) and st["p0"].shape == (2, 3) and not st["p0"].any()


def test_functional_matches_the_class():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(10)
    p = fo.Parameter(x.copy())
    opt = fo.Prodigy([p], weight_decay=0.01, use_bias_correction=True)
    y, m, v, s, p0 = x.copy(), np.zeros(10), np.zeros(10), np.zeros(10), x.copy()
    scal = dict(d=1e-6, d_max=1e-6, d_numerator=0.0, k=0)
    for _ in range(6):
        g = rng.standard_normal(10)
        p.grad = g
        opt.step()
        out = fo.functional.prodigy([y], [g], [m], [v], [s], [p0], lr=1.0, beta1=0.9, beta2=0.999, beta3=None,
                                    eps=1e-8, weight_decay=0.01, decouple=True, use_bias_correction=True,
                                    safeguard_warmup=False, d0=1e-6, d_coef=1.0, growth_rate=float("inf"), **scal)
        scal = {k: out[k] for k in ("d", "d_max", "d_numerator", "k")}
    assert_arrays_equal([p.data, opt.state[p]["s"]], [y, s])
    assert scal["d"] == opt.param_groups[0]["d"] and scal["k"] == 6


def test_reduction_boundary_checks_its_arguments():
    from fastopt import _kernels as K
    red = K.REDUCERS["prodigy_reduce"]
    assert red.kernel == "prodigy" and red.n_out == 2
    n = 40000  # three work items
    rows = [np.zeros(n) for _ in range(6)]
    t = K.TensorTable([rows], ("param", "grad", "m", "v", "s", "p0"), (False, True, False, False, False, False), 7)
    h = K.KERNELS["prodigy"].pack(dict(beta1=0.9, beta2=0.999, weight_decay=0.0, decouple=1))
    part = red.scratch(t)
    assert part.shape == (6,)
    with pytest.raises(ValueError, match="hyper block"):
        red(t, h[:-4], part)
    with pytest.raises(ValueError, match="at least 6 elements"):
        red(t, h, np.empty(5))
    with pytest.raises(ValueError, match="float64"):
        red(t, h, np.empty(6, np.float32))
    rows[1][:] = 1.0  # g = 1, p0 - p = 0, s = w_s g: sum |s| = n w_s
    t.scalars[:] = [0.0, 0.0, 0.5, 0.0, 0, 0, 0]
    assert red(t, h, part) == (0.0, 0.5 * n)


# ---- the repeated step (Prodigy's own plan, fastopt/optim/prodigy.py _Plan) ------------------------------------

def _pair(rng, dtype, groups=1, **kw):
    """Two optimizers over copies of the same params: ``fast`` may take its plan, ``full`` never does."""
    sizes = [[5, 64, 1000], [33]][:groups] if groups > 1 else [[5, 64, 1000, 33]]
    data = [[make_array(rng, n, dtype) for n in ns] for ns in sizes]
    out = []
    for _ in range(2):
        ps = [[fo.Parameter(a.copy()) for a in g] for g in data]
        out.append((fo.Prodigy([{"params": p} for p in ps], **kw), [p for g in ps for p in g]))
    return out


def _step_both(fast, full, grads):
    (fopt, fps), (gopt, gps) = fast, full
    for p, q, g in zip(fps, gps, grads):
        p.grad, q.grad = g, None if g is None else g.copy()
    before = fopt._fast_steps
    fopt.step()
    gopt._drop_plan()
    gopt.step()
    assert gopt._fast_steps == 0
    assert_arrays_equal([p.data for p in fps], [q.data for q in gps])
    for p, q in zip(fps, gps):
        assert fopt.state[p].keys() == gopt.state[q].keys()
        for k in fopt.state[p]:
            np.testing.assert_array_equal(fopt.state[p][k], gopt.state[q][k])
    for a, b in zip(fopt.param_groups, gopt.param_groups):
        assert {k: v for k, v in a.items() if k != "params"} == {k: v for k, v in b.items() if k != "params"}
    return fopt._fast_steps - before


@pytest.mark.parametrize("kw", [{}, dict(betas=(0.0, 0.99), weight_decay=0.1, decouple=False),
                                dict(use_bias_correction=True, safeguard_warmup=True, weight_decay=0.01)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_repeated_steps_take_the_plan_and_match_the_full_path_bit_for_bit(kw, dtype, rng):
    fast, full = _pair(rng, dtype, **kw)
    ps = fast[1]
    fresh = lambda: [make_array(rng, p.data.size, dtype) for p in ps]  # noqa: E731
    assert _step_both(fast, full, fresh()) == 0  # creates the state
    assert [_step_both(fast, full, fresh()) for _ in range(4)] == [1] * 4  # new gradient arrays every step
    same = fresh()
    assert [_step_both(fast, full, same) for _ in range(2)] == [1, 1]
    # all-zero gradients: only the moments change, on the plan as on the full path
    assert _step_both(fast, full, [np.zeros_like(p.data) for p in ps]) == 1
    # a changed option, a user-set d, a replaced state buffer, a strided or missing gradient: the full path
    fast[0].param_groups[0]["weight_decay"] = 0.05
    full[0].param_groups[0]["weight_decay"] = 0.05
    assert _step_both(fast, full, fresh()) == 0
    assert _step_both(fast, full, fresh()) == 1
    fast[0].param_groups[0]["d"] = full[0].param_groups[0]["d"] = 2e-3
    assert _step_both(fast, full, fresh()) == 0
    for opt, pp in (fast, full):
        opt.state[pp[1]]["s"] = opt.state[pp[1]]["s"].copy()
    assert _step_both(fast, full, fresh()) == 0
    g = fresh()
    g[2] = make_array(rng, g[2].size, dtype, strided=True)
    assert _step_both(fast, full, g) == 0
    g = fresh()
    g[0] = None
    assert _step_both(fast, full, g) == 0
    assert _step_both(fast, full, fresh()) == 0  # the param without a gradient last time gets one
    assert _step_both(fast, full, fresh()) == 1


def test_two_groups_take_the_plan_and_check_gradients_across_groups(rng):
    fast, full = _pair(rng, np.float64, groups=2)
    ps = fast[1]
    fresh = lambda: [make_array(rng, p.data.size, np.float64) for p in ps]  # noqa: E731
    assert [_step_both(fast, full, fresh()) for _ in range(3)] == [0, 1, 1]
    same = fresh()
    assert [_step_both(fast, full, same) for _ in range(2)] == [1, 1]
    # a gradient of group 0 that is a view of group 1's parameter: each table alone cannot see it
    opt = fast[0]
    ps[0].grad = ps[3].data[:5]
    with rejected(opt, ValueError, "shares memory|overlap"):
        opt.step()
    assert _step_both(fast, full, fresh()) == 0  # the plan was dropped by the rejected step; the next re-arms it
    assert _step_both(fast, full, fresh()) == 1


def _readonly(a):
    a.flags.writeable = False


@pytest.mark.parametrize("spoil,regex", [
    (lambda o, ps: setattr(ps[1], "grad", np.ones(63, np.float32)), r"param_groups\[0\]\['params'\]\[1\]"),
    (lambda o, ps: setattr(ps[1], "grad", np.ones((8, 8), np.float32)), r"param_groups\[0\]\['params'\]\[1\]"),
    (lambda o, ps: setattr(ps[1], "grad", np.ones(64)), r"param_groups\[0\]\['params'\]\[1\]"),
    (lambda o, ps: setattr(ps[1], "grad", ps[2].data[:64]), "overlap|share"),
    (lambda o, ps: _readonly(o.state[ps[0]]["exp_avg"]), r"param_groups\[0\]\['params'\]\[0\]"),
    (lambda o, ps: _readonly(ps[3].data), r"param_groups\[0\]\['params'\]\[3\]"),
    (lambda o, ps: o.param_groups[0].update(d=-1.0), "Invalid d value"),
    (lambda o, ps: o.state[ps[2]].update(step=-1), r"param_groups\[0\]\['params'\]\[2\]"),
], ids=["size", "shape", "dtype", "overlap", "readonly state", "readonly param", "bad d", "bad step"])
def test_the_plan_refuses_what_the_full_path_refuses_and_changes_nothing(spoil, regex, rng):
    (opt, ps), _ = _pair(rng, np.float32)
    for _ in range(2):
        for p in ps:
            p.grad = make_array(rng, p.data.size, np.float32)
        opt.step()
    assert opt._plan is not None and opt._fast_steps == 1
    spoil(opt, ps)
    with rejected(opt, (ValueError, TypeError), regex):
        opt.step()
    assert opt._fast_steps == 1


def test_a_copy_makes_its_own_plan(rng):
    (opt, ps), _ = _pair(rng, np.float32)
    for _ in range(3):
        for p in ps:
            p.grad = make_array(rng, p.data.size, np.float32)
        opt.step()
    assert opt._fast_steps == 2
    c = copy.deepcopy(opt)
    assert c._plan is None and c._fast_steps == 2
    c.step()  # the copy's full step makes its own plan over its own arrays
    c.step()
    assert c._fast_steps == 3 and opt._fast_steps == 2
    opt.step()
    opt.step()
    assert opt._fast_steps == 4
    assert_arrays_equal([p.data for p in c.param_groups[0]["params"]], [p.data for p in ps])  # same grads
