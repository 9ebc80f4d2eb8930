"""SparseAdam for row-sparse gradients (torch.optim.SparseAdam), and the sparse gradient form ``SparseGrad``."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._spec import Buffer, Option, Spec, flag
from ..optimizer import Optimizer

__all__ = ["SparseAdam", "SparseGrad", "sparse_adam"]


class SparseGrad:
    r"""A gradient that touches only some rows (entries along the first axis) of a parameter.

    ``indices[k]`` is the row that ``values[k]`` belongs to: for a parameter of shape ``(N, *rest)``, ``indices``
    is a 1-D integer array of ``nnz`` rows in ``[0, N)`` and ``values`` has shape ``(nnz, *rest)`` and the
    parameter's dtype. Rows may repeat and come in any order; repeated rows are summed (in the order given),
    exactly as ``torch.sparse_coo_tensor(indices[None], values, shape).coalesce()`` sums them. This is the
    gradient of an embedding lookup: the rows looked up and the gradient of each lookup.

    Args:
        indices (array_like of int): row of each value, shape ``(nnz,)``.
        values (numpy.ndarray): the gradient rows, shape ``(nnz, *rest)``.

    Example:
        >>> emb = fastopt.Parameter(np.zeros((1000, 16), np.float32))
        >>> emb.grad = fastopt.SparseGrad([3, 17, 3], np.ones((3, 16), np.float32))  # row 3 gets 2.0
    """

    __slots__ = ("indices", "values")

    def __init__(self, indices: Any, values: np.ndarray) -> None:
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"SparseGrad indices must be a 1-D integer array, got {idx.dtype}{list(idx.shape)}")
        if not isinstance(values, np.ndarray) or values.ndim < 1:
            raise TypeError("SparseGrad values must be a numpy.ndarray with a leading axis of length nnz")
        if values.shape[0] != idx.shape[0]:
            raise ValueError(f"SparseGrad has {idx.shape[0]} indices but {values.shape[0]} value rows")
        self.indices = idx.astype(np.int64, copy=False)
        self.values = values

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    def coalesce(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique rows, their summed values): a new contiguous array, duplicates added in given order."""
        rows, inverse = np.unique(self.indices, return_inverse=True)
        if rows.size == self.indices.size:
            order = np.argsort(self.indices, kind="stable")
            return rows, np.ascontiguousarray(self.values[order])
        summed = np.zeros((rows.size,) + self.values.shape[1:], dtype=self.values.dtype)
        np.add.at(summed, inverse, self.values)
        return rows, summed

    def to_dense(self, shape: tuple[int, ...]) -> np.ndarray:
        """The dense gradient of the given parameter shape (rows not listed are zero)."""
        out = np.zeros(shape, dtype=self.values.dtype)
        np.add.at(out, self.indices, self.values)
        return out

    def __repr__(self) -> str:
        return f"SparseGrad(nnz={self.indices.size}, row_shape={self.values.shape[1:]}, dtype={self.values.dtype})"


def _lr(lr: Any) -> float:
    return V.number("lr", lr, low=0.0, low_open=True, message=f"Invalid learning rate: {lr}")


def _eps(eps: Any) -> float:
    """torch's 0 < eps, and not so small that it is 0 in float32 (a zero gradient value would give 0/0)."""
    msg = f"Invalid epsilon value: {eps}"
    return V.positive_eps("eps", V.number("eps", eps, low=0.0, low_open=True, message=msg), msg,
                          "a zero gradient value would give 0/0 = NaN")


SPEC = Spec(
    "sparse_adam",
    options=(Option("lr", 1e-3, _lr, None),  # in the per-tensor step size
             Option("betas", (0.9, 0.999), V.betas, ("beta1", "beta2"), normalize=tuple),
             Option("eps", 1e-8, _eps, "eps"),
             flag("maximize")),
    check_order=("lr", "eps", "betas", "maximize"),
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
)


