r"""``fastopt.minimize``: scipy.optimize.minimize's interface on fastopt's C L-BFGS and L-BFGS-B cores.

Also ``scipy_lbfgs``, the same solvers as a scipy custom method:
``scipy.optimize.minimize(fun, x0, jac=True, method=fastopt.scipy_lbfgs, bounds=...)``.

scipy is imported only when one of these functions runs (``import fastopt`` does not import it); without
scipy the result is a plain ``dict`` subclass with the same keys.
"""
from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable

import numpy as np

from . import _lbfgs_core as C
from .optim.lbfgs import _whole

__all__ = ["minimize", "scipy_lbfgs"]

_DEFAULTS = dict(maxiter=15000, maxfun=15000, gtol=1e-5, ftol=2.220446049250313e-09, history_size=10,
                 line_search="strong_wolfe", maxls=20, lr=1.0, disp=False)
# scipy's L-BFGS-B options (maxcor is scipy's name for history_size; eps the finite-difference step)
_B_DEFAULTS = dict(maxiter=15000, maxfun=15000, gtol=1e-5, ftol=2.220446049250313e-09, maxcor=10, maxls=20,
                   eps=1e-8, finite_diff_rel_step=None, disp=False)

# the unbounded core's stop messages, with the limit that ran out named as minimize's option
_LIMIT = {C.MAX_ITER: " (maxiter={maxiter})", C.MAX_EVAL: " (maxfun={maxfun}; a line search may overrun it)"}


def _result_type() -> type:
    try:
        from scipy.optimize import OptimizeResult
    except ImportError:  # pragma: no cover - scipy is a test dependency
        class OptimizeResult(dict):  # type: ignore[no-redef]
            __getattr__ = dict.__getitem__
        return OptimizeResult
    return OptimizeResult


def _wants_intermediate_result(callback: Callable) -> bool:
    try:
        params = list(inspect.signature(callback).parameters)
    except (TypeError, ValueError):
        return False
    return params == ["intermediate_result"]


def _method_kind(method: Any) -> str:
    key = method.replace("-", "").replace("_", "").lower() if isinstance(method, str) else None
    if key == "lbfgs":
        return "L-BFGS"
    if key == "lbfgsb":
        return "L-BFGS-B"
    raise ValueError(f"method must be 'L-BFGS' (unconstrained) or 'L-BFGS-B' (bound constraints), got {method!r}")


def parse_bounds(bounds: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """scipy's bounds conventions -> (lower, upper) float64 arrays of n entries (-inf/+inf for an open side).

    Accepts None, a ``scipy.optimize.Bounds`` (anything with ``lb``/``ub``, broadcast to n), or a sequence of n
    ``(lo, hi)`` pairs with None or +-inf for an open side. Raises ValueError for a wrong length, NaN, or
    lo > hi, naming the variable."""
    if bounds is None:
        return np.full(n, -np.inf), np.full(n, np.inf)
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        try:
            lo = np.broadcast_to(np.asarray(bounds.lb, np.float64), (n,)).copy()
            hi = np.broadcast_to(np.asarray(bounds.ub, np.float64), (n,)).copy()
        except ValueError:
            raise ValueError(f"bounds: Bounds.lb/ub of shapes {np.shape(bounds.lb)}/{np.shape(bounds.ub)} "
                             f"do not broadcast to x0's {n} elements") from None
    else:
        try:
            pairs = list(bounds)
        except TypeError:
            raise TypeError(f"bounds must be None, a scipy.optimize.Bounds or a sequence of (lo, hi) pairs, "
                            f"got {type(bounds).__name__}") from None
        if len(pairs) != n:
            raise ValueError(f"bounds: {len(pairs)} (lo, hi) pairs for x0 with {n} elements; they must match")
        lo, hi = np.empty(n), np.empty(n)
        for i, pair in enumerate(pairs):
            try:
                a, b = pair
                lo[i] = -np.inf if a is None else float(a)
                hi[i] = np.inf if b is None else float(b)
            except (TypeError, ValueError):
                raise ValueError(f"bounds[{i}]: expected a (lo, hi) pair of numbers or None, got {pair!r}") from None
    for name, a in (("lower", lo), ("upper", hi)):
        if np.isnan(a).any():
            raise ValueError(f"bounds[{int(np.flatnonzero(np.isnan(a))[0])}]: the {name} bound is NaN")
    bad = np.flatnonzero((lo > hi) | (lo == np.inf) | (hi == -np.inf))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"bounds[{i}]: lower bound {lo[i]} > upper bound {hi[i]} (or an infinite bound on the "
                         "wrong side); no point satisfies it")
    return lo, hi


