"""fastopt's optimizers beyond torch.optim against the packages they follow, on torch CPU: ``schedulefree``
(ScheduleFreeSGD / ScheduleFreeAdamW against SGDScheduleFree / AdamWScheduleFree, with train/eval switches
mid-run) and ``prodigyopt`` (Prodigy). 100 steps, two param groups (the second with its own lr, some gradients None), every option;
params, state and the group scalars after every step: float64 <= 1e-12 relative, float32 <= 1e-5. Skipped when
torch or the package is not installed. Prodigy in float32: the bar is the larger of 1e-5 and twice upstream's own
float32 error (see tests/test_reference_beyond.py: while d grows, rounding in the two sums is amplified).
``python tests/test_parity_beyond.py`` prints the parity table."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo

torch = pytest.importorskip("torch")

from test_reference_beyond import (PRODIGY_CASES, SF_ADAMW_CASES, SF_SGD_CASES, STEPS, TOL,  # noqa: E402
                                   _grad, _noise, _problem, _rel, _upstream_float32_error)

SWITCHES = (10, 37, 80)  # after these steps: eval(), compare at x, train()


def _skip(step: int, i: int, j: int) -> bool:
    return (i, j) == (1, 1) and step < 5 or (i, j) == (0, 1) and step % 7 == 3


def _compare(fparams, t_params, fopt, topt, keys) -> float:
    worst = 0.0
    for i, (fps, tps) in enumerate(zip(fparams, t_params)):
        for fp, tp in zip(fps, tps):
            worst = max(worst, _rel(fp.data, tp.detach().numpy()))
            for key, val in fopt.state.get(fp, {}).items():
                if isinstance(val, np.ndarray):
                    # (prodigyopt keeps s and p0 flattened; fastopt in the parameter's shape)
                    worst = max(worst, _rel(val.reshape(-1), topt.state[tp][key].numpy().reshape(-1)))
    for fg, tg in zip(fopt.param_groups, topt.param_groups):
        for key in keys:
            a, b = float(fg[key]), float(tg[key])
            worst = max(worst, abs(a - b) / max(abs(b), 1e-300))
    return worst


def run_pair(dtype, make_fastopt, make_upstream, keys, switches=(), skip=_skip) -> float:
    """fastopt and upstream side by side on one problem; the worst relative error over params, state and the
    group scalars ``keys`` after every step (and at x after each switch)."""
    params, targets = _problem(dtype)
    t_params = [[torch.tensor(p.copy()) for p in ps] for ps in params]
    fparams = [[fo.Parameter(p.copy()) for p in ps] for ps in params]
    topt = make_upstream(t_params)
    fopt = make_fastopt(fparams)
    if switches:
        topt.train()
        fopt.train()
    rng = np.random.default_rng(1)
    worst = 0.0
    for step in range(STEPS):
        noise = _noise(rng, dtype)
        for i, (tps, fps, ts, ns) in enumerate(zip(t_params, fparams, targets, noise)):
            for j, (tp, fp, t, n) in enumerate(zip(tps, fps, ts, ns)):
                if skip(step, i, j):
                    tp.grad = fp.grad = None
                else:
                    tp.grad = torch.tensor(_grad(tp.detach().numpy(), t, n))
                    fp.grad = _grad(fp.data, t, n)
        topt.step()
        fopt.step()
        if step in switches:
            topt.eval()
            fopt.eval()
            worst = max(worst, _compare(fparams, t_params, fopt, topt, keys))
            topt.train()
            fopt.train()
        worst = max(worst, _compare(fparams, t_params, fopt, topt, keys))
    return worst


SF_KEYS = ("k", "weight_sum", "lr_max", "scheduled_lr")
SF_ROWS = [("ScheduleFreeSGD", "SGDScheduleFree", o) for o in SF_SGD_CASES] + \
          [("ScheduleFreeAdamW", "AdamWScheduleFree", o) for o in SF_ADAMW_CASES]


def schedulefree_error(name: str, upstream: str, options: dict, dtype) -> float:
    sfp = pytest.importorskip("schedulefree")
    cls = getattr(fo, name)
    lr1 = options.get("lr", cls._spec.defaults["lr"]) * 0.5  # the second group has its own lr

    def groups(ps):
        return [{"params": ps[0]}, {"params": ps[1], "lr": lr1}]

    return run_pair(dtype, lambda ps: cls(groups(ps), **options),
                    lambda ps: getattr(sfp, upstream)(groups(ps), foreach=False, **options), SF_KEYS, SWITCHES)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,upstream,options", SF_ROWS)
def test_schedulefree_matches_upstream(name, upstream, options, dtype):
    worst = schedulefree_error(name, upstream, options, dtype)
    assert worst <= TOL[dtype], f"{name} {options} {dtype.__name__}: worst relative error {worst:.3e}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_schedulefree_foreach_path_matches_too(dtype):
    """Upstream's default foreach path gives the same trajectories (within the same bars)."""
    sfp = pytest.importorskip("schedulefree")
    worst = run_pair(dtype, lambda ps: fo.ScheduleFreeAdamW([{"params": ps[0]}, {"params": ps[1]}], lr=0.01),
                     lambda ps: sfp.AdamWScheduleFree([{"params": ps[0]}, {"params": ps[1]}], lr=0.01),
                     SF_KEYS, SWITCHES)
    assert worst <= TOL[dtype]


