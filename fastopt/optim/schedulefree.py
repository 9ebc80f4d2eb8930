"""Schedule-Free SGD and AdamW (Defazio et al., 2024), as in the ``schedulefree`` package 1.4.x
(``SGDScheduleFree``, ``AdamWScheduleFree``): its arguments, defaults, state keys and group keys.

The per-group scalars of a step (scheduled lr, running weight sum, averaging weight) are computed here in double,
once per group (``schedule``); the update of every tensor of the group is then one fused kernel
(csrc/schedulefree.c). ``train()`` / ``eval()`` move the parameters between the y and x sequences with the
``average`` kernel's lerp, in place.
"""
from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, _Rows, run_functional
from .._plan import NOT_OPTIONS, immutable
from .._spec import Buffer, Option, Spec
from ._checks import finite, whole
from ..optimizer import _locked

__all__ = ["ScheduleFreeSGD", "ScheduleFreeAdamW", "schedule_free_sgd", "schedule_free_adamw"]


def _momentum(v: Any) -> float:
    return V.number("momentum", v, low=0.0, high=1.0, low_open=True, high_open=True,
                    message=f"Momentum must be between 0 and 1 exclusive: {v}")


def _sf_betas(v: Any) -> tuple[float, float]:
    b = V.betas(v)
    if b[0] == 0:  # eval() moves y to x with lerp weight 1 - 1/beta1
        raise ValueError(f"Invalid beta parameter at index 0: {v[0]} (Schedule-Free needs beta1 > 0)")
    return b


# The group keys schedulefree keeps beside the options (its constructor puts them in ``defaults``): the step
# counter k, the mode flag, and the running schedule scalars (lr_max starts at -1, below any lr).
_GROUP_STATE = (Option("k", 0, whole("k"), None),
                Option("train_mode", True, lambda v: V.flag("train_mode", v), None),
                Option("weight_sum", 0.0, finite("weight_sum", 0.0), None),
                Option("lr_max", -1.0, finite("lr_max"), None),
                Option("scheduled_lr", 0.0, finite("scheduled_lr"), None))
_SCHEDULE = (Option("warmup_steps", 0, whole("warmup_steps"), None),
             Option("r", 0.0, finite("r"), None),
             Option("weight_lr_power", 2.0, finite("weight_lr_power"), None))

SGD_SPEC = Spec(
    "sf_sgd",
    options=(Option("lr", 1.0, V.lr, None),
             Option("momentum", 0.9, _momentum, None),
             Option("weight_decay", 0.0, V.weight_decay, "weight_decay"),
             *_SCHEDULE, *_GROUP_STATE),
    buffers=(Buffer("z"),),
    fill=lambda group, scalars, steps, fresh: K.fill_columns(scalars, step_scalars(group)),
    check_order=("lr", "weight_decay", "momentum", "warmup_steps", "r", "weight_lr_power", "k", "train_mode",
                 "weight_sum", "lr_max", "scheduled_lr"),
)

ADAMW_SPEC = Spec(
    "sf_adamw",
    options=(Option("lr", 0.0025, V.lr, None),
             Option("betas", (0.9, 0.999), _sf_betas, ("beta1", "beta2"), normalize=tuple),
             Option("eps", 1e-8, V.eps, "eps"),
             Option("weight_decay", 0.0, V.weight_decay, "weight_decay"),
             *_SCHEDULE, *_GROUP_STATE),
    buffers=(Buffer("z"), Buffer("exp_avg_sq")),
    fill=lambda group, scalars, steps, fresh: K.fill_columns(scalars, step_scalars(group)),
)


_is = operator.is_


@functools.cache
def _values(spec: Spec) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A group's values of every option of ``spec`` (KeyError if one is missing), as one tuple."""
    names = spec.names
    get = operator.itemgetter(*names)
    return get if len(names) > 1 else lambda group: (get(group),)


def _beta(group: Mapping[str, Any]) -> float:
    return float(group["momentum"] if "momentum" in group else group["betas"][0])


def schedule(group: Mapping[str, Any]) -> tuple[float, float, float, float]:
    r"""The group scalars of the next step, in double, as schedulefree computes them (nothing is written):
    ``(scheduled_lr, lr_max, weight_sum, c)`` with

    .. math::
        \gamma_k = \gamma \min(1, (k+1)/\text{warmup}),\quad \gamma_{max} = \max(\gamma_{max}, \gamma_k),\quad
        w = (k+1)^r \gamma_{max}^{p},\quad W \mathrel{+}= w,\quad c = w / W \ (0 \text{ if } W = 0).
    """
    k = group["k"]
    warmup = group["warmup_steps"]
    lr = group["lr"] * ((k + 1) / warmup if k < warmup else 1.0)
    lr_max = max(lr, group["lr_max"])
    weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
    weight_sum = group["weight_sum"] + weight
    c = weight / weight_sum if weight_sum != 0 else 0.0
    return lr, lr_max, weight_sum, c


