r"""``LBFGS``: torch.optim.LBFGS's closure API on fastopt's C L-BFGS core (csrc/lbfgs.c) and, with ``bounds``, its
L-BFGS-B core (csrc/lbfgsb.c)."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .. import _lbfgs_core as C
from .._kernels import lbfgsb_mw_size as _kernels_mw
from .. import _validate as V
from ..optimizer import Optimizer

__all__ = ["LBFGS", "STATUS_MESSAGES"]

#: why the last ``step`` ended, by the code stored in ``opt.state[first_param]['status']`` (the C core's table)
STATUS_MESSAGES = {code: msg for code, (_, msg) in C.CODES.items()}

_NO_LIMIT = 2 ** 62   # torch's line search is capped by the step's evaluation budget only
_BOUNDED_MAX_LS = 25  # trial points per L-BFGS-B line search (torch's strong-Wolfe default)


def _loss_value(loss: Any) -> float:
    """The closure's value as a float; None, arrays of more than one element and the like are refused."""
    if loss is None:
        raise TypeError("LBFGS.step: the closure returned None; it must return the loss (a real scalar)")
    if isinstance(loss, np.ndarray):
        if loss.size != 1:
            raise ValueError(f"LBFGS.step: the closure returned an array of shape {loss.shape}; it must return "
                             "a scalar loss")
        loss = loss.reshape(())
    try:
        return float(loss)
    except (TypeError, ValueError) as e:
        raise TypeError(f"LBFGS.step: the closure's value {type(loss).__name__} is not a real scalar ({e})") from None


# state keys (torch's names; 'old_dirs'/'old_stps' are lists of flat arrays, oldest first, like torch's lists)
_ARRAY_KEYS = ("d", "prev_flat_grad", "al")
_FLOAT_KEYS = ("t", "H_diag", "prev_loss")
_INT_KEYS = ("func_evals", "n_iter")
_LIST_KEYS = ("old_dirs", "old_stps", "ro")


def _whole(name: str, value: Any, low: int) -> int:
    return V.integer(name, value, low)


