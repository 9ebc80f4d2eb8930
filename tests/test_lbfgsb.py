"""L-BFGS-B: fastopt.minimize(method="L-BFGS-B") against scipy's L-BFGS-B at solution level, every evaluation
inside the box, float32, the bounds conventions, failures and the named C boundary."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

so = pytest.importorskip("scipy.optimize")

sys.path.insert(0, os.path.dirname(__file__))
import lbfgs_problems as P  # noqa: E402

import fastopt  # noqa: E402
from fastopt import _kernels  # noqa: E402
from fastopt import _lbfgs_core as C  # noqa: E402
from fastopt.minimize import minimize, parse_bounds, scipy_lbfgs  # noqa: E402

BOUND = {p.name: p for p in P.bound_problems()}


class Recorder:
    """Wraps fun, keeps every point it is called at."""

    def __init__(self, fun):
        self.fun, self.points = fun, []

    def __call__(self, x):
        self.points.append(np.array(x, np.float64, copy=True))
        return self.fun(x)

    def outside(self, lo, hi) -> int:
        return sum(int(np.sum((x < lo) | (x > hi))) for x in self.points)


def solved(f, p, rel=1e-6):
    return f - p.f_star <= rel * max(1.0, abs(p.f_star))


@pytest.mark.parametrize("name", list(BOUND))
def test_problem_gradients_match_central_differences(name):
    p = BOUND[name]
    rng = np.random.default_rng(0)
    x = p.x0 + 0.1 * rng.standard_normal(p.x0.size)
    x = np.clip(x, np.maximum(p.lo, -50) + 1e-3, np.minimum(p.hi, 50) - 1e-3)
    f, g = p.fun(x)
    idx = range(x.size) if x.size <= 50 else rng.choice(x.size, 20, replace=False)
    for i in idx:
        e = np.zeros_like(x)
        e[i] = 1e-6
        num = (p.fun(x + e)[0] - p.fun(x - e)[0]) / 2e-6
        assert abs(num - g[i]) <= 1e-5 * max(1.0, abs(g[i])), (name, i)


@pytest.mark.parametrize("name", list(BOUND))
def test_solves_what_scipy_solves_inside_the_box(name):
    p = BOUND[name]
    rec = Recorder(p.fun)
    ours = minimize(rec, p.x0, jac=True, method="L-BFGS-B", bounds=p.bounds, options=dict(maxcor=p.m))
    ref = so.minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=p.bounds, options=dict(maxcor=p.m))
    assert rec.outside(p.lo, p.hi) == 0
    assert np.all(ours.x >= p.lo) and np.all(ours.x <= p.hi)
    assert ours.nfev == len(rec.points)
    if solved(ref.fun, p):
        assert ours.success, ours.message
        assert solved(ours.fun, p), (ours.fun, p.f_star)
        assert ours.nfev <= 1.1 * ref.nfev + 2, (ours.nfev, ref.nfev)
    else:   # a local minimum (hs002 from its standard start): at least as good as scipy's
        assert ours.fun <= ref.fun + 1e-9 * max(1.0, abs(ref.fun))
    # solution-level agreement: the projected gradient at our point is about as small as at scipy's
    assert projected_gradient(ours, p) <= max(1e-5, 10 * projected_gradient(ref, p))


def projected_gradient(r, p):
    g = r.jac
    pg = np.where(g < 0, np.maximum(r.x - p.hi, g), np.minimum(r.x - p.lo, g))
    return float(np.max(np.abs(pg)))


@pytest.mark.parametrize("name", list(BOUND))
def test_float32_runs_in_float32_inside_the_box(name):
    p = BOUND[name]
    lo32 = np.where(np.isfinite(p.lo), p.lo, -np.inf)
    seen = []

    def fun(x):
        seen.append(x.dtype)
        f, g = p.fun(x.astype(np.float64))
        return f, g.astype(np.float32)
    rec = Recorder(fun)
    r = minimize(rec, p.x0.astype(np.float32), jac=True, method="L-BFGS-B", bounds=p.bounds,
                 options=dict(maxcor=p.m))
    assert r.x.dtype == np.float32 and r.jac.dtype == np.float32
    assert set(seen) == {np.dtype(np.float32)}
    assert rec.outside(lo32, p.hi) == 0
    ref = so.minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=p.bounds, options=dict(maxcor=p.m))
    if solved(ref.fun, p):
        assert r.fun - p.f_star <= 1e-3 * max(1.0, abs(p.f_star)), (r.fun, p.f_star, r.message)


def test_nnls_matches_scipy_nnls():
    p = BOUND["nnls_80x40"]
    r = minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=[(0, None)] * p.x0.size,
                 options=dict(ftol=1e-14, gtol=1e-10))
    xs, _ = so.nnls(p.A, p.b)
    assert r.success
    np.testing.assert_allclose(r.x, xs, atol=1e-6)
    assert np.array_equal(r.x == 0, xs == 0)     # the same active set
    assert r.fun - p.f_star <= 1e-10 * p.f_star


def test_scipy_testlbfgsbbounds_case_and_bounds_forms():
    fun = lambda x: (0.5 * float(x @ x), x.copy())  # noqa: E731
    for b in ([(1, None), (None, None)], [(1, np.inf), (-np.inf, np.inf)], so.Bounds([1, -np.inf], [np.inf, np.inf]),
              so.Bounds(np.array([1.0, -np.inf]), np.inf)):
        r = minimize(fun, np.array([0.0, -1.0]), jac=True, method="L-BFGS-B", bounds=b)
        assert r.success
        np.testing.assert_allclose(r.x, [1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("method", ["L-BFGS-B", "l-bfgs-b", "LBFGSB", "l_bfgs_b"])
def test_method_spellings(method):
    r = minimize(lambda x: (float(x @ x), 2 * x), np.ones(3), jac=True, method=method, bounds=[(0.5, 2)] * 3)
    np.testing.assert_allclose(r.x, 0.5)


def test_x0_is_clipped_and_fixed_variables_stay_fixed():
    p = BOUND["driver1_25"]
    x0 = p.x0.copy()
    x0[0] = -50.0                     # outside [1, 100]: clipped to 1
    b = p.bounds
    b[3] = (2.5, 2.5)                 # fixed
    rec = Recorder(p.fun)
    r = minimize(rec, x0, jac=True, method="L-BFGS-B", bounds=b)
    assert rec.points[0][0] == 1.0
    assert all(x[3] == 2.5 for x in rec.points) and r.x[3] == 2.5
    assert rec.outside(np.array([lo for lo, _ in b]), np.array([hi for _, hi in b])) == 0


@pytest.mark.parametrize("bounds,match", [
    ([(0, 1)] * 2, "2 \\(lo, hi\\) pairs for x0 with 3"),
    ([(0, 1), (2, 1), (0, 1)], "bounds\\[1\\]: lower bound 2.0 > upper bound 1.0"),
    ([(0, 1), (np.nan, 1), (0, 1)], "bounds\\[1\\]: the lower bound is NaN"),
    ([(0, 1), (0, 1), (0, np.nan)], "bounds\\[2\\]: the upper bound is NaN"),
    ([(0, 1), (0, 1), (np.inf, None)], "bounds\\[2\\]"),
    ([(0, 1), (0, 1), 5], "bounds\\[2\\]: expected a \\(lo, hi\\) pair"),
])
def test_bad_bounds_raise_before_fun_runs(bounds, match):
    calls = []

    def fun(x):
        calls.append(1)
        return float(x @ x), 2 * x
    with pytest.raises(ValueError, match=match):
        minimize(fun, np.zeros(3), jac=True, method="L-BFGS-B", bounds=bounds)
    assert not calls


def test_parse_bounds_scipy_bounds_broadcast():
    lo, hi = parse_bounds(so.Bounds(0.0, 1.0), 4)
    assert lo.tolist() == [0.0] * 4 and hi.tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="broadcast"):
        parse_bounds(so.Bounds([0, 0], [1, 1]), 3)


def test_scipy_custom_method_honours_bounds():
    p = BOUND["driver1_25"]
    rec = Recorder(p.fun)
    a = so.minimize(rec, p.x0, jac=True, method=scipy_lbfgs, bounds=p.bounds, options=dict(maxcor=5))
    b = minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=p.bounds, options=dict(maxcor=5))
    assert a.success and a.fun == b.fun and a.nit == b.nit
    assert rec.outside(p.lo, p.hi) == 0


def test_replayed_objective_never_steps_outside():
    # random bounds, random start, a rough function: every evaluation inside the box (scipy's floatround test idea)
    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(1, 30))
        lo = rng.uniform(-2, 0, n)
        hi = lo + rng.uniform(0, 3, n)
        fix = rng.random(n) < 0.1
        hi[fix] = lo[fix]
        c = rng.uniform(-5, 5, n)
        Q = rng.standard_normal((n, n))
        Q = Q @ Q.T / n + 0.1 * np.eye(n)

        def fun(x):
            d = x - c
            return float(d @ Q @ d + 0.1 * np.sum(np.cos(7 * x))), 2 * Q @ d - 0.7 * np.sin(7 * x)
        rec = Recorder(fun)
        r = minimize(rec, rng.uniform(-3, 3, n), jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)))
        assert rec.outside(lo, hi) == 0, trial
        assert r.status in (0, 1, 2)


def test_unbounded_lbfgsb_matches_scipy():
    p = P.rosenbrock(2)
    a = minimize(p.fun, p.x0, jac=True, method="L-BFGS-B")
    b = so.minimize(p.fun, p.x0, jac=True, method="L-BFGS-B")
    assert a.success and abs(a.fun - b.fun) < 1e-10 and abs(a.nfev - b.nfev) <= 2


def test_limits_and_messages_are_scipys():
    p = P.rosenbrock(100)
    b = [(-0.5, 0.8)] * 100
    r = minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=b, options=dict(maxiter=3))
    assert r.status == 1 and r.nit == 3 and not r.success and r.message == "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"
    r = minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=b, options=dict(maxfun=5))
    assert r.status == 1 and r.message == "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT" and r.nfev > 5
    r = minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=b)
    assert r.status == 0 and r.message.startswith("CONVERGENCE: ")


def test_nan_region_recovers_and_nan_start_stops():
    def fun(x):
        if x[0] > 0.5:
            return np.nan, np.full(2, np.nan)
        return float((x[0] - 2) ** 2 + x[1] ** 2), np.array([2 * (x[0] - 2), 2 * x[1]])
    r = minimize(fun, np.array([0.0, 1.0]), jac=True, method="L-BFGS-B", bounds=[(-1, 3), (-1, 3)])
    assert np.isfinite(r.fun) and r.x[0] <= 0.5 and r.fun < 2.0 + 4.0
    r = minimize(lambda x: (np.nan, np.zeros(2)), np.zeros(2), jac=True, method="L-BFGS-B")
    assert r.status == 2 and not r.success and "NAN" in r.message


@pytest.mark.parametrize("bad,exc,match", [
    (lambda x: None, TypeError, "None"),
    (lambda x: (np.ones(2), np.ones(2)), ValueError, "real scalar"),
    (lambda x: (1.0, np.ones(3)), ValueError, "gradient must be 4"),
    (lambda x: (1.0, None), TypeError, "gradient is None"),
    (lambda x: 1 / 0, ZeroDivisionError, "division"),
])
def test_failed_fun_propagates_with_the_last_accepted_iterate(bad, exc, match):
    calls = [0]
    good = BOUND["hs038"].fun

    def fun(x):
        calls[0] += 1
        return bad(x) if calls[0] == 6 else good(x)
    accepted = []
    with pytest.raises(exc, match=match) as info:
        minimize(fun, BOUND["hs038"].x0, jac=True, method="L-BFGS-B", bounds=BOUND["hs038"].bounds,
                 callback=lambda xk: accepted.append(xk.copy()))
    res = info.value.result
    assert res.status == 2 and not res.success and "FUN FAILED" in res.message
    np.testing.assert_array_equal(res.x, accepted[-1])
    assert res.fun == good(res.x)[0]


def test_finite_differences_default_and_messages():
    p = BOUND["hs038"]
    f = lambda x: p.fun(x)[0]  # noqa: E731
    r = minimize(f, p.x0, method="L-BFGS-B", bounds=p.bounds)
    ref = so.minimize(f, p.x0, method="L-BFGS-B", bounds=p.bounds)
    assert r.success and abs(r.fun - ref.fun) < 1e-6 and r.nfev > r.njev
    # finite differences at a bound step backward: evaluations stay inside
    rec = Recorder(lambda x: float(np.sum((x - 3) ** 2)))
    r = minimize(rec, np.zeros(3), method="L-BFGS-B", bounds=[(0, 1)] * 3)
    np.testing.assert_allclose(r.x, 1.0)
    assert rec.outside(np.zeros(3), np.ones(3)) == 0
    with pytest.raises(TypeError, match="pass jac=True if fun returns \\(f, g\\)"):
        minimize(p.fun, p.x0, method="L-BFGS-B")
    with pytest.raises(TypeError, match="jac=True means fun returns \\(f, g\\)"):
        minimize(f, p.x0, jac=True, method="L-BFGS-B")
    with pytest.raises(TypeError, match="pass jac=True"):
        minimize(p.fun, p.x0)                      # method "L-BFGS" too


def test_2d_x0_gives_x_and_jac_in_its_shape():
    fun = lambda x: (float(np.sum((x - 2) ** 2)), 2 * (x - 2))  # noqa: E731
    for method in ("L-BFGS", "L-BFGS-B"):
        r = minimize(fun, np.zeros((2, 3)), jac=True, method=method)
        assert r.x.shape == (2, 3) and r.jac.shape == (2, 3)
        np.testing.assert_allclose(r.x, 2.0, atol=1e-6)


def test_disp_prints_progress_and_callback_stops(capsys):
    p = BOUND["driver1_25"]
    minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=p.bounds, options=dict(disp=True))
    out = capsys.readouterr().out
    assert "L-BFGS-B iter      1" in out and "|proj g|" in out and "CONVERGENCE" in out
    minimize(p.fun, p.x0, jac=True, method="L-BFGS", options=dict(disp=True))
    assert "L-BFGS iter      1" in capsys.readouterr().out

    def cb(intermediate_result):
        if intermediate_result.fun < 100:
            raise StopIteration
    r = minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=p.bounds, callback=cb)
    assert r.status == 2 and r.message == "STOP: CALLBACK REQUESTED HALT" and r.fun < 100


def test_hess_inv_is_scipys_operator():
    p = BOUND["hs038"]
    r = minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", bounds=p.bounds)
    H = r.hess_inv.todense()
    assert H.shape == (4, 4) and np.allclose(H, H.T) and np.all(np.linalg.eigvalsh(H) > 0)


def test_named_state_struct_and_code_table():
    names = [f[0] for f in _kernels.LBFGSB_FIELDS]
    assert C.STATE_DTYPE.itemsize == _kernels.LBFGSB_STATE_SIZE
    assert {"phase", "nit", "nfev", "col", "head", "f", "theta", "sbgnrm", "stp"} <= set(names)
    assert C.B_CODES[10] == (0, "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL")
    assert C.B_CODES[11] == (0, "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH")
    mach = C.BMachine(3, np.float64, 4, np.zeros(3), np.ones(3))
    with pytest.raises(TypeError):
        mach.core.set_hyper(1e-9, 1e-5)            # names only
    with pytest.raises(RuntimeError, match="set_hyper"):
        mach.core.run(0.0)


def test_unbounded_core_state_is_named_too():
    names = C.LBFGS_STATE_DTYPE.names
    assert C.LBFGS_STATE_DTYPE.itemsize == _kernels.LBFGS_STATE_SIZE
    assert {"phase", "n_iter", "func_evals", "hist_len", "hist_start", "fresh", "f", "t", "h_diag", "b"} <= set(names)
    assert C.LBFGS_STATE_DTYPE["b"].shape == (2,)
    mach = C.Machine(3, np.float64, 2, True)
    assert mach["fresh"] == 1 and mach["phase"] == 0
    # one table: minimize and LBFGS report the C core's messages
    from fastopt.optim.lbfgs import STATUS_MESSAGES
    assert STATUS_MESSAGES == {k: v[1] for k, v in C.CODES.items()}
    r = minimize(lambda x: (float(x @ x), 2 * x), np.ones(2), jac=True)
    assert r.success and r.message in STATUS_MESSAGES.values()
    with pytest.raises(TypeError):
        mach.core.set_hyper(1.0, 1e-5)             # names only


def test_core_rejects_corrupt_state():
    mach = C.BMachine(3, np.float64, 4, np.zeros(3), np.ones(3))
    mach.core.set_hyper(ftol=0.0, gtol=1e-5, eps=2.2e-16, lr=1.0, ls_ftol=1e-3, ls_gtol=0.9, ls_xtol=0.1,
                        fabs_tol=0.0, xabs_tol=0.0, max_iter=10, max_fun=10, max_ls=20, line_search=True,
                        report_iter=False)
    mach.st["col"] = 7
    with pytest.raises(RuntimeError, match="corrupted state"):
        mach.core.run(0.0)
    mach.st["col"] = 0
    mach.st["phase"] = 9
    with pytest.raises(RuntimeError, match="corrupted state"):
        mach.core.run(0.0)


def test_float32_bounds_are_rounded_inward():
    lo, hi = C.float_bounds(np.array([0.1, -np.inf, 0.3]), np.array([0.2, 0.7, 0.3]), np.float32)
    assert lo[0] >= np.float32(0.1) and float(lo[0]) >= 0.1 and float(hi[0]) <= 0.2 and float(hi[1]) <= 0.7
    assert lo[2] == hi[2]


def test_import_fastopt_does_not_import_scipy(tmp_path):
    code = "import sys, fastopt; print('scipy.optimize' in sys.modules, 'scipy' in sys.modules)"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(fastopt.__file__)),
                                                    env.get("PYTHONPATH")) if p)
    # cwd outside the checkout: `-c` puts the working directory first on sys.path, and the checkout's fastopt/
    # has no compiled extension when the package was installed (as in CI)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=tmp_path)
    assert out.stdout.split() == ["False", "False"]


# ---- fastopt.LBFGS with bounds, maximize, rollback ---------------------------------------------------------
from fastopt.optim.lbfgs import LBFGS  # noqa: E402
from fastopt.parameter import Parameter  # noqa: E402


def _closure(p, params, shapes, rec=None):
    def closure():
        x = np.concatenate([q.data.reshape(-1) for q in params])
        if rec is not None:
            rec.append(x.copy())
        f, g = p.fun(x.astype(np.float64))
        off = 0
        for q, shp in zip(params, shapes):
            k = int(np.prod(shp))
            q.grad = g[off:off + k].reshape(shp).astype(q.data.dtype)
            off += k
        return f
    return closure


@pytest.mark.parametrize("ls", ["strong_wolfe", None])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lbfgs_bounds_stay_inside_and_solve(ls, dtype):
    p = BOUND["driver1_25"]
    # two parameters: the first 10 elements as a (2, 5) array, the rest flat; bounds per parameter
    a = Parameter(p.x0[:10].reshape(2, 5).astype(dtype))
    b = Parameter(p.x0[10:].astype(dtype))
    opt = LBFGS([a, b], lr=0.5 if ls is None else 1, max_iter=200, max_eval=400, history_size=5,
                line_search_fn=ls, bounds=[(p.lo[:10].reshape(2, 5), 100.0), (p.lo[10:], p.hi[10:])])
    rec = []
    for _ in range(5):
        opt.step(_closure(p, [a, b], [(2, 5), (15,)], rec))
    lo32 = p.lo.astype(np.float64)
    assert all(np.all((x >= lo32) & (x <= p.hi)) for x in rec)
    assert a.data.dtype == dtype and b.data.dtype == dtype
    x = np.concatenate([a.data.reshape(-1), b.data])
    assert p.fun(x.astype(np.float64))[0] <= (1e-6 if dtype == np.float64 else 1e-3)


def test_lbfgs_bounds_checks_and_clipping():
    w = Parameter(np.array([5.0, -5.0, 0.0]))
    with pytest.raises(ValueError, match="bounds has 2 entries for 1 parameters"):
        LBFGS([w], bounds=[None, None])
    with pytest.raises(ValueError, match=r"bounds\[0\]: lower > upper at flat index 1"):
        LBFGS([w], bounds=[([0, 2, 0], 1)])
    with pytest.raises(ValueError, match=r"bounds\[0\]: the upper bound has NaN"):
        LBFGS([w], bounds=[(0, [1, np.nan, 1])])
    with pytest.raises(ValueError, match="broadcastable"):
        LBFGS([w], bounds=[(np.zeros(2), 1)])
    with pytest.raises(TypeError, match="maximize"):
        LBFGS([w], maximize="yes")
    opt = LBFGS([w], bounds=[(-1, 1)], line_search_fn="strong_wolfe")
    seen = []

    def closure():
        seen.append(w.data.copy())
        w.grad = 2 * (w.data - 3)
        return float(np.sum((w.data - 3) ** 2))
    opt.step(closure)
    assert np.array_equal(seen[0], [1.0, -1.0, 0.0])      # clipped before the first evaluation
    np.testing.assert_allclose(w.data, 1.0)


def test_lbfgs_maximize():
    for bounds in (None, [(None, 2.0)]):
        w = Parameter(np.zeros(2))
        opt = LBFGS([w], line_search_fn="strong_wolfe", maximize=True, bounds=bounds)

        def closure():
            w.grad = -2 * (w.data - 1.5)
            return float(-np.sum((w.data - 1.5) ** 2))
        opt.step(closure)
        np.testing.assert_allclose(w.data, 1.5, atol=1e-6)


def _state_copy(opt):
    out = {}
    for k, v in opt.state[opt.param_groups[0]["params"][0]].items():
        out[k] = [np.array(a, copy=True) for a in v] if isinstance(v, list) else np.array(v, copy=True)
    return out


def _same_state(a, b):
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], list):
            assert len(a[k]) == len(b[k]) and all(np.array_equal(x, y) for x, y in zip(a[k], b[k])), k
        else:
            assert np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("ls", ["strong_wolfe", None])
@pytest.mark.parametrize("failure", ["raise", "none", "array", "grad_shape", "grad_dtype"])
def test_lbfgs_rollback_is_exact(bounded, ls, failure):
    p = BOUND["hs038"] if bounded else P.rosenbrock(6)
    bounds = [(p.lo, p.hi)] if bounded else None
    lr = 1 if ls else 1e-3

    def make():
        x = Parameter(p.x0.copy())
        return x, LBFGS([x], lr=lr, max_iter=7, history_size=4, line_search_fn=ls, bounds=bounds)
    xa, a = make()
    xb, b = make()
    for _ in range(2):                          # some memory first (and a ring that has wrapped)
        a.step(_closure(p, [xa], [p.x0.shape]))
        b.step(_closure(p, [xb], [p.x0.shape]))
    before_x, before_state = xa.data.copy(), _state_copy(a)
    calls = [0]
    good = _closure(p, [xa], [p.x0.shape])

    def bad():
        calls[0] += 1
        loss = good()
        if calls[0] < 4:
            return loss
        if failure == "raise":
            raise KeyError("boom")
        if failure == "none":
            return None
        if failure == "array":
            return np.ones(3)
        if failure == "grad_shape":
            xa.grad = np.ones(xa.data.size + 1)
        else:
            xa.grad = xa.grad.astype(np.float32)
        return loss
    exc = {"raise": KeyError, "none": TypeError, "array": ValueError, "grad_shape": ValueError,
           "grad_dtype": TypeError}[failure]
    with pytest.raises(exc):
        a.step(bad)
    np.testing.assert_array_equal(xa.data, before_x)
    _same_state(_state_copy(a), before_state)
    # and the optimizer goes on exactly as one that never saw the failure
    for _ in range(2):
        a.step(_closure(p, [xa], [p.x0.shape]))
        b.step(_closure(p, [xb], [p.x0.shape]))
    np.testing.assert_array_equal(xa.data, xb.data)


def test_lbfgs_bounded_state_dict_round_trip(tmp_path):
    p = BOUND["driver1_25"]

    def make(x0):
        x = Parameter(x0.copy())
        return x, LBFGS([x], line_search_fn="strong_wolfe", history_size=5, max_iter=4, bounds=[(p.lo, p.hi)])
    xa, a = make(p.x0)
    for _ in range(2):
        a.step(_closure(p, [xa], [p.x0.shape]))
    fastopt.save(a.state_dict(), tmp_path / "b.npz")
    xb, b = make(xa.data)
    b.load_state_dict(fastopt.load(tmp_path / "b.npz"))
    for _ in range(3):
        a.step(_closure(p, [xa], [p.x0.shape]))
        b.step(_closure(p, [xb], [p.x0.shape]))
    np.testing.assert_array_equal(xa.data, xb.data)
    xc, c = make(p.x0)
    sd = a.state_dict()
    sd["state"][0]["lbfgsb_S"] = np.zeros((4, 25))
    with pytest.raises(ValueError, match="lbfgsb_S"):
        c.load_state_dict(sd)


def test_scipy_issue_23161_rosenbrock_variant_converges():
    """scipy#23161: the C port of scipy >= 1.15 stopped early on this problem (factr = 0); we must reach (1, 1)."""
    def f(x):
        a, b = x
        r = b - a * a
        return (1 - a) ** 2 + 10 * r * r, np.array([-2 * (1 - a) - 40 * a * r, 20 * r])
    r = minimize(f, np.array([-1.0, 1.0]), jac=True, method="L-BFGS-B", options=dict(ftol=0.0))
    assert r.success and r.fun < 1e-12
    np.testing.assert_allclose(r.x, 1.0, atol=1e-6)