def step_scalars(group: Mapping[str, Any], sched: tuple[float, float, float, float] | None = None) -> tuple[float, ...]:
    """The kernel's per-tensor scalars for the group's next step: lr, c, adj (and 1 - beta2^(k+1) for AdamW);
    ``sched`` is ``schedule(group)`` if the caller has it already."""
    lr, _, _, c = schedule(group) if sched is None else sched
    out: tuple[float, ...] = (lr, c, lr * (_beta(group) * (1 - c) - 1))
    if "betas" in group:
        out += (1 - group["betas"][1] ** (group["k"] + 1),)
    return out


def _functional(spec: Spec, options: dict[str, Any], lr: float, ckp1: float, params: list[np.ndarray],
                grads: list[np.ndarray], buffers: list[list[np.ndarray]], k: int = 0) -> None:
    spec.check({**spec.defaults, **options, "lr": lr})
    c = V.number("ckp1", ckp1, low=0.0, high=1.0, message=f"Invalid ckp1 value: {ckp1!r} (expected 0 <= ckp1 <= 1)")
    scalars: tuple[float, ...] = (float(lr), c, lr * (_beta(options) * (1 - c) - 1))
    if "betas" in options:
        scalars += (1 - options["betas"][1] ** (whole("k")(k) + 1),)
    run_functional(spec.table_kernel, spec.buffer_names, params, grads, buffers,
                   lambda s: K.fill_columns(s, scalars), spec.hyper({**spec.defaults, **options}))


def schedule_free_sgd(params: list[np.ndarray], grads: list[np.ndarray], zs: list[np.ndarray], *, lr: float,
                      ckp1: float, momentum: float, weight_decay: float) -> None:
    r"""Functional Schedule-Free SGD step over lists of arrays (see :class:`ScheduleFreeSGD` for the rule).

    ``params`` hold y and are updated in place with ``zs`` (each starts as a copy of its param). ``lr`` is the
    scheduled learning rate and ``ckp1`` the averaging weight :math:`c_{k+1}` of this step (the class computes
    both with :func:`schedule`); the gradients are not modified.

    Example:
        >>> y, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> zs = [y.copy()]
        >>> fastopt.functional.schedule_free_sgd([y], [g], zs, lr=0.1, ckp1=1.0, momentum=0.9, weight_decay=0.0)
        >>> print(np.round(y, 4), np.round(zs[0], 4))  # c = 1: y = z - lr g after the first step
        [0.9 2.1] [0.9 2.1]
    """
    _functional(SGD_SPEC, dict(momentum=momentum, weight_decay=weight_decay), lr, ckp1, params, grads, [zs])


def schedule_free_adamw(params: list[np.ndarray], grads: list[np.ndarray], zs: list[np.ndarray],
                        exp_avg_sqs: list[np.ndarray], *, lr: float, ckp1: float, k: int, beta1: float,
                        beta2: float, eps: float, weight_decay: float) -> None:
    r"""Functional Schedule-Free AdamW step over lists of arrays (see :class:`ScheduleFreeAdamW` for the rule).

    As :func:`schedule_free_sgd`, plus ``exp_avg_sqs`` (start at zeros) and ``k``, the number of steps taken
    before this one (the bias correction is :math:`1-\beta_2^{k+1}`).

    Example:
        >>> y, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> zs, vs = [y.copy()], [np.zeros(2)]
        >>> fastopt.functional.schedule_free_adamw([y], [g], zs, vs, lr=0.1, ckp1=1.0, k=0, beta1=0.9,
        ...                                        beta2=0.999, eps=1e-8, weight_decay=0.0)
        >>> print(np.round(y, 4))  # the first step is a signed step of lr
        [0.9 2.1]
    """
    _functional(ADAMW_SPEC, dict(betas=(beta1, beta2), eps=eps, weight_decay=weight_decay), lr, ckp1, params,
                grads, [zs, exp_avg_sqs], k)


