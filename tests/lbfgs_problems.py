"""Test problems for L-BFGS with analytic gradients, known minima and standard starting points.

Used by tests/test_lbfgs.py and, by path, by bench/bench_lbfgs.py. Sources: Moré, Garbow & Hillstrom,
"Testing unconstrained optimization software", ACM TOMS 7 (1981) for Beale, Wood, helical valley, Powell
singular and Brown badly scaled; the extended (chained) Rosenbrock function as in scipy.optimize.rosen.
Every ``fun(x)`` returns ``(f, g)`` in float64 NumPy, without Python loops over elements. For n = 10000 the
chained Rosenbrock needs more than scipy's 15000 evaluations from the standard start (both solvers stop on
the budget near f = 7300), so the large case is the extended (pairwise) Rosenbrock.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Problem:
    name: str
    fun: Callable[[np.ndarray], tuple]
    x0: np.ndarray
    f_star: float
    x_star: np.ndarray | None = None


def rosenbrock(n: int) -> Problem:
    def fun(x):
        a, b = x[:-1], x[1:]
        r = b - a * a
        f = float(np.sum(100.0 * r * r + (1.0 - a) ** 2))
        g = np.zeros_like(x)
        g[:-1] = -400.0 * a * r - 2.0 * (1.0 - a)
        g[1:] += 200.0 * r
        return f, g


    x0 = np.full(n, -1.2)
    x0[1::2] = 1.0
    return Problem(f"rosenbrock_{n}", fun, x0, 0.0, np.ones(n))


def extended_rosenbrock(n: int) -> Problem:
    """Moré-Garbow-Hillstrom's extended Rosenbrock (#21): n/2 independent 2-D Rosenbrock pairs, one line search."""
    if n % 2:
        raise ValueError("extended Rosenbrock needs an even n")

    def fun(x):
        a, b = x[0::2], x[1::2]
        r = b - a * a
        f = float(np.sum(100.0 * r * r + (1.0 - a) ** 2))
        g = np.empty_like(x)
        g[0::2] = -400.0 * a * r - 2.0 * (1.0 - a)
        g[1::2] = 200.0 * r
        return f, g

    x0 = np.full(n, -1.2)
    x0[1::2] = 1.0
    return Problem(f"ext_rosenbrock_{n}", fun, x0, 0.0, np.ones(n))


def beale() -> Problem:
    c = np.array([1.5, 2.25, 2.625])

    def fun(x):
        u, v = x
        p = np.array([v, v * v, v ** 3])
        r = c - u + u * p
        f = float(r @ r)
        gu = 2.0 * r @ (p - 1.0)
        gv = 2.0 * r @ (u * np.array([1.0, 2.0 * v, 3.0 * v * v]))
        return f, np.array([gu, gv])

    return Problem("beale", fun, np.array([1.0, 1.0]), 0.0, np.array([3.0, 0.5]))


def wood() -> Problem:
    def fun(x):
        x1, x2, x3, x4 = x
        f = (100 * (x2 - x1 ** 2) ** 2 + (1 - x1) ** 2 + 90 * (x4 - x3 ** 2) ** 2 + (1 - x3) ** 2
             + 10.1 * ((x2 - 1) ** 2 + (x4 - 1) ** 2) + 19.8 * (x2 - 1) * (x4 - 1))
        g = np.array([
            -400 * x1 * (x2 - x1 ** 2) - 2 * (1 - x1),
            200 * (x2 - x1 ** 2) + 20.2 * (x2 - 1) + 19.8 * (x4 - 1),
            -360 * x3 * (x4 - x3 ** 2) - 2 * (1 - x3),
            180 * (x4 - x3 ** 2) + 20.2 * (x4 - 1) + 19.8 * (x2 - 1)])
        return float(f), g

    return Problem("wood", fun, np.array([-3.0, -1.0, -3.0, -1.0]), 0.0, np.ones(4))


def helical_valley() -> Problem:
    def theta(x1, x2):
        t = np.arctan(x2 / x1) / (2 * np.pi) if x1 != 0 else 0.25 * np.sign(x2)
        return t + 0.5 if x1 < 0 else t

    def fun(x):
        x1, x2, x3 = x
        th = theta(x1, x2)
        r2 = x1 * x1 + x2 * x2
        r = np.sqrt(r2)
        a, b = x3 - 10 * th, r - 1
        f = 100 * (a * a + b * b) + x3 * x3
        dth1, dth2 = -x2 / (2 * np.pi * r2), x1 / (2 * np.pi * r2)
        g = np.array([200 * (a * (-10 * dth1) + b * x1 / r),
                      200 * (a * (-10 * dth2) + b * x2 / r),
                      200 * a + 2 * x3])
        return float(f), g

    return Problem("helical_valley", fun, np.array([-1.0, 0.0, 0.0]), 0.0, np.array([1.0, 0.0, 0.0]))