def _scalar(fv: Any) -> float:
    if fv is None:
        raise TypeError("fun returned None; it must return the objective value (a real scalar)")
    if isinstance(fv, (tuple, list)):
        raise TypeError(f"fun returned a {type(fv).__name__}, but without jac=True it must return f only (a real "
                        "scalar); pass jac=True if fun returns (f, g)")
    a = np.asarray(fv)
    if a.size != 1 or a.dtype.kind not in "biuf":
        raise ValueError(f"fun must return a real scalar, got {type(fv).__name__} of shape {a.shape}")
    return float(a.reshape(()))


def _evaluator(fun: Callable, jac: Any, args: tuple, n: int, dtype: np.dtype, counts: list,
               lo: np.ndarray | None, hi: np.ndarray | None, abs_step: float | None,
               rel_step: float | None) -> Callable:
    """evaluate(x) -> (f, g as an array of n entries). Checks what fun/jac return; finite differences when
    jac is None/False (2-point, forward unless the step would leave the box, then backward)."""

    def grad_array(gv: Any) -> np.ndarray:
        if gv is None:
            raise TypeError("the gradient is None; with jac=True fun must return (f, g)")
        g = np.asarray(gv)
        if g.size != n or g.dtype.kind not in "biuf":
            raise ValueError(f"the gradient must be {n} real numbers (x0's size), got {g.dtype} of shape {g.shape}")
        return g.reshape(n)

    if jac is True:
        def evaluate_pair(xk):
            counts[0] += 1
            counts[1] += 1
            out = fun(xk, *args)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError("jac=True means fun returns (f, g), but it returned "
                                f"{type(out).__name__}; pass jac=None (the default) for finite differences "
                                "or a callable jac")
            return _scalar(out[0]), grad_array(out[1])
        return evaluate_pair
    if callable(jac):
        def evaluate_jac(xk):
            counts[0] += 1
            counts[1] += 1
            fv = _scalar(fun(xk, *args))
            return fv, grad_array(jac(xk, *args))
        return evaluate_jac

    eps_t = float(np.finfo(dtype).eps)

    def f_only(xk):
        counts[0] += 1
        return _scalar(fun(xk, *args))

    def evaluate(xk):
        counts[1] += 1
        fk = f_only(xk)
        ax = np.abs(xk.astype(np.float64))
        if rel_step is not None:
            h = float(rel_step) * np.maximum(1.0, ax)
        elif abs_step is not None and dtype == np.float64:
            h = np.full(n, float(abs_step))
        else:                               # scipy's 2-point default relative step, sqrt(eps) of the dtype
            h = np.sqrt(eps_t) * np.maximum(1.0, ax)
        g = np.empty(n, np.float64)
        xt = xk.copy()
        for i in range(n):
            hi_room = np.inf if hi is None else hi[i] - float(xk[i])
            lo_room = np.inf if lo is None else float(xk[i]) - lo[i]
            step = h[i]
            if step > hi_room:               # forward step would leave the box: go backward (or shrink)
                step = -h[i] if h[i] <= lo_room else (hi_room if hi_room >= lo_room else -lo_room)
            xi = xk[i]
            xt[i] = xi + step
            dx = float(xt[i]) - float(xi)
            if dx == 0.0:
                g[i] = 0.0
            else:
                g[i] = (f_only(xt.copy()) - fk) / dx
            xt[i] = xi
        return fk, g
    return evaluate


class _Failed(Exception):
    pass


