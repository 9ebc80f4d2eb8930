"""L-BFGS: the C state machine, fastopt.minimize against scipy's L-BFGS-B, fastopt.LBFGS against torch."""
from __future__ import annotations

import inspect
import os
import sys

import numpy as np
import pytest
import scipy.optimize as so

sys.path.insert(0, os.path.dirname(__file__))
import lbfgs_problems as P  # noqa: E402

from fastopt import _lbfgs_core as C  # noqa: E402
from fastopt import _kernels  # noqa: E402
from fastopt.minimize import minimize, scipy_lbfgs  # noqa: E402
from fastopt.optim.lbfgs import LBFGS  # noqa: E402
from fastopt.parameter import Parameter  # noqa: E402

PROBLEMS = {p.name: p for p in P.all_problems()}
SMALL = [name for name in PROBLEMS if name != "ext_rosenbrock_10000"]


# ---- the test functions themselves -------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_problem_gradients_match_central_differences(name):
    p = PROBLEMS[name]
    rng = np.random.default_rng(3)
    x = p.x0 + 0.3 * rng.standard_normal(p.x0.size) * np.maximum(1.0, np.abs(p.x0))
    if p.x0.size > 1000:
        idx = rng.choice(p.x0.size, 20, replace=False)
    else:
        idx = np.arange(p.x0.size)
    _, g = p.fun(x)
    for i in idx:
        h = 1e-6 * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        fd = (p.fun(x + e)[0] - p.fun(x - e)[0]) / (2 * h)
        rounding = 10 * np.finfo(float).eps * abs(p.fun(x)[0]) / h     # cancellation in f(x+h) - f(x-h)
        assert abs(fd - g[i]) <= 1e-6 * max(1.0, abs(g[i])) + rounding, (i, fd, g[i])
    f_star, _ = p.fun(p.x_star)
    assert abs(f_star - p.f_star) <= 1e-12 * max(1.0, abs(p.f_star))


# ---- fastopt.minimize against scipy L-BFGS-B ---------------------------------------------------------------
TIGHT = dict(gtol=1e-10, ftol=1e-15)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_minimize_at_least_as_accurate_as_scipy(name):
    p = PROBLEMS[name]
    ours = minimize(p.fun, p.x0, options=TIGHT, jac=True)
    ref = so.minimize(p.fun, p.x0, jac=True, method="L-BFGS-B", options=TIGHT)
    # what double precision can resolve on this problem: 1e-15 of the initial gap
    floor = 1e-15 * max(1.0, p.fun(p.x0)[0] - p.f_star)
    err, ref_err = ours.fun - p.f_star, ref.fun - p.f_star
    assert err <= max(ref_err, floor), (err, ref_err, ours.message)
    assert ours.fun == pytest.approx(p.fun(ours.x)[0], rel=0, abs=0)
    np.testing.assert_array_equal(ours.jac, p.fun(ours.x)[1])


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_minimize_defaults_converge(name):
    p = PROBLEMS[name]
    r = minimize(p.fun, p.x0, jac=True)
    assert r.success and r.status == 0, r.message
    assert r.fun - p.f_star <= 1e-8 * max(1.0, p.fun(p.x0)[0] - p.f_star)
    assert r.nfev == r.njev and r.nit >= 1 and r.nfev >= r.nit


def test_scipy_custom_method_gives_the_same_run():
    p = PROBLEMS["rosenbrock_100"]
    a = minimize(p.fun, p.x0, options=dict(history_size=7), jac=True)
    b = so.minimize(p.fun, p.x0, jac=True, method=scipy_lbfgs, options=dict(history_size=7))
    np.testing.assert_array_equal(a.x, b.x)
    assert (a.fun, a.nit, a.nfev, a.status, a.message) == (b.fun, b.nit, b.nfev, b.status, b.message)
    c = so.minimize(lambda x: p.fun(x)[0], p.x0, jac=lambda x: p.fun(x)[1], method=scipy_lbfgs, tol=1e-3)
    d = minimize(p.fun, p.x0, tol=1e-3, jac=True)         # tol sets gtol and ftol, as scipy does for L-BFGS-B
    assert c.success and c.fun == d.fun and c.nit == d.nit < a.nit


