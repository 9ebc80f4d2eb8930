"""Helpers for the scheduler tests: optimizers to schedule and a recorder of (lr, momentum) traces."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

try:  # the real optimizers, once the foundation is there
    import fastopt as _fo

    _HAVE_REAL = hasattr(_fo, "SGD") and hasattr(_fo, "Adam")
except Exception:  # pragma: no cover - before the foundation lands
    _fo = None
    _HAVE_REAL = False


class StandInOptimizer:
    """Minimal object with the optimizer interface schedulers use (param_groups, defaults, step,
    step pre-hooks); used only when fastopt's optimizers are not importable."""

    def __init__(self, groups: list[dict], defaults: dict) -> None:
        self.defaults = dict(defaults)
        self.param_groups = []
        for g in groups:
            full = dict(defaults)
            full.update(g)
            self.param_groups.append(full)
        self._step_pre_hooks: OrderedDict = OrderedDict()
        self._opt_called = False

    def register_step_pre_hook(self, hook: Callable) -> None:
        self._step_pre_hooks[len(self._step_pre_hooks)] = hook

    def step(self, closure: Any = None) -> None:
        for hook in list(self._step_pre_hooks.values()):
            hook(self, (), {})
        self._opt_called = True

    def load_state_dict(self, state: dict) -> None:
        for g, s in zip(self.param_groups, state["param_groups"]):
            g.update(copy.deepcopy(s))

    def state_dict(self) -> dict:
        return {"state": {}, "param_groups": copy.deepcopy(self.param_groups)}


def make_optimizer(kind: str, lrs: list[float]) -> Any:
    """An optimizer with one group per entry of ``lrs``: 'sgd' (momentum 0.9) or 'adam'."""
    rng = np.random.default_rng(0)
    if _HAVE_REAL:
        params = [_fo.Parameter(rng.standard_normal(3)) for _ in lrs]
        groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
        if kind == "sgd":
            return _fo.SGD(groups, lr=lrs[0], momentum=0.9)
        return _fo.Adam(groups, lr=lrs[0], betas=(0.9, 0.999))
    if kind == "sgd":
        defaults = {"lr": lrs[0], "momentum": 0.9, "dampening": 0, "weight_decay": 0,
                    "nesterov": False}
    else:
        defaults = {"lr": lrs[0], "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                    "amsgrad": False}
    return StandInOptimizer([{"params": [i], "lr": lr} for i, lr in enumerate(lrs)], defaults)


def step_optimizer(opt: Any) -> None:
    """One optimizer step (with zero gradients for the real optimizers)."""
    if _HAVE_REAL:
        for g in opt.param_groups:
            for p in g["params"]:
                p.grad = np.zeros_like(p.data)
    opt.step()


def snapshot(groups: list[dict]) -> list:
    out = []
    for g in groups:
        mom = g.get("momentum", None)
        if "betas" in g:
            mom = g["betas"][0]
        out.append((g["lr"], mom))
    return out


def record(opt: Any, sched: Any, n: int, metrics: list | None = None) -> list:
    """(lr, momentum) of every group before each of n steps, stepping optimizer then scheduler."""
    trace = []
    for i in range(n):
        trace.append(snapshot(opt.param_groups))
        step_optimizer(opt)
        if metrics is not None:
            sched.step(metrics[i])
        else:
            sched.step()
    trace.append(snapshot(opt.param_groups))
    return trace