def _check_grad(g: Any, data: np.ndarray, where: str) -> None:
    if not isinstance(g, SparseGrad):
        raise RuntimeError(f"{where}: SparseAdam does not support dense gradients, please consider Adam instead "
                           "(give a fastopt.SparseGrad)")
    if data.ndim < 1:
        raise ValueError(f"{where}: SparseAdam needs parameters with at least one axis")
    if g.values.dtype != data.dtype:
        raise TypeError(f"{where}: grad values are {g.values.dtype}, param is {data.dtype}; they must match")
    if g.values.shape[1:] != data.shape[1:]:
        raise ValueError(f"{where}: grad rows have shape {g.values.shape[1:]}, param rows {data.shape[1:]}")
    if g.indices.size and (g.indices.min() < 0 or g.indices.max() >= data.shape[0]):
        raise ValueError(f"{where}: grad indices must lie in [0, {data.shape[0]})")
    if g.values.size and np.shares_memory(g.values, data):
        raise ValueError(f"{where}: grad values share memory with the parameter's data")


def _run(datas: list[np.ndarray], grads: list[SparseGrad], exp_avgs: list[np.ndarray],
         exp_avg_sqs: list[np.ndarray], steps: list[int], lr: float, beta1: float, beta2: float, eps: float,
         maximize: bool) -> None:
    """Gather the touched rows of every tensor, run the kernel once over them all, scatter them back."""
    rows_list, table_rows, sizes = [], [], []
    for d, g, m, v, t in zip(datas, grads, exp_avgs, exp_avg_sqs, steps):
        rows, vals = g.coalesce()
        if rows.size == 0:
            continue  # torch skips an empty gradient (its step count still advanced)
        rows_list.append((d, m, v, rows))
        table_rows.append([np.ascontiguousarray(d[rows]), vals, np.ascontiguousarray(m[rows]),
                           np.ascontiguousarray(v[rows])])
        sizes.append(t)
    if not table_rows:
        return
    table = K.TensorTable(table_rows, SPEC.buffer_names, (False, True, False, False), 1)
    for i, t in enumerate(sizes):
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        table.scalars[i, 0] = lr * math.sqrt(bias_correction2) / bias_correction1
    kernel = K.KERNELS["sparse_adam"]
    kernel(table, kernel.pack({"beta1": beta1, "beta2": beta2, "eps": eps, "maximize": maximize}))
    for (d, m, v, rows), (pr, _, mr, vr) in zip(rows_list, table_rows):
        d[rows] = pr
        m[rows] = mr
        v[rows] = vr