def test_minimize_jac_callable_and_finite_differences():
    p = PROBLEMS["beale"]
    a = minimize(p.fun, p.x0, jac=True)
    b = minimize(lambda x: p.fun(x)[0], p.x0, jac=lambda x: p.fun(x)[1])
    np.testing.assert_array_equal(a.x, b.x)
    c = minimize(lambda x: p.fun(x)[0], p.x0, jac=False, options=dict(gtol=1e-6))
    assert c.success and np.allclose(c.x, p.x_star, atol=1e-4)
    assert c.nfev > c.njev   # forward differences cost n evaluations per gradient


def test_minimize_args_and_shape_and_float32():
    def fun(x, a):
        return float(np.sum((x - a) ** 2)), 2 * (x - a)
    r = minimize(fun, np.zeros((2, 3)), args=(1.5,), jac=True)
    assert r.x.shape == (2, 3) and np.allclose(r.x, 1.5)
    r32 = minimize(fun, np.zeros(5, np.float32), args=(np.float32(2.0),), jac=True)
    assert r32.x.dtype == np.float32 and r32.success and np.allclose(r32.x, 2.0)


@pytest.mark.parametrize("opt,status,word", [({"maxiter": 5}, 1, "maxiter=5"), ({"maxfun": 7}, 1, "maxfun=7")])
def test_minimize_budget_is_reported_honestly(opt, status, word):
    p = PROBLEMS["rosenbrock_100"]
    r = minimize(p.fun, p.x0, options=opt, jac=True)
    assert r.status == status and not r.success and word in r.message
    if "maxiter" in opt:
        assert r.nit == 5
    else:
        assert r.nfev <= 8      # a search in progress may overrun by one evaluation


def test_minimize_nan_region_never_leaves_a_worse_point():
    p = PROBLEMS["rosenbrock_2"]
    seen = []

    def fun(x):
        f, g = p.fun(x)
        if x[0] > 0.5:          # the minimiser (1, 1) is in the NaN region: the solver must stop honestly
            f = np.nan
        else:
            seen.append(f)
        return f, g

    r = minimize(fun, p.x0, jac=True)
    assert np.isfinite(r.fun) and r.fun == min(seen)
    assert r.x[0] <= 0.5
    assert r.status in (0, 2)
    if r.status == 2:
        assert not r.success and ("NaN" in r.message or "line search" in r.message)


def test_minimize_failed_line_search_restarts_then_stops():
    p = PROBLEMS["rosenbrock_2"]
    calls = []

    def wrong(x):               # gradient with the wrong sign: no search along -H g can decrease f
        f, g = p.fun(x)
        calls.append(f)
        return f, -g

    f0 = p.fun(p.x0)[0]
    r = minimize(wrong, p.x0, jac=True)
    assert r.status == 2 and not r.success and "line search" in r.message
    assert r.fun == f0 and np.array_equal(r.x, p.x0)      # never worse than the best point seen


def test_minimize_callback_forms_and_stop():
    p = PROBLEMS["rosenbrock_2"]
    xs = []
    r = minimize(p.fun, p.x0, callback=lambda xk: xs.append(xk), jac=True)
    assert len(xs) == r.nit
    res = []

    def cb(intermediate_result):
        res.append(intermediate_result.fun)
        if len(res) == 3:
            raise StopIteration

    r = minimize(p.fun, p.x0, callback=cb, jac=True)
    assert r.status == 99 and not r.success and len(res) == 3 and r.nit == 3


def test_minimize_rejects_bad_input():
    p = PROBLEMS["rosenbrock_2"]
    with pytest.raises(ValueError, match="bounds"):
        minimize(p.fun, p.x0, bounds=[(0, 1), (0, 1)], jac=True)
    with pytest.raises(ValueError, match="L-BFGS"):
        minimize(p.fun, p.x0, method="BFGS", jac=True)
    with pytest.raises(TypeError, match="unknown options"):
        minimize(p.fun, p.x0, options={"maxcor": 5}, jac=True)
    with pytest.raises(ValueError, match="line_search"):
        minimize(p.fun, p.x0, options={"line_search": "armijo"}, jac=True)
    with pytest.raises(ValueError, match="history_size"):
        minimize(p.fun, p.x0, options={"history_size": 0}, jac=True)
    with pytest.raises(ValueError, match="gradient must be 2 real numbers"):
        minimize(lambda x: (0.0, np.zeros(3)), p.x0, jac=True)