def minimize(fun: Callable, x0: Any, args: tuple = (), jac: bool | Callable | None = None,
             method: str = "L-BFGS", bounds: Any = None, tol: float | None = None,
             callback: Callable | None = None, options: dict | None = None) -> Any:
    r"""Minimise a smooth function of one vector by L-BFGS or L-BFGS-B (fastopt's C cores), scipy's way.

    ``method="L-BFGS"`` (unconstrained): each iteration computes :math:`d_k = -H_k g_k` by the two-loop recursion
    over the last ``history_size`` pairs :math:`s_i = x_{i+1} - x_i`, :math:`y_i = g_{i+1} - g_i`,
    :math:`H_k^0 = (y^\top s / y^\top y) I`, then :math:`x_{k+1} = x_k + t_k d_k` with :math:`t_k` from a
    strong-Wolfe line search with cubic interpolation (:math:`c_1 = 10^{-4}`, :math:`c_2 = 0.9`; first trial
    :math:`t = 1`, or :math:`\min(1, 1/\lVert g_0\rVert_1)` on the first iteration). A pair is kept when
    :math:`y^\top s > \epsilon_{mach}\, y^\top y`. A NaN/Inf value or a line search without decrease puts x back
    on the best point seen, clears the memory and retries once from steepest descent.

    ``method="L-BFGS-B"`` (bounds :math:`l \le x \le u`, Byrd, Lu, Nocedal & Zhu 1995 with Morales & Nocedal
    2011): with the compact model :math:`B_k = \theta I - W M W^\top`, each iteration finds the generalized
    Cauchy point :math:`x^c`, the first minimiser of :math:`m(x) = g^\top (x - x_k) + \tfrac12 (x - x_k)^\top B_k
    (x - x_k)` along the projected path :math:`P(x_k - t g)`; minimises :math:`m` over the variables free at
    :math:`x^c` (projecting the result onto the box when that is a descent direction, else backtracking into
    it) to get :math:`\bar x`; then :math:`x_{k+1} = x_k + t(\bar x - x_k)` by the Moré–Thuente search
    (:math:`10^{-3}`, 0.9) with :math:`t` at most the largest feasible step, so **f is only ever evaluated
    inside the bounds** (x0 is clipped into them first).

    Both stop when :math:`\max_i |\mathrm{proj}\, g_i| \le \text{gtol}` (the plain gradient without bounds) or
    :math:`(f_k - f_{k+1}) \le \text{ftol}\,\max(|f_k|, |f_{k+1}|, 1)` (scipy's ``factr * eps``), or when
    ``maxiter`` or ``maxfun`` runs out (checked after each iteration, as scipy does).

    float32: a float32 ``x0`` runs in float32 (iterate, gradient, history) and returns float32 ``x``; the
    default ``ftol`` is then raised to float32's epsilon (1.19e-7), since smaller relative reductions are
    below float32's resolution, and finite differences use the step :math:`\sqrt{\epsilon_{32}}\max(1, |x_i|)`.

    Failures: if ``fun`` (or ``jac``) raises, or returns something unusable (None, a non-scalar value, a
    gradient of the wrong size), the error propagates; the exception carries ``.result``, an
    ``OptimizeResult`` at the last accepted iterate with ``success=False`` and status 2.

    Args:
        fun (callable): ``fun(x, *args)``; returns f, or ``(f, g)`` when ``jac`` is True. ``x`` is a fresh 1-D
            copy at each call (float32 when x0 is float32).
        x0 (array_like): starting point (flattened; ``x`` and ``jac`` come back in its shape).
        args (tuple, optional): extra arguments for ``fun`` and ``jac`` (default: ``()``).
        jac (bool or callable, optional): None/False for 2-point finite differences (default: None, as scipy;
            n extra evaluations per gradient, counted in ``nfev``), True if ``fun`` returns ``(f, g)``, or a
            callable ``jac(x, *args)``.
        method (str, optional): ``"L-BFGS"`` or ``"L-BFGS-B"`` (any case, dashes optional) (default: ``"L-BFGS"``).
        bounds (optional): L-BFGS-B only: None, a sequence of ``(lo, hi)`` pairs (None or +-inf for an open
            side; lo == hi fixes a variable) or a ``scipy.optimize.Bounds`` (default: None). lo > hi, NaN or a
            wrong length raise ValueError before fun is called.
        tol (float, optional): sets ``gtol`` and ``ftol`` when they are not in ``options`` (default: None).
        callback (callable, optional): called after each iteration as ``callback(intermediate_result)`` (an
            OptimizeResult with ``x`` and ``fun``) if its only parameter has that name, else
            ``callback(xk)``; raising StopIteration stops the solver (status 99 for L-BFGS, 2 for L-BFGS-B as
            in scipy).
        options (dict, optional): both methods: ``maxiter`` (15000), ``maxfun`` (15000), ``gtol`` (1e-5),
            ``ftol`` (2.22e-9), ``maxls`` (20), ``disp`` (False; True prints one line per iteration).
            L-BFGS: ``history_size`` (10), ``line_search`` (``"strong_wolfe"`` or None for the fixed step
            ``lr``), ``lr`` (1.0). L-BFGS-B (scipy's names): ``maxcor`` (10, the history size; ``history_size``
            is accepted too), ``eps`` (1e-8, the absolute finite-difference step), ``finite_diff_rel_step``
            (None).

    Returns:
        scipy.optimize.OptimizeResult: ``x``, ``fun``, ``jac``, ``nit``, ``nfev``, ``njev``, ``status``
        (0 converged, 1 budget exhausted, 2 abnormal stop, 99 stopped by the callback in L-BFGS),
        ``success`` (True only for status 0) and ``message`` (scipy's wording for L-BFGS-B); L-BFGS-B adds
        ``hess_inv`` (scipy's ``LbfgsInvHessProduct`` of the stored pairs).

    Example:
        >>> def f(x):  # a quadratic with its minimum at (1, -2); returns (f, g), hence jac=True
        ...     d = x - np.array([1.0, -2.0])
        ...     return float(d @ d), 2 * d
        >>> res = fastopt.minimize(f, np.zeros(2), jac=True)
        >>> res.success, np.round(res.x, 6)
        (True, array([ 1., -2.]))
        >>> res = fastopt.minimize(f, np.zeros(2), jac=True, method="L-BFGS-B", bounds=[(None, 0.5), (-1, 1)])
        >>> np.round(res.x, 6)
        array([ 0.5, -1. ])
    """
    kind = _method_kind(method)
    if not isinstance(args, tuple):
        args = (args,)
    if not (jac is True or callable(jac) or jac is None or jac is False):
        raise TypeError(f"jac must be True, a callable, False or None, got {jac!r}")
    x_in = np.asarray(x0)
    if x_in.dtype.kind not in "biuf":
        raise TypeError(f"x0 must be real numbers, got dtype {x_in.dtype}")
    if kind == "L-BFGS":
        if bounds is not None:
            raise ValueError("bounds need method='L-BFGS-B'; method 'L-BFGS' is unconstrained")
        return _minimize_lbfgs(fun, x_in, args, jac, tol, callback, options)
    return _minimize_lbfgsb(fun, x_in, args, jac, bounds, tol, callback, options)