PRODIGY_KEYS = ("k", "d", "d_max", "d_numerator")
PRODIGY_ROWS = [o for o in PRODIGY_CASES if o.get("slice_p", 1) == 1]  # slice_p > 1 is left out (documented)


def _prodigy_skip(step: int, i: int, j: int) -> bool:
    return (i, j) == (1, 0) and step < 4


def prodigy_error(options: dict, dtype) -> tuple[float, float]:
    """(worst relative error, the bar it must meet)."""
    prodigyopt = pytest.importorskip("prodigyopt")

    def groups(ps):
        return [{"params": ps[0]}, {"params": ps[1]}]

    def upstream(ps):
        return prodigyopt.Prodigy(groups(ps), **options)

    worst = run_pair(dtype, lambda ps: fo.Prodigy(groups(ps), **options), upstream, PRODIGY_KEYS,
                     skip=_prodigy_skip)
    bar = TOL[dtype] if dtype == np.float64 else max(TOL[dtype], 2 * _upstream_float32_error(upstream, _prodigy_skip))
    return worst, bar


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", PRODIGY_ROWS)
def test_prodigy_matches_upstream(options, dtype):
    worst, bar = prodigy_error(options, dtype)
    assert worst <= bar, f"Prodigy {options} {dtype.__name__}: worst relative error {worst:.3e} > {bar:.3e}"


if __name__ == "__main__":  # the parity table: optimizer, dtype, worst relative error over every option row
    worst: dict = {}
    for name, upstream, options in SF_ROWS:
        for dtype in (np.float64, np.float32):
            key = (name, dtype.__name__)
            worst[key] = max(worst.get(key, 0.0), schedulefree_error(name, upstream, options, dtype))
    bars: dict = {}
    for options in PRODIGY_ROWS:
        for dtype in (np.float64, np.float32):
            key = ("Prodigy", dtype.__name__)
            err, bar = prodigy_error(options, dtype)
            worst[key] = max(worst.get(key, 0.0), err)
            bars[key] = max(bars.get(key, 0.0), err / bar)
    print("| optimizer | dtype | worst relative error (100 steps, all option rows) | worst error / its bar |")
    print("|---|---|---|---|")
    for (name, dt), err in worst.items():
        ratio = bars.get((name, dt), err / TOL[np.dtype(dt).type])
        print(f"| {name} | {dt} | {err:.2e} | {ratio:.2f} |")