def test_minimize_fixed_step_mode():
    p = PROBLEMS["quadratic_1000_cond1e+06"]
    r = minimize(p.fun, p.x0, options=dict(line_search=None, lr=1e-6, maxiter=50), jac=True)
    assert r.status == 1 and r.nit == 50 and r.fun < p.fun(p.x0)[0]


# ---- the C core directly -----------------------------------------------------------------------------------
def _numpy_two_loop(g, S, Y, h_diag):
    q = -g.copy()
    al = []
    for s, y in zip(S[::-1], Y[::-1]):
        a = (s @ q) / (y @ s)
        al.append(a)
        q -= a * y
    r = h_diag * q
    for (s, y), a in zip(zip(S, Y), al[::-1]):
        b = (y @ r) / (y @ s)
        r += (a - b) * s
    return r


def _dense_inverse_hessian(S, Y, h_diag, n):
    H = h_diag * np.eye(n)
    for s, y in zip(S, Y):
        rho = 1.0 / (y @ s)
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,m,npairs", [(1, 1, 1), (7, 3, 3), (13, 4, 6), (64, 5, 5), (33, 10, 2)])
def test_two_loop_matches_numpy(dtype, n, m, npairs):
    rng = np.random.default_rng(n * 100 + m)
    mach = C.Machine(n, dtype, m, True)
    A = rng.standard_normal((n, n))
    A = A @ A.T + n * np.eye(n)                       # SPD: y = A s has positive curvature
    pairs = []
    for _ in range(npairs):
        s = rng.standard_normal(n)
        pairs.append((s, A @ s))
    pairs = [(s.astype(dtype), y.astype(dtype)) for s, y in pairs]
    for k in range(min(m, npairs)):
        mach.add_slot()
    # push the pairs through the ring the way the core does (oldest overwritten once full)
    for i, (s, y) in enumerate(pairs):
        k = i % m
        mach.old_stps[k][...] = s
        mach.old_dirs[k][...] = y
        mach.ro[k] = 1.0 / float(np.dot(y.astype(np.float64), s.astype(np.float64)))
    live = pairs[-m:]
    mach.st["hist_len"] = len(live)
    mach.st["hist_start"] = (npairs % m) if npairs > m else 0
    s_, y_ = (live[-1][0].astype(np.float64), live[-1][1].astype(np.float64))
    mach.st["h_diag"] = (y_ @ s_) / (y_ @ y_)
    g = rng.standard_normal(n).astype(dtype)
    mach.g[...] = g
    mach.core.direction()
    S = [s.astype(np.float64) for s, _ in live]
    Y = [y.astype(np.float64) for _, y in live]
    ref = _numpy_two_loop(g.astype(np.float64), S, Y, mach.st["h_diag"])
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(mach.d, ref, rtol=tol, atol=tol * np.abs(ref).max())
    dense = -_dense_inverse_hessian(S, Y, mach.st["h_diag"], n) @ g.astype(np.float64)
    np.testing.assert_allclose(mach.d, dense, rtol=1e3 * tol, atol=1e3 * tol * np.abs(dense).max())


def _drive(fun, n, m=5, line_search=True, record=None, replay=None, max_iter=200):
    mach = C.Machine(n, np.float64, m, line_search)
    mach.x[...] = PROBLEMS["rosenbrock_100"].x0[:n] if n == 100 else np.linspace(-1, 1, n)
    mach.core.set_hyper(lr=0.1 if not line_search else 1.0, tolerance_grad=1e-5, tolerance_change=0.0, ftol=0.0,
                        ls_tolerance_change=1e-9, c1=1e-4, c2=0.9, curv_abs=0.0, curv_rel=2.2e-16,
                        max_iter=max_iter, max_eval=10 ** 6, max_ls=20, line_search=line_search, eval_last=True,
                        report_iter=True, restart_bad_dir=True)
    f, tasks, k = 0.0, [], 0
    while True:
        task = mach.core.run(f)
        tasks.append(task)
        if task == C.EVAL:
            if replay is not None:
                x_rec, f, g = replay[k]
                np.testing.assert_array_equal(mach.x, x_rec)      # the core asks for exactly the same point
                k += 1
            else:
                f, g = fun(mach.x.copy())
                if record is not None:
                    record.append((mach.x.copy(), f, g.copy()))
            mach.g[...] = g
        elif task == C.NEED_SLOT:
            mach.add_slot()
        elif task >= C.STOP:
            return mach, tasks


