r"""``fastopt.minimize``: scipy.optimize.minimize's interface on fastopt's C L-BFGS core.

Also ``scipy_lbfgs``, the same solver as a scipy custom method:
``scipy.optimize.minimize(fun, x0, jac=True, method=fastopt.scipy_lbfgs)``.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
from scipy.optimize import OptimizeResult

from . import _lbfgs_core as C
from .optim.lbfgs import _whole

__all__ = ["minimize", "scipy_lbfgs"]

_DEFAULTS = dict(maxiter=15000, maxfun=15000, gtol=1e-5, ftol=2.220446049250313e-09, history_size=10,
                 line_search="strong_wolfe", maxls=20, lr=1.0)

_MESSAGES = {
    C.CONV_GRAD: "Converged: max|g_i| <= gtol.",
    C.CONV_F: "Converged: relative reduction of f <= ftol.",
    C.CONV_X: "Converged: the step is zero.",
    C.CONV_GTD: "Converged: no descent direction left (g is numerically zero).",
    C.MAX_ITER: "Stopped: the iteration limit maxiter={maxiter} was reached.",
    C.MAX_EVAL: "Stopped: the evaluation limit maxfun={maxfun} was reached.",
    C.LS_FAILED: ("Stopped: the line search found no decrease of f, also after restarting from steepest "
                  "descent; x is the best point found."),
    C.NONFINITE: ("Stopped: f was NaN or Inf, also after restarting from steepest descent; x is the best "
                  "point found."),
}
# scipy's L-BFGS-B codes: 0 converged, 1 a budget ran out, 2 abnormal stop, 99 callback stopped it
_STATUS = {C.CONV_GRAD: 0, C.CONV_F: 0, C.CONV_X: 0, C.CONV_GTD: 0, C.MAX_ITER: 1, C.MAX_EVAL: 1,
           C.LS_FAILED: 2, C.NONFINITE: 2}


def _wants_intermediate_result(callback: Callable) -> bool:
    try:
        params = list(inspect.signature(callback).parameters)
    except (TypeError, ValueError):
        return False
    return params == ["intermediate_result"]


def minimize(fun: Callable, x0: Any, args: tuple = (), jac: bool | Callable | None = True,
             method: str = "L-BFGS", bounds: Any = None, tol: float | None = None,
             callback: Callable | None = None, options: dict | None = None) -> OptimizeResult:
    r"""Minimise a smooth function of one vector by L-BFGS (fastopt's C core), scipy's way of calling.

    Each iteration computes the direction :math:`d_k = -H_k g_k` by the two-loop recursion over the last
    ``history_size`` pairs :math:`s_i = x_{i+1} - x_i`, :math:`y_i = g_{i+1} - g_i`, with :math:`H_k^0 = (y^\top s / y^\top y) I`, then
    takes :math:`x_{k+1} = x_k + t_k d_k`, :math:`t_k` from a strong-Wolfe line search with cubic
    interpolation (:math:`c_1 = 10^{-4}`, :math:`c_2 = 0.9`; first trial :math:`t = 1`, or
    :math:`\min(1, 1/\lVert g_0\rVert_1)` on the first iteration).  Unlike torch (which skips pairs with
    :math:`y^\top s \le 10^{-10}`), a pair is kept when :math:`y^\top s > \epsilon_{mach}\, y^\top y`, so the
    memory keeps working when f and g are tiny near the minimum. It stops when
    :math:`\max_i |g_i| \le \text{gtol}` or :math:`(f_k - f_{k+1}) \le \text{ftol}\,\max(|f_k|, |f_{k+1}|, 1)`
    (scipy L-BFGS-B's tests and defaults), or when a budget runs out.

    Robustness: a NaN/Inf value or a line search without decrease puts x back on the best point seen,
    clears the memory and retries once from steepest descent; if that fails too it stops with
    ``success=False`` (status 2) and a message saying which.

    Args:
        fun (callable): ``fun(x, *args)``; returns ``(f, g)`` when ``jac`` is True, else ``f``. ``x`` is a
            fresh 1-D copy at each call.
        x0 (array_like): starting point (flattened). float32 stays float32; anything else is float64.
        args (tuple, optional): extra arguments for ``fun`` and ``jac`` (default: ``()``).
        jac (bool or callable, optional): True if ``fun`` returns the gradient too (default), a callable
            ``jac(x, *args)``, or False/None for forward differences (n extra evaluations per gradient).
        method (str, optional): must be ``"L-BFGS"`` (default: ``"L-BFGS"``).
        bounds (optional): must be None; bound constraints are not supported (use scipy's L-BFGS-B).
        tol (float, optional): sets ``gtol`` and ``ftol`` when they are not in ``options`` (default: None).
        callback (callable, optional): called after each iteration as ``callback(intermediate_result)``
            (an OptimizeResult with ``x`` and ``fun``) if its only parameter has that name, else
            ``callback(xk)``; raising StopIteration stops the solver (status 99).
        options (dict, optional): ``maxiter`` (15000), ``maxfun`` (15000; a line search in progress may
            overrun it by one evaluation), ``gtol`` (1e-5), ``ftol`` (2.22e-9, scipy's ``factr=1e7``
            times machine epsilon), ``history_size`` (10, scipy's ``maxcor``), ``line_search``
            (``"strong_wolfe"``, or None for the fixed step ``lr``), ``maxls`` (20 line-search
            iterations per step), ``lr`` (1.0, the first trial step).

    Returns:
        scipy.optimize.OptimizeResult: ``x``, ``fun``, ``jac``, ``nit``, ``nfev``, ``njev``, ``status``
        (0 converged, 1 budget exhausted, 2 line search failed / non-finite values, 99 stopped by the
        callback), ``success`` (True only for status 0) and ``message``.

    Example:
        >>> def f(x):  # a quadratic with its minimum at (1, -2); returns (f, g) since jac=True
        ...     d = x - np.array([1.0, -2.0])
        ...     return float(d @ d), 2 * d
        >>> res = fastopt.minimize(f, np.zeros(2))
        >>> res.success, np.round(res.x, 6)
        (True, array([ 1., -2.]))
    """
    if not isinstance(method, str) or method.replace("-", "").replace("_", "").lower() != "lbfgs":
        raise ValueError(f"method must be 'L-BFGS', got {method!r}")
    if bounds is not None:
        raise ValueError("bounds are not supported by fastopt.minimize (method 'L-BFGS' is unconstrained); "
                         "use scipy.optimize.minimize(method='L-BFGS-B') for bound constraints")
    opts = dict(options or {})
    unknown = set(opts) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}; known: {sorted(_DEFAULTS)}")
    if tol is not None:
        opts.setdefault("gtol", tol)
        opts.setdefault("ftol", tol)
    o = {**_DEFAULTS, **opts}
    # whole numbers >= 1, refused rather than truncated (2.7 or True are errors, as in fastopt.LBFGS)
    maxiter, maxfun, maxls, m = (_whole(f"options['{k}']", o[k], 1) for k in ("maxiter", "maxfun", "maxls",
                                                                              "history_size"))
    gtol, ftol, lr = float(o["gtol"]), float(o["ftol"]), float(o["lr"])
    if o["line_search"] not in C.LINE_SEARCHES:
        raise ValueError(f"options['line_search'] must be 'strong_wolfe' or None, got {o['line_search']!r}")
    for name, v in (("gtol", gtol), ("ftol", ftol), ("lr", lr)):
        if not (v >= 0.0 and np.isfinite(v)):
            raise ValueError(f"options['{name}'] must be a finite number >= 0, got {v}")
    if not isinstance(args, tuple):
        args = (args,)
    if not (jac is True or callable(jac) or jac is None or jac is False):
        raise TypeError(f"jac must be True, a callable, False or None, got {jac!r}")

    x_in = np.asarray(x0)
    dtype = np.float32 if x_in.dtype == np.float32 else np.float64
    x_flat = x_in.astype(dtype).reshape(-1)
    n = x_flat.size
    line_search = o["line_search"] == "strong_wolfe"
    mach = C.Machine(n, dtype, m, line_search)
    mach.x[...] = x_flat
    core, X, G, sc = mach.core, mach.x, mach.g, mach.sc
    core.set_hyper(lr, gtol, 0.0, ftol, 1e-9, 1e-4, 0.9, 0.0, float(np.finfo(dtype).eps), maxiter, maxfun, maxls, line_search, True, True, True)

    counts = [0, 0]  # nfev, njev

    if jac is True:
        def evaluate(xk):
            counts[0] += 1
            counts[1] += 1
            return fun(xk, *args)
    elif callable(jac):
        def evaluate(xk):
            counts[0] += 1
            counts[1] += 1
            return fun(xk, *args), jac(xk, *args)
    else:
        from scipy.optimize import approx_fprime
        h = np.sqrt(np.finfo(dtype).eps)

        def f_only(xk):
            counts[0] += 1
            return fun(xk, *args)

        def evaluate(xk):
            counts[1] += 1
            fk = f_only(xk)
            return fk, approx_fprime(xk, f_only, h * np.maximum(1.0, np.abs(xk)))

    cb_ir = callback is not None and _wants_intermediate_result(callback)
    nit = 0
    f = 0.0
    stopped_by_callback = False
    while True:
        task = core.run(f)
        if task == C.EVAL:
            fv, gv = evaluate(X.copy())
            f = float(fv)
            gv = np.asarray(gv)
            if gv.size != n:
                raise ValueError(f"the gradient has {gv.size} elements, x has {n}")
            np.copyto(G, gv.reshape(n), casting="unsafe")
        elif task == C.ITER:
            nit += 1
            if callback is not None:
                try:
                    if cb_ir:
                        callback(intermediate_result=OptimizeResult(x=X.copy(), fun=float(sc[C.S_F])))
                    else:
                        callback(X.copy())
                except StopIteration:
                    stopped_by_callback = True
                    break
        elif task == C.NEED_SLOT:
            mach.add_slot()
        else:
            break

    if stopped_by_callback:
        status, message = 99, "Stopped: `callback` raised `StopIteration`."
    else:
        status = _STATUS[task]
        message = _MESSAGES[task].format(maxiter=maxiter, maxfun=maxfun)
        if status == 1 and np.max(np.abs(G), initial=0.0) <= gtol:
            status, message = 0, _MESSAGES[C.CONV_GRAD]
    return OptimizeResult(x=X.copy().reshape(x_in.shape) if x_in.ndim else X.copy(),
                          fun=float(sc[C.S_F]), jac=G.copy(), nit=nit, nfev=counts[0], njev=counts[1],
                          status=status, success=status == 0, message=message)


def scipy_lbfgs(fun: Callable, x0: Any, args: tuple = (), jac: Any = None, hess: Any = None,
                hessp: Any = None, bounds: Any = None, constraints: Any = (), callback: Callable | None = None,
                **options: Any) -> OptimizeResult:
    r"""fastopt's L-BFGS as a scipy custom method: ``scipy.optimize.minimize(fun, x0, jac=True,
    method=fastopt.scipy_lbfgs, options={...})``.

    scipy hands over ``fun`` and ``jac`` (with ``jac=True`` it splits ``fun`` into a memoised pair) and
    the options; ``tol`` arrives as ``options['tol']`` and sets ``gtol``/``ftol`` as in
    :func:`fastopt.minimize`, whose options and result this shares. ``hess``/``hessp`` are not used;
    ``bounds`` and ``constraints`` are refused.

    Args:
        fun, x0, args, jac, callback: as in :func:`fastopt.minimize`.
        hess, hessp: ignored (L-BFGS builds its own curvature model) (default: None).
        bounds: must be None (default: None).
        constraints: must be empty (default: ``()``).
        **options: ``tol`` and the options of :func:`fastopt.minimize`.

    Example:
        >>> import scipy.optimize
        >>> def f(x):
        ...     d = x - np.array([1.0, -2.0])
        ...     return float(d @ d), 2 * d
        >>> res = scipy.optimize.minimize(f, np.zeros(2), jac=True, method=fastopt.scipy_lbfgs,
        ...                               options={"gtol": 1e-8})
        >>> res.success, np.round(res.x, 6)
        (True, array([ 1., -2.]))
    """
    if constraints:
        raise ValueError("constraints are not supported by fastopt's L-BFGS")
    tol = options.pop("tol", None)
    return minimize(fun, x0, args=args, jac=jac, bounds=bounds, tol=tol,
                    callback=callback, options=options)