def powell_singular() -> Problem:
    def fun(x):
        x1, x2, x3, x4 = x
        a, b, c, d = x1 + 10 * x2, x3 - x4, x2 - 2 * x3, x1 - x4
        f = a * a + 5 * b * b + c ** 4 + 10 * d ** 4
        g = np.array([2 * a + 40 * d ** 3,
                      20 * a + 4 * c ** 3,
                      10 * b - 8 * c ** 3,
                      -10 * b - 40 * d ** 3])
        return float(f), g

    return Problem("powell_singular", fun, np.array([3.0, -1.0, 0.0, 1.0]), 0.0, np.zeros(4))


def brown_badly_scaled() -> Problem:
    def fun(x):
        x1, x2 = x
        a, b, c = x1 - 1e6, x2 - 2e-6, x1 * x2 - 2
        return float(a * a + b * b + c * c), np.array([2 * a + 2 * c * x2, 2 * b + 2 * c * x1])

    return Problem("brown_badly_scaled", fun, np.array([1.0, 1.0]), 0.0, np.array([1e6, 2e-6]))


def ill_conditioned_quadratic(n: int = 1000, cond: float = 1e6) -> Problem:
    """f = 1/2 sum_i lam_i (x_i - 1)^2 with lam log-spaced over [1, cond] (L-BFGS is rotation invariant)."""
    lam = np.logspace(0.0, np.log10(cond), n)

    def fun(x):
        r = x - 1.0
        lr = lam * r
        return 0.5 * float(r @ lr), lr

    return Problem(f"quadratic_{n}_cond{cond:.0e}", fun, np.zeros(n), 0.0, np.ones(n))