@pytest.mark.parametrize("line_search", [True, False])
def test_state_machine_call_by_call_on_a_replayed_objective(line_search):
    p = P.rosenbrock(100)
    rec = []
    m1, t1 = _drive(p.fun, 100, line_search=line_search, record=rec, max_iter=60)
    m2, t2 = _drive(None, 100, line_search=line_search, replay=rec, max_iter=60)
    assert t1 == t2
    assert t1[-1] == C.MAX_ITER
    assert t1.count(C.ITER) == 60 and t1.count(C.EVAL) == len(rec)
    assert t1.count(C.NEED_SLOT) == 5                      # slots are requested once each, lazily
    np.testing.assert_array_equal(m1.x, m2.x)
    assert m2.st["phase"] == 0 and m2.st["status"] == C.MAX_ITER
    # the reported iterate is the evaluated point with the reported value
    xs = [r[0] for r in rec]
    assert any(np.array_equal(m1.x, x) for x in xs)


def test_state_machine_is_resumable_from_its_arrays():
    """Copy every buffer mid-run into a fresh machine (what a checkpoint does) and finish both: same result."""
    p = P.rosenbrock(30)
    a = C.Machine(30, np.float64, 4, True)
    a.x[...] = p.x0
    hyper = dict(lr=1.0, tolerance_grad=1e-8, tolerance_change=0.0, ftol=0.0, ls_tolerance_change=1e-9, c1=1e-4,
                 c2=0.9, curv_abs=0.0, curv_rel=2.2e-16, max_iter=500, max_eval=10 ** 6, max_ls=20,
                 line_search=True, eval_last=True, report_iter=True, restart_bad_dir=True)
    a.core.set_hyper(**hyper)
    f, evals = 0.0, 0
    while evals < 37:                         # stop somewhere inside a line search
        task = a.core.run(f)
        if task == C.EVAL:
            f, g = p.fun(a.x.copy())
            a.g[...] = g
            evals += 1
        elif task == C.NEED_SLOT:
            a.add_slot()
    keep = a.core  # noqa: F841
    b = C.Machine(30, np.float64, 4, True)
    b.core.set_hyper(**hyper)
    for name in ("x", "g", "d", "prev_g", "ro", "al", "st"):
        getattr(b, name)[...] = getattr(a, name)
    for y, s in zip(a.old_dirs, a.old_stps):
        b.add_slot(y.copy(), s.copy())
    # scratch buffers (line-search origin and bracket gradients) are part of the state too
    for attr in ("_x0", "_gb0", "_gb1"):
        getattr(b, attr)[...] = getattr(a, attr)
    out = []
    for mach in (a, b):
        ff = f
        while True:
            task = mach.core.run(ff)
            if task == C.EVAL:
                ff, g = p.fun(mach.x.copy())
                mach.g[...] = g
            elif task == C.NEED_SLOT:
                mach.add_slot()
            elif task >= C.STOP:
                break
        out.append((mach.x.copy(), task))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert out[0][1] == out[1][1]