def _options(options: dict | None, defaults: dict, tol: float | None) -> dict:
    opts = dict(options or {})
    unknown = set(opts) - set(defaults)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}; known: {sorted(defaults)}")
    if tol is not None:
        opts.setdefault("gtol", tol)
        opts.setdefault("ftol", tol)
    return {**defaults, **opts}


def _finite(o: dict, *names: str) -> None:
    for name in names:
        v = o[name]
        real = not isinstance(v, bool) and isinstance(v, numbers.Real)  # a separate flag keeps v's type Any
        if not real or not (v >= 0.0 and np.isfinite(v)):
            raise ValueError(f"options['{name}'] must be a finite number >= 0, got {v!r}")


def _callback_caller(callback: Callable | None, R: type, shape: tuple) -> Callable[[np.ndarray, float], bool]:
    """``stop(x, f)``: give the user's callback a copy of the accepted iterate ``x`` (in ``shape``) and ``f``; True
    when the callback asked to stop (raised StopIteration), as scipy does."""
    if callback is None:
        return lambda x, f: False
    call = ((lambda x, f: callback(intermediate_result=R(x=x, fun=f))) if _wants_intermediate_result(callback)
            else (lambda x, f: callback(x)))

    def stop(x: np.ndarray, f: float) -> bool:
        try:
            call(x.copy().reshape(shape), f)
        except StopIteration:
            return True
        return False
    return stop


def _evaluate_into(evaluate: Callable, X: np.ndarray, G: np.ndarray, failed: Callable[[], Any]) -> float:
    """f at the core's iterate ``X``, its gradient written into ``G``. An exception from the user's function
    propagates carrying ``failed()``, the result at the last accepted iterate (see _attach)."""
    try:
        f, gv = evaluate(X.copy())
    except BaseException as e:
        _attach(e, failed())
        raise
    np.copyto(G, gv, casting="unsafe")
    return f