class LBFGS(Optimizer):
    r"""L-BFGS with torch.optim.LBFGS's arguments, state and stopping rules; one C state machine underneath.

    All parameters are treated as one flat vector :math:`x` (float32 or float64; every parameter must have
    the same dtype). One ``step(closure)`` runs up to ``max_iter`` iterations:

    .. math::
        \begin{aligned}
        d_k &= -H_k g_k \quad\text{(two-loop recursion over the last } m \text{ pairs } s_i = t_i d_i,\;
              y_i = g_{i+1} - g_i \text{, kept when } y_i^\top s_i > 10^{-10})\\
        H_k^0 &= \frac{y^\top s}{y^\top y} I, \qquad d_1 = -g_1 \text{ on the very first iteration}\\
        x_{k+1} &= x_k + t_k d_k, \quad t_k = \text{lr} \;(\text{first iteration: } \min(1, 1/\lVert g_1\rVert_1)\,
              \text{lr}) \text{, or a strong-Wolfe search from there}
        \end{aligned}

    The step stops after ``max_iter`` iterations or ``max_eval`` evaluations, or when
    :math:`\max_i|g_i| \le` ``tolerance_grad``, :math:`g^\top d > -`\ ``tolerance_change``,
    :math:`\max_i |t d_i| \le` ``tolerance_change`` or :math:`|f_{k+1} - f_k| <` ``tolerance_change``
    (torch's tests, in torch's order). The memory persists across ``step`` calls.

    Args:
        params (iterable): parameters to optimize (one group only; per-parameter options are refused).
        lr (float, optional): step length :math:`\text{lr}` (default: 1).
        max_iter (int, optional): iterations per ``step`` (default: 20).
        max_eval (int, optional): closure evaluations per ``step`` (default: ``max_iter * 5 // 4``).
        tolerance_grad (float, optional): first-order optimality tolerance (default: 1e-7).
        tolerance_change (float, optional): tolerance on value and step changes (default: 1e-9).
        history_size (int, optional): pairs :math:`m` kept in memory (default: 100). Memory for them is
            allocated as they are first needed (``2 m`` vectors at most).
        line_search_fn (str, optional): ``"strong_wolfe"`` (cubic interpolation, :math:`c_1 = 10^{-4}`,
            :math:`c_2 = 0.9`) or None for the fixed step (default: None).
        bounds (list, optional): box constraints :math:`l \le x \le u`, one entry per parameter: None (free)
            or a ``(lower, upper)`` pair, each None, a scalar or an array broadcastable to the parameter's
            shape; ``lower == upper`` fixes an element (default: None, unconstrained L-BFGS).
        maximize (bool, optional): maximise the closure's value instead of minimising it (default: False).

    Bounds: with ``bounds`` the step runs L-BFGS-B (the algorithm of ``fastopt.minimize(method="L-BFGS-B")``:
    generalized Cauchy point, subspace minimisation over the free variables, Morales-Nocedal projection)
    on the same memory across ``step`` calls. Parameters outside the box are first clipped into it, and the
    closure is only ever evaluated inside it. ``line_search_fn="strong_wolfe"`` then means the bounded
    Moré-Thuente search (:math:`10^{-3}`, 0.9, at most 25 trials, never past the largest feasible step);
    ``line_search_fn=None`` takes the fixed step :math:`x \leftarrow x + \min(\text{lr}, t_{max})(\bar x - x)`,
    :math:`t_{max}` the largest step that stays in the box (f may increase; the step then stops). The tests
    become: projected gradient :math:`\max_i |\mathrm{proj}\, g_i| \le` ``tolerance_grad``, no decrease of
    f, :math:`|f_{k+1} - f_k| <` ``tolerance_change`` or :math:`\max_i |x_{k+1} - x_k| \le`
    ``tolerance_change``; ``max_eval`` is checked after each iteration. ``state[params[0]]['status']`` is
    then a code of ``fastopt._lbfgs_core.B_CODES``. The bounds are a constructor argument, not part of
    ``state_dict`` (the L-BFGS-B memory is, under the keys ``lbfgsb_*``).

    float32 parameters run in float32 end to end (iterate, gradient, history); bounds are rounded inward to
    float32 so that every evaluated point is inside the given box.

    Notes:
        Follows torch's numerics (vector operations in the parameters' dtype, scalars in double), so the
        float64 iterates agree with ``torch.optim.LBFGS`` to rounding. Where torch would go on with garbage,
        this one recovers: a NaN/Inf closure value, or a strong-Wolfe search that cannot decrease f, puts the
        parameters back on the best point seen, clears the memory and retries once from steepest descent;
        if that fails too the step ends there. ``state[params[0]]['status']`` holds the code of the last
        stop, explained by ``fastopt.optim.lbfgs.STATUS_MESSAGES``. Rollback: if the closure raises, returns
        None or a non-scalar, or sets a gradient of the wrong shape or dtype, the parameters and the whole
        optimizer state (memory included) are restored to what they were before the ``step`` call, and the
        error propagates; a NaN/Inf value is not an error but goes through the recovery above.

    Example:
        >>> x = fo.Parameter(np.array([-1.2, 1.0]))
        >>> opt = fo.LBFGS([x], line_search_fn="strong_wolfe")
        >>> def closure():
        ...     a, b = x.data
        ...     x.grad = np.array([-400 * a * (b - a * a) - 2 * (1 - a), 200 * (b - a * a)])
        ...     return (1 - a) ** 2 + 100 * (b - a * a) ** 2
        >>> loss = opt.step(closure)
    """

    def __init__(self, params: Iterable[Any], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None, bounds: Sequence[Any] | None = None,
                 maximize: bool = False) -> None:
        lr = V.lr(lr)
        maximize = V.flag("maximize", maximize)
        max_iter = _whole("max_iter", max_iter, 1)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size,
                        line_search_fn=line_search_fn)
        self._check_group(defaults)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]
        self._mach: C.Machine | None = None
        self._bmach: C.BMachine | None = None
        self.maximize = bool(maximize)
        self.bounds = None if bounds is None else self._check_bounds(bounds)

    def _check_group(self, group: dict[str, Any]) -> None:
        """The options' checks (torch's floor, plus: finite, tolerances >= 0); accepted NumPy scalars and
        1-element arrays are replaced in ``group`` by plain Python numbers (as ``Optimizer._check_group``)."""
        ls = group["line_search_fn"]
        normalized = {"lr": V.lr(group["lr"]),
                      "max_iter": _whole("max_iter", group["max_iter"], 1),
                      "max_eval": _whole("max_eval", group["max_eval"], 1),
                      "history_size": _whole("history_size", group["history_size"], 1),
                      "tolerance_grad": V.number("tolerance_grad", group["tolerance_grad"], low=0.0),
                      "tolerance_change": V.number("tolerance_change", group["tolerance_change"], low=0.0)}
        if not (ls is None or isinstance(ls, str)) or ls not in C.LINE_SEARCHES:
            raise ValueError(f"line_search_fn must be 'strong_wolfe' or None, got {ls!r}")
        if "params" in group:
            datas = [V.param_data(p, 0, j) for j, p in enumerate(group["params"])]
            if datas and any(d.dtype != datas[0].dtype for d in datas):
                dts = sorted({str(d.dtype) for d in datas})
                raise TypeError(f"LBFGS needs all parameters in one dtype (they are flattened into one vector), "
                                f"got {dts}")
        self._normalize(group, normalized)

    def _check_bounds(self, bounds: Sequence[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        """One (lower, upper) pair per parameter -> float64 arrays of each parameter's shape."""
        if isinstance(bounds, (str, bytes)) or not isinstance(bounds, (list, tuple)):
            raise TypeError(f"bounds must be a list with one (lower, upper) pair (or None) per parameter, got "
                            f"{type(bounds).__name__}")
        if len(bounds) != len(self._params):
            raise ValueError(f"bounds has {len(bounds)} entries for {len(self._params)} parameters; give one "
                             "(lower, upper) pair (or None) per parameter")
        out = []
        for j, (p, b) in enumerate(zip(self._params, bounds)):
            d = V.param_data(p, 0, j)
            if b is None:
                b = (None, None)
            if not isinstance(b, (list, tuple)) or len(b) != 2:
                raise ValueError(f"bounds[{j}]: expected a (lower, upper) pair or None, got {b!r}")
            pair = []
            for side, v, inf in (("lower", b[0], -np.inf), ("upper", b[1], np.inf)):
                try:
                    a = np.full(d.shape, inf) if v is None else np.array(
                        np.broadcast_to(np.asarray(v, np.float64), d.shape))
                except (TypeError, ValueError):
                    raise ValueError(f"bounds[{j}]: the {side} bound ({np.shape(v)}) is not a number or an array "
                                     f"broadcastable to the parameter's shape {d.shape}") from None
                if np.isnan(a).any():
                    raise ValueError(f"bounds[{j}]: the {side} bound has NaN entries")
                pair.append(a)
            lo, hi = pair
            if ((lo > hi) | (lo == np.inf) | (hi == -np.inf)).any():
                k = int(np.flatnonzero(((lo > hi) | (lo == np.inf) | (hi == -np.inf)).reshape(-1))[0])
                raise ValueError(f"bounds[{j}]: lower > upper at flat index {k} ({lo.reshape(-1)[k]} > "
                                 f"{hi.reshape(-1)[k]}); no value satisfies it")
            out.append((lo, hi))
        return out

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if getattr(self, "param_groups", None):
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    # ---- flat vector <-> parameters ------------------------------------------------------------------
    def _layout(self) -> tuple[list[np.ndarray], list[tuple[int, int]], np.dtype]:
        datas = [V.param_data(p, 0, j) for j, p in enumerate(self._params)]
        dtype = datas[0].dtype
        for j, d in enumerate(datas):
            if d.dtype != dtype:
                raise TypeError(f"{V.where(0, j)}: dtype {d.dtype}, but param_groups[0]['params'][0] is {dtype}; "
                                "LBFGS needs one dtype")
        spans, off = [], 0
        for d in datas:
            spans.append((off, off + d.size))
            off += d.size
        return datas, spans, dtype

    def _machine(self, n: int, dtype: np.dtype, group: dict[str, Any]) -> C.Machine:
        """The C core's buffers, built from ``state`` unless the live ones still are the state."""
        m = group["history_size"]
        ls = group["line_search_fn"] is not None
        st = self.state[self._params[0]]
        mach = self._mach
        if (mach is not None and mach.n == n and mach.dtype == dtype and mach.m == m and mach.line_search == ls
                and st.get("d") is mach.d and st.get("n_iter", 0) == mach["n_iter"]):
            return mach
        mach = C.Machine(n, dtype, m, ls)
        mach.line_search = ls
        if st.get("n_iter", 0) > 0 and "d" in st:
            dirs, stps, ro = list(st["old_dirs"]), list(st["old_stps"]), np.asarray(st["ro"], np.float64)
            keep = min(len(dirs), m)                      # a smaller history_size keeps the newest pairs
            dirs, stps, ro = dirs[len(dirs) - keep:], stps[len(stps) - keep:], ro[len(ro) - keep:]
            for y, s in zip(dirs, stps):
                mach.add_slot(np.array(y, dtype, copy=True).reshape(n), np.array(s, dtype, copy=True).reshape(n))
            mach.ro[:keep] = ro
            mach.st["hist_len"] = keep
            mach.d[...] = np.asarray(st["d"]).reshape(n)
            mach.prev_g[...] = np.asarray(st["prev_flat_grad"]).reshape(n)
            al = np.asarray(st.get("al", np.zeros(0)), np.float64).reshape(-1)
            mach.al[:min(m, al.size)] = al[:m]
            mach.st["t"] = float(st["t"])
            mach.st["h_diag"] = float(st["H_diag"])
            mach.st["prev_loss"] = float(st["prev_loss"])
            mach.st["n_iter"] = int(st["n_iter"])
            mach.st["fresh"] = int(st.get("restart", False))
        mach.st["func_evals"] = int(st.get("func_evals", 0))
        self._mach = mach
        return mach

    def _save_state(self, mach: C.Machine) -> None:
        st = self.state[self._params[0]]
        start, length = mach["hist_start"], mach["hist_len"]
        if start:   # put the ring in torch's order (oldest first) so the state lists are torch's lists
            mach.rotate(start)
        st["func_evals"] = mach["func_evals"]
        st["n_iter"] = mach["n_iter"]
        if st["n_iter"] == 0:
            return
        st["d"] = mach.d
        st["t"] = mach["t"]
        st["old_dirs"] = mach.old_dirs[:length]
        st["old_stps"] = mach.old_stps[:length]
        st["ro"] = mach.ro[:length].copy()
        st["al"] = mach.al
        st["H_diag"] = mach["h_diag"]
        st["prev_flat_grad"] = mach.prev_g
        st["prev_loss"] = mach["prev_loss"]
        st["restart"] = bool(mach["fresh"])
        st["status"] = mach["status"]

    def _load_param_state(self, pstate: Any, group: dict[str, Any], p: Any, gi: int, j: int) -> dict:
        """LBFGS keeps one global state on the first parameter (as torch does); check its layout."""
        if not isinstance(pstate, dict):
            raise TypeError(f"{V.where(gi, j)}: saved state must be a dict, got {type(pstate).__name__}")
        if not pstate:
            return {}
        if j != 0:
            raise ValueError(f"{V.where(gi, j)}: LBFGS keeps its state on the first parameter only")
        out: dict[str, Any] = {}
        for key in _INT_KEYS:
            out[key] = V.step_count(pstate.get(key, 0), gi, j, f"state '{key}'")
        if "lbfgsb_state" in pstate:
            return self._load_bounded_state(pstate, group, out, gi, j)
        if out["n_iter"] == 0:
            return out
        n = sum(q.data.size for q in group["params"])
        dtype = group["params"][0].data.dtype
        missing = [k for k in _ARRAY_KEYS + _FLOAT_KEYS + _LIST_KEYS if k not in pstate]
        if missing:
            raise ValueError(f"{V.where(gi, j)}: saved LBFGS state lacks {missing}")
        def array(key: str, a: Any) -> np.ndarray:
            a = np.asarray(a)
            if a.dtype != dtype:
                raise ValueError(f"{V.where(gi, j)}: state '{key}' is {a.dtype}, the parameters are {dtype}")
            return a

        for key in ("d", "prev_flat_grad"):
            a = array(key, pstate[key])
            if a.size != n:
                raise ValueError(f"{V.where(gi, j)}: state '{key}' has {a.size} elements, the parameters {n}")
            out[key] = np.array(a, dtype, copy=True).reshape(n)
        for key in ("old_dirs", "old_stps"):
            lst = [array(key, a) for a in pstate[key]]
            for a in lst:
                if np.asarray(a).size != n:
                    raise ValueError(f"{V.where(gi, j)}: an entry of state '{key}' has {np.asarray(a).size} "
                                     f"elements, the parameters {n}")
            out[key] = [np.array(a, dtype, copy=True).reshape(n) for a in lst]
        try:
            ro = np.array([float(np.asarray(r)) for r in pstate["ro"]], np.float64)
            al = [0.0 if a is None else float(np.asarray(a)) for a in pstate["al"]]
            floats = {key: V.number(key, float(np.asarray(pstate[key]))) for key in _FLOAT_KEYS}
            status = int(pstate["status"]) if "status" in pstate else None
        except (TypeError, ValueError) as e:
            raise type(e)(f"{V.where(gi, j)}: {e}") from None
        if not (len(out["old_dirs"]) == len(out["old_stps"]) == ro.size):
            raise ValueError(f"{V.where(gi, j)}: state 'old_dirs', 'old_stps' and 'ro' differ in length")
        out["ro"] = ro
        out["al"] = np.array(al, np.float64)
        out.update(floats)
        out["restart"] = bool(pstate.get("restart", False))
        if status is not None:
            out["status"] = status
        return out

    def _load_bounded_state(self, pstate: dict, group: dict[str, Any], out: dict, gi: int, j: int) -> dict:
        """The L-BFGS-B core's arrays (history S, Y, small matrices, the raw state record)."""
        n = sum(q.data.size for q in group["params"])
        dtype = group["params"][0].data.dtype
        m = group["history_size"]
        want = {"lbfgsb_S": ((m, n), dtype), "lbfgsb_Y": ((m, n), dtype),
                "lbfgsb_mw": ((_kernels_mw(m),), np.dtype(np.float64)),
                "lbfgsb_state": ((C.STATE_DTYPE.itemsize // 8,), np.dtype(np.int64))}
        for key, (shape, dt) in want.items():
            if key not in pstate:
                raise ValueError(f"{V.where(gi, j)}: saved L-BFGS-B state lacks '{key}'")
            a = np.asarray(pstate[key])
            if a.shape != shape or a.dtype != dt:
                raise ValueError(f"{V.where(gi, j)}: state '{key}' is {a.dtype} of shape {a.shape}, expected {dt} "
                                 f"of shape {shape} (history_size {m}, {n} elements)")
            out[key] = np.array(a, dt, copy=True)
        if "status" in pstate:
            out["status"] = int(pstate["status"])
        return out

    def _groups_changed(self) -> None:
        super()._groups_changed()
        self._params = self.param_groups[0]["params"]
        self._mach = None
        self._bmach = None

    # ---- step --------------------------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        r"""Run up to ``max_iter`` L-BFGS (or, with ``bounds``, L-BFGS-B) iterations; return the closure's
        first value.

        If the closure raises, returns None or a non-scalar, or sets a gradient of the wrong shape or dtype,
        the parameters and the optimizer state are put back exactly as they were before this call and the
        error propagates.

        Args:
            closure (callable): sets every parameter's ``.grad`` at the current ``.data`` (a missing grad
                counts as zeros, as in torch) and returns the loss (a float or anything ``float()`` takes).
        """
        if closure is None or not callable(closure):
            raise TypeError("LBFGS.step needs a closure that sets the gradients and returns the loss")
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        group = self.param_groups[0]
        self._check_group(group)
        datas, spans, dtype = self._layout()
        n = spans[-1][1] if spans else 0
        if self.bounds is not None:
            return self._step_bounded(closure, group, datas, spans, dtype, n)
        mach = self._machine(n, dtype, group)
        lr = float(group["lr"])
        # torch's numerics: pairs kept when y's > 1e-10, no relative ftol, the search capped by max_eval only
        mach.core.set_hyper(lr=lr, tolerance_grad=float(group["tolerance_grad"]),
                            tolerance_change=float(group["tolerance_change"]), ftol=0.0, ls_tolerance_change=1e-9,
                            c1=1e-4, c2=0.9, curv_abs=1e-10, curv_rel=0.0, max_iter=group["max_iter"],
                            max_eval=group["max_eval"], max_ls=_NO_LIMIT,
                            line_search=group["line_search_fn"] is not None, eval_last=False, report_iter=False,
                            restart_bad_dir=False)
        orig_loss, _ = self._run_core(closure, mach, datas, spans)
        self._save_state(mach)
        return orig_loss

    def _run_core(self, closure: Callable[[], Any], mach: C.Machine | C.BMachine, datas: list[np.ndarray],
                  spans: list[tuple[int, int]]) -> tuple[Any, int]:
        """One step of either core on the parameters: evaluate the closure wherever the core asks, hand the
        unbounded core the history slots it asks for, until it stops. On an exception the parameters and the
        core's buffers go back to where the step began. Returns the closure's first value (what ``step``
        returns, as in torch) and the code the core stopped with."""
        bounded = isinstance(mach, C.BMachine)
        eval_task = C.B_EVAL if bounded else C.EVAL
        X, G, params = mach.x, mach.g, self._params
        self._gather(X, datas, spans)
        x_start = X.copy()
        snap = mach.snapshot()
        sign = -1.0 if self.maximize else 1.0
        orig_loss = None
        first = True
        f = 0.0
        try:
            while True:
                task = mach.core.run(f)
                if task == eval_task:
                    # the unbounded core evaluates first at the parameters as they are; the bounded one clips
                    # the start into the box, so its every point is written to the parameters
                    if bounded or not first:
                        self._scatter(X, datas, spans)
                    loss = closure()
                    if first:
                        orig_loss, first = loss, False
                    f = sign * _loss_value(loss)
                    self._gather_grad(G, datas, spans, params)
                    if self.maximize:
                        np.negative(G, out=G)
                elif task == C.NEED_SLOT and isinstance(mach, C.Machine):
                    mach.add_slot()
                else:
                    break
        except BaseException:
            self._scatter(x_start, datas, spans)
            mach.restore(snap)
            raise
        self._scatter(X, datas, spans)
        return orig_loss, task

    # ---- bounds: the L-BFGS-B core ---------------------------------------------------------------------
    def _bounded_machine(self, n: int, dtype: np.dtype, group: dict[str, Any]) -> C.BMachine:
        assert self.bounds is not None
        m = group["history_size"]
        lo = np.concatenate([b[0].reshape(-1) for b in self.bounds]) if self.bounds else np.zeros(0)
        hi = np.concatenate([b[1].reshape(-1) for b in self.bounds]) if self.bounds else np.zeros(0)
        mach = self._bmach
        if mach is not None and mach.n == n and mach.dtype == dtype and mach.m == m:
            lo_t, hi_t = C.float_bounds(lo, hi, dtype)
            np.copyto(mach.lo, lo_t)
            np.copyto(mach.hi, hi_t)
            return mach
        mach = C.BMachine(n, dtype, m, lo, hi)
        st = self.state[self._params[0]]
        if "lbfgsb_state" in st:
            if np.asarray(st["lbfgsb_S"]).shape != (m, n):
                raise ValueError(f"the saved L-BFGS-B state has history shape {np.asarray(st['lbfgsb_S']).shape}, "
                                 f"the optimizer needs ({m}, {n}) (history_size, number of elements)")
            np.copyto(mach.S, st["lbfgsb_S"])
            np.copyto(mach.Y, st["lbfgsb_Y"])
            np.copyto(mach.mw, st["lbfgsb_mw"])
            np.copyto(mach.st.reshape(1).view(np.int64), st["lbfgsb_state"])
            mach.st["phase"] = 0
        self._bmach = mach
        return mach

    def _step_bounded(self, closure: Callable[[], Any], group: dict[str, Any], datas: list[np.ndarray],
                      spans: list[tuple[int, int]], dtype: np.dtype, n: int) -> Any:
        mach = self._bounded_machine(n, dtype, group)
        ls = group["line_search_fn"] is not None
        tc = float(group["tolerance_change"])
        mach.core.set_hyper(ftol=0.0, gtol=float(group["tolerance_grad"]), eps=float(np.finfo(dtype).eps),
                            lr=float(group["lr"]), ls_ftol=1e-3, ls_gtol=0.9, ls_xtol=0.1, fabs_tol=tc, xabs_tol=tc,
                            max_iter=group["max_iter"], max_fun=group["max_eval"] - 1, max_ls=_BOUNDED_MAX_LS,
                            line_search=ls, report_iter=False)
        orig_loss, task = self._run_core(closure, mach, datas, spans)
        st = self.state[self._params[0]]
        st["func_evals"] = mach["nfev"]
        st["n_iter"] = mach["nit"]
        st["status"] = int(task)
        st["lbfgsb_S"], st["lbfgsb_Y"], st["lbfgsb_mw"] = mach.S, mach.Y, mach.mw
        st["lbfgsb_state"] = mach.st.reshape(1).view(np.int64)
        return orig_loss

    def _gather(self, X: np.ndarray, datas: list[np.ndarray], spans: list[tuple[int, int]]) -> None:
        if len(datas) == 1:
            np.copyto(X, datas[0].reshape(-1))
        else:
            for d, (a, b) in zip(datas, spans):
                np.copyto(X[a:b], d.reshape(-1))

    @staticmethod
    def _scatter(X: np.ndarray, datas: list[np.ndarray], spans: list[tuple[int, int]]) -> None:
        for d, (a, b) in zip(datas, spans):
            np.copyto(d, X[a:b].reshape(d.shape))

    @staticmethod
    def _gather_grad(G: np.ndarray, datas: list[np.ndarray], spans: list[tuple[int, int]], params: list) -> None:
        for j, (p, d, (a, b)) in enumerate(zip(params, datas, spans)):
            g = p.grad
            if g is None:
                G[a:b] = 0
            else:
                np.copyto(G[a:b], V.grad_like(g, V.where(0, j), d).reshape(-1))
