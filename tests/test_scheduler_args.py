"""Every argument of every scheduler is checked at construction (issue 11, item 8): counts are
integral and >= their minimum, factors finite and in range, milestones non-decreasing; the error is a
ValueError/TypeError naming the scheduler and the argument, and the optimizer's groups are exactly as
they were. NumPy scalars and 0-d arrays are accepted wherever a number is, and stored as Python
numbers (plain data for state_dict)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import fastopt as fo
from fastopt import lr_scheduler as S


def _optimizer(kind: str = "sgd") -> fo.Optimizer:
    rng = np.random.default_rng(0)
    groups = [{"params": [fo.Parameter(rng.standard_normal(3))], "lr": lr} for lr in (0.1, 0.2)]
    if kind == "sgd":
        return fo.SGD(groups, lr=0.1, momentum=0.9)
    return fo.Adam(groups, lr=0.1)


def _groups(opt: fo.Optimizer) -> list:
    return [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]


NAN, INF = math.nan, math.inf

BAD = [
    # StepLR: the ZeroDivisionError at the first step and the sign-flipping gamma of the issue
    (lambda o: S.StepLR(o, step_size=0), ValueError, r"StepLR: step_size must be an integer >= 1"),
    (lambda o: S.StepLR(o, step_size=2.5), ValueError, r"step_size must be an integer"),
    (lambda o: S.StepLR(o, step_size="3"), TypeError, r"step_size must be a real number"),
    (lambda o: S.StepLR(o, step_size=3, gamma=-0.5), ValueError, r"StepLR: gamma must be a finite number > 0"),
    (lambda o: S.StepLR(o, step_size=3, gamma=NAN), ValueError, r"gamma must be a finite number"),
    (lambda o: S.StepLR(o, step_size=3, gamma=INF), ValueError, r"gamma must be a finite number"),
    (lambda o: S.StepLR(o, step_size=3, gamma=1j), TypeError, r"gamma must be a real number"),
    (lambda o: S.StepLR(o, step_size=3, gamma=np.array([0.1, 0.2])), TypeError, r"gamma must be a real number"),
    (lambda o: S.MultiStepLR(o, [5, 2]), ValueError, r"milestones must be non-decreasing"),
    (lambda o: S.MultiStepLR(o, [-1, 2]), ValueError, r"milestones\[\] must be an integer >= 0"),
    (lambda o: S.MultiStepLR(o, [1.5]), ValueError, r"milestones\[\] must be an integer"),
    (lambda o: S.MultiStepLR(o, 3), TypeError, r"milestones must be an iterable"),
    (lambda o: S.MultiStepLR(o, [2], gamma=0.0), ValueError, r"MultiStepLR: gamma must be a finite number > 0"),
    (lambda o: S.ConstantLR(o, factor=0.0), ValueError, r"factor must be > 0"),
    (lambda o: S.ConstantLR(o, factor=NAN), ValueError, r"between 0 and 1"),
    (lambda o: S.ConstantLR(o, total_iters=0), ValueError, r"ConstantLR: total_iters must be an integer >= 1"),
    (lambda o: S.LinearLR(o, start_factor=NAN), ValueError, r"Starting multiplicative factor"),
    (lambda o: S.LinearLR(o, end_factor=NAN), ValueError, r"Ending multiplicative factor"),
    (lambda o: S.LinearLR(o, total_iters=0), ValueError, r"LinearLR: total_iters must be an integer >= 1"),
    (lambda o: S.ExponentialLR(o, gamma=NAN), ValueError, r"ExponentialLR: gamma must be a finite number > 0"),
    (lambda o: S.ExponentialLR(o, gamma=-0.9), ValueError, r"ExponentialLR: gamma"),
    (lambda o: S.PolynomialLR(o, total_iters=0), ValueError, r"PolynomialLR: total_iters must be an integer >= 1"),
    (lambda o: S.PolynomialLR(o, power=-1.0), ValueError, r"PolynomialLR: power must be a finite number >= 0"),
    (lambda o: S.CosineAnnealingLR(o, T_max=0), ValueError, r"CosineAnnealingLR: T_max must be an integer >= 1"),
    (lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=-1e-3), ValueError, r"eta_min must be a finite number >= 0"),
    (lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=INF), ValueError, r"eta_min must be a finite number"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, eta_min=NAN), ValueError, r"eta_min must be a finite number"),
    (lambda o: S.ReduceLROnPlateau(o, factor=-0.5), ValueError, r"factor must be in \[0, 1\)"),
    (lambda o: S.ReduceLROnPlateau(o, factor=NAN), ValueError, r"factor must be a finite number"),
    (lambda o: S.ReduceLROnPlateau(o, patience=-1), ValueError, r"patience must be an integer >= 0"),
    (lambda o: S.ReduceLROnPlateau(o, cooldown=1.5), ValueError, r"cooldown must be an integer"),
    (lambda o: S.ReduceLROnPlateau(o, threshold=-1.0), ValueError, r"threshold must be a finite number >= 0"),
    (lambda o: S.ReduceLROnPlateau(o, eps=NAN), ValueError, r"eps must be a finite number"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.0, -1.0]), ValueError, r"min_lr\[1\] must be a finite number >= 0"),
    (lambda o: S.CyclicLR(o, NAN, 0.1), ValueError, r"CyclicLR: base_lr must be a finite number"),
    (lambda o: S.CyclicLR(o, 0.01, [0.1, -0.1]), ValueError, r"max_lr\[1\] must be a finite number >= 0"),
    (lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_down=-1), ValueError, r"step_size_down must be a finite number >= 0"),
    (lambda o: S.CyclicLR(o, 0.01, 0.1, mode="exp_range", gamma=0.0), ValueError, r"gamma must be a finite number > 0"),
    (lambda o: S.CyclicLR(o, 0.01, 0.1, max_momentum=1.5), ValueError, r"max_momentum must be a finite number in \[0, 1\]"),
    (lambda o: S.OneCycleLR(o, NAN, total_steps=10), ValueError, r"OneCycleLR: max_lr must be a finite number"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=10, div_factor=0.0), ValueError, r"div_factor must be a finite number > 0"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=10, final_div_factor=INF), ValueError, r"final_div_factor"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=10, pct_start=NAN), ValueError, r"pct_start"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=10, pct_start=0.1), ValueError, r"zero length"),
    (lambda o: S.OneCycleLR(o, 0.1, total_steps=10, base_momentum=-0.1), ValueError, r"base_momentum"),
    (lambda o: S.SWALR(o, swa_lr=-0.05), ValueError, r"SWALR: swa_lr must be a finite number >= 0"),
    (lambda o: S.SWALR(o, swa_lr=NAN), ValueError, r"SWALR: swa_lr"),
    # a resumed SWALR without 'initial_lr' used to write 'swa_lr' into the groups before refusing
    (lambda o: S.SWALR(o, swa_lr=0.05, last_epoch=3), KeyError, r"initial_lr"),
]


@pytest.mark.parametrize("build,exc,match", BAD)
def test_bad_argument_is_refused_and_nothing_changes(build, exc, match):
    opt = _optimizer()
    before = _groups(opt)
    with pytest.raises(exc, match=match):
        build(opt)
    assert _groups(opt) == before


GOOD_NUMPY = [
    lambda o: S.StepLR(o, step_size=np.int64(3), gamma=np.float32(0.5)),
    lambda o: S.StepLR(o, step_size=3.0, gamma=np.array(0.5)),
    lambda o: S.MultiStepLR(o, np.array([2, 5, 5]), gamma=np.float64(0.3)),
    lambda o: S.ExponentialLR(o, gamma=np.array(0.9)),
    lambda o: S.PolynomialLR(o, total_iters=np.int32(4), power=np.float32(2.0)),
    lambda o: S.CosineAnnealingLR(o, T_max=np.int64(10), eta_min=np.float32(1e-4)),
    lambda o: S.ReduceLROnPlateau(o, factor=np.float32(0.5), patience=np.int8(2)),
    lambda o: S.CyclicLR(o, np.float32(0.01), np.float64(0.1), step_size_up=np.int64(4)),
    lambda o: S.OneCycleLR(o, np.float32(0.1), total_steps=np.int64(20), pct_start=np.float64(0.3)),
]


@pytest.mark.parametrize("build", GOOD_NUMPY)
def test_numpy_scalars_are_accepted_and_stored_as_python_numbers(build):
    opt = _optimizer()
    sched = build(opt)
    for _ in range(5):
        opt.step()
        if isinstance(sched, S.ReduceLROnPlateau):
            sched.step(1.0)
        else:
            sched.step()
    for key, value in sched.state_dict().items():
        assert not isinstance(value, (np.ndarray, np.generic)), (key, type(value))
    for group in opt.param_groups:
        assert all(math.isfinite(v) for v in [group["lr"]])


def test_numpy_gamma_gives_the_same_rates_as_a_python_float():
    a, b = _optimizer(), _optimizer()
    sa = S.StepLR(a, step_size=2, gamma=0.5)
    sb = S.StepLR(b, step_size=np.int64(2), gamma=np.float64(0.5))
    for _ in range(7):
        a.step(), b.step(), sa.step(), sb.step()
    assert sa.get_last_lr() == sb.get_last_lr()
