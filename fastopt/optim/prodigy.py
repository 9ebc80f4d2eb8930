"""Prodigy (Mishchenko & Defazio, ICML 2024), as in the ``prodigyopt`` package 1.1.x: its arguments, defaults,
state and group keys.

A step is two passes (csrc/prodigy.c): a reduction over every group (``s`` is updated and the sums
:math:`\\sum g(x_0 - x)` and :math:`\\|s\\|_1` come back, added in a fixed order: the same bits for any thread
count), the distance estimate d in double in Python, then the elementwise pass over every group: the moments (with
the old d, as upstream) and the update.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from .. import _kernels as K
from .. import _validate as V
from .._fused import FusedOptimizer, run_functional
from .._plan import cacheable
from .._spec import Buffer, Option, Spec, flag
from ._checks import finite, whole

__all__ = ["Prodigy", "prodigy"]


def _positive(name: str, label: str | None = None, allow_inf: bool = False) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        x = V.number(name, v, low=0.0, low_open=True, message=f"Invalid {label or name} value: {v}")
        if math.isinf(x) and not allow_inf:
            raise ValueError(f"Invalid {label or name} value: {v}")
        return x
    return check


def _beta3(v: Any) -> float | None:
    if v is None:
        return None
    return V.number("beta3", v, low=0.0, high=1.0, message=f"Invalid beta3 value: {v} (None or in [0, 1])")


def _growth(v: Any) -> float:
    return V.number("growth_rate", v, low=1.0, message=f"Invalid growth_rate value: {v} (expected >= 1; inf: no cap)",
                    allow_inf=True)


def _slice_p(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"Invalid slice_p value: {v!r} (expected an int)")
    if v != 1:
        raise ValueError(f"slice_p={v} is not supported by fastopt's Prodigy (s and p0 are kept at full size; "
                         "prodigyopt's subsampling is left out): use slice_p=1")
    return 1


def _no_fsdp(v: Any) -> bool:
    if V.flag("fsdp_in_use", v):
        raise ValueError("fsdp_in_use=True is not supported: fastopt's Prodigy reduces over the local parameters")
    return False


SPEC = Spec(
    "prodigy",
    options=(Option("lr", 1.0, V.lr, None),
             Option("betas", (0.9, 0.999), V.betas, ("beta1", "beta2"), normalize=tuple),
             Option("beta3", None, _beta3, None),
             Option("eps", 1e-8, _positive("eps", "epsilon"), None),
             Option("weight_decay", 0.0, V.weight_decay, "weight_decay"),
             flag("decouple", True),
             flag("use_bias_correction", False, None),
             flag("safeguard_warmup", False, None),
             Option("d0", 1e-6, _positive("d0"), None),
             Option("d_coef", 1.0, _positive("d_coef"), None),
             Option("growth_rate", math.inf, _growth, None),
             Option("fsdp_in_use", False, _no_fsdp, None),
             Option("slice_p", 1, _slice_p, None),
             # the group-wide state prodigyopt keeps in param_groups (d and d_max start at d0: see Prodigy)
             Option("d", 1e-6, _positive("d", allow_inf=False), None),
             Option("d_max", 1e-6, _positive("d_max"), None),
             Option("d_numerator", 0.0, finite("d_numerator"), None),
             Option("k", 0, whole("k"), None)),
    buffers=(Buffer("exp_avg", lambda g: g["betas"][0] > 0), Buffer("exp_avg_sq"), Buffer("s"), Buffer("p0")),
    check_order=("d0", "lr", "eps", "betas", "beta3", "weight_decay", "decouple", "use_bias_correction",
                 "safeguard_warmup", "d_coef", "growth_rate", "fsdp_in_use", "slice_p", "d", "d_max", "d_numerator",
                 "k"),
)
_REDUCE = K.REDUCERS["prodigy_reduce"]


class _Step:
    """The group-wide scalars of one step (from the first group, as prodigyopt), in double."""

    def __init__(self, g0: Mapping[str, Any], lr: float) -> None:
        self.beta1, self.beta2 = g0["betas"]
        self.beta3 = g0["beta3"] if g0["beta3"] is not None else math.sqrt(self.beta2)
        self.k, self.d, self.d_max = g0["k"], g0["d"], g0["d_max"]
        self.d0_first, self.d_coef, self.growth = g0["d0"], g0["d_coef"], g0["growth_rate"]
        self.lr = lr
        bc = (((1 - self.beta2 ** (self.k + 1)) ** 0.5) / (1 - self.beta1 ** (self.k + 1))
              if g0["use_bias_correction"] else 1)
        self.dlr = self.d * lr * bc
        self.numerator = g0["d_numerator"] * self.beta3
        self.denom = 0.0

    def pass1(self, group: Mapping[str, Any], scalars: np.ndarray) -> float:
        """Write pass 1's per-tensor scalars for ``group``; return the weight of its sum of g (x0 - x)."""
        d, d0 = self.d, group["d0"]
        ws = (d / d0) * d if group["safeguard_warmup"] else (d / d0) * self.dlr
        scalars[:, 0:4] = (d * (1 - self.beta1), d * d * (1 - self.beta2), ws, self.beta3)
        return (d / d0) * self.dlr

    def estimate(self) -> tuple[float, ...]:
        """The new (d, d_max, d_numerator, d_hat) from the sums (prodigyopt's d-update)."""
        d, d_max, d_hat = self.d, self.d_max, self.d
        if self.lr > 0.0:
            d_hat = self.d_coef * self.numerator / self.denom
            if d == self.d0_first:
                d = max(d, d_hat)
            d_max = max(d_max, d_hat)
            d = min(d_max, d * self.growth)
        return d, d_max, self.numerator, d_hat

    def pass2(self, group: Mapping[str, Any], d_new: float, scalars: np.ndarray, mode: int = 0) -> None:
        """Write pass 2's per-tensor scalars; ``mode`` (column 3, beta3 in pass 1): 0 the moments (with the old d:
        pass 1's columns 0 and 1) and the update, 1 the moments only, 2 the update only (a group with lr 0)."""
        coef = -self.dlr if self.beta1 > 0 else -self.dlr * d_new
        scalars[:, 3:7] = (mode, coef, d_new * group["eps"], -group["weight_decay"] * self.dlr)