def sparse_adam(params: list[np.ndarray], grads: list[SparseGrad], exp_avgs: list[np.ndarray],
                exp_avg_sqs: list[np.ndarray], state_steps: list[int], *, eps: float, beta1: float, beta2: float,
                lr: float, maximize: bool) -> None:
    r"""Functional SparseAdam (see :class:`SparseAdam` for the rule), as ``torch.optim._functional.sparse_adam``.

    ``params``, ``exp_avgs`` and ``exp_avg_sqs`` are updated in place, only in the rows the gradients touch.
    ``state_steps`` are the step counts *of this step* (already advanced by the caller, as torch's class does).

    Example:
        >>> p = np.ones((3, 2))
        >>> g = fastopt.SparseGrad([2], np.ones((1, 2)))  # touches row 2 only
        >>> exp_avgs, exp_avg_sqs = [np.zeros((3, 2))], [np.zeros((3, 2))]
        >>> fastopt.functional.sparse_adam([p], [g], exp_avgs, exp_avg_sqs, [1], eps=1e-8, beta1=0.9, beta2=0.999,
        ...                                lr=0.1, maximize=False)
        >>> print(np.round(p, 4))
        [[1.  1. ]
         [1.  1. ]
         [0.9 0.9]]
    """
    o = SPEC.check(dict(lr=lr, betas=(beta1, beta2), eps=eps, maximize=maximize))
    lr, (beta1, beta2), eps, maximize = o["lr"], o["betas"], o["eps"], o["maximize"]
    n = len(params)
    if not (len(grads) == len(exp_avgs) == len(exp_avg_sqs) == len(state_steps) == n):
        raise ValueError("params, grads, exp_avgs, exp_avg_sqs and state_steps must have the same length")
    steps = [V.step_count(s, None, None, f"state_steps[{i}]") for i, s in enumerate(state_steps)]
    for i, (d, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        if not isinstance(d, np.ndarray) or d.dtype not in V.FLOAT_DTYPES or not d.flags.writeable:
            raise TypeError(f"params[{i}] must be a writeable float32 or float64 ndarray")
        _check_grad(g, d, f"params[{i}]")
        for name, a in (("exp_avgs", m), ("exp_avg_sqs", v)):
            if not isinstance(a, np.ndarray) or a.shape != d.shape or a.dtype != d.dtype or not a.flags.writeable:
                raise ValueError(f"{name}[{i}] must be a writeable ndarray of shape {d.shape} and dtype {d.dtype}")
    for dt in {d.dtype for d in params}:
        sel = [i for i in range(n) if params[i].dtype == dt]
        _run([params[i] for i in sel], [grads[i] for i in sel], [exp_avgs[i] for i in sel],
             [exp_avg_sqs[i] for i in sel], [steps[i] for i in sel], float(lr), float(beta1), float(beta2),
             float(eps), bool(maximize))


class SparseAdam(Optimizer):
    r"""Adam for row-sparse gradients (embedding tables), as ``torch.optim.SparseAdam``.

    Gradients are :class:`SparseGrad` objects (rows along the first axis, repeated rows summed). Only the rows a
    gradient touches are read and written — the moments of the other rows are *not* decayed, which is what
    makes this a different algorithm from Adam on the dense gradient. For each touched entry:

    .. math::
        \begin{aligned}
        g &= \pm\textstyle\sum \text{values of the row} \quad (\text{minus if maximize})\\
        m &\leftarrow m + (1-\beta_1)(g - m), \qquad v \leftarrow v + (1-\beta_2)(g^2 - v)\\
        \theta &\leftarrow \theta - \frac{\gamma\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,\frac{m}{\sqrt{v} + \epsilon}
        \end{aligned}

    where :math:`t` is the parameter's step count (advanced at every step that has a gradient, even one with
    no rows). The touched rows of all parameters of a group are gathered, updated by one C kernel call and
    scattered back.

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma`, > 0 (default: 1e-3).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)`, each in [0, 1) (default: (0.9, 0.999)).
        eps (float, optional): :math:`\epsilon`, > 0 (default: 1e-8).
        maximize (bool, optional): maximize the objective (default: False).

    State per parameter: ``step`` (int), ``exp_avg``, ``exp_avg_sq``.

    Notes:
        As torch: :math:`\epsilon` is added to :math:`\sqrt{v}` before the bias correction, which is folded into
        the step size, and a dense gradient is an error (RuntimeError).

    Example:
        >>> opt = fastopt.SparseAdam([emb], lr=1e-2)
        >>> emb.grad = fastopt.SparseGrad(batch_ids, grad_rows); opt.step()
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, maximize: bool = False) -> None:
        super().__init__(params, self._spec.options_from(locals()))

    def _state_spec(self, group: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ("exp_avg", "exp_avg_sq"), ("step",)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        r"""Perform one step over every group. Returns the closure's loss."""
        loss = None
        if closure is not None:
            loss = closure()
        plans = []
        for gi, group, with_grads in self._groups_with_grads():  # validate everything before writing anything
            items = []
            for j, p, g in with_grads:
                data = V.param_data(p, gi, j)
                _check_grad(g, data, V.where(gi, j))
                st = self.state.get(p)
                if st:
                    for key in ("exp_avg", "exp_avg_sq"):
                        V.state_buffer(st.get(key), key, data, gi, j)
                    V.step_count(st.get("step", 0), gi, j)
                items.append((p, data, g))
            plans.append((group, items))
        for group, items in plans:
            beta1, beta2 = group["betas"]
            for dt in {d.dtype for _, d, _ in items}:
                sel = [(p, d, g) for p, d, g in items if d.dtype == dt]
                for p, d, _ in sel:
                    st = self.state[p]
                    if not st:
                        st["step"] = 0
                        st["exp_avg"] = np.zeros(d.shape, d.dtype)
                        st["exp_avg_sq"] = np.zeros(d.shape, d.dtype)
                    st["step"] = int(st["step"]) + 1
                _run([d for _, d, _ in sel], [g for _, _, g in sel], [self.state[p]["exp_avg"] for p, _, _ in sel],
                     [self.state[p]["exp_avg_sq"] for p, _, _ in sel], [self.state[p]["step"] for p, _, _ in sel],
                     float(group["lr"]), float(beta1), float(beta2), float(group["eps"]), bool(group["maximize"]))
        return loss