def _minimize_lbfgs(fun, x_in, args, jac, tol, callback, options):
    R = _result_type()
    o = _options(options, _DEFAULTS, tol)
    # whole numbers >= 1, refused rather than truncated (2.7 or True are errors, as in fastopt.LBFGS)
    maxiter, maxfun, maxls, m = (_whole(f"options['{k}']", o[k], 1) for k in ("maxiter", "maxfun", "maxls",
                                                                              "history_size"))
    if o["line_search"] not in C.LINE_SEARCHES:
        raise ValueError(f"options['line_search'] must be 'strong_wolfe' or None, got {o['line_search']!r}")
    _finite(o, "gtol", "ftol", "lr")
    gtol, ftol, lr = float(o["gtol"]), float(o["ftol"]), float(o["lr"])
    dtype = np.dtype(np.float32) if x_in.dtype == np.float32 else np.dtype(np.float64)
    if dtype == np.float32 and "ftol" not in (options or {}) and tol is None:
        ftol = max(ftol, float(np.finfo(np.float32).eps))
    x_flat = x_in.astype(dtype).reshape(-1)
    n = x_flat.size
    line_search = o["line_search"] == "strong_wolfe"
    mach = C.Machine(n, dtype, m, line_search)
    mach.x[...] = x_flat
    core, X, G = mach.core, mach.x, mach.g
    core.set_hyper(lr=lr, tolerance_grad=gtol, tolerance_change=0.0, ftol=ftol, ls_tolerance_change=1e-9, c1=1e-4,
                   c2=0.9, curv_abs=0.0, curv_rel=float(np.finfo(dtype).eps), max_iter=maxiter, max_eval=maxfun,
                   max_ls=maxls, line_search=line_search, eval_last=True, report_iter=True, restart_bad_dir=True)
    counts = [0, 0]  # nfev, njev
    evaluate = _evaluator(fun, jac, args, n, dtype, counts, None, None, None, None)
    shape = x_in.shape if x_in.ndim else (n,)
    stop = _callback_caller(callback, R, shape)

    def result(x, f, g, status, message, nit):
        return R(x=x.copy().reshape(shape), fun=float(f), jac=g.copy().reshape(shape), nit=nit, nfev=counts[0],
                 njev=counts[1], status=status, success=status == 0, message=message)

    nit = 0
    f = 0.0
    last = (X.copy(), np.nan, G.copy())
    stopped_by_callback = False
    while True:
        task = core.run(f)
        if task == C.EVAL:
            f = _evaluate_into(evaluate, X, G, lambda: result(last[0], last[1], last[2], 2, "Error: fun failed; x is "
                                                              "the last accepted iterate.", nit))
            if nit == 0 and np.isnan(last[1]):
                last = (X.copy(), f, G.copy())
        elif task == C.ITER:
            nit += 1
            last = (X.copy(), mach["f"], G.copy())
            if o["disp"]:
                print(f"L-BFGS iter {nit:6d}  f = {mach['f']: .10e}  max|g| = "
                      f"{float(np.max(np.abs(G), initial=0.0)):.3e}  nfev = {counts[0]}")
            if stop(X, mach["f"]):
                stopped_by_callback = True
                break
        elif task == C.NEED_SLOT:
            mach.add_slot()
        else:
            break

    if stopped_by_callback:
        status, message = 99, "Stopped: `callback` raised `StopIteration`."
    else:
        status, message = C.CODES[task]
        message += _LIMIT.get(task, "").format(maxiter=maxiter, maxfun=maxfun)
        if status == 1 and np.max(np.abs(G), initial=0.0) <= gtol:
            status, message = C.CODES[C.CONV_GRAD]
    if o["disp"]:
        print(message)
    return result(X, mach["f"], G, status, message, nit)


def _attach(e: BaseException, res: Any) -> None:
    """Hand the last accepted iterate to the caller through the exception that is propagating."""
    try:
        e.result = res  # type: ignore[attr-defined]
        e.add_note(f"fastopt.minimize: the exception's .result holds the last accepted iterate (f = {res.fun})")
    except (AttributeError, TypeError):  # pragma: no cover - exceptions without a __dict__
        pass