def _check_groups(groups: Sequence[Mapping[str, Any]]) -> float:
    """prodigyopt's group-wide rules, checked before anything is written; returns the (largest) lr."""
    lr = max(g["lr"] for g in groups)
    for gi, g in enumerate(groups):
        if g["lr"] not in (lr, 0.0):
            raise RuntimeError(f"param_groups[{gi}]: Setting different lr values in different parameter groups is "
                               f"only supported for values of 0 (lr={g['lr']}, the largest is {lr})")
        for key in ("betas", "decouple"):
            if g[key] != groups[0][key]:
                raise ValueError(f"param_groups[{gi}]: {key}={g[key]!r} differs from param_groups[0]'s "
                                 f"{groups[0][key]!r}; prodigyopt reads it from the first group only, so fastopt "
                                 "asks every group to agree")
    return lr


class _TwoPass:
    """Both passes over one table (the functional form's 'kernel')."""

    n_scalars = SPEC.n_scalars

    def __init__(self, group: dict[str, Any]) -> None:
        self.group = group
        self.result: tuple[float, ...] | None = None

    def __call__(self, table: K.TensorTable, hyper: bytes) -> None:
        st = _Step(self.group, self.group["lr"])
        if self.group["lr"] > 0.0:
            w = st.pass1(self.group, table.scalars)
            dot, l1 = _REDUCE(table, hyper, _REDUCE.scratch(table))
            st.numerator += w * dot
            st.denom += l1
        if st.denom == 0:
            if self.group["lr"] > 0.0:  # every gradient zero: the moments only, as upstream
                st.pass2(self.group, st.d, table.scalars, 1)
                SPEC.table_kernel(table, hyper)
            return
        self.result = st.estimate() + (st.denom,)
        st.pass2(self.group, self.result[0], table.scalars)
        SPEC.table_kernel(table, hyper)


