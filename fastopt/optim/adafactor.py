"""Adafactor (torch.optim.Adafactor): a second moment factored into row and column averages."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.lib.array_utils import byte_bounds

from .. import _kernels as K
from .. import _validate as V
from .._spec import Option, Spec, flag
from ..optimizer import Optimizer
from ..parameter import Parameter
from ._steps import next_steps, store_steps

__all__ = ["Adafactor", "adafactor"]


def _eps(eps: Any) -> tuple[float | None, float]:
    if not isinstance(eps, (tuple, list)) or len(eps) != 2:
        raise TypeError(f"eps must be a pair (eps1 or None, eps2), got {eps!r}")
    eps1 = None
    if eps[0] is not None:
        eps1 = V.number("eps1", eps[0], low=0.0, message=f"epsilon1 should be >= 0 but is: {eps[0]}")
        # the second-moment estimate is floored at eps1**2 before its inverse square root: a floor that is 0 (in
        # float32 too) turns a zero gradient into 0 * inf = NaN
        V.positive_eps("eps1", eps1 * eps1, f"epsilon1 should be >= 0 but is: {eps[0]}",
                       "its square floors the second-moment estimate; eps1=0 gives 0 * inf = NaN for a zero "
                       "gradient (eps1=None uses the dtype's machine epsilon)")
    eps2 = V.number("eps2", eps[1], low=0.0, message=f"epsilon2 should be >= 0 but is: {eps[1]}")
    return eps1, eps2


# torch's constructor checks and messages (TypeError for values that are not real numbers). Adafactor's state is
# not the parameter's shape, so its kernels take one tensor at a time and are not table rows (kernel None).
SPEC = Spec(
    None,
    options=(Option("lr", 1e-2, lambda v: V.number("lr", v, low=0.0,
                                                message=f"Learning rate should be >= 0 but is: {v}"), None),
             Option("beta2_decay", -0.8, lambda v: V.number("beta2_decay", v, high=0.0,
                                                            message=f"beta2_decay should be <= 0 but is: {v}"), None),
             Option("eps", (None, 1e-3), _eps, None, normalize=tuple),
             Option("d", 1.0, lambda v: V.number("d", v, low=1.0,
                                                 message=f"Clipping threshold d should be >= 1 but is: {v}"), None),
             Option("weight_decay", 0.0, lambda v: V.number("weight_decay", v, low=0.0,
                                                            message=f"weight_decay should be >= 0 but is: {v}"), None),
             flag("maximize", False, None)),
)


def _factor_shapes(shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of row_var (last axis reduced to 1) and col_var (second-to-last axis reduced to 1), as torch."""
    return shape[:-1] + (1,), shape[:-2] + (1,) + shape[-1:]


def _expected_state(data: np.ndarray) -> dict[str, tuple[int, ...]]:
    """State arrays a parameter of this shape holds, with their shapes."""
    if data.ndim > 1:
        row, col = _factor_shapes(data.shape)
        return {"row_var": row, "col_var": col}
    return {"variance": data.shape}