class _ScheduleFree(FusedOptimizer):
    """What both Schedule-Free optimizers share: the group schedule, the mode switch and the step check."""

    _has_step = False
    _planned: list[tuple[dict[str, Any], Any]] = []  # (group, its table) of the current plans
    # per group index: (group, _values(spec), the values it returned) last found valid (_check_options)
    _valid: dict[int, tuple[dict[str, Any], Callable[[Mapping[str, Any]], tuple[Any, ...]], tuple[Any, ...]]]

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self._valid = {}
        super().__init__(params, defaults)

    def _fill_buffer(self, group: dict[str, Any], key: str, buf: np.ndarray, data: np.ndarray) -> None:
        if key == "z":
            np.copyto(buf, data)  # z starts at the parameter (torch.clone)

    # The repeated step (a cached StepPlan per group, fastopt._plan) compares the options, not these group keys,
    # which change every step (a step writes them: new objects every step); their per-tensor scalars are refilled
    # in step() before the plan runs.
    _PER_STEP = ("k", "weight_sum", "lr_max", "scheduled_lr")

    def _step_plan(self, group: dict[str, Any], table: Any, hyper: bytes, *, kernel: K.Kernel | None = None,
                   counts: bool | None = None, **where: Any) -> K.StepPlan:
        if kernel is not None or counts is not None or where:  # (no low-precision mode plans a Schedule-Free step)
            raise TypeError("ScheduleFree._step_plan plans only its own kernel's table")
        keys = tuple(k for k in group if k not in NOT_OPTIONS and k not in self._PER_STEP)
        self._planned.append((group, table))
        return K.StepPlan(table, self._spec.table_kernel, hyper, group, self.state, keys, False, None, None)

    def _groups_changed(self) -> None:
        super()._groups_changed()
        self._valid = {}

    def _run_launches(self, launches: list) -> None:
        self._planned = []
        super()._run_launches(launches)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_planned"] = []  # (with the plans: rebuilt by the copy's first step)
        state["_valid"] = {}  # (the copy's groups are other dicts: checked again by its first step)
        return state

    def _options_seen(self, gi: int, group: dict[str, Any]) -> bool:
        """Whether every option and schedule key of group ``gi`` is the very object ``_valid`` recorded for it."""
        seen = self._valid.get(gi)
        if seen is None or seen[0] is not group:
            return False
        try:
            now = seen[1](group)
        except KeyError:
            return False
        return all(map(_is, now, seen[2]))

    def _record(self, gi: int, group: dict[str, Any]) -> None:
        """Record the group's values, all checked, as the ones ``_options_seen`` compares the next step's against."""
        values = _values(self._spec)(group)
        if all(map(immutable, values)):  # (always, after the check normalised them: plain values)
            self._valid[gi] = (group, _values(self._spec), values)
        else:
            self._valid.pop(gi, None)

    def _check_options(self, gi: int, group: dict[str, Any]) -> bool:
        """The group check (``_check_group_at``), skipped while the group's values are the objects it accepted
        last: the schedule keys change every step, so the plain check (which skips only the constructor's very
        objects) would run the whole spec check on every step, ~20 us of a 1e4-element step's 25. Returns whether
        the group's values are recorded (``_valid``) now."""
        if not self._options_seen(gi, group):
            self._check_group_at(gi, group)
            self._record(gi, group)
        return gi in self._valid

    def _advance(self, gi: int, group: dict[str, Any], sched: tuple[float, float, float, float] | None,
                 unchanged: bool) -> None:
        """After a step: write the group's next schedule keys (from ``sched``, the schedule computed before the
        step, if given and the group still holds the values it came from, else computed again) and record them as
        checked when they are valid, so that the next step need not check the group again. ``unchanged``: the
        group held its recorded values when the step began and no closure ran (then nothing in the step changed
        them: the step pre-hooks ran before, under the same lock)."""
        seen = sched is not None and (unchanged or self._options_seen(gi, group))
        if not seen or sched is None:
            sched = schedule(group)
        lr, lr_max, weight_sum, _ = sched
        group.update(scheduled_lr=lr, lr_max=lr_max, weight_sum=weight_sum, k=group["k"] + 1)
        # From checked values, k + 1 is a non-negative int and lr, lr_max finite floats; only the weight sum can
        # fail its check (a weight that overflowed to inf): then the next step checks the group and raises.
        if seen and type(weight_sum) is float and math.isfinite(weight_sum) and weight_sum >= 0:
            get = self._valid[gi][1]
            self._valid[gi] = (group, get, get(group))  # (the recorded options, plain, with the new schedule keys)
        else:
            self._valid.pop(gi, None)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        r"""Perform one step over every group (one kernel call per group); returns the closure's loss.

        Raises RuntimeError, with nothing changed, if a group is in eval mode: call ``train()`` first."""
        groups = self.param_groups
        recorded = []
        for gi, group in enumerate(groups):
            mode = group.get("train_mode")
            if mode is not True and isinstance(mode, (bool, np.bool_)) and not mode:  # (another value: the check)
                raise RuntimeError(f"param_groups[{gi}]: {type(self).__name__} is in eval mode (train_mode is "
                                   "False): call optimizer.train() before optimizer.step() (eval() moved the "
                                   "parameters to the averaged point x; a checkpoint saved after eval() loads "
                                   "in eval mode too)")
            # the schedule keys are read below, before the kernel
            recorded.append(self._check_options(gi, group) and closure is None)
        scheds = [schedule(group) for group in groups]
        at = {id(group): s for group, s in zip(groups, scheds)}
        for group, table in self._planned:  # the cached plans' scalars for this step (unused if they are stale)
            K.fill_columns(table.scalars, step_scalars(group, at.get(id(group))))
        loss = super().step(closure)
        for gi, group in enumerate(self.param_groups):  # every group advances, as upstream, also without gradients
            same = gi < len(groups) and groups[gi] is group  # (not a group the closure added or replaced)
            self._advance(gi, group, scheds[gi] if same else None, same and recorded[gi])
        return loss

    @_locked
    def eval(self) -> None:
        r"""Switch to evaluation: every group in train mode moves its parameters from y to the averaged point x,
        :math:`p \leftarrow \operatorname{lerp}(p, z, 1 - 1/\beta)`. Call it before evaluating, saving or exporting
        the weights. A no-op for groups already in eval mode."""
        self._switch(False)

    @_locked
    def train(self) -> None:
        r"""Switch to training: every group in eval mode moves its parameters from x back to y,
        :math:`p \leftarrow \operatorname{lerp}(p, z, 1 - \beta)`. A no-op for groups already in train mode
        (a new optimizer starts in train mode)."""
        self._switch(True)

    def _switch(self, to_train: bool) -> None:
        launches = []
        for gi, group in enumerate(self.param_groups):
            self._check_group_at(gi, group)
            if bool(group["train_mode"]) == to_train:
                continue
            beta = _beta(group)
            weight = 1 - beta if to_train else 1 - 1 / beta
            by_dtype: dict[Any, _Rows] = {}
            for j, p in enumerate(group["params"]):
                st = self.state.get(p)
                if not st or "z" not in st:
                    continue
                data = V.param_data(p, gi, j)
                z = V.state_buffer(st["z"], "z", data, gi, j)
                by_dtype.setdefault(data.dtype, _Rows()).add(data, z, [])
            launches.append((group, weight, list(by_dtype.values())))
        # everything checked (the tables check every buffer and overlap again); now move the parameters
        tables = [(rows, K.TensorTable(rows.rows, ("param", "z"), (False, True), 0), weight)
                  for _, weight, all_rows in launches for rows in all_rows]
        average = K.KERNELS["average"]
        for rows, table, weight in tables:
            average(table, average.pack({"mode": K.AVG_LERP, "weight": weight}))
            rows.finish()
        for group, _, _ in launches:
            group["train_mode"] = to_train


