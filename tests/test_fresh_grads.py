"""A new gradient array assigned to every ``.grad`` before each step (the "fresh gradients" training loop): the
repeated step still runs in C for every acceptable new array, gives the full path's bits, and every unacceptable
one (wrong dtype or shape, sharing memory with a parameter or a state buffer, here or in another group) is refused
by the full path's check, naming the parameter, with nothing written."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from test_fast_step import _rejects

SHAPES = [(20, 1), (20,), (1, 20), (1,)]


def _params(rng):
    return [fo.Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]


def _fresh(ps, rng):
    for p in ps:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)


def _warm(opt, ps, rng):
    for _ in range(3):
        _fresh(ps, rng)
        opt.step()
    assert opt._plans is not None


# an overlap is named by its pair, whichever comes first: here param 0's grad and something else
NAMES_0 = r"\['params'\]\[0\]:? grad.*shares memory|shares memory.*\['params'\]\[0\]:? grad"


def _against_full_path(make, rng, steps, fast_from):
    """Run ``make``'s optimizer over two copies of the MLP, giving copy a each step's arrays of ``steps`` (lists of
    gradients) and copy b copies of them with its plans dropped before every step (the full path); from step
    ``fast_from`` on, every step of copy a must run its plan. Both must end with the same bits."""
    a = _params(rng)
    b = [fo.Parameter(p.data.copy()) for p in a]
    oa, ob = make(a), make(b)
    for k, grads in enumerate(steps):
        for pa, pb, g in zip(a, b, grads):
            pa.grad, pb.grad = g, np.ascontiguousarray(g).copy()
        fast = oa._fast_steps
        oa.step()
        assert k < fast_from or oa._fast_steps == fast + 1
        ob._plans = None
        ob.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.data, pb.data)
        assert all(np.array_equal(v, ob.state[pb][key]) for key, v in oa.state[pa].items())


@pytest.mark.parametrize("make", [lambda ps: fo.Adam(ps, lr=1e-2), lambda ps: fo.AdamW(ps, lr=1e-2, amsgrad=True),
                                  lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9)])
def test_every_fresh_step_is_the_fast_path_and_matches_the_full_path(make, rng):
    pool = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(3)]
    _against_full_path(make, rng, [pool[k % 3] for k in range(9)], fast_from=2)


def test_fresh_grad_of_wrong_dtype_or_shape_is_refused(rng):
    ps = _params(rng)
    opt = fo.Adam(ps)
    _warm(opt, ps, rng)
    _fresh(ps, rng)
    ps[0].grad = rng.standard_normal((1, 20)).astype(np.float32)  # the right size, the wrong shape
    _rejects(opt, ValueError, r"param_groups\[0\]\['params'\]\[0\]: grad has shape")
    ps[0].grad = rng.standard_normal((20, 1))  # float64
    _rejects(opt, TypeError, r"param_groups\[0\]\['params'\]\[0\]: grad is float64")
    ps[0].grad = rng.standard_normal((20, 1)).astype(np.float32)
    fast = opt._fast_steps
    opt.step()
    assert opt._fast_steps == fast + 1  # and the fast path is back


def test_fresh_grad_sharing_memory_with_another_param_or_a_state_is_refused(rng):
    ps = _params(rng)
    opt = fo.Adam(ps)
    _warm(opt, ps, rng)
    _fresh(ps, rng)
    ps[0].grad = ps[1].data.reshape(20, 1)  # another parameter's data, viewed in this one's shape
    _rejects(opt, ValueError, NAMES_0)
    ps[0].grad = opt.state[ps[0]]["exp_avg"]  # its own state
    _rejects(opt, ValueError, NAMES_0)
    ps[0].grad = opt.state[ps[2]]["exp_avg_sq"].reshape(20, 1)  # another parameter's state
    _rejects(opt, ValueError, NAMES_0)
    _fresh(ps, rng)
    whole = np.zeros(40, np.float32)
    ps[3].data = whole[:1]
    ps[3].grad = whole[1:2]  # adjacent bytes of one buffer: no overlap, accepted
    opt.step()


def test_fresh_grad_sharing_memory_with_a_param_of_another_group_is_refused(rng):
    ps = _params(rng)
    opt = fo.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 1e-2}])
    _warm(opt, ps, rng)
    _fresh(ps, rng)
    ps[3].grad = ps[0].data[:1, 0]  # group 1's gradient over group 0's parameter
    _rejects(opt, ValueError, r"shares memory")
    ps[3].grad = opt.state[ps[1]]["exp_avg"][:1]  # over group 0's state
    _rejects(opt, ValueError, r"shares memory")


def test_fresh_strided_view_of_the_right_shape_updates_like_a_copy(rng):
    steps = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(4)]
    wide = rng.standard_normal((20, 3)).astype(np.float32)
    steps[3][1] = wide[:, 1]  # shape (20,), stride 12 bytes: not C-contiguous, so the full path's slower copy
    assert not steps[3][1].flags.c_contiguous
    _against_full_path(lambda ps: fo.Adam(ps, lr=1e-2), rng, steps, fast_from=len(steps) + 1)


def test_fresh_read_only_and_mutually_overlapping_grads_keep_the_fast_path(rng):
    ps = _params(rng)
    opt = fo.Adam(ps)
    _warm(opt, ps, rng)
    _fresh(ps, rng)
    ps[1].grad.flags.writeable = False  # a gradient is only read
    shared = rng.standard_normal((20, 1)).astype(np.float32)
    ps[0].grad, ps[2].grad = shared, shared.reshape(1, 20)  # two gradients over one buffer: both only read
    kept = shared.copy()
    fast = opt._fast_steps
    opt.step()
    assert opt._fast_steps == fast + 1
    np.testing.assert_array_equal(shared, kept)
