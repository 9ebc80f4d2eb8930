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