_RULE = r"""
    With :math:`\beta` the momentum (:math:`\beta_1`), the parameter holds :math:`y_k = (1-\beta) z_k + \beta x_k`
    during training; each step, with the group scalars of :func:`~fastopt.optim.schedulefree.schedule`
    (scheduled lr :math:`\gamma_k`, averaging weight :math:`c = c_{k+1}`):

    .. math::
        \begin{aligned}
        u &= {DIRECTION} + \lambda y \\
        y &\leftarrow \operatorname{lerp}(y, z, c) + \gamma_k(\beta(1-c) - 1)\,u \\
        z &\leftarrow z - \gamma_k u
        \end{aligned}

    which keeps :math:`x_{k+1} = (1-c) x_k + c z_{k+1}` and :math:`y_{k+1} = (1-\beta) z_{k+1} + \beta x_{k+1}`
    without storing x. ``eval()`` sets the parameters to x, ``train()`` back to y.
"""

_NOTES = r"""
    Call ``optimizer.eval()`` before evaluating, saving or exporting the weights (during training the parameters
    hold y, not the averaged x) and ``optimizer.train()`` before stepping again; ``step()`` in eval mode raises
    RuntimeError and changes nothing. Unlike schedulefree, a new optimizer starts in train mode (before the first
    step x = y = z, so upstream's required first ``train()`` is a no-op here; calling it is harmless). The mode
    is the group key ``train_mode`` and is saved in ``state_dict()``: a checkpoint taken after ``eval()`` holds
    x in the parameters and loads in eval mode, so call ``train()`` after loading it, as after any ``eval()``;
    one taken in train mode resumes directly. BatchNorm-style statistics should be recomputed at x (upstream's
    README). The gradients are read, never overwritten (upstream normalises ``p.grad`` in place).

    Group keys (as schedulefree's ``param_groups``): ``k`` (steps taken), ``train_mode``, ``weight_sum``,
    ``lr_max``, ``scheduled_lr``, and the options. State per parameter: ``z``{STATE}; no step count.
    ``foreach`` is not an argument: every group is one fused kernel call.
"""