def _check_buffer(value: Any, key: str, shape: tuple[int, ...], data: np.ndarray, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: state '{key}' must be a numpy.ndarray, got {type(value).__name__}")
    if value.shape != shape or value.dtype != data.dtype:
        raise ValueError(f"{where}: state '{key}' is {value.dtype}{list(value.shape)}, expected "
                         f"{data.dtype}{list(shape)} for a parameter of shape {list(data.shape)}")
    if not value.flags.writeable:
        raise ValueError(f"{where}: state '{key}' is read-only")
    if not (value.flags.c_contiguous and value.flags.aligned):
        raise ValueError(f"{where}: state '{key}' must be C-contiguous")
    if value.size and np.shares_memory(value, data):
        raise ValueError(f"{where}: state '{key}' shares memory with the parameter")
    return value


def _check_items(params: list, grads: list, row_vars: list, col_vars: list, variances: list,
                 where: Callable[[int], str]) -> None:
    """Every array of a functional call, checked before anything is written."""
    n = len(params)
    for name, lst in (("grads", grads), ("row_vars", row_vars), ("col_vars", col_vars), ("variances", variances)):
        if not isinstance(lst, (list, tuple)) or len(lst) != n:
            raise ValueError(f"adafactor: got {n} params but {name} is not a list of {n} entries")
    written: list[np.ndarray] = []
    for i in range(n):
        p, g = params[i], grads[i]
        if not isinstance(p, np.ndarray):
            raise TypeError(f"{where(i)}: param must be a numpy.ndarray, got {type(p).__name__}")
        if p.dtype not in V.FLOAT_DTYPES:
            raise TypeError(f"{where(i)}: dtype {p.dtype} is not supported; expected float32 or float64")
        if not p.flags.writeable:
            raise ValueError(f"{where(i)}: param is read-only; fastopt updates parameters in place")
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{where(i)}: grad must be a numpy.ndarray, got {type(g).__name__}")
        if g.dtype != p.dtype:
            raise TypeError(f"{where(i)}: grad is {g.dtype}, param is {p.dtype}; they must match")
        if g.shape != p.shape:
            raise ValueError(f"{where(i)}: grad has shape {g.shape}, param has shape {p.shape}")
        if g.size and np.shares_memory(g, p):
            raise ValueError(f"{where(i)}: grad shares memory with the parameter; pass a separate array")
        bufs = {"row_var": row_vars[i], "col_var": col_vars[i]} if p.ndim > 1 else {"variance": variances[i]}
        for key, shape in _expected_state(p).items():
            b = _check_buffer(bufs[key], key, shape, p, where(i))
            if b.size and np.shares_memory(b, g):
                raise ValueError(f"{where(i)}: state '{key}' shares memory with the gradient")
            written.append(b)
        written.append(p)
    # no two written arrays (params, factors, variances) may overlap, or an update would see another's writes
    spans = sorted(byte_bounds(a) for a in written if a.size)
    for (_, hi0), (lo1, _) in zip(spans, spans[1:]):
        if lo1 < hi0:
            raise ValueError("adafactor: two of the arrays it writes (params, row_vars, col_vars, variances) share "
                             "memory")


class _Workspace:
    """What one tensor's update needs besides its state, kept between steps so that a step allocates nothing: the
    update (a view of one flat buffer per dtype, as large as the largest tensor: the tensors are updated one after
    another) and the float64 scratch of the kernels' sums (``_kernels.adafactor_scratch_size``). An optimizer owns
    one (its step holds the optimizer's lock, so no two steps share it); a functional call makes its own."""

    def __init__(self) -> None:
        self._flat: dict[np.dtype, np.ndarray] = {}
        self.scratch = np.empty(1, np.float64)

    def update(self, p: np.ndarray) -> np.ndarray:
        flat = self._flat.get(p.dtype)
        if flat is None or flat.size < p.size:
            flat = self._flat[p.dtype] = np.empty(p.size, p.dtype)
        return flat[:p.size].reshape(p.shape)

    def reserve(self, shape: tuple[int, ...]) -> np.ndarray:
        need = K.adafactor_scratch_size(shape)
        if self.scratch.size < need:
            self.scratch = np.empty(need, np.float64)
        return self.scratch


def _one_step(p: np.ndarray, g: np.ndarray, row_var: np.ndarray | None, col_var: np.ndarray | None,
              variance: np.ndarray | None, step: int, ws: _Workspace, *, d: float, lr: float, beta2_decay: float,
              weight_decay: float, eps1: float, eps2: float, maximize: bool) -> None:
    """One tensor's update; arrays already checked. Scalars in double as torch computes them with .item()."""
    if p.size == 0:
        return  # torch divides by zero here (RMS of an empty tensor); the step count still advances
    dt = p.dtype.type
    work = p if p.flags.c_contiguous and p.flags.aligned else p.copy()  # (ascontiguousarray makes 0-D 1-D)
    grad = g if g.flags.c_contiguous and g.flags.aligned else g.copy()
    t = float(step)
    weight = t ** beta2_decay                                   # torch's one_minus_beta2_t
    rho = min(lr, 1 / (t ** 0.5))
    scratch = ws.reserve(p.shape)
    param_rms = float(dt(math.sqrt(K.adafactor_sumsq(work, scratch)))) / (p.size ** 0.5)
    alpha = max(eps2, param_rms) * rho
    update = ws.update(p)
    if p.ndim > 1:
        K.adafactor_factored(grad, row_var, col_var, update, weight, eps1, maximize, scratch)
    else:
        K.adafactor_vector(grad, variance, update, weight, eps1, maximize)
    update_rms = float(dt(math.sqrt(K.adafactor_sumsq(update, scratch)))) / ((update.size ** 0.5) * d)
    denom = max(1.0, update_rms)
    decay = 1 - lr * weight_decay if weight_decay != 0 else 1.0
    K.adafactor_apply(work, update, decay, -alpha / denom)
    if work is not p:
        np.copyto(p, work)


def adafactor(params: list[np.ndarray], grads: list[np.ndarray], row_vars: list[np.ndarray | None],
              col_vars: list[np.ndarray | None], variances: list[np.ndarray | None], state_steps: Any, *,
              d: float, lr: float, beta2_decay: float, weight_decay: float, eps1: float | None, eps2: float,
              maximize: bool) -> None:
    r"""Functional Adafactor over lists of arrays (see :class:`Adafactor` for the rule).

    A call allocates the update and scratch buffers it needs (an :class:`Adafactor` keeps them between steps).

    For a parameter of 2 or more dimensions, ``row_vars[i]`` (shape ``p.shape[:-1] + (1,)``) and ``col_vars[i]``
    (shape ``p.shape[:-2] + (1, p.shape[-1])``) hold the factored second moment and ``variances[i]`` is ignored
    (pass None); for a 0-D or 1-D parameter ``variances[i]`` (the parameter's shape) holds it and the factors are
    ignored. All start as zeros, are C-contiguous arrays of the parameter's dtype and are updated in place, as
    are ``params``; ``state_steps`` (a list of ints or an integer ndarray) is advanced by one first, as torch
    does. ``eps1=None`` means the machine epsilon of the **first** parameter's dtype, used for the whole call
    (torch's rule). Every array is checked before anything is written.

    Example:
        >>> p, g = np.ones((2, 3)), np.full((2, 3), 0.5)
        >>> row_vars, col_vars, steps = [np.zeros((2, 1))], [np.zeros((1, 3))], [0]
        >>> fastopt.functional.adafactor([p], [g], row_vars, col_vars, [None], steps, d=1.0, lr=1e-2,
        ...                              beta2_decay=-0.8, weight_decay=0.0, eps1=None, eps2=1e-3, maximize=False)
        >>> print(np.round(p, 4))
        [[0.99 0.99 0.99]
         [0.99 0.99 0.99]]
    """
    _adafactor(params, grads, row_vars, col_vars, variances, state_steps, _Workspace(), d=d, lr=lr,
               beta2_decay=beta2_decay, weight_decay=weight_decay, eps1=eps1, eps2=eps2, maximize=maximize)


def _adafactor(params: list[np.ndarray], grads: list[np.ndarray], row_vars: list[np.ndarray | None],
               col_vars: list[np.ndarray | None], variances: list[np.ndarray | None], state_steps: Any,
               ws: _Workspace, *, d: float, lr: float, beta2_decay: float, weight_decay: float, eps1: float | None,
               eps2: float, maximize: bool) -> None:
    """:func:`adafactor` with the buffers of ``ws``."""
    o = SPEC.check(dict(lr=lr, beta2_decay=beta2_decay, eps=(eps1, eps2), d=d, weight_decay=weight_decay,
                        maximize=maximize))
    lr, beta2_decay, (eps1, eps2), d, weight_decay, maximize = (
        o[k] for k in ("lr", "beta2_decay", "eps", "d", "weight_decay", "maximize"))
    params, grads = list(params), list(grads)
    _check_items(params, grads, list(row_vars), list(col_vars), list(variances), lambda i: f"params[{i}]")
    steps = next_steps(state_steps, len(params))
    store_steps(state_steps, steps)  # every array was checked above: nothing below raises
    if not params:
        return
    if eps1 is None:
        eps1 = float(np.finfo(params[0].dtype).eps)
    for i, p in enumerate(params):
        _one_step(p, grads[i], row_vars[i], col_vars[i], variances[i], steps[i], ws, d=float(d), lr=float(lr),
                  beta2_decay=float(beta2_decay), weight_decay=float(weight_decay), eps1=float(eps1),
                  eps2=float(eps2), maximize=bool(maximize))


class Adafactor(Optimizer):
    r"""Adafactor (Shazeer & Stern, 2018) in torch's order of operations (``torch.optim.Adafactor``).

    At step :math:`t`, for a gradient :math:`G_t` (negated if maximize) of a parameter :math:`\theta` with
    :math:`N` elements:

    .. math::
        \begin{aligned}
        \hat\beta_{2,t} &= 1 - t^{\tau}, \qquad \rho_t = \min(\gamma, 1/\sqrt t), \qquad
            \alpha_t = \max\bigl(\epsilon_2, \lVert\theta_{t-1}\rVert_2/\sqrt N\bigr)\,\rho_t\\
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1}\\
        \text{2+ dims:}\quad R_t &= \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,
            \operatorname{mean}_{j}(G_t^2), \qquad
            C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\operatorname{mean}_{i}(G_t^2)\\
        \hat V_t &= \frac{R_t C_t}{\max(\operatorname{mean}_i R_t,\ \epsilon_1)}
            \quad (\text{outer product over the last two axes, per leading index})\\
        \text{0/1 dims:}\quad \hat V_t &= \hat\beta_{2,t}\hat V_{t-1} + (1-\hat\beta_{2,t})\,G_t^2\\
        U_t &= G_t / \sqrt{\max(\hat V_t, \epsilon_1^2)}, \qquad
            \theta_t = \theta_{t-1} - \frac{\alpha_t}{\max\bigl(1, \lVert U_t\rVert_2 / (\sqrt N\, d)\bigr)}\,U_t
        \end{aligned}

    :math:`i` runs over the second-to-last axis (rows) and :math:`j` over the last (columns); the averages are
    torch's ``lerp`` with weight :math:`t^{\tau}`. The averages, the estimate and the update are C kernels; the
    sums of squares (row, column, RMS norms) are fastopt's one reduction, in double with fixed lanes and order, so
    results depend neither on the thread count nor on the instruction set.

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): :math:`\gamma`, the cap of the relative step size :math:`\rho_t` and the
            weight-decay scale (default: 1e-2).
        beta2_decay (float, optional): :math:`\tau \le 0`, decay exponent of the second-moment weight
            (default: -0.8).
        eps (tuple[float | None, float], optional): :math:`(\epsilon_1, \epsilon_2)`: floor of the second-moment
            estimate (squared; :math:`\epsilon_1^2` must not be 0 in float32, or a zero gradient gives NaN) and of
            the row mean, None meaning the machine epsilon of the dtype; floor of the parameter RMS in
            :math:`\alpha_t` (default: (None, 1e-3)).
        d (float, optional): clipping threshold :math:`d \ge 1` of the update RMS (default: 1.0).
        weight_decay (float, optional): decoupled weight decay :math:`\lambda` (default: 0.0).
        maximize (bool, optional, keyword-only): maximize the objective (default: False).

    State per parameter: ``step``, and ``row_var`` (shape ``p.shape[:-1] + (1,)``) and ``col_var`` (shape
    ``p.shape[:-2] + (1, p.shape[-1])``) for 2+ dimensions, or ``variance`` (the parameter's shape) otherwise —
    torch's keys and shapes, so a torch state_dict converted with ``np.asarray`` loads.

    Notes:
        As torch, :math:`\epsilon_1 =` None resolves to the machine epsilon of the dtype of the **first** parameter
        with a gradient in the group, used for the whole group in that step. torch's ``foreach`` argument is not
        accepted (there is one implementation). A parameter with no elements only advances its step (torch raises
        ZeroDivisionError computing its RMS). torch computes the float32 norms in float32; fastopt sums in double
        and rounds, so float32 results differ from torch's by a few ulps per step.

    References: N. Shazeer, M. Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018
        (https://arxiv.org/abs/1804.04235).

    Example:
        >>> w = fastopt.Parameter(np.random.randn(64, 32))
        >>> opt = fastopt.Adafactor([w], lr=1e-2)
        >>> w.grad = np.random.randn(64, 32); opt.step()
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0, *,
                 maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_workspace", None)  # scratch, not state: a copy or an unpickled optimizer makes its own
        return state

    def _load_param_state(self, pstate: Any, group: dict[str, Any], p: Parameter, gi: int, j: int) -> dict:
        """Check a saved state against the live parameter (keys, shapes and dtypes by its dimensions); copy it."""
        where = V.where(gi, j)
        if not isinstance(pstate, dict):
            raise TypeError(f"{where}: saved state must be a dict, got {type(pstate).__name__}")
        if not pstate:
            return {}
        data = p.data
        shapes = _expected_state(data)
        expected = {"step"} | set(shapes)
        if set(pstate) != expected:
            raise ValueError(f"{where}: saved state has keys {sorted(pstate)}, expected {sorted(expected)} for "
                             f"a parameter of shape {list(np.shape(data))}")
        out: dict[str, Any] = {"step": V.step_count(pstate["step"], gi, j)}
        for key, shape in shapes.items():
            value = pstate[key]
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{where}: saved state '{key}' must be a numpy.ndarray, got {type(value).__name__}")
            if value.shape != shape or value.dtype != data.dtype:
                raise ValueError(f"{where}: saved state '{key}' is {value.dtype}{list(value.shape)}, expected "
                                 f"{data.dtype}{list(shape)} for a parameter of shape {list(data.shape)}")
            out[key] = np.array(value, dtype=data.dtype, order="C", copy=True)
        return out

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        r"""Perform one step over every group. Returns the closure's loss.

        Every group, gradient and state buffer is checked before anything is written.
        """
        loss = None
        if closure is not None:
            loss = closure()
        plans, arrays = [], []
        for gi, group, checked in self._checked_groups():
            items = []
            for j, p, data, grad, st in checked:
                if st:
                    shapes = _expected_state(data)
                    if set(st) != {"step"} | set(shapes):
                        raise ValueError(f"{V.where(gi, j)}: state has keys {sorted(st)}, expected "
                                         f"{sorted({'step'} | set(shapes))}")
                    V.step_count(st["step"], gi, j)
                    for key, shape in shapes.items():
                        _check_buffer(st[key], key, shape, data, V.where(gi, j))
                items.append((j, p, data, grad, st))
            names = {k: j for k, (j, *_) in enumerate(items)}
            _check_items([it[2] for it in items], [it[3] for it in items], *self._buffers(items),
                         lambda k: V.where(gi, names[k]))
            plans.append((group, items))
            arrays += [(a, w, V.where(gi, j), what) for j, _, data, grad, st in items
                       for a, w, what in ((data, True, "data"), (grad, False, "grad"),
                                          *((v, True, f"state '{k}'") for k, v in (st or {}).items() if k != "step"))]
        V.no_overlap(arrays)
        for group, items in plans:
            if not items:
                continue
            for _, p, data, _, st in items:
                if not st:
                    new: dict[str, Any] = {"step": 0}
                    new.update({k: np.zeros(s, data.dtype) for k, s in _expected_state(data).items()})
                    self.state[p] = new
            rows, cols, variances = self._buffers(items)
            steps = [V.step_count(self.state[p]["step"], None, None) for _, p, *_ in items]
            eps1, eps2 = group["eps"]
            ws = self.__dict__.get("_workspace")
            if ws is None:
                ws = self._workspace = _Workspace()
            _adafactor([it[2] for it in items], [it[3] for it in items], rows, cols, variances, steps, ws,
                       d=group["d"], lr=group["lr"], beta2_decay=group["beta2_decay"],
                       weight_decay=group["weight_decay"], eps1=eps1, eps2=eps2, maximize=group["maximize"])
            for (_, p, *_), s in zip(items, steps):
                self.state[p]["step"] = s
        return loss

    def _buffers(self, items: list) -> tuple[list, list, list]:
        """row_vars, col_vars, variances of the items (zeros of the right shapes where no state exists yet)."""
        rows, cols, variances = [], [], []
        for _, p, data, _, st in items:
            st = st or self.state.get(p) or {k: np.zeros(s, data.dtype) for k, s in _expected_state(data).items()}
            rows.append(st.get("row_var"))
            cols.append(st.get("col_var"))
            variances.append(st.get("variance"))
        return rows, cols, variances