def test_core_rejects_corrupt_state():
    mach = C.Machine(4, np.float64, 3, True)
    mach.core.set_hyper(lr=1.0, tolerance_grad=1e-5, tolerance_change=0.0, ftol=0.0, ls_tolerance_change=1e-9,
                        c1=1e-4, c2=0.9, curv_abs=0.0, curv_rel=0.0, max_iter=10, max_eval=10, max_ls=5,
                        line_search=True, eval_last=False, report_iter=False, restart_bad_dir=False)
    mach.st["phase"] = 42
    with pytest.raises(RuntimeError, match="state"):
        mach.core.run(0.0)
    mach.st["phase"] = 0
    mach.st["hist_len"] = 7
    with pytest.raises(RuntimeError):
        mach.core.run(0.0)
    with pytest.raises(TypeError, match="dtype"):
        mach.core.set_slot(0, np.zeros(4, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="elements"):
        mach.core.set_slot(0, np.zeros(5), np.zeros(5))


def test_cubic_interpolation_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.optim.lbfgs import _cubic_interpolate
    rng = np.random.default_rng(0)
    for _ in range(200):
        x1, x2 = rng.uniform(0, 2, 2)
        f1, f2, g1, g2 = rng.standard_normal(4)
        bounds = None if rng.random() < 0.5 else tuple(sorted(rng.uniform(0, 3, 2)))
        t = torch.tensor
        ref = _cubic_interpolate(x1, t(f1), t(g1), x2, t(f2), t(g2), bounds=bounds)
        got = _kernels.lbfgs_cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds)
        assert got == pytest.approx(float(ref), rel=1e-15, abs=1e-15)


# ---- fastopt.LBFGS -----------------------------------------------------------------------------------------
def _fo_run(p, steps, dtype=np.float64, split=None, **kw):
    x0 = p.x0.astype(dtype)
    parts = np.split(x0, split) if split else [x0]
    params = [Parameter(a.copy()) for a in parts]
    opt = LBFGS(params, **kw)
    pts = []

    def closure():
        x = np.concatenate([q.data.reshape(-1) for q in params])
        pts.append(x)
        f, g = p.fun(x.astype(np.float64))
        for q, gg in zip(params, np.split(g.astype(dtype), split) if split else [g.astype(dtype)]):
            q.grad = gg.reshape(q.data.shape)
        return f

    after = []
    for _ in range(steps):
        opt.step(closure)
        after.append(np.concatenate([q.data.reshape(-1) for q in params]))
    return pts, after, opt


