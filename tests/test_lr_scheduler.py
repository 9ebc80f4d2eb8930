"""fastopt.lr_scheduler: torch parity of the lr/momentum sequences, exact resume from state_dict,
errors, warnings, and the places where we differ from torch on purpose."""

from __future__ import annotations

import copy
import math
import types
import warnings

import pytest

from fastopt import lr_scheduler as F
from helpers import lr_momentum, record, sched_optimizer, step_optimizer

METRICS = [1.0, 0.9, 0.95, 0.97, 0.96, 0.99, 0.5, 0.6, 0.7, 0.8, 0.9, 0.91, 0.92, 0.4, 0.41,
           0.42, 0.43, 0.44, 0.45, 0.46]


class Scale:
    """A callable object with state (its __dict__ is what state_dict saves)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, epoch: int) -> float:
        return self.factor ** epoch


# (id, optimizer kind, group lrs, factory(M, opt), steps, metrics or None)
CASES = [
    ("lambda", "sgd", [0.1], lambda M, o: M.LambdaLR(o, lambda e: 0.95 ** e), 12, None),
    ("lambda-list", "adam", [0.1, 0.02],
     lambda M, o: M.LambdaLR(o, [lambda e: 1.0 / (e + 1), lambda e: 0.5 * (e % 3)]), 12, None),
    ("multiplicative", "sgd", [0.1, 0.05], lambda M, o: M.MultiplicativeLR(o, lambda e: 0.9), 12, None),
    ("multiplicative-e", "adam", [0.3], lambda M, o: M.MultiplicativeLR(o, lambda e: 1 - 0.01 * e), 12, None),
    ("step", "sgd", [0.1, 0.07], lambda M, o: M.StepLR(o, step_size=3, gamma=0.5), 14, None),
    ("step-default", "adam", [0.1], lambda M, o: M.StepLR(o, 2), 9, None),
    ("multistep", "sgd", [0.1], lambda M, o: M.MultiStepLR(o, [2, 5, 5, 9], gamma=0.3), 12, None),
    ("constant", "sgd", [0.1], lambda M, o: M.ConstantLR(o), 9, None),
    ("constant-args", "adam", [0.1, 0.2], lambda M, o: M.ConstantLR(o, factor=0.5, total_iters=3), 9, None),
    ("linear", "sgd", [0.1], lambda M, o: M.LinearLR(o), 9, None),
    ("linear-args", "adam", [0.1, 0.3], lambda M, o: M.LinearLR(o, 0.1, 0.9, 7), 12, None),
    ("exponential", "sgd", [0.1, 0.01], lambda M, o: M.ExponentialLR(o, 0.9), 12, None),
    ("polynomial", "sgd", [0.1], lambda M, o: M.PolynomialLR(o), 9, None),
    ("polynomial-args", "adam", [0.1], lambda M, o: M.PolynomialLR(o, total_iters=8, power=2.0), 12, None),
    ("cosine", "sgd", [0.1], lambda M, o: M.CosineAnnealingLR(o, T_max=5), 25, None),
    ("cosine-etamin", "adam", [0.1, 0.05], lambda M, o: M.CosineAnnealingLR(o, 7, eta_min=0.001), 30, None),
    ("chained", "sgd", [0.1],
     lambda M, o: M.ChainedScheduler([M.ConstantLR(o, 0.1, total_iters=2), M.ExponentialLR(o, 0.9)]),
     10, None),
    ("chained3", "adam", [0.1, 0.2],
     lambda M, o: M.ChainedScheduler([M.LinearLR(o, 0.5, total_iters=4), M.StepLR(o, 3, 0.5),
                                      M.MultiStepLR(o, [5, 7], 0.1)], optimizer=o), 12, None),
    ("sequential", "sgd", [0.1],
     lambda M, o: M.SequentialLR(o, [M.LinearLR(o, 0.2, total_iters=5), M.ExponentialLR(o, 0.9)], [5]),
     14, None),
    ("sequential-cos", "adam", [0.1, 0.05],
     lambda M, o: M.SequentialLR(o, [M.ConstantLR(o, 0.5, total_iters=3),
                                     M.CosineAnnealingLR(o, 6, eta_min=0.001)], [4]), 16, None),
    ("sequential3", "sgd", [0.1],
     lambda M, o: M.SequentialLR(o, [M.ConstantLR(o, 0.5, total_iters=10), M.LinearLR(o, 0.25, total_iters=3),
                                     M.StepLR(o, 2, 0.5)], [2, 6]), 14, None),
    ("sequential-zero", "sgd", [0.1],
     lambda M, o: M.SequentialLR(o, [M.ConstantLR(o, 0.5), M.ExponentialLR(o, 0.8)], [0]), 8, None),
    ("sequential-lambda", "adam", [0.1],
     lambda M, o: M.SequentialLR(o, [M.ExponentialLR(o, 0.5), M.LambdaLR(o, lambda e: 1 / (1 + e))], [3]),
     10, None),
    ("sequential-cyclic", "sgd", [0.1],
     lambda M, o: M.SequentialLR(o, [M.LinearLR(o, 0.5, total_iters=3),
                                     M.CyclicLR(o, 0.01, 0.1, step_size_up=3)], [4]), 14, None),
    ("sequential-swa", "sgd", [0.1],
     lambda M, o: M.SequentialLR(o, [M.CosineAnnealingLR(o, 10),
                                     M.SWALR(o, swa_lr=0.02, anneal_epochs=3)], [5]), 12, None),
    ("plateau", "sgd", [0.1, 0.05], lambda M, o: M.ReduceLROnPlateau(o, patience=2, cooldown=1), 20, METRICS),
    ("plateau-max-abs", "adam", [0.1],
     lambda M, o: M.ReduceLROnPlateau(o, "max", factor=0.5, patience=1, threshold=0.05,
                                      threshold_mode="abs", min_lr=0.01), 20, METRICS),
    ("plateau-minlr-list", "sgd", [0.1, 0.2],
     lambda M, o: M.ReduceLROnPlateau(o, patience=0, min_lr=[0.05, 0.001], eps=1e-3), 20, METRICS),
    ("cyclic", "sgd", [0.1], lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=3), 20, None),
    ("cyclic-tri2-adam", "adam", [0.1, 0.1],
     lambda M, o: M.CyclicLR(o, [0.01, 0.02], [0.1, 0.2], step_size_up=2, step_size_down=5,
                             mode="triangular2", base_momentum=0.85, max_momentum=0.95), 30, None),
    ("cyclic-exp", "sgd", [0.1],
     lambda M, o: M.CyclicLR(o, 0.001, 0.01, step_size_up=4, mode="exp_range", gamma=0.9), 25, None),
    ("cyclic-scalefn", "sgd", [0.1],
     lambda M, o: M.CyclicLR(o, 0.001, 0.01, step_size_up=3, scale_fn=lambda x: 0.5 ** x,
                             scale_mode="iterations", cycle_momentum=False), 15, None),
    ("onecycle", "sgd", [0.1], lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=20), 20, None),
    ("onecycle-3phase", "adam", [0.1, 0.1],
     lambda M, o: M.OneCycleLR(o, max_lr=[0.1, 0.3], epochs=4, steps_per_epoch=5, pct_start=0.25,
                               anneal_strategy="linear", three_phase=True), 19, None),
    ("onecycle-nomom", "sgd", [0.1],
     lambda M, o: M.OneCycleLR(o, 0.05, total_steps=13, cycle_momentum=False, div_factor=10.0,
                               final_div_factor=100.0), 13, None),
    ("warm-restarts", "sgd", [0.1], lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=3), 15, None),
    ("warm-restarts-mult", "adam", [0.1, 0.02],
     lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.001), 20, None),
    ("swalr", "sgd", [0.1], lambda M, o: M.SWALR(o, swa_lr=0.05, anneal_epochs=4, anneal_strategy="linear"),
     10, None),
    ("swalr-list-zero", "adam", [0.1, 0.2],
     lambda M, o: M.SWALR(o, swa_lr=[0.01, 0.02], anneal_epochs=0), 5, None),
    ("swalr-default", "sgd", [0.1], lambda M, o: M.SWALR(o, 0.01), 14, None),
]
IDS = [c[0] for c in CASES]


def _torch_namespace(torch):
    ns = types.SimpleNamespace(**{n: getattr(torch.optim.lr_scheduler, n) for n in F.__all__ if n != "SWALR"})
    ns.SWALR = torch.optim.swa_utils.SWALR
    return ns


def _ours(case, n=None):
    _, kind, lrs, factory, steps, metrics = case
    opt = sched_optimizer(kind, lrs)
    sched = factory(F, opt)
    return opt, sched, record(opt, sched, steps if n is None else n, metrics)


# ----------------------------------------------------------------------------------------------
# torch parity
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_torch_parity(case):
    torch = pytest.importorskip("torch")
    _, kind, lrs, factory, steps, metrics = case
    M = _torch_namespace(torch)
    topt = sched_optimizer(kind, lrs, torch=torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tsched = factory(M, topt)
        expected = record(topt, tsched, steps, metrics)
    _, sched, got = _ours(case)
    assert got == expected  # bit-identical floats, lr and momentum of every group at every step
    assert sched.get_last_lr() == [float(x) for x in tsched.get_last_lr()]


@pytest.mark.parametrize("epoch", [0, 1, 3, 7, 12])
@pytest.mark.parametrize("name,kwargs", [
    ("StepLR", {"step_size": 3, "gamma": 0.5}), ("MultiStepLR", {"milestones": [2, 5, 5]}),
    ("ConstantLR", {"factor": 0.25, "total_iters": 4}), ("LinearLR", {"start_factor": 0.2}),
    ("ExponentialLR", {"gamma": 0.8}), ("PolynomialLR", {"total_iters": 6, "power": 1.5}),
    ("CosineAnnealingLR", {"T_max": 5, "eta_min": 0.01}), ("LambdaLR", {"lr_lambda": lambda e: 0.9 ** e}),
])
def test_torch_parity_step_epoch_closed_form(name, kwargs, epoch):
    torch = pytest.importorskip("torch")
    topt = sched_optimizer("sgd", [0.1, 0.3], torch=torch)
    opt = sched_optimizer("sgd", [0.1, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
        ours = getattr(F, name)(opt, **kwargs)
        topt.step(); step_optimizer(opt)
        ts.step(epoch); ours.step(epoch)
    assert ours.get_last_lr() == ts.get_last_lr()


@pytest.mark.parametrize("epoch", [0.0, 0.5, 2.25, 3, 7.75, 20.0])
@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_torch_parity_warm_restarts_fractional_epoch(epoch, T_mult):
    torch = pytest.importorskip("torch")
    topt = sched_optimizer("sgd", [0.1], torch=torch)
    opt = sched_optimizer("sgd", [0.1])
    ts = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=2, T_mult=T_mult, eta_min=1e-3)
    ours = F.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=T_mult, eta_min=1e-3)
    topt.step(); step_optimizer(opt)
    ts.step(epoch); ours.step(epoch)
    assert ours.get_last_lr() == ts.get_last_lr()
    assert (ours.T_cur, ours.T_i, ours.last_epoch) == (ts.T_cur, ts.T_i, ts.last_epoch)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("step", "cyclic-tri2-adam", "plateau",
                                                               "sequential", "onecycle")],
                         ids=lambda c: c[0])
def test_torch_state_dict_loads_into_ours(case):
    """A torch scheduler's state_dict (converted to plain data) resumes our scheduler exactly."""
    torch = pytest.importorskip("torch")
    _, kind, lrs, factory, steps, metrics = case
    k = steps // 2
    topt = sched_optimizer(kind, lrs, torch=torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = factory(_torch_namespace(torch), topt)
        record(topt, ts, k, metrics)
    sd = ts.state_dict()
    if "milestones" in sd:
        sd["milestones"] = dict(sd["milestones"])
    _, _, full = _ours(case)
    opt = sched_optimizer(kind, lrs)
    sched = factory(F, opt)
    sched.load_state_dict(sd)
    rest = record(opt, sched, steps - k, metrics[k:] if metrics else None)
    assert rest == full[k:]


# ----------------------------------------------------------------------------------------------
# resume from state_dict (torch-free)
# ----------------------------------------------------------------------------------------------
PLAIN_LEAVES = (bool, int, float, complex, str, type(None))


def assert_plain(obj, path="state_dict"):
    if isinstance(obj, dict):
        assert type(obj) is dict, f"{path} is a {type(obj).__name__}, not a plain dict"
        for k, v in obj.items():
            assert type(k) in (int, str), f"{path} has a key of type {type(k).__name__}"
            assert_plain(v, f"{path}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        assert type(obj) in (list, tuple)
        for i, v in enumerate(obj):
            assert_plain(v, f"{path}[{i}]")
    else:
        assert type(obj) in PLAIN_LEAVES, f"{path} is a {type(obj).__name__}"


def _resume(case, k, mode, through_file=None):
    """Run k steps, checkpoint, rebuild everything and run the remaining steps."""
    _, kind, lrs, factory, steps, metrics = case
    opt = sched_optimizer(kind, lrs)
    sched = factory(F, opt)
    head = record(opt, sched, k, metrics[:k] if metrics else None)[:-1]
    ssd, osd = sched.state_dict(), copy.deepcopy(opt.state_dict())
    assert_plain(ssd)
    if through_file is not None:
        ssd = through_file(ssd)
    opt2 = sched_optimizer(kind, lrs)
    if mode == "optimizer-first":   # torch's trap: construction then rewrites group['lr']
        opt2.load_state_dict(osd)
        sched2 = factory(F, opt2)
    else:
        sched2 = factory(F, opt2)
        if mode == "standard":
            opt2.load_state_dict(osd)
    sched2.load_state_dict(ssd)
    tail = record(opt2, sched2, steps - k, metrics[k:] if metrics else None)
    return head + tail


@pytest.mark.parametrize("mode", ["standard", "optimizer-first", "scheduler-only"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_resume_from_state_dict_is_exact(case, mode):
    _, _, full = _ours(case)
    for k in range(case[4] + 1):
        assert _resume(case, k, mode) == full, f"resumed after {k} steps"


def test_resume_does_not_depend_on_the_given_dict_later():
    opt = sched_optimizer("sgd", [0.1])
    sched = F.MultiStepLR(opt, [2, 4])
    sd = sched.state_dict()
    assert isinstance(sd["milestones"], dict) and not hasattr(sd["milestones"], "most_common")
    before = copy.deepcopy(sd)
    for _ in range(5):
        step_optimizer(opt)
        sched.step()
    assert sd == before                      # state_dict is a snapshot
    sched.load_state_dict(sd)
    assert sd == before                      # and load_state_dict does not modify its argument
    assert sched.get_last_lr() == [0.1] and opt.param_groups[0]["lr"] == 0.1
    assert type(sched.milestones).__name__ == "Counter"


def test_lambda_state_dict_saves_callable_objects_dict_only():
    opt = sched_optimizer("sgd", [0.1, 0.2])
    fn = Scale(0.5)
    sched = F.LambdaLR(opt, [fn, lambda e: 1.0])
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [{"factor": 0.5}, None]
    fn.factor = 0.25
    sched.load_state_dict(sd)
    assert fn.factor == 0.5
    with pytest.raises(ValueError, match="lr_lambdas"):
        sched.load_state_dict({**sd, "lr_lambdas": [None]})


# ----------------------------------------------------------------------------------------------
# SequentialLR: where torch is wrong
# ----------------------------------------------------------------------------------------------
def _lrs(opt, sched, n):
    return [round(t[0][0], 12) for t in record(opt, sched, n)]


def test_sequential_restarts_multiplicative_from_its_initial_lr():
    opt = sched_optimizer("sgd", [1.0])
    sched = F.SequentialLR(opt, [F.ExponentialLR(opt, 0.5), F.MultiplicativeLR(opt, lambda e: 0.9)], [3])
    # torch gives 1, .5, .25, .225, .2025 (continues from the previous rate times lambda(0))
    assert _lrs(opt, sched, 5) == [1.0, 0.5, 0.25, 1.0, 0.9, 0.81]


def test_nested_sequential_is_transparent():
    def inner(o):
        return F.SequentialLR(o, [F.ConstantLR(o, 0.5, total_iters=2), F.ConstantLR(o, 0.2, total_iters=10)], [2])

    o1 = sched_optimizer("sgd", [0.1])
    one = _lrs(o1, inner(o1), 12)
    o2 = sched_optimizer("sgd", [0.1])
    two = _lrs(o2, F.SequentialLR(o2, [inner(o2)], []), 12)
    assert one == two == [0.05, 0.05] + [0.02] * 10 + [0.1]  # torch's wrapper skips one 0.05


def test_chained_inside_sequential_restarts_at_milestone():
    opt = sched_optimizer("sgd", [1.0])
    chain = F.ChainedScheduler([F.ExponentialLR(opt, 0.9), F.StepLR(opt, 2, 0.5)])
    sched = F.SequentialLR(opt, [F.LinearLR(opt, 0.5, total_iters=2), chain], [3])
    got = _lrs(opt, sched, 8)
    # torch raises NotImplementedError at the milestone
    want = [0.5, 0.75, 1.0] + [round(0.9 ** t * 0.5 ** (t // 2), 12) for t in range(6)]
    assert got == want


def test_sequential_last_epoch_fast_forwards():
    def build(o, last_epoch=-1):
        return F.SequentialLR(o, [F.ConstantLR(o, 0.1, total_iters=10), F.ExponentialLR(o, 0.9)], [3],
                              last_epoch=last_epoch)

    o1 = sched_optimizer("sgd", [1.0])
    full = record(o1, build(o1), 10)
    for n in range(-1, 8):
        o2 = sched_optimizer("sgd", [1.0])
        s2 = build(o2, n)
        assert s2.last_epoch == n + 1
        assert lr_momentum(o2.param_groups) == full[n + 1]
        assert record(o2, s2, 10 - (n + 1))[1:] == full[n + 2:]


def test_sequential_milestones_are_checked():
    opt = sched_optimizer("sgd", [0.1])
    a, b = F.ConstantLR(opt), F.ExponentialLR(opt, 0.9)
    with pytest.raises(ValueError, match="one more than the number of milestone"):
        F.SequentialLR(opt, [a, b], [1, 2])
    with pytest.raises(ValueError, match="non-decreasing"):
        F.SequentialLR(opt, [a, b, F.StepLR(opt, 2)], [4, 2])
    with pytest.raises(ValueError, match="non-negative ints"):
        F.SequentialLR(opt, [a, b], [-1])
    with pytest.raises(ValueError, match="at least one"):
        F.SequentialLR(opt, [], [])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        F.SequentialLR(opt, [a, F.ReduceLROnPlateau(opt)], [1])
    other = sched_optimizer("sgd", [0.1])
    with pytest.raises(ValueError, match="same optimizer"):
        F.SequentialLR(opt, [a, F.ExponentialLR(other, 0.9)], [1])
    with pytest.raises(TypeError, match="not an LRScheduler"):
        F.ChainedScheduler([a, object()])


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("build,exc,match", [
    (lambda o: F.StepLR(object(), 2), TypeError, "is not an Optimizer"),
    (lambda o: F.StepLR(o, 2, last_epoch=-2), ValueError, "last_epoch"),
    (lambda o: F.StepLR(o, 2, last_epoch=3), KeyError, "initial_lr"),
    (lambda o: F.LambdaLR(o, [lambda e: 1.0] * 3), ValueError, "Expected 2 lr_lambdas, but got 3"),
    (lambda o: F.MultiplicativeLR(o, 0.9), TypeError, "lr_lambda should be a function"),
    (lambda o: F.ConstantLR(o, factor=1.5), ValueError, "between 0 and 1"),
    (lambda o: F.LinearLR(o, start_factor=0), ValueError, "greater than 0"),
    (lambda o: F.LinearLR(o, end_factor=2), ValueError, "Ending multiplicative factor"),
    (lambda o: F.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be < 1.0"),
    (lambda o: F.ReduceLROnPlateau(o, mode="avg"), ValueError, "mode avg is unknown"),
    (lambda o: F.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold mode x is unknown"),
    (lambda o: F.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "expected 2 min_lrs, got 1"),
    (lambda o: F.CyclicLR(o, 0.01, 0.1, mode="sine"), ValueError, "mode is invalid"),
    (lambda o: F.CyclicLR(o, [0.01], 0.1), ValueError, "base_lr must have the same length"),
    (lambda o: F.CyclicLR(o, 0.01, 0.1, step_size_up=0), ValueError, "step_size_up must be a finite number > 0"),
    (lambda o: F.OneCycleLR(o, 0.1), ValueError, "either total_steps OR"),
    (lambda o: F.OneCycleLR(o, 0.1, total_steps=0), ValueError, "positive integer total_steps"),
    (lambda o: F.OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=0), ValueError, "steps_per_epoch"),
    (lambda o: F.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.5), ValueError, "pct_start"),
    (lambda o: F.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (lambda o: F.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "positive integer T_0"),
    (lambda o: F.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError, "T_mult >= 1"),
    (lambda o: F.CosineAnnealingWarmRestarts(o, T_0=2, eta_min="0"), ValueError, "eta_min"),
    (lambda o: F.SWALR(o, 0.05, anneal_epochs=-1), ValueError, "anneal_epochs"),
    (lambda o: F.SWALR(o, 0.05, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (lambda o: F.SWALR(o, [0.05]), ValueError, "swa_lr must have the same length"),
])
def test_constructor_errors_leave_the_optimizer_unchanged(build, exc, match):
    opt = sched_optimizer("sgd", [0.1, 0.2])
    before = copy.deepcopy(opt.param_groups) if not hasattr(opt, "state") else [
        {k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    with pytest.raises(exc, match=match):
        build(opt)
    after = copy.deepcopy(opt.param_groups) if not hasattr(opt, "state") else [
        {k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    assert after == before


def test_cycle_momentum_needs_momentum():
    opt = sched_optimizer("sgd", [0.1])
    del opt.defaults["momentum"]
    with pytest.raises(ValueError, match="must support momentum"):
        F.CyclicLR(opt, 0.01, 0.1)
    with pytest.raises(ValueError, match="must support momentum"):
        F.OneCycleLR(opt, 0.1, total_steps=5)


def test_onecycle_refuses_a_step_past_the_end_without_changing_anything():
    opt = sched_optimizer("sgd", [0.1])
    sched = F.OneCycleLR(opt, 0.1, total_steps=3)
    record(opt, sched, 3)
    snap, last, count = lr_momentum(opt.param_groups), sched.last_epoch, sched._step_count
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        sched.step()
    assert (lr_momentum(opt.param_groups), sched.last_epoch, sched._step_count) == (snap, last, count)


def test_load_state_dict_errors():
    opt = sched_optimizer("sgd", [0.1, 0.2])
    sched = F.StepLR(opt, 2)
    with pytest.raises(TypeError, match="must be a dict"):
        sched.load_state_dict([1, 2])
    bad = sched.state_dict()
    bad["_last_lr"] = [0.1]
    with pytest.raises(ValueError, match="1 learning rates but the optimizer has 2"):
        sched.load_state_dict(bad)
    seq = F.SequentialLR(opt, [F.ConstantLR(opt), F.StepLR(opt, 2)], [2])
    sd = seq.state_dict()
    sd["_schedulers"] = sd["_schedulers"][:1]
    with pytest.raises(ValueError, match="list of 2 state dicts"):
        seq.load_state_dict(sd)


def test_group_added_after_construction_is_reported():
    opt = sched_optimizer("sgd", [0.1])
    sched = F.LambdaLR(opt, lambda e: 1.0)
    # a second group of its own parameters (the same parameters in two groups would overlap: step refuses that)
    opt.param_groups.append(dict(opt.param_groups[0],
                                 params=[copy.deepcopy(p) for p in opt.param_groups[0]["params"]]))
    with pytest.raises(ValueError, match="1 learning rates for 2 param groups"):
        step_optimizer(opt)
        sched.step()


# ----------------------------------------------------------------------------------------------
# warnings
# ----------------------------------------------------------------------------------------------
ORDER = "before `optimizer.step()`"


def _order_warnings(rec):
    return [w for w in rec if ORDER in str(w.message)]


def test_warns_when_scheduler_steps_before_optimizer():
    opt = sched_optimizer("sgd", [0.1])
    sched = F.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="Detected call of `lr_scheduler.step"):
        sched.step()
    with warnings.catch_warnings(record=True) as rec:   # only the first step is checked
        warnings.simplefilter("always")
        sched.step()
    assert not _order_warnings(rec)


def test_no_warning_in_the_right_order_and_warning_points_at_caller():
    opt = sched_optimizer("adam", [0.1])
    sched = F.CosineAnnealingLR(opt, 10)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        step_optimizer(opt)
        sched.step()
    assert not _order_warnings(rec)
    opt2 = sched_optimizer("adam", [0.1])
    s2 = F.ExponentialLR(opt2, 0.9)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        s2.step()
    (w,) = _order_warnings(rec)
    assert w.filename == __file__


def test_no_warning_when_the_optimizer_skipped_its_step_on_purpose():
    """A step that was called but did nothing (e.g. skipped for non-finite grads) is not the
    mistake the warning is about."""
    opt = sched_optimizer("sgd", [0.1])
    sched = F.LinearLR(opt)
    opt._opt_called = False
    # The pre-hook fires when step() is called, whatever the step then does.
    hooks = getattr(opt, "_step_pre_hooks", {})
    assert len(hooks) == 1
    for hook in list(hooks.values()):
        hook(opt, (), {})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sched.step()
    assert not _order_warnings(rec)
    # one tracker per optimizer, however many schedulers
    F.StepLR(opt, 3)
    assert len(hooks) == 1


def test_composite_warns_once():
    opt = sched_optimizer("sgd", [0.1])
    chain = F.ChainedScheduler([F.ConstantLR(opt), F.ExponentialLR(opt, 0.9), F.StepLR(opt, 2)])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        chain.step()
    assert len(_order_warnings(rec)) == 1
    opt = sched_optimizer("sgd", [0.1])
    seq = F.SequentialLR(opt, [F.ConstantLR(opt), F.ExponentialLR(opt, 0.9)], [1])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        seq.step()
        seq.step()
    assert len(_order_warnings(rec)) == 1


def test_step_epoch_is_deprecated_and_uses_the_closed_form():
    opt = sched_optimizer("sgd", [0.1])
    sched = F.MultiplicativeLR(opt, lambda e: 0.5)
    step_optimizer(opt)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(3)
    assert sched.get_last_lr() == [0.1 * 0.5 * 0.5 * 0.5]   # torch: 0.1 * 0.5
    sw = F.SWALR(opt, 0.05)
    with pytest.raises(ValueError, match="does not take an epoch"):
        sw.step(2)
    cawr = F.CosineAnnealingWarmRestarts(opt, T_0=4)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cawr.step(1.5)
    assert not [w for w in rec if "deprecated" in str(w.message)]
    with pytest.raises(ValueError, match="non-negative epoch"):
        cawr.step(-1)
    rop = F.ReduceLROnPlateau(opt)
    with pytest.warns(UserWarning, match="deprecated"):
        rop.step(1.0, epoch=5)
    assert rop.last_epoch == 5


def test_get_lr_outside_step_warns():
    opt = sched_optimizer("sgd", [0.1])
    sched = F.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


def test_optimizer_stays_copyable():
    opt = sched_optimizer("sgd", [0.1])
    F.StepLR(opt, 2)
    clone = copy.deepcopy(opt)
    assert clone.param_groups[0]["lr"] == 0.1


def test_initial_lr_and_base_lrs():
    opt = sched_optimizer("adam", [0.1, 0.2])
    sched = F.ExponentialLR(opt, 0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.2] == sched.base_lrs
    record(opt, sched, 2)
    sched2 = F.StepLR(opt, 2)                      # initial_lr is kept, not overwritten
    assert sched2.base_lrs == [0.1, 0.2]
    assert sched.last_epoch == 2 and math.isclose(opt.param_groups[0]["lr"], 0.025)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_resume_through_a_checkpoint_file(case, tmp_path):
    """state_dict() -> fastopt.save -> fastopt.load -> load_state_dict resumes exactly."""
    from fastopt.io import load, save

    def through_file(sd):
        path = tmp_path / "sched.npz"
        save(sd, path)
        back = load(path)
        assert back == sd
        return back

    _, _, full = _ours(case)
    for k in sorted({0, 1, case[4] // 2, case[4] - 1, case[4]}):
        assert _resume(case, k, "scheduler-only", through_file) == full
