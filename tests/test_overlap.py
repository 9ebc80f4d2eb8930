"""Overlap is checked across the whole step, before the first write: across groups and dtypes, a parameter that
overlaps itself, and a gradient or state buffer sharing memory with any parameter. One function does it
(``fastopt._kernels.find_overlap``: sorted byte extents, exact test only where two extents meet)."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from fastopt import _kernels as K
from conftest import snapshot


def _rejects(opt, match):
    before = snapshot(opt)
    with pytest.raises(ValueError, match=match):
        opt.step()
    assert snapshot(opt) == before


def _with_grads(ps):
    for p in ps:
        p.grad = np.ones(p.data.shape, p.data.dtype)
    return ps


@pytest.mark.parametrize("make", [fo.Adam, fo.SGD, fo.RMSprop])
def test_params_in_different_groups_that_overlap(make):
    base = np.zeros(10)
    a, b = fo.Parameter(base[:6]), fo.Parameter(base[4:])
    opt = make([{"params": _with_grads([a])}, {"params": _with_grads([b])}], lr=0.1)
    _rejects(opt, r"param_groups\[1\]\['params'\]\[0\]: data shares memory with "
                  r"param_groups\[0\]\['params'\]\[0\] data")


def test_float32_and_float64_views_of_the_same_bytes():
    base = np.zeros(8, np.float64)
    a, b = fo.Parameter(base), fo.Parameter(base.view(np.float32)[:4])
    opt = fo.Adam(_with_grads([a, b]))
    _rejects(opt, r"param_groups\[0\]\['params'\]\[1\]: data shares memory with param_groups\[0\]\['params'\]\[0\]")


def test_a_param_with_a_zero_stride_overlaps_itself():
    x = np.zeros(1)
    p = fo.Parameter(np.lib.stride_tricks.as_strided(x, shape=(5,), strides=(0,), writeable=True))
    opt = fo.SGD(_with_grads([p]), lr=0.1)
    _rejects(opt, r"param_groups\[0\]\['params'\]\[0\]: data overlaps itself")


def test_interleaved_strides_overlap_themselves():
    x = np.zeros(20)
    p = fo.Parameter(np.lib.stride_tricks.as_strided(x, shape=(4, 4), strides=(16, 8), writeable=True))
    opt = fo.Adam(_with_grads([p]))
    _rejects(opt, "overlaps itself")


@pytest.mark.parametrize("make", [lambda ps: fo.Adam(ps, lr=0.1), lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9)])
def test_negative_strides_that_do_not_overlap_are_updated_correctly(make):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 5))
    view = fo.Parameter(base[::-1, ::-2])  # negative strides, no self-overlap
    plain = fo.Parameter(base[::-1, ::-2].copy())
    ov, op = make([view]), make([plain])
    for _ in range(3):
        g = rng.standard_normal(plain.data.shape)
        view.grad, plain.grad = g, g.copy()
        ov.step()
        op.step()
    np.testing.assert_array_equal(view.data, plain.data)
    np.testing.assert_array_equal(base[::-1, ::-2], plain.data)  # the update landed in the original array


def test_a_grad_sharing_memory_with_a_param_of_another_group():
    a, b = fo.Parameter(np.zeros(4)), fo.Parameter(np.zeros(4))
    opt = fo.Adam([{"params": [a]}, {"params": [b]}])
    a.grad, b.grad = np.ones(4), a.data[::-1]
    _rejects(opt, r"param_groups\[0\]\['params'\]\[0\]: data shares memory with|"
                  r"param_groups\[1\]\['params'\]\[0\]: grad shares memory with param_groups\[0\]")


def test_a_grad_aliasing_another_group_after_the_fast_path_is_armed():
    a, b = fo.Parameter(np.zeros(4)), fo.Parameter(np.zeros(4))
    opt = fo.Adam([{"params": [a]}, {"params": [b]}])
    a.grad, b.grad = np.ones(4), np.ones(4)
    opt.step()
    opt.step()
    assert opt._plans is not None
    b.grad = a.data
    _rejects(opt, r"param_groups\[1\]\['params'\]\[0\]: grad shares memory with "
                  r"param_groups\[0\]\['params'\]\[0\] data")


def test_a_state_buffer_sharing_memory_with_another_param():
    a, b = fo.Parameter(np.zeros(4)), fo.Parameter(np.zeros(4))
    opt = fo.Adam(_with_grads([a, b]))
    opt.step()
    opt._plans = None
    opt.state[b]["exp_avg"] = a.data
    _rejects(opt, r"state 'exp_avg' shares memory with|data shares memory with .* state 'exp_avg'")


def test_grads_may_share_memory_with_each_other():
    a, b = fo.Parameter(np.zeros(4)), fo.Parameter(np.zeros(4))
    opt = fo.SGD([{"params": [a]}, {"params": [b]}], lr=0.5)
    g = np.ones(4)
    a.grad, b.grad = g, g  # both only read
    opt.step()
    np.testing.assert_array_equal(a.data, -0.5 * np.ones(4))
    np.testing.assert_array_equal(b.data, -0.5 * np.ones(4))


def test_find_overlap_directly():
    x = np.zeros(100)
    arrays = [x[:10], x[10:20], x[20:30], x[25:27], np.zeros(3), None, x[:0]]
    assert K.find_overlap(arrays, [True] * 7) == (2, 3)
    assert K.find_overlap(arrays, [True, True, False, False, True, True, True]) is None  # two reads may share
    assert K.find_overlap([x[0::2], x[1::2]], [True, True]) is None  # extents meet, bytes do not
    assert K.find_overlap([x[0::2], x[2::4]], [True, False]) == (0, 1)
    zero = np.lib.stride_tricks.as_strided(x, shape=(3,), strides=(0,))
    assert K.find_overlap([zero], [True]) == (0, 0)
    assert K.find_overlap([zero], [False]) is None
    many = [x[i:i + 1] for i in range(100)][::-1]
    assert K.find_overlap(many, [True] * 100) is None
    with pytest.raises(ValueError, match="written flags"):
        K.find_overlap([x], [])