def _torch_run(p, steps, **kw):
    torch = pytest.importorskip("torch")
    x = torch.tensor(p.x0.copy(), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([x], **kw)
    pts = []

    def closure():
        xn = x.detach().numpy().copy()
        pts.append(xn)
        f, g = p.fun(xn)
        x.grad = torch.from_numpy(np.asarray(g, np.float64))
        return torch.tensor(f, dtype=torch.float64)

    after = []
    for _ in range(steps):
        opt.step(closure)
        after.append(x.detach().numpy().copy())
    return pts, after, opt


def _lr_for(name, ls):
    if ls:
        return 1.0
    return {"quadratic_1000_cond1e+06": 1e-6, "brown_badly_scaled": 1e-3}.get(name, 0.1)


def _rel(a, b):
    """Worst over points of max|a - b| / max|a| (0 where both points are exactly equal)."""
    a, b = np.asarray(a), np.asarray(b)
    diff = np.max(np.abs(a - b), axis=-1)
    scale = np.max(np.abs(a), axis=-1)
    return float(np.max(np.where(diff == 0, 0.0, diff / np.where(scale == 0, 1.0, scale))))




@pytest.mark.parametrize("ls", [None, "strong_wolfe"])
@pytest.mark.parametrize("name", SMALL)
def test_lbfgs_follows_torch(name, ls):
    pytest.importorskip("torch")
    p = PROBLEMS[name]
    kw = dict(lr=_lr_for(name, ls), line_search_fn=ls)
    # 20 steps of one iteration: the iterates themselves
    _, a, _ = _torch_run(p, 20, max_iter=1, **kw)
    _, b, _ = _fo_run(p, 20, max_iter=1, **kw)
    worst = _rel(a, b)
    # one step of 20 iterations: every point the closure is evaluated at, line-search trials included
    pa, a1, ta = _torch_run(p, 1, max_iter=20, **kw)
    pb, b1, fb = _fo_run(p, 1, max_iter=20, **kw)
    assert len(pa) == len(pb)
    worst = max(worst, _rel(pa + a1, pb + b1))
    assert worst <= 1e-10
    st_t, st_f = ta.state[ta.param_groups[0]["params"][0]], fb.state[fb.param_groups[0]["params"][0]]
    assert (st_t["n_iter"], st_t["func_evals"]) == (st_f["n_iter"], st_f["func_evals"])
    if st_f["n_iter"] > 1:
        assert len(st_t["old_dirs"]) == len(st_f["old_dirs"])
        np.testing.assert_allclose(st_f["ro"], [float(r) for r in st_t["ro"]], rtol=1e-6)   # 1/(y.s): cancels


@pytest.mark.parametrize("ls", [None, "strong_wolfe"])
def test_lbfgs_follows_torch_with_a_wrapping_ring(ls):
    pytest.importorskip("torch")
    p = PROBLEMS["rosenbrock_100"]
    kw = dict(lr=_lr_for(p.name, ls), line_search_fn=ls, history_size=3, max_iter=7)
    pa, a, ta = _torch_run(p, 3, **kw)
    pb, b, fb = _fo_run(p, 3, **kw)
    assert len(pa) == len(pb)
    assert _rel(pa + a, pb + b) <= 1e-10
    st_t, st_f = ta.state[ta.param_groups[0]["params"][0]], fb.state[fb.param_groups[0]["params"][0]]
    for key in ("old_dirs", "old_stps"):
        assert len(st_t[key]) == len(st_f[key]) == 3
        for u, v in zip(st_t[key], st_f[key]):
            np.testing.assert_allclose(v, u.numpy(), rtol=1e-8, atol=1e-12)


def test_lbfgs_many_tensors_equal_one_tensor():
    p = PROBLEMS["rosenbrock_100"]
    for ls in (None, "strong_wolfe"):
        one = _fo_run(p, 3, max_iter=5, line_search_fn=ls, lr=_lr_for(p.name, ls))[1]
        many = _fo_run(p, 3, split=[10, 11, 60], max_iter=5, line_search_fn=ls, lr=_lr_for(p.name, ls))[1]
        np.testing.assert_array_equal(np.array(one), np.array(many))


def test_lbfgs_float32_converges():
    p = PROBLEMS["rosenbrock_2"]
    pts, after, opt = _fo_run(p, 5, dtype=np.float32, line_search_fn="strong_wolfe")
    assert after[-1].dtype == np.float32
    assert np.allclose(after[-1], 1.0, atol=1e-3)


def test_lbfgs_state_dict_round_trip_continues_identically():
    p = PROBLEMS["rosenbrock_100"]
    xa = Parameter(p.x0.copy())
    a = LBFGS([xa], line_search_fn="strong_wolfe", history_size=4, max_iter=6)

    def closure_for(x):
        def closure():
            f, g = p.fun(x.data)
            x.grad = g
            return f
        return closure

    a.step(closure_for(xa))
    a.step(closure_for(xa))
    sd = a.state_dict()
    xb = Parameter(xa.data.copy())
    b = LBFGS([xb], line_search_fn="strong_wolfe", history_size=4, max_iter=6)
    b.load_state_dict({"state": {k: dict(v) for k, v in sd["state"].items()},
                       "param_groups": [dict(g) for g in sd["param_groups"]]})
    for _ in range(2):
        a.step(closure_for(xa))
        b.step(closure_for(xb))
    np.testing.assert_array_equal(xa.data, xb.data)


def _closure_for(p, x):
    def closure():
        f, g = p.fun(x.data)
        x.grad = g
        return f
    return closure


def test_lbfgs_checkpoint_through_fastopt_save(tmp_path):
    import fastopt
    p = PROBLEMS["rosenbrock_100"]
    xa = Parameter(p.x0.copy())
    a = LBFGS([xa], line_search_fn="strong_wolfe", history_size=3, max_iter=5)
    for _ in range(3):
        a.step(_closure_for(p, xa))
    fastopt.save(a.state_dict(), tmp_path / "ckpt.npz")
    xb = Parameter(xa.data.copy())
    b = LBFGS([xb], line_search_fn="strong_wolfe", history_size=3, max_iter=5)
    b.load_state_dict(fastopt.load(tmp_path / "ckpt.npz"))
    for _ in range(2):
        a.step(_closure_for(p, xa))
        b.step(_closure_for(p, xb))
    np.testing.assert_array_equal(xa.data, xb.data)


def test_lbfgs_continues_from_a_torch_state_dict():
    torch = pytest.importorskip("torch")
    p = PROBLEMS["wood"]
    kw = dict(line_search_fn="strong_wolfe", history_size=4, max_iter=4)
    x = torch.tensor(p.x0.copy(), dtype=torch.float64, requires_grad=True)
    topt = torch.optim.LBFGS([x], **kw)

    def tclosure():
        f, g = p.fun(x.detach().numpy().copy())
        x.grad = torch.from_numpy(g)
        return torch.tensor(f, dtype=torch.float64)

    for _ in range(2):
        topt.step(tclosure)
    sd = topt.state_dict()

    def conv(v):
        if isinstance(v, torch.Tensor):
            return np.asarray(v)
        if isinstance(v, list):
            return [conv(u) for u in v]
        return v

    state = {k: {kk: conv(vv) for kk, vv in st.items()} for k, st in sd["state"].items()}
    y = Parameter(x.detach().numpy().copy())
    opt = LBFGS([y], **kw)
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
    for _ in range(2):
        topt.step(tclosure)
        opt.step(_closure_for(p, y))
    assert _rel([x.detach().numpy()], [y.data]) <= 1e-10


def test_lbfgs_returns_first_closure_value_and_counts():
    p = PROBLEMS["rosenbrock_2"]
    x = Parameter(p.x0.copy())
    opt = LBFGS([x], max_iter=4)
    sentinel = []

    def closure():
        f, g = p.fun(x.data)
        x.grad = g
        out = np.float64(f)
        sentinel.append(out)
        return out

    loss = opt.step(closure)
    assert loss is sentinel[0]
    st = opt.state[x]
    assert st["n_iter"] == 4 and st["func_evals"] == len(sentinel) == 4   # no evaluation after the last step


def test_lbfgs_rejects_bad_input():
    a, b = Parameter(np.zeros(3)), Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="parameter groups"):
        LBFGS([{"params": [a]}, {"params": [b]}])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        LBFGS([a], lr=-1)
    with pytest.raises(ValueError, match="line_search_fn"):
        LBFGS([a], line_search_fn="armijo")
    with pytest.raises(TypeError, match="one dtype"):
        LBFGS([a, Parameter(np.zeros(2, np.float32))])
    opt = LBFGS([a, b])
    with pytest.raises(ValueError, match="parameter groups"):
        opt.add_param_group({"params": [Parameter(np.zeros(1))]})
    before = (a.data.copy(), b.data.copy())

    def bad():
        a.data[...] += 0   # the closure sees the parameters; gradients of the wrong shape
        a.grad = np.ones(4)
        b.grad = np.ones(2)
        return 1.0

    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[0\]: grad has shape"):
        opt.step(bad)
    np.testing.assert_array_equal(a.data, before[0])
    np.testing.assert_array_equal(b.data, before[1])