def prodigy(params: list[np.ndarray], grads: list[np.ndarray], exp_avgs: list[np.ndarray] | None,
            exp_avg_sqs: list[np.ndarray], ss: list[np.ndarray], p0s: list[np.ndarray], *, lr: float, beta1: float,
            beta2: float, beta3: float | None, eps: float, weight_decay: float, decouple: bool,
            use_bias_correction: bool, safeguard_warmup: bool, d0: float, d_coef: float, growth_rate: float,
            d: float, d_max: float, d_numerator: float, k: int) -> dict[str, float]:
    r"""Functional Prodigy step over lists of arrays forming one group (see :class:`Prodigy` for the rule).

    ``exp_avgs`` (None when ``beta1 == 0``), ``exp_avg_sqs`` and ``ss`` start at zeros, ``p0s`` at copies of the
    params; all are updated in place (``p0s`` only read). ``d``, ``d_max``, ``d_numerator`` and ``k`` are the
    group scalars before the step (initially d0, d0, 0.0, 0); returns their new values (and ``d_denom``,
    ``d_hat``), as prodigyopt stores them in ``param_groups``. If every gradient is zero nothing but the moments
    changes and the scalars come back as they were (prodigyopt returns early there too).

    Example:
        >>> p, g = np.array([1.0, 2.0]), np.array([1.0, -1.0])
        >>> bufs = [np.zeros(2)], [np.zeros(2)], [np.zeros(2)], [p.copy()]
        >>> out = fastopt.functional.prodigy([p], [g], *bufs, lr=1.0, beta1=0.9, beta2=0.999, beta3=None,
        ...     eps=1e-8, weight_decay=0.0, decouple=True, use_bias_correction=False, safeguard_warmup=False,
        ...     d0=1e-6, d_coef=1.0, growth_rate=float("inf"), d=1e-6, d_max=1e-6, d_numerator=0.0, k=0)
        >>> print(out["k"], out["d"])  # the first step: x0 - x = 0, so d stays d0
        1 1e-06
    """
    group = dict(lr=lr, betas=(beta1, beta2), beta3=beta3, eps=eps, weight_decay=weight_decay, decouple=decouple,
                 use_bias_correction=use_bias_correction, safeguard_warmup=safeguard_warmup, d0=d0, d_coef=d_coef,
                 growth_rate=growth_rate, fsdp_in_use=False, slice_p=1, d=d, d_max=d_max, d_numerator=d_numerator,
                 k=k)
    SPEC.check(group)
    if (exp_avgs is None) != (beta1 == 0):
        raise ValueError("exp_avgs must be None exactly when beta1 == 0")
    two = _TwoPass(group)
    # run_functional checks every array, builds the table and calls its kernel once: here both passes
    run_functional(cast(K.Kernel, two), SPEC.buffer_names, params, grads, [exp_avgs, exp_avg_sqs, ss, p0s], lambda s: None,
                   SPEC.hyper(group))
    if two.result is None:
        return dict(d=d, d_max=d_max, d_numerator=d_numerator, k=k)
    d_new, d_max_new, numerator, d_hat, denom = two.result
    return dict(d=d_new, d_max=d_max_new, d_numerator=numerator, d_denom=denom, d_hat=d_hat, k=k + 1)