class ScheduleFreeSGD(_ScheduleFree):
    __doc__ = (r"""Schedule-Free SGD (Defazio et al., 2024), as ``schedulefree.SGDScheduleFree`` 1.4.x.
""" + _RULE.replace("{DIRECTION}", r"\nabla f(y)") + r"""
    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma`; upstream suggests 10-50x a classical SGD lr
            (default: 1.0).
        momentum (float, optional): interpolation :math:`\beta`, in (0, 1) (default: 0.9).
        weight_decay (float, optional): weight decay :math:`\lambda`, applied at y (default: 0.0).
        warmup_steps (int, optional): linear warm-up of the lr over this many steps (default: 0).
        r (float, optional): polynomial weighting power of the average (default: 0.0).
        weight_lr_power (float, optional): the averaging weight is :math:`(k+1)^r \gamma_{max}^{p}` with this
            power :math:`p` (default: 2.0).

    Notes:""" + _NOTES.replace("{STATE}", "") + r"""
    References: Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky, "The Road Less Scheduled", NeurIPS 2024,
    arXiv:2405.15682; https://github.com/facebookresearch/schedule_free.

    Example:
        >>> opt = fastopt.ScheduleFreeSGD([w], lr=1.0, warmup_steps=100)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
        >>> opt.eval(); evaluate(w); fastopt.save(opt.state_dict(), "ckpt.npz"); opt.train()
    """)

    _spec = SGD_SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0) -> None:
        super().__init__(params, self._spec.options_from(locals()))


class ScheduleFreeAdamW(_ScheduleFree):
    __doc__ = (r"""Schedule-Free AdamW (Defazio et al., 2024), as ``schedulefree.AdamWScheduleFree`` 1.4.x.
""" + _RULE.replace("{DIRECTION}", r"\frac{g}{\sqrt{v/(1-\beta_2^{k+1})} + \epsilon}") + r"""
    with :math:`g = \nabla f(y)` and :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2` first.

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups.
        lr (float, optional): learning rate :math:`\gamma`; upstream suggests 1-10x an AdamW lr (default: 0.0025).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)`: :math:`\beta_1 \in (0, 1)` is the
            interpolation :math:`\beta`, :math:`\beta_2 \in [0, 1)` the second-moment decay (default: (0.9, 0.999)).
        eps (float, optional): term added to the denominator :math:`\epsilon` (default: 1e-8).
        weight_decay (float, optional): weight decay :math:`\lambda`, applied at y after the normalisation
            (default: 0.0).
        warmup_steps (int, optional): linear warm-up of the lr over this many steps (default: 0).
        r (float, optional): polynomial weighting power of the average (default: 0.0).
        weight_lr_power (float, optional): the averaging weight is :math:`(k+1)^r \gamma_{max}^{p}` with this
            power :math:`p` (default: 2.0).

    Notes:""" + _NOTES.replace("{STATE}", " and ``exp_avg_sq`` (v)") + r"""
    References: Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky, "The Road Less Scheduled", NeurIPS 2024,
    arXiv:2405.15682; https://github.com/facebookresearch/schedule_free.

    Example:
        >>> opt = fastopt.ScheduleFreeAdamW([w], lr=2.5e-3, warmup_steps=100)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
        >>> opt.eval(); evaluate(w); fastopt.save(opt.state_dict(), "ckpt.npz"); opt.train()
    """)

    _spec = ADAMW_SPEC

    def __init__(self, params: Iterable[Any], lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0) -> None:
        super().__init__(params, self._spec.options_from(locals()))