@pytest.mark.parametrize("ls", [None, "strong_wolfe"])
def test_lbfgs_nan_restores_best_point(ls):
    """After the 6th evaluation every value is NaN: one steepest-descent retry, then a stop on the best point."""
    p = PROBLEMS["rosenbrock_2"]
    x = Parameter(p.x0.copy())
    opt = LBFGS([x], lr=_lr_for(p.name, ls), max_iter=50, line_search_fn=ls)
    seen = []

    def closure():
        f, g = p.fun(x.data)
        if len(seen) >= 6:
            f = np.nan
        seen.append((f, x.data.copy()))
        x.grad = g
        return f

    opt.step(closure)
    assert opt.state[x]["status"] == C.NONFINITE
    best_f, best_x = min((s for s in seen if np.isfinite(s[0])), key=lambda s: s[0])
    np.testing.assert_array_equal(x.data, best_x)
    assert p.fun(x.data)[0] == best_f
    assert len(seen) <= 6 + 2 + 25          # the failing search, the retry, nothing more


def test_lbfgs_signature_matches_torch():
    torch = pytest.importorskip("torch")
    ours = inspect.signature(LBFGS.__init__).parameters
    theirs = inspect.signature(torch.optim.LBFGS.__init__).parameters
    # torch's arguments first, in torch's order and with torch's defaults; then fastopt's additions
    assert list(ours)[:len(theirs)] == list(theirs)
    assert list(ours)[len(theirs):] == ["bounds", "maximize"]
    for k in theirs:
        assert ours[k].default == theirs[k].default, k
    assert ours["bounds"].default is None and ours["maximize"].default is False