class Prodigy(FusedOptimizer):
    r"""Prodigy (Mishchenko & Defazio, 2024), as ``prodigyopt.Prodigy`` 1.1.x: Adam whose step size is an
    estimate d of the distance to the solution, grown from :math:`d_0`.

    With :math:`\lambda = d\,\gamma\,b_k` (:math:`b_k = \sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})` with bias
    correction, else 1), over all parameters of all groups:

    .. math::
        \begin{aligned}
        g &\leftarrow g + w x \quad (\text{L2 decay, decouple=False})\\
        r &\leftarrow \beta_3 r + \tfrac{d}{d_0}\lambda \textstyle\sum \langle g, x_0 - x\rangle, \qquad
        s \leftarrow \beta_3 s + \tfrac{d}{d_0}\lambda\, g \quad (\tfrac{d}{d_0} d\, g \text{ with safeguard\_warmup})\\
        m &\leftarrow \beta_1 m + d(1-\beta_1) g, \qquad v \leftarrow \beta_2 v + d^2(1-\beta_2) g^2\\
        \hat d &= d_{coef}\, r / \textstyle\sum \|s\|_1,\quad d_{max} \leftarrow \max(d_{max}, \hat d),\quad
        d \leftarrow \min(d_{max}, d \cdot \text{growth\_rate}) \quad (\text{first } d \leftarrow \max(d, \hat d)
        \text{ while } d = d_0)\\
        x &\leftarrow x - \lambda w x \quad (\text{decoupled decay}), \qquad
        x \leftarrow x - \lambda\, \frac{m}{\sqrt v + d\epsilon} \quad (\beta_1 = 0:\ x - \lambda d \frac{g}{\sqrt v + d\epsilon})
        \end{aligned}

    The two sums are deterministic reductions (fixed chunks and lanes, added in order): the same bits for any
    thread count. If every gradient is zero the step stops after the moments, as upstream.

    Args:
        params (iterable): parameters, ``(name, Parameter)`` pairs, or dicts defining parameter groups. Every
            group must have the same lr, or lr 0 (upstream's rule), and the same betas and decouple.
        lr (float, optional): multiplier of the estimated step; leave at 1.0 (default: 1.0).
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)` (default: (0.9, 0.999)).
        beta3 (float, optional): decay of r and s; None means :math:`\sqrt{\beta_2}` (default: None).
        eps (float, optional): :math:`\epsilon`, scaled by d in the denominator (default: 1e-8).
        weight_decay (float, optional): weight decay w (default: 0.0).
        decouple (bool, optional): AdamW-style decoupled decay instead of L2 (default: True).
        use_bias_correction (bool, optional): Adam's bias correction in :math:`\lambda` (default: False).
        safeguard_warmup (bool, optional): leave the lr out of s (for warm-up schedules) (default: False).
        d0 (float, optional): initial estimate :math:`d_0` (default: 1e-6).
        d_coef (float, optional): multiplier of :math:`\hat d` (default: 1.0).
        growth_rate (float, optional): largest factor d may grow by per step (default: inf).
        fsdp_in_use (bool, optional): must be False: the sums are over this process's parameters
            (default: False).
        slice_p (int, optional): must be 1: prodigyopt's subsampling of s and p0 is left out (default: 1).

    Notes:
        Group keys, as prodigyopt's: the options, ``d`` and ``d_max`` (start at d0), ``d_numerator`` (r), ``k``,
        and after a step ``d_denom`` and ``d_hat``. State per parameter: ``step``, ``s``, ``p0``, ``exp_avg``
        (only when :math:`\beta_1 > 0`) and ``exp_avg_sq``. ``p0`` is a full copy of the initial parameter (upstream
        stores a 0-d zero for an all-zero parameter; such a state loads here as zeros: the same numbers); ``s`` and
        ``p0`` have the parameter's shape (upstream flattens them: a converted prodigyopt state is reshaped on load).
        The gradients are read, never overwritten (upstream adds L2 decay into ``p.grad``). The sums are
        accumulated in double (upstream: in the parameter's dtype), so float32 runs differ from upstream by
        rounding, amplified while d grows (tests/test_parity_beyond.py gives the measured bound).

    References: Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", ICML 2024,
    arXiv:2306.06101; https://github.com/konstmish/prodigy.

    Example:
        >>> opt = fastopt.Prodigy([w], lr=1.0, weight_decay=0.01)
        >>> opt.zero_grad(); w.grad = backward(x, y); opt.step()
    """

    _spec = SPEC

    def __init__(self, params: Iterable[Any], lr: float = 1.0, betas: tuple[float, float] = (0.9, 0.999),
                 beta3: float | None = None, eps: float = 1e-8, weight_decay: float = 0.0, decouple: bool = True,
                 use_bias_correction: bool = False, safeguard_warmup: bool = False, d0: float = 1e-6,
                 d_coef: float = 1.0, growth_rate: float = math.inf, fsdp_in_use: bool = False,
                 slice_p: int = 1) -> None:
        options = self._spec.options_from(locals())
        options["d"] = options["d_max"] = options["d0"]
        self._scratch: dict[int, tuple[K.TensorTable, np.ndarray]] = {}
        self._plan: K.PassPlan | None = None
        self._plan_runs = 0
        super().__init__(params, options)

    def _fill_buffer(self, group: dict[str, Any], key: str, buf: np.ndarray, data: np.ndarray) -> None:
        if key == "p0":
            np.copyto(buf, data)  # p0 starts as a copy of the parameter

    def _load_param_state(self, pstate: Any, group: dict[str, Any], p: Any, gi: int, j: int) -> dict:
        if isinstance(pstate, dict):  # prodigyopt's layout: s and p0 flattened, p0 0-d for an all-zero param
            shape, fixed = p.data.shape, dict(pstate)
            for key in ("s", "p0"):
                v = fixed.get(key)
                if isinstance(v, np.ndarray) and v.shape != shape:
                    if key == "p0" and v.shape == () and v == 0:
                        fixed[key] = np.zeros(shape, v.dtype)
                    elif v.ndim == 1 and v.size == p.data.size:
                        fixed[key] = v.reshape(shape)
            pstate = fixed
        return super()._load_param_state(pstate, group, p, gi, j)

    def _fast_path_ok(self) -> bool:
        return False  # two passes with Python between them: the generic StepPlans cannot run it (K.PassPlan)

    @property
    def _fast_steps(self) -> int:
        """How many steps the repeated-step plan (``K.PassPlan``) ran, over this optimizer's life."""
        return self._plan_runs + (self._plan.runs if self._plan is not None else 0)

    def _drop_plan(self) -> None:
        if self._plan is not None:
            self._plan_runs += self._plan.runs
            self._plan = None

    def _groups_changed(self) -> None:
        self._drop_plan()
        super()._groups_changed()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_plan"], state["_scratch"] = None, {}
        state["_plan_runs"] = self._fast_steps
        return state

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        r"""Perform one step over every group (the two passes); returns the closure's loss.

        A repeated step (no closure; groups, parameters, state and the gradients' dtype, shape and layout as in the
        last step) is checked in C (``K.PassPlan``: one ``StepPlan`` per group) instead of by the per-parameter
        validation; anything else takes the full, checking path."""
        plan = getattr(self, "_plan", None)
        if closure is None and plan is not None and plan.run(self.param_groups, self.state, self._passes):
            return None
        for gi, group in enumerate(self.param_groups):
            self._check_group_at(gi, group)
        _check_groups(self.param_groups)
        self._drop_plan()
        return super().step(closure)

    def _passes(self, items: list) -> bool:
        """Both passes over ``items`` (group, table, hyper, partials scratch), one per group and dtype, in group
        order, with the d estimate between them; writes the group keys. Returns whether the update ran (False: every
        gradient was zero, so only the moments changed, as upstream)."""
        groups = self.param_groups
        st = _Step(groups[0], _check_groups(groups))
        for group, table, hyper, part in items:
            if group["lr"] > 0.0:
                w = st.pass1(group, table.scalars)
                dot, l1 = _REDUCE(table, hyper, part)
                st.numerator += w * dot
                st.denom += l1
        if st.denom == 0:  # every gradient zero: the moments only, as upstream (lr-0 groups: nothing)
            for group, table, hyper, _ in items:
                if group["lr"] > 0.0:
                    st.pass2(group, st.d, table.scalars, 1)
                    self._spec.table_kernel(table, hyper)
            return False
        d, d_max, numerator, d_hat = st.estimate()
        for group in groups:
            group.update(d_numerator=numerator, d_denom=st.denom, d=d, d_max=d_max, d_hat=d_hat)
        for group, table, hyper, _ in items:  # the moments with the old d (pass 1's scalars), then the update
            st.pass2(group, d, table.scalars, 0 if group["lr"] > 0.0 else 2)
            self._spec.table_kernel(table, hyper)
        for group in groups:
            group["k"] = group["k"] + 1
        return True

    def _run_launches(self, launches: list) -> None:
        for _, _, _, _, commits in launches:  # new state, as upstream creates it before its first pass
            for p, _, new_keys, _ in commits:
                live = self.state[p]
                live.update(new_keys)
                live.setdefault("step", 0)
        scratch = {}
        items = []
        for group, _, table, _, _ in launches:
            part = None
            if group["lr"] > 0.0:
                cached = self._scratch.get(id(table))
                part = cached[1] if cached is not None and cached[0] is table else _REDUCE.scratch(table)
                scratch[id(table)] = (table, part)
            items.append((group, table, self._spec.hyper(group), part))
        self._scratch = scratch
        try:
            updated = self._passes(items)
            for _, _, _, rows, commits in launches:
                rows.finish()  # scratch copies of non-contiguous arrays back (the moments changed either way)
                if updated:
                    for p, _, _, _ in commits:
                        self.state[p]["step"] += 1
        finally:
            for _, _, table, _, _ in launches:
                table.release(1)
        groups = self.param_groups
        if (len(launches) == len(groups) and all(launch[0] is g for launch, g in zip(launches, groups))
                and all(not rows.copy_back and len(commits) == len(group["params"]) and cacheable(group)
                        for group, _, _, rows, commits in launches)):
            # every group's checks in C (its StepPlan's bind; the group dicts by identity), then _passes in Python
            plans = [K.StepPlan(table, self._spec.table_kernel, hyper, group, self.state, (), True, None, None)
                     for group, table, hyper, _ in items]
            self._plan = K.PassPlan(plans, groups, items, self._step_pre_hooks, self._step_post_hooks)
