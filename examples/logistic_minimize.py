"""Full-batch L2-regularised logistic regression: fastopt.minimize and scipy.optimize.minimize side by side.

    f(w, b) = mean_i log(1 + exp(-s_i (x_i . w + b))) + (lam / 2) |w|^2,     s_i in {-1, +1}
    grad_w  = X^T r + lam w,   grad_b = sum_i r_i,   r_i = -s_i sigmoid(-s_i (x_i . w + b)) / n

The same function (value and gradient in one call, jac=True) is handed to fastopt.minimize(method="L-BFGS") and
to scipy.optimize.minimize(method="L-BFGS-B") with the same tolerances and memory (10 pairs). Prints, for each, the
final value, the largest gradient component, iterations, evaluations, wall time (and the part of it spent outside
the objective, i.e. in the optimizer itself) and training accuracy, and how far apart the two solutions are; writes f - f* per iteration for both to logistic_minimize.png.

    python examples/logistic_minimize.py
    python examples/logistic_minimize.py --quick
"""
from __future__ import annotations

import sys
import time

import numpy as np
from _common import parser, pyplot, save_figure

import fastopt as fo


def make_data(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Correlated Gaussian features and labels from a noisy linear rule (so the classes overlap)."""
    mix = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    X = rng.standard_normal((n, d)) @ mix
    w_true = rng.standard_normal(d)
    s = np.where(X @ w_true + 0.5 + rng.logistic(size=n) * 2.0 > 0, 1.0, -1.0)
    return X, s


def objective(theta: np.ndarray, X: np.ndarray, s: np.ndarray, lam: float) -> tuple[float, np.ndarray]:
    """Value and gradient of the regularised logistic loss; theta = (w, b)."""
    w, b = theta[:-1], theta[-1]
    margin = s * (X @ w + b)
    f = float(np.mean(np.logaddexp(0.0, -margin)) + 0.5 * lam * (w @ w))
    r = -s * 0.5 * (1.0 - np.tanh(0.5 * margin)) / len(s)     # -s * sigmoid(-margin) / n, overflow-free
    g = np.empty_like(theta)
    g[:-1] = X.T @ r + lam * w
    g[-1] = r.sum()
    return f, g


def solve(name: str, minimize, X, s, lam, options: dict):
    trace = []
    in_fun = [0.0]

    def callback(intermediate_result):
        trace.append(float(intermediate_result.fun))

    def fun(theta, *a):
        t = time.perf_counter()
        out = objective(theta, *a)
        in_fun[0] += time.perf_counter() - t
        return out

    theta0 = np.zeros(X.shape[1] + 1)
    t0 = time.perf_counter()
    res = minimize(fun, theta0, args=(X, s, lam), jac=True, callback=callback, **options)
    seconds = time.perf_counter() - t0
    acc = float(np.mean(np.sign(X @ res.x[:-1] + res.x[-1]) == s))
    return {"name": name, "res": res, "trace": trace, "seconds": seconds, "overhead": seconds - in_fun[0],
            "acc": acc}


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    from scipy.optimize import minimize as scipy_minimize

    n, d = (2000, 20) if args.quick else (20000, 200)
    lam = 1e-3
    X, s = make_data(np.random.default_rng(0), n, d)
    tol = dict(gtol=1e-7, ftol=1e-14)
    runs = [
        solve("fastopt L-BFGS", fo.minimize, X, s, lam,
              dict(method="L-BFGS", options={**tol, "history_size": 10, "maxiter": 1000})),
        solve("scipy L-BFGS-B", scipy_minimize, X, s, lam,
              dict(method="L-BFGS-B", options={**tol, "maxcor": 10, "maxiter": 1000})),
    ]
    print(f"L2-regularised logistic regression (lam = {lam}), {n} samples x {d} features + intercept, float64, "
          f"gtol = {tol['gtol']}, ftol = {tol['ftol']}, memory 10")
    print("time: wall time of the whole call; solver: the part not spent in the objective (the optimizer's own work)")
    print(f"{'':>15}  {'f(x)':>18}  {'max|g|':>8}  {'iters':>5}  {'evals':>5}  {'time':>8}  {'solver':>8}  "
          f"{'train acc':>9}  status")
    for r in runs:
        res = r["res"]
        print(f"{r['name']:>15}  {res.fun:18.15f}  {np.max(np.abs(res.jac)):8.1e}  {res.nit:5d}  {res.nfev:5d}  "
              f"{1e3 * r['seconds']:6.1f}ms  {1e3 * r['overhead']:6.1f}ms  {100 * r['acc']:8.2f}%  "
              f"{res.status} ({'ok' if res.success else 'not converged'})")
    fo_res, sp_res = runs[0]["res"], runs[1]["res"]
    print(f"solutions: max |x_fastopt - x_scipy| = {np.max(np.abs(fo_res.x - sp_res.x)):.2e}, "
          f"f_fastopt - f_scipy = {fo_res.fun - sp_res.fun:+.2e}")

    plt = pyplot()
    if plt is not None:
        f_star = min(fo_res.fun, sp_res.fun)
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for r, style in zip(runs, ("C3-", "C0--")):
            gap = np.maximum(np.array(r["trace"]) - f_star, 1e-13)   # f* is the better of the two finals
            ax.semilogy(np.arange(1, len(gap) + 1), gap, style, label=f"{r['name']} ({r['res'].nfev} evaluations)")
        ax.set_xlabel("iteration")
        ax.set_ylabel("f(x_k) - f*  (floored at 1e-13)")
        ax.set_title(f"Logistic regression, {n} x {d}: L-BFGS in fastopt and scipy")
        ax.legend()
        save_figure(plt, fig, args, "logistic_minimize.png")
    # the two solvers must agree: same objective to 1e-9 relative, same solution to 1e-3
    agree = (abs(fo_res.fun - sp_res.fun) <= 1e-9 * max(1.0, abs(sp_res.fun))
             and np.max(np.abs(fo_res.x - sp_res.x)) <= 1e-3)
    print(f"fastopt and scipy {'agree' if agree else 'DISAGREE'}")
    return 0 if fo_res.success and agree else 1


if __name__ == "__main__":
    sys.exit(main())