def _minimize_lbfgsb(fun, x_in, args, jac, bounds, tol, callback, options):
    R = _result_type()
    opts = dict(options or {})
    if "history_size" in opts:
        if "maxcor" in opts:
            raise TypeError("options 'maxcor' and 'history_size' are the same setting; give one")
        opts["maxcor"] = opts.pop("history_size")
    o = _options(opts, _B_DEFAULTS, tol)
    maxiter, maxfun, maxls, m = (_whole(f"options['{k}']", o[k], 1) for k in ("maxiter", "maxfun", "maxls", "maxcor"))
    _finite(o, "gtol", "ftol", "eps")
    if o["finite_diff_rel_step"] is not None:
        _finite(o, "finite_diff_rel_step")
    gtol, ftol = float(o["gtol"]), float(o["ftol"])
    dtype = np.dtype(np.float32) if x_in.dtype == np.float32 else np.dtype(np.float64)
    if dtype == np.float32 and "ftol" not in opts and tol is None:
        ftol = max(ftol, float(np.finfo(np.float32).eps))
    n = x_in.size
    lo, hi = parse_bounds(bounds, n)
    mach = C.BMachine(n, dtype, m, lo, hi)
    np.copyto(mach.x, np.clip(x_in.astype(np.float64).reshape(-1), lo, hi), casting="unsafe")
    np.clip(mach.x, mach.lo, mach.hi, out=mach.x)
    mach.core.set_hyper(ftol=ftol, gtol=gtol, eps=float(np.finfo(dtype).eps), lr=1.0, ls_ftol=1e-3, ls_gtol=0.9,
                        ls_xtol=0.1, fabs_tol=0.0, xabs_tol=0.0, max_iter=maxiter, max_fun=maxfun, max_ls=maxls,
                        line_search=True, report_iter=True)
    counts = [0, 0]
    box = (mach.lo.astype(np.float64), mach.hi.astype(np.float64))
    evaluate = _evaluator(fun, jac, args, n, dtype, counts, box[0], box[1], float(o["eps"]),
                          o["finite_diff_rel_step"])
    shape = x_in.shape if x_in.ndim else (n,)
    stop = _callback_caller(callback, R, shape)
    core, X, G = mach.core, mach.x, mach.g

    def result(x, f, g, code):
        status, message = C.B_CODES[code]
        k, head = mach["col"], mach["head"]
        order = [(head + i) % m for i in range(k)]
        res = R(x=x.copy().reshape(shape), fun=float(f), jac=g.copy().reshape(shape), nit=mach["nit"],
                nfev=counts[0], njev=counts[1], status=status, success=status == 0, message=message)
        try:
            from scipy.optimize import LbfgsInvHessProduct
            res["hess_inv"] = LbfgsInvHessProduct(mach.S[order].astype(np.float64), mach.Y[order].astype(np.float64))
        except ImportError:  # pragma: no cover
            pass
        return res

    f = 0.0
    last = None
    while True:
        task = core.run(f)
        if task == C.B_EVAL:
            # nothing accepted yet when fun fails: the result is at the (clipped) starting point
            f = _evaluate_into(evaluate, X, G, lambda: result(*(last or (X.copy(), np.nan, np.full(n, np.nan, dtype))),
                                                              C.B_FUN_ERROR))
            if last is None:
                last = (X.copy(), f, G.copy())
        elif task == C.B_ITER:
            last = (X.copy(), mach["f"], G.copy())
            if o["disp"]:
                print(f"L-BFGS-B iter {mach['nit']:6d}  f = {mach['f']: .10e}  |proj g| = {mach['sbgnrm']:.3e}  "
                      f"nfev = {counts[0]}  free = {mach['nfree']}")
            if stop(X, mach["f"]):
                task = C.B_CALLBACK
                break
        else:
            break
    if task == C.B_CALLBACK:
        assert last is not None         # the callback that stopped the run was given the iterate in `last`
        out = result(last[0], last[1], last[2], task)
    else:
        out = result(X, mach["f"], G, task)
    if o["disp"]:
        print(out.message)
    return out


def scipy_lbfgs(fun: Callable, x0: Any, args: tuple = (), jac: Any = None, hess: Any = None,
                hessp: Any = None, bounds: Any = None, constraints: Any = (), callback: Callable | None = None,
                **options: Any) -> Any:
    r"""fastopt's L-BFGS / L-BFGS-B as a scipy custom method: ``scipy.optimize.minimize(fun, x0, jac=True,
    method=fastopt.scipy_lbfgs, bounds=..., options={...})``.

    scipy hands over ``fun`` and ``jac`` (with ``jac=True`` it splits ``fun`` into a memoised pair), the
    bounds and the options; ``tol`` arrives as ``options['tol']`` and sets ``gtol``/``ftol`` as in
    :func:`fastopt.minimize`. Without bounds this is ``method="L-BFGS"``; with bounds it is
    ``method="L-BFGS-B"`` (every evaluation inside the box). ``hess``/``hessp`` are not used.

    Args:
        fun, x0, args, jac, callback: as in :func:`fastopt.minimize`.
        hess, hessp: ignored (L-BFGS builds its own curvature model) (default: None).
        bounds: None, ``(lo, hi)`` pairs or a ``scipy.optimize.Bounds`` (default: None).
        constraints: must be empty (default: ``()``).
        **options: ``tol`` and the options of :func:`fastopt.minimize` for the method used.

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
    method = "L-BFGS" if bounds is None else "L-BFGS-B"
    return minimize(fun, x0, args=args, jac=jac, method=method, bounds=bounds, tol=tol,
                    callback=callback, options=options)