def logistic_regression(n_samples: int = 500, n_features: int = 100, lam: float = 1e-2,
                        seed: int = 0) -> Problem:
    """Mean logistic loss + lam/2 |w|^2 on synthetic data; f* from Newton's method to machine precision."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_samples, n_features))
    w_true = rng.standard_normal(n_features)
    y = np.where(A @ w_true + 0.5 * rng.standard_normal(n_samples) > 0, 1.0, -1.0)
    Ay = A * y[:, None]

    def fun(w):
        z = Ay @ w
        f = float(np.mean(np.logaddexp(0.0, -z)) + 0.5 * lam * (w @ w))
        s = -0.5 * (1.0 - np.tanh(0.5 * z))            # -sigmoid(-z), stable
        return f, Ay.T @ s / n_samples + lam * w

    w = np.zeros(n_features)
    for _ in range(50):
        z = Ay @ w
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        H = (Ay.T * (p * (1 - p))) @ Ay / n_samples + lam * np.eye(n_features)
        step = np.linalg.solve(H, fun(w)[1])
        w = w - step
        if np.max(np.abs(step)) < 1e-15:
            break
    f_star = fun(w)[0]

    return Problem("logistic_l2", fun, np.zeros(n_features), f_star, w)


def all_problems(large: bool = True) -> list[Problem]:
    ps = [rosenbrock(2), rosenbrock(100)]
    if large:
        ps.append(extended_rosenbrock(10000))
    ps += [beale(), wood(), helical_valley(), powell_singular(), brown_badly_scaled(),
           ill_conditioned_quadratic(), logistic_regression()]
    return ps


# ---- bound-constrained problems (L-BFGS-B) --------------------------------------------------------------
# Hock & Schittkowski, "Test examples for nonlinear programming codes" (1981): the problems with bounds only,
# their standard starting points and published optimal values; the driver problem shipped with L-BFGS-B 3.0
# (driver1: n = 25, odd variables in [1, 100], even ones in [-100, 100], x0 = 3); non-negative least squares;
# and large problems built from their KKT conditions (x* chosen with many active bounds, the linear term set
# so that x* satisfies them), so f* is exact.

@dataclass
class BoundProblem:
    name: str
    fun: Callable[[np.ndarray], tuple]
    x0: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    f_star: float
    x_star: np.ndarray | None = None
    m: int = 10

    @property
    def bounds(self) -> list[tuple[float, float]]:
        return list(zip(self.lo.tolist(), self.hi.tolist()))


def _rosen2(x):
    r = x[1] - x[0] ** 2
    return float(100 * r * r + (1 - x[0]) ** 2), np.array([-400 * x[0] * r - 2 * (1 - x[0]), 200 * r])


def hs001() -> BoundProblem:
    return BoundProblem("hs001", _rosen2, np.array([-2.0, 1.0]), np.array([-np.inf, -1.5]), np.array([np.inf, np.inf]),
                        0.0, np.array([1.0, 1.0]))


def hs002() -> BoundProblem:
    # x2 = 1.5 active; x1 solves d/dx1 = 0: -400 x1 (1.5 - x1^2) - 2 (1 - x1) = 0
    x1 = 1.2243707487363527
    return BoundProblem("hs002", _rosen2, np.array([-2.0, 1.0]), np.array([-np.inf, 1.5]), np.array([np.inf, np.inf]),
                        _rosen2(np.array([x1, 1.5]))[0], np.array([x1, 1.5]))


def hs003() -> BoundProblem:
    def fun(x):
        d = x[1] - x[0]
        return float(x[1] + 1e-5 * d * d), np.array([-2e-5 * d, 1.0 + 2e-5 * d])
    return BoundProblem("hs003", fun, np.array([10.0, 1.0]), np.array([-np.inf, 0.0]), np.array([np.inf, np.inf]),
                        0.0, np.zeros(2))


def hs004() -> BoundProblem:
    def fun(x):
        return float((x[0] + 1) ** 3 / 3 + x[1]), np.array([(x[0] + 1) ** 2, 1.0])
    return BoundProblem("hs004", fun, np.array([1.125, 0.125]), np.array([1.0, 0.0]), np.array([np.inf, np.inf]),
                        8.0 / 3.0, np.array([1.0, 0.0]))


def hs005() -> BoundProblem:
    def fun(x):
        s, c, d = np.sin(x[0] + x[1]), np.cos(x[0] + x[1]), x[0] - x[1]
        return (float(s + d * d - 1.5 * x[0] + 2.5 * x[1] + 1),
                np.array([c + 2 * d - 1.5, c - 2 * d + 2.5]))
    return BoundProblem("hs005", fun, np.zeros(2), np.array([-1.5, -3.0]), np.array([4.0, 3.0]),
                        -np.sqrt(3) / 2 - np.pi / 3, np.array([0.5 - np.pi / 3, -0.5 - np.pi / 3]))


def hs038() -> BoundProblem:
    def fun(x):
        a, b, c, d = x
        f = (100 * (b - a * a) ** 2 + (1 - a) ** 2 + 90 * (d - c * c) ** 2 + (1 - c) ** 2
             + 10.1 * ((b - 1) ** 2 + (d - 1) ** 2) + 19.8 * (b - 1) * (d - 1))
        g = np.array([-400 * a * (b - a * a) - 2 * (1 - a),
                      200 * (b - a * a) + 20.2 * (b - 1) + 19.8 * (d - 1),
                      -360 * c * (d - c * c) - 2 * (1 - c),
                      180 * (d - c * c) + 20.2 * (d - 1) + 19.8 * (b - 1)])
        return float(f), g
    return BoundProblem("hs038", fun, np.array([-3.0, -1.0, -3.0, -1.0]), np.full(4, -10.0), np.full(4, 10.0),
                        0.0, np.ones(4))


def hs045() -> BoundProblem:
    def fun(x):
        p = float(np.prod(x))
        g = np.array([np.prod(np.delete(x, i)) for i in range(5)]) / -120.0
        return 2.0 - p / 120.0, g
    return BoundProblem("hs045", fun, np.full(5, 2.0), np.zeros(5), np.arange(1.0, 6.0), 1.0, np.arange(1.0, 6.0))


def hs110() -> BoundProblem:
    def fun(x):
        la, lb = np.log(x - 2.0), np.log(10.0 - x)
        p = float(np.prod(x))
        f = float(np.sum(la * la + lb * lb)) - p ** 0.2
        g = 2 * la / (x - 2.0) - 2 * lb / (10.0 - x) - 0.2 * p ** 0.2 / x
        return f, g
    x_star = np.full(10, 9.35025655)
    return BoundProblem("hs110", fun, np.full(10, 9.0), np.full(10, 2.001), np.full(10, 9.999), -45.77846971, x_star)


def lbfgsb_driver1(n: int = 25) -> BoundProblem:
    """The test driver of L-BFGS-B 3.0 (driver1.f): a chained Rosenbrock-like function with bounds, m = 5."""
    def fun(x):
        t = x[1:] - x[:-1] ** 2
        f = 0.25 * (x[0] - 1.0) ** 2 + float(np.sum(t * t))
        g = np.zeros_like(x)
        g[0] = 2.0 * (x[0] - 1.0)
        g[1:] += 8.0 * t
        g[:-1] -= 16.0 * x[:-1] * t
        return 4.0 * f, g
    lo = np.where(np.arange(n) % 2 == 0, 1.0, -100.0)
    return BoundProblem(f"driver1_{n}", fun, np.full(n, 3.0), lo, np.full(n, 100.0), 0.0, np.ones(n), m=5)


def nnls(m_rows: int = 80, n: int = 40, seed: int = 0) -> BoundProblem:
    """min 1/2 |A x - b|^2 over x >= 0, b from a sparse non-negative x plus noise: about half the bounds active.
    f* comes from scipy.optimize.nnls (an active-set method, exact to rounding)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m_rows, n))
    xt = np.where(rng.random(n) < 0.5, 0.0, rng.random(n) * 3)
    b = A @ xt + 0.5 * rng.standard_normal(m_rows)

    def fun(x):
        r = A @ x - b
        return 0.5 * float(r @ r), A.T @ r
    try:
        from scipy.optimize import nnls as _nnls
        xs, rnorm = _nnls(A, b)
        f_star = 0.5 * rnorm ** 2
    except ImportError:  # pragma: no cover
        xs, f_star = None, float("nan")
    p = BoundProblem(f"nnls_{m_rows}x{n}", fun, np.zeros(n), np.zeros(n), np.full(n, np.inf), f_star, xs)
    p.A, p.b = A, b  # type: ignore[attr-defined]
    return p


