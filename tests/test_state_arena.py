"""The state arena: a step's new zero state buffers of one key are consecutive views of one allocation
(fastopt._memory.zeros_aligned_many), each co-aligned with its parameter. Placement only: the results, the state dict,
loading, user-replaced buffers and the overlap check behave as with separate arrays."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import fastopt as fo
from fastopt._memory import zeros_aligned_many, zeros_like_aligned

SIZES = (1, 7, 100, 1000, 4099, 20000)


def _params(dtype=np.float32, sizes=SIZES, seed=0, offset=1):
    """Parameters at varied offsets within a cache line (slices of slightly larger arrays) with gradients."""
    rng = np.random.default_rng(seed)
    ps = []
    for i, n in enumerate(sizes):
        data = rng.standard_normal(n + offset + i).astype(dtype)[offset + i:]
        p = fo.Parameter(data)
        p.grad = rng.standard_normal(n).astype(dtype)
        ps.append(p)
    return ps


def _owner(a: np.ndarray) -> np.ndarray:
    while a.base is not None:
        a = a.base
    return a


def _extent(a: np.ndarray) -> tuple[int, int]:
    return a.ctypes.data, a.ctypes.data + a.nbytes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zeros_aligned_many_places_each_like_its_array(dtype):
    datas = [np.ones(n + k, dtype)[k:].reshape(-1, 1) if n % 2 else np.ones(n + k, dtype)[k:]
             for k, n in enumerate((3, 8, 0, 513, 64))]
    out = zeros_aligned_many(datas)
    assert len(out) == len(datas)
    owners = {id(_owner(o)) for o, d in zip(out, datas) if d.size}
    assert len(owners) == 1  # every non-empty one is a view of one allocation
    for o, d in zip(out, datas):
        assert o.shape == d.shape and o.dtype == d.dtype and o.flags.c_contiguous and o.flags.writeable
        assert not o.any()
        if d.size:
            assert o.ctypes.data % 64 == d.ctypes.data % 64
    spans = sorted(_extent(o) for o in out if o.size)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # disjoint, in order
    out[1][...] = 5
    assert not out[0].any() and not out[3].any()


def test_zeros_aligned_many_falls_back_like_zeros_like_aligned():
    one = np.ones(10, np.float32)
    [a] = zeros_aligned_many([one])
    assert a.shape == one.shape and not a.any()
    mixed = zeros_aligned_many([np.ones(4, np.float32), np.ones(4, np.float64)])
    assert [m.dtype for m in mixed] == [np.float32, np.float64]
    assert _owner(mixed[0]) is not _owner(mixed[1])
    raw = np.zeros(9, np.uint8)
    odd = np.frombuffer(raw.data, np.float32, 2, offset=1)  # not on a 4-byte boundary
    out = zeros_aligned_many([odd, np.ones(3, np.float32)])
    assert out[0].shape == (2,) and not out[0].any() and out[1].shape == (3,)
    assert zeros_aligned_many([]) == []


@pytest.mark.parametrize("name,kwargs,keys", [
    ("Adam", dict(lr=1e-2), ("exp_avg", "exp_avg_sq")),
    ("Adam", dict(lr=1e-2, amsgrad=True), ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")),
    ("SGD", dict(lr=1e-2, momentum=0.9), ("momentum_buffer",)),
    ("RMSprop", dict(lr=1e-2, momentum=0.5, centered=True), ("square_avg", "momentum_buffer", "grad_avg")),
])
def test_group_state_is_one_allocation_per_key(name, kwargs, keys):
    ps = _params()
    opt = getattr(fo, name)(ps, **kwargs)
    opt.step()
    for key in keys:
        bufs = [opt.state[p][key] for p in ps]
        assert len({id(_owner(b)) for b in bufs}) == 1, key
        for p, b in zip(ps, bufs):
            assert b.shape == p.data.shape and b.dtype == p.data.dtype and b.flags.c_contiguous
            assert b.ctypes.data % 64 == p.data.ctypes.data % 64
    spans = sorted(_extent(opt.state[p][k]) for p in ps for k in keys)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", [
    ("Adam", dict(lr=1e-2)), ("AdamW", dict(lr=1e-2, amsgrad=True)), ("SGD", dict(lr=1e-2, momentum=0.9)),
    ("SGD", dict(lr=1e-2, momentum=0.9, nesterov=True)), ("RMSprop", dict(lr=1e-2, centered=True)),
    ("Adagrad", dict(lr=1e-2, initial_accumulator_value=0.1)), ("Lion", dict(lr=1e-3)), ("NAdam", dict(lr=1e-2)),
])
def test_results_match_one_optimizer_per_parameter(name, kwargs, dtype):
    """One optimizer over all parameters (arena state) gives the same bits as one optimizer per parameter (each
    parameter's state its own allocation) after several steps, and the same state."""
    together = _params(dtype)
    alone = _params(dtype)
    opt = getattr(fo, name)(together, **kwargs)
    opts = [getattr(fo, name)([p], **kwargs) for p in alone]
    for _ in range(4):
        opt.step()
        for o in opts:
            o.step()
    for p, q, o in zip(together, alone, opts):
        np.testing.assert_array_equal(p.data, q.data)
        for k, v in opt.state[p].items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(o.state[q][k]))


def test_state_dict_round_trip_and_loaded_state_continues_identically():
    ps = _params()
    opt = fo.Adam(ps, lr=1e-2)
    opt.step()
    sd = opt.state_dict()
    for entry in sd["state"].values():
        for k in ("exp_avg", "exp_avg_sq"):
            assert isinstance(entry[k], np.ndarray) and entry[k].flags.c_contiguous
    twin = _params()
    for p, q in zip(ps, twin):
        q.data[...] = p.data
    opt2 = fo.Adam(twin, lr=1e-2)
    opt2.load_state_dict(sd)
    for _ in range(3):
        opt.step()
        opt2.step()
    for p, q in zip(ps, twin):
        np.testing.assert_array_equal(p.data, q.data)
        np.testing.assert_array_equal(opt.state[p]["exp_avg_sq"], opt2.state[q]["exp_avg_sq"])


