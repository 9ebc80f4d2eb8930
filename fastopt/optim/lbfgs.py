r"""``LBFGS``: torch.optim.LBFGS's closure API on fastopt's C L-BFGS core (csrc/lbfgs.c)."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from .. import _lbfgs_core as C
from .. import _validate as V
from ..optimizer import Optimizer

__all__ = ["LBFGS", "STATUS_MESSAGES"]

#: why the last ``step`` ended, by the code stored in ``opt.state[first_param]['status']``
STATUS_MESSAGES = {
    C.CONV_GRAD: "max|g| <= tolerance_grad",
    C.CONV_F: "|f_{k+1} - f_k| < tolerance_change",
    C.CONV_X: "max|t d| <= tolerance_change",
    C.CONV_GTD: "directional derivative g.d > -tolerance_change",
    C.MAX_ITER: "max_iter iterations done",
    C.MAX_EVAL: "max_eval evaluations done",
    C.LS_FAILED: "the line search found no decrease, also after a steepest-descent restart; "
                 "the parameters are the best point seen",
    C.NONFINITE: "the closure returned NaN/Inf, also after a steepest-descent restart; "
                 "the parameters are the best point seen",
}

_NO_LIMIT = 2 ** 62   # torch's line search is capped by the step's evaluation budget only

# state keys (torch's names; 'old_dirs'/'old_stps' are lists of flat arrays, oldest first, like torch's lists)
_ARRAY_KEYS = ("d", "prev_flat_grad", "al")
_FLOAT_KEYS = ("t", "H_diag", "prev_loss")
_INT_KEYS = ("func_evals", "n_iter")
_LIST_KEYS = ("old_dirs", "old_stps", "ro")


def _whole(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"Invalid {name} value: {value} (expected >= {low})")
    return int(value)


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

    Notes:
        Follows torch's numerics (vector operations in the parameters' dtype, scalars in double), so the
        float64 iterates agree with ``torch.optim.LBFGS`` to rounding. Where torch would go on with garbage,
        this one recovers: a NaN/Inf closure value, or a strong-Wolfe search that cannot decrease f, puts the
        parameters back on the best point seen, clears the memory and retries once from steepest descent;
        if that fails too the step ends there. ``state[params[0]]['status']`` holds the code of the last
        stop, explained by ``fastopt.optim.lbfgs.STATUS_MESSAGES``. If the closure raises,
        the parameters are restored to their values at the start of the step and the memory is cleared.

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
                 line_search_fn: str | None = None) -> None:
        V.lr(lr)
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

    def _check_group(self, group: dict[str, Any]) -> None:
        V.lr(group["lr"])
        _whole("max_iter", group["max_iter"], 1)
        _whole("max_eval", group["max_eval"], 1)
        _whole("history_size", group["history_size"], 1)
        V.number("tolerance_grad", group["tolerance_grad"])
        V.number("tolerance_change", group["tolerance_change"])
        if group["line_search_fn"] not in C.LINE_SEARCHES:
            raise ValueError(f"line_search_fn must be 'strong_wolfe' or None, got {group['line_search_fn']!r}")
        if "params" in group:
            datas = [V.param_data(p, 0, j) for j, p in enumerate(group["params"])]
            if datas and any(d.dtype != datas[0].dtype for d in datas):
                dts = sorted({str(d.dtype) for d in datas})
                raise TypeError(f"LBFGS needs all parameters in one dtype (they are flattened into one vector), "
                                f"got {dts}")

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
                and st.get("d") is mach.d and st.get("n_iter", 0) == mach.iv[C.I_N_ITER]):
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
            mach.iv[C.I_HIST_LEN] = keep
            mach.d[...] = np.asarray(st["d"]).reshape(n)
            mach.prev_g[...] = np.asarray(st["prev_flat_grad"]).reshape(n)
            al = np.asarray(st.get("al", np.zeros(0)), np.float64).reshape(-1)
            mach.al[:min(m, al.size)] = al[:m]
            mach.sc[C.S_T] = float(st["t"])
            mach.sc[C.S_H_DIAG] = float(st["H_diag"])
            mach.sc[C.S_PREV_LOSS] = float(st["prev_loss"])
            mach.iv[C.I_N_ITER] = int(st["n_iter"])
            mach.iv[C.I_FRESH] = int(st.get("restart", False))
        mach.iv[C.I_FUNC_EVALS] = int(st.get("func_evals", 0))
        self._mach = mach
        return mach

    def _save_state(self, mach: C.Machine) -> None:
        st = self.state[self._params[0]]
        iv, sc = mach.iv, mach.sc
        start, length = int(iv[C.I_HIST_START]), int(iv[C.I_HIST_LEN])
        if start:   # put the ring in torch's order (oldest first) so the state lists are torch's lists
            mach.rotate(start)
        st["func_evals"] = int(iv[C.I_FUNC_EVALS])
        st["n_iter"] = int(iv[C.I_N_ITER])
        if iv[C.I_N_ITER] == 0:
            return
        st["d"] = mach.d
        st["t"] = float(sc[C.S_T])
        st["old_dirs"] = mach.old_dirs[:length]
        st["old_stps"] = mach.old_stps[:length]
        st["ro"] = mach.ro[:length].copy()
        st["al"] = mach.al
        st["H_diag"] = float(sc[C.S_H_DIAG])
        st["prev_flat_grad"] = mach.prev_g
        st["prev_loss"] = float(sc[C.S_PREV_LOSS])
        st["restart"] = bool(iv[C.I_FRESH])
        st["status"] = int(iv[C.I_STATUS])

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

    def _groups_changed(self) -> None:
        super()._groups_changed()
        self._params = self.param_groups[0]["params"]
        self._mach = None

    # ---- step --------------------------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        r"""Run up to ``max_iter`` L-BFGS iterations; return the closure's first value.

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
        mach = self._machine(n, dtype, group)
        lr = float(group["lr"])
        mach.core.set_hyper(lr, float(group["tolerance_grad"]), float(group["tolerance_change"]), 0.0, 1e-9,
                            1e-4, 0.9, 1e-10, 0.0, group["max_iter"], group["max_eval"], _NO_LIMIT,
                            group["line_search_fn"] is not None, False, False, False)
        X, G, params = mach.x, mach.g, self._params
        single = len(datas) == 1
        if single:
            np.copyto(X, datas[0].reshape(-1))
        else:
            for d, (a, b) in zip(datas, spans):
                np.copyto(X[a:b], d.reshape(-1))
        x_start = X.copy()
        core = mach.core
        orig_loss = None
        first = True
        f = 0.0
        try:
            while True:
                task = core.run(f)
                if task == C.EVAL:
                    if not first:                     # the first evaluation is at the parameters as they are
                        self._scatter(X, datas, spans)
                    loss = closure()
                    if first:
                        orig_loss, first = loss, False
                    f = float(loss)
                    self._gather_grad(G, datas, spans, params)
                elif task == C.NEED_SLOT:
                    mach.add_slot()
                else:
                    break
        except BaseException:
            self._scatter(x_start, datas, spans)
            self._mach = None
            st = self.state[self._params[0]]
            for key in _ARRAY_KEYS + _FLOAT_KEYS + _LIST_KEYS + ("restart", "status"):
                st.pop(key, None)
            st["n_iter"] = 0
            raise
        self._scatter(X, datas, spans)
        self._save_state(mach)
        return orig_loss

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
                continue
            if not isinstance(g, np.ndarray):
                raise TypeError(f"{V.where(0, j)}: grad must be a numpy.ndarray or None, got {type(g).__name__}")
            if g.shape != d.shape:
                raise ValueError(f"{V.where(0, j)}: grad has shape {g.shape}, param has shape {d.shape}")
            if g.dtype != d.dtype:
                raise TypeError(f"{V.where(0, j)}: grad is {g.dtype}, param is {d.dtype}; they must match")
            np.copyto(G[a:b], g.reshape(-1))
