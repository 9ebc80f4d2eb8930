"""Prodigy's state in the state arena (fastopt._memory.zeros_aligned_many): every key's new buffers of a step are
consecutive views of one allocation, each co-aligned with its parameter, and p0 starts as a copy of the parameter.
Placement only: the trajectory is the bits of separate arrays."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from fastopt._memory import copy_aligned, zeros_like_aligned
from test_state_arena import _owner, _params  # parameters at varied offsets within a cache line, with gradients

KEYS = ("exp_avg", "exp_avg_sq", "s", "p0")


class _Separate(fo.Prodigy):
    """Prodigy with one allocation per state buffer (the placement before the arena)."""

    def _initial_buffers(self, group, key, datas):
        return [copy_aligned(d, d) if key == "p0" else zeros_like_aligned(d) for d in datas]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prodigy_state_is_one_allocation_per_key(dtype):
    ps = _params(dtype)
    start = [p.data.copy() for p in ps]
    opt = fo.Prodigy(ps, weight_decay=0.1)
    opt.step()
    owners = set()
    for key in KEYS:
        bufs = [opt.state[p][key] for p in ps]
        assert len({id(_owner(b)) for b in bufs}) == 1, key
        owners.add(id(_owner(bufs[0])))
        for p, b in zip(ps, bufs):
            assert b.shape == p.data.shape and b.dtype == p.data.dtype and b.flags.c_contiguous
            assert b.ctypes.data % 64 == p.data.ctypes.data % 64
    assert len(owners) == len(KEYS)  # one allocation per key
    for p, x0 in zip(ps, start):
        np.testing.assert_array_equal(opt.state[p]["p0"], x0)  # p0: the parameter before the first step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [dict(), dict(weight_decay=0.1, decouple=False), dict(betas=(0.0, 0.99)),
                                    dict(use_bias_correction=True, safeguard_warmup=True, d0=1e-3)])
def test_prodigy_arena_keeps_the_bits(dtype, kwargs):
    a, b = _params(dtype, seed=1), _params(dtype, seed=1)
    oa, ob = fo.Prodigy(a, **kwargs), _Separate(b, **kwargs)
    rng = np.random.default_rng(2)
    for _ in range(6):
        for pa, pb in zip(a, b):
            pa.grad = rng.standard_normal(pa.data.shape).astype(dtype)
            pb.grad = pa.grad.copy()
        oa.step()
        ob.step()
    assert len({id(_owner(ob.state[p]["s"])) for p in b}) == len(b)  # the comparison really is separate arrays
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.data, pb.data)
        for key in KEYS if kwargs.get("betas", (0.9,))[0] > 0 else KEYS[1:]:
            np.testing.assert_array_equal(oa.state[pa][key], ob.state[pb][key])
    assert oa.param_groups[0]["d"] == ob.param_groups[0]["d"]