def _kkt_pattern(n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x* in [lo, hi] with ~40% at the lower bound, ~20% at the upper, the rest inside, and a gradient g* that
    makes x* a KKT point (g*_i > 0 at a lower bound, < 0 at an upper one, 0 inside)."""
    lo, hi = np.full(n, -1.0), np.full(n, 1.0)
    u = rng.random(n)
    x = rng.uniform(-0.9, 0.9, n)
    g = np.zeros(n)
    at_lo, at_hi = u < 0.4, u > 0.8
    x[at_lo], x[at_hi] = lo[at_lo], hi[at_hi]
    g[at_lo] = rng.uniform(0.1, 2.0, at_lo.sum())
    g[at_hi] = -rng.uniform(0.1, 2.0, at_hi.sum())
    return x, g, lo, hi


def bound_qp(n: int = 2000, seed: int = 1) -> BoundProblem:
    """f = 1/2 x'Ax - b'x, A = tridiag(-1, 2 + 1e-2, -1) (condition ~ 4e2 / 1e-2), bounds [-1, 1], 60% active."""
    rng = np.random.default_rng(seed)
    xs, gs, lo, hi = _kkt_pattern(n, rng)

    def Ax(x):
        y = (2.0 + 1e-2) * x
        y[1:] -= x[:-1]
        y[:-1] -= x[1:]
        return y
    b = Ax(xs) - gs

    def fun(x):
        ax = Ax(x)
        return float(0.5 * x @ ax - b @ x), ax - b
    return BoundProblem(f"bound_qp_{n}", fun, np.zeros(n), lo, hi, fun(xs)[0], xs)


def bound_softplus_chain(n: int = 1000, seed: int = 2) -> BoundProblem:
    """A convex nonlinear problem: f = sum_i softplus(3 (x_i - x_{i+1})) + 0.05 |x|^2 + sum_i x_i^4 / 4 - c'x,
    bounds [-1, 1], c chosen so that a point with 60% of its bounds active is the minimiser (f* exact)."""
    rng = np.random.default_rng(seed)
    xs, gs, lo, hi = _kkt_pattern(n, rng)

    def phi(x):
        d = 3.0 * (x[:-1] - x[1:])
        sp = np.logaddexp(0.0, d)
        s = 3.0 / (1.0 + np.exp(-d))
        f = float(np.sum(sp) + 0.05 * x @ x + np.sum(x ** 4) / 4)
        g = 0.1 * x + x ** 3
        g[:-1] += s
        g[1:] -= s
        return f, g
    c = phi(xs)[1] - gs

    def fun(x):
        f, g = phi(x)
        return f - float(c @ x), g - c
    return BoundProblem(f"softplus_chain_{n}", fun, np.zeros(n), lo, hi, fun(xs)[0], xs)


def bound_problems(large: bool = True) -> list[BoundProblem]:
    out = [hs001(), hs002(), hs003(), hs004(), hs005(), hs038(), hs045(), hs110(), lbfgsb_driver1(), nnls()]
    if large:
        out += [bound_qp(), bound_softplus_chain()]
    return out