def test_user_replaced_buffer_is_used_and_neighbours_untouched():
    ps = _params()
    opt = fo.SGD(ps, lr=0.1, momentum=0.9)
    opt.step()
    before = [opt.state[p]["momentum_buffer"].copy() for p in ps]
    mine = np.full_like(ps[2].data, 3.0)
    opt.state[ps[2]]["momentum_buffer"] = mine
    opt.step()
    assert opt.state[ps[2]]["momentum_buffer"] is mine
    np.testing.assert_array_equal(mine, (3.0 * np.float32(0.9)) + ps[2].grad)  # b = momentum * b + g
    for j in (1, 3):  # the arena neighbours of the replaced buffer moved on normally
        np.testing.assert_array_equal(opt.state[ps[j]]["momentum_buffer"],
                                      before[j] * np.float32(0.9) + ps[j].grad)


def test_overlap_check_still_refuses_a_state_view_of_a_parameter():
    ps = _params()
    opt = fo.Adam(ps, lr=1e-2)
    opt.step()
    opt.state[ps[3]]["exp_avg"] = ps[3].data  # the state buffer is the parameter itself
    snap = [p.data.copy() for p in ps]
    with pytest.raises(ValueError, match="share|overlap"):
        opt.step()
    for p, s in zip(ps, snap):
        np.testing.assert_array_equal(p.data, s)


def test_arena_is_freed_with_the_optimizer():
    ps = _params()
    opt = fo.Adam(ps, lr=1e-2)
    opt.step()
    ref = weakref.ref(_owner(opt.state[ps[0]]["exp_avg"]))
    del opt
    gc.collect()
    assert ref() is None


def test_params_added_later_get_their_own_arena_and_filled_buffers_are_in_an_arena():
    ps = _params()
    opt = fo.Adam(ps[:3], lr=1e-2)
    opt.step()
    opt.add_param_group({"params": ps[3:]})
    opt.step()
    first = {id(_owner(opt.state[p]["exp_avg"])) for p in ps[:3]}
    later = {id(_owner(opt.state[p]["exp_avg"])) for p in ps[3:]}
    assert len(first) == 1 and len(later) == 1 and first != later
    ada = fo.Adagrad(_params(), lr=1e-2, initial_accumulator_value=0.25)
    ada.step()  # Adagrad's start value (_fill_buffer) is written into one arena, made in its constructor
    ps = ada.param_groups[0]["params"]
    assert len({id(_owner(ada.state[p]["sum"])) for p in ps}) == 1
    for p in ps:
        assert ada.state[p]["sum"].ctypes.data % 64 == p.data.ctypes.data % 64
    for opt, key in ((fo.Rprop(_params(), lr=0.01), "step_size"), (fo.ScheduleFreeSGD(_params(), lr=0.01), "z")):
        opt.step()  # Rprop's step sizes start at lr, Schedule-Free's z at the parameter: in one arena too
        ps = opt.param_groups[0]["params"]
        assert len({id(_owner(opt.state[p][key])) for p in ps}) == 1, key


def test_zeros_like_aligned_unchanged():
    d = np.ones(33, np.float32)[3:]
    z = zeros_like_aligned(d)
    assert z.ctypes.data % 64 == d.ctypes.data % 64 and z.shape == d.shape and not z.any()


def test_bench_row_of_the_arena_gain():
    """fastopt bench --core: the "separate state" step keeps one allocation per state buffer, and its row is the
    ratio of its median to the 200 tensors' median."""
    from fastopt.bench.core import Group, _separate_state_fastopt, rows
    step = _separate_state_fastopt("adam", np.dtype(np.float32), [(5,), (300,), (40,)])
    opt = step.__self__
    bufs = [opt.state[p][k] for p in opt.param_groups[0]["params"] for k in ("exp_avg", "exp_avg_sq")]
    assert len({id(_owner(b)) for b in bufs}) == len(bufs)
    step()
    m200 = Group("model200", times={"200 tensors fastopt": [2e-3], "one tensor fastopt": [1.6e-3],
                                    "200 tensors, separate state fastopt": [2.3e-3]})
    table = {w.strip(): v for w, v, t in rows([Group("mlp"), m200, Group("big")])}
    assert table["state buffers as separate arrays (no state arena) / 200 tensors (the arena's gain)"] == "1.150×"


def test_lookahead_slow_weights_are_views_of_one_allocation_per_dtype():
    """Lookahead's slow weights follow the same placement: per group and dtype one allocation, each view a copy of
    its parameter at the parameter's offset within a 64-byte line; a float64 parameter gets its own."""
    rng = np.random.default_rng(3)
    ps = [fo.Parameter(rng.standard_normal(n).astype(np.float32)[1:]) for n in (101, 38, 5001)]
    ps.append(fo.Parameter(rng.standard_normal(7)))
    la = fo.Lookahead(fo.SGD(ps, lr=0.1), k=2)
    slows = [la.state[p]["slow_params"] for p in ps]
    assert slows[0].base is not None and all(s.base is slows[0].base for s in slows[:3])
    assert slows[3].base is not slows[0].base
    for p, s in zip(ps, slows):
        assert s.flags.c_contiguous and s.dtype == p.data.dtype and np.array_equal(s, p.data)
        assert s.ctypes.data % 64 == p.data.ctypes.data % 64
        assert not np.shares_memory(s, p.data)
