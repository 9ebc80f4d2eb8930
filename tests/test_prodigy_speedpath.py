"""Prodigy's first pass (csrc/prodigy.c, prodigy_reduce) bit for bit against a NumPy transcription of fastopt's one
reduction (fo_sum.h): items of FO_CHUNK elements, element i of an item into lane i % 16 accumulated in element
order in double, the lanes folded by the fixed pairwise tree, the items' partials added in order. The float32 loop
takes its sum of g (p0 - p) with one fma per element (the product of two floats is exact in double, so it rounds
as the multiply and add); this checks that claim on the kernel's output, for both dtypes, several work items,
partial lane blocks, and 1 and 2 threads. Also: the benchmark's Prodigy row stays finite over many steps (the
prodigyopt reference overflowed when d grew without bound on the bench's fixed gradient)."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from helpers import num_threads

CHUNK = 16384  # FO_CHUNK (csrc/fo_common.h): the work items' fixed boundaries
LANES = 16


def _fold(lanes: np.ndarray) -> float:
    """fo_sum_fold: pairs, then pairs of pairs, ... (FO_SUM_TREE)."""
    x = [float(v) for v in lanes]
    while len(x) > 1:
        x = [x[i] + x[i + 1] for i in range(0, len(x), 2)]
    return x[0]


def _item_partials(values: np.ndarray) -> list[float]:
    """The partials of one tensor's float64 terms, one per work item (see the module docstring)."""
    partials = []
    for b in range(0, values.size, CHUNK):
        item = values[b:b + CHUNK]
        acc = np.zeros(LANES)
        full = item.size // LANES * LANES
        for j in range(0, full, LANES):  # each lane in element order
            acc = acc + item[j:j + LANES]
        rest = item[full:]
        acc[:rest.size] = acc[:rest.size] + rest
        partials.append(_fold(acc))
    return partials


def _in_order(partials: list[float]) -> float:
    """fo_sum_items: every item's partial, over all tensors, added in item order from 0."""
    total = 0.0
    for x in partials:
        total += x
    return total


def _expected(params, grads, ss, p0s, beta3, dtype):
    """The two sums of pass 1 (with d = d0 = lr = 1, so every weight is 1): sum g (p0 - p) and sum |s'|, where
    s' = s beta3 + g (an fma with weight 1: the product s beta3 rounded, then the add)."""
    dot, l1 = [], []
    for p, g, s, p0 in zip(params, grads, ss, p0s):
        diff = (p0 - p).astype(dtype)  # rounded in the parameter's dtype first, as torch.dot(g, p0 - p)
        dot += _item_partials(g.astype(np.float64) * diff.astype(np.float64))
        s_new = (s * dtype(beta3)).astype(dtype) + g
        l1 += _item_partials(np.abs(s_new).astype(np.float64))
    return _in_order(dot), _in_order(l1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_pass1_sums_are_fastopts_reduction_bit_for_bit(dtype, threads, rng):
    sizes = [1, 15, 17, 1000, CHUNK + 33, 2 * CHUNK + 5]
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [(rng.standard_normal(n) * 1e-3).astype(dtype) for n in sizes]
    p0s = [(p + rng.standard_normal(p.size).astype(dtype) * dtype(1e-2)).astype(dtype) for p in params]
    ss = [(rng.standard_normal(n) * 1e-4).astype(dtype) for n in sizes]
    grads[3][::7] = -0.0  # signed zeros in the products
    p0s[2][::3] = params[2][::3]  # zero differences
    beta3 = 0.95
    want_dot, want_l1 = _expected(params, grads, ss, p0s, beta3, dtype)
    with num_threads(threads):
        out = fo.functional.prodigy(
            params, grads, [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params], ss, p0s,
            lr=1.0, beta1=0.9, beta2=0.999, beta3=beta3, eps=1e-8, weight_decay=0.0, decouple=True,
            use_bias_correction=False, safeguard_warmup=False, d0=1.0, d_coef=1.0, growth_rate=float("inf"),
            d=1.0, d_max=1.0, d_numerator=0.0, k=0)
    # d_numerator = 0 * beta3 + (d / d0) dlr * dot = dot; d_denom = 0 + l1
    assert out["d_numerator"] == want_dot
    assert out["d_denom"] == want_l1


def test_bench_row_stays_finite_and_compares_the_same_options():
    """On the bench's fixed gradient d grows without bound at the default growth_rate (prodigyopt then fails
    converting its step weight to float); the row bounds d's growth (growth_rate=1.0) on both sides."""
    from fastopt.bench import step as S

    algo = S.ALGOS["prodigy"]
    want = ["fastopt", "reference"]
    skipped: dict = {}
    steps = S.build(algo, np.dtype(np.float32), [(300,), (17,)], want, skipped)
    assert "fastopt" in steps
    for _ in range(3000):
        for name in steps:
            steps[name]()
    # the fastopt optimizer is the bound method's owner; its d stayed finite and small
    opt = steps["fastopt"].__self__
    assert opt.param_groups[0]["growth_rate"] == 1.0
    assert np.isfinite(opt.param_groups[0]["d"]) and opt.param_groups[0]["d"] < 1.0
    for p in opt.param_groups[0]["params"]:
        assert np.isfinite(p.data).all() and np.abs(p.data).max() < 10
    if "reference" in steps:  # prodigyopt installed: the same options
        ref = steps["reference"].__self__
        assert ref.param_groups[0]["growth_rate"] == 1.0
        assert np.isfinite(ref.param_groups[0]["d"])


@pytest.mark.parametrize("spoil", ["reshape s", "retype exp_avg_sq", "replace step"])
def test_the_plan_notices_written_arrays_changed_in_place(spoil, rng):
    """The repeated step's checks (map / chain over every written array and state value) see an in-place reshape
    or dtype change of a state array and a state value replaced by an equal one: the plan does not run."""
    ps = [fo.Parameter(rng.standard_normal(n).astype(np.float32)) for n in (64, 12)]
    opt = fo.Prodigy(ps)
    for _ in range(2):
        for p in ps:
            p.grad = rng.standard_normal(p.data.shape).astype(np.float32)
        opt.step()
    assert opt._plan is not None and opt._fast_steps == 1
    st = opt.state[ps[0]]
    if spoil == "reshape s":
        st["s"].shape = (8, 8)
    elif spoil == "retype exp_avg_sq":
        st["exp_avg_sq"].dtype = np.int32
    else:
        st["step"] = np.int64(st["step"])  # an equal value, a different object
    try:
        opt.step()
    except (ValueError, TypeError):
        pass
    assert opt._fast_steps == 1
