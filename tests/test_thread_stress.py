"""One optimizer used from several threads at once: the per-optimizer lock serialises step / zero_grad /
add_param_group / state_dict / load_state_dict, and every kernel call keeps the arrays it reads alive, so
nothing crashes and nothing is corrupted (the kernels release the GIL, so without those two guarantees a
second thread could repoint or free the cached pointer table while a kernel runs)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import fastopt as fo
from fastopt import _kernels as K

SHAPES = [(20, 1), (20,), (1, 20), (1,)]  # the tutorial's 1-20-1 MLP


def _params(seed: int, shapes=SHAPES, dtype=np.float32) -> list[fo.Parameter]:
    rng = np.random.default_rng(seed)
    ps = [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    for p in ps:
        p.grad = rng.standard_normal(p.shape).astype(dtype)
    return ps


def _in_threads(n: int, fn) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            fn(k)
        except BaseException as e:  # noqa: BLE001 - collected and re-raised by the test
            errors.append(e)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


MAKERS = [lambda ps: fo.Adam(ps, lr=1e-3, weight_decay=0.1), lambda ps: fo.SGD(ps, lr=1e-3, momentum=0.9),
          lambda ps: fo.RMSprop(ps, lr=1e-3, centered=True)]


@pytest.mark.parametrize("make", MAKERS)
def test_four_threads_equal_the_serial_run(make):
    """4 threads x 1000 steps with the same gradients each step: order does not matter, so the result must equal
    4000 serial steps bit for bit (a lost or doubled update, or a torn step count, would show)."""
    serial, shared = _params(1), _params(1)
    opt_s, opt_t = make(serial), make(shared)
    for _ in range(4000):
        opt_s.step()
    errors = _in_threads(4, lambda k: [opt_t.step() for _ in range(1000)])
    assert not errors, errors
    for a, b in zip(serial, shared):
        np.testing.assert_array_equal(a.data, b.data)
        for key, value in opt_s.state[a].items():
            np.testing.assert_array_equal(value, opt_t.state[b][key])


@pytest.mark.skipif(not fo.have_openmp(), reason="built without threads")
def test_threads_with_large_tensors_equal_the_serial_run():
    """The same with tensors big enough for the kernels' own thread pool (the GIL is released for a long time)."""
    shapes = [(K.PARALLEL_MIN + 999,), (3,)]
    old = fo.get_num_threads()
    fo.set_num_threads(2)
    try:
        serial, shared = _params(2, shapes), _params(2, shapes)
        opt_s, opt_t = fo.Adam(serial), fo.Adam(shared)
        for _ in range(4 * 15):
            opt_s.step()
        errors = _in_threads(4, lambda k: [opt_t.step() for _ in range(15)])
    finally:
        fo.set_num_threads(old)
    assert not errors, errors
    for a, b in zip(serial, shared):
        np.testing.assert_array_equal(a.data, b.data)
    assert opt_t.state[shared[0]]["step"] == 60


def test_grads_replaced_or_dropped_while_stepping():
    """One thread keeps assigning fresh gradient arrays (or None) while another steps: no crash, no error (a None
    gradient just skips that parameter, as in torch), and every step count stays within what was run."""
    ps = _params(3)
    opt = fo.Adam(ps)
    stop = threading.Event()
    rng = np.random.default_rng(4)
    fresh = [[rng.standard_normal(p.shape).astype(np.float32) for p in ps] for _ in range(8)]

    def replacer(_: int) -> None:
        k = 0
        while not stop.is_set():
            for j, p in enumerate(ps):
                p.grad = None if (k + j) % 5 == 0 else fresh[k % 8][j].copy()
            k += 1

    def stepper(_: int) -> None:
        try:
            for _ in range(1000):
                opt.step()
        finally:
            stop.set()

    errors = _in_threads(2, lambda k: (stepper if k == 0 else replacer)(k))
    assert not errors, errors
    for p in ps:
        assert np.isfinite(p.data).all()
        assert 0 <= opt.state[p].get("step", 0) <= 1000


def test_mixed_calls_from_several_threads():
    """step, zero_grad(set_to_none=False), state_dict, load_state_dict and add_param_group at once: every call
    either succeeds or raises its documented error; the optimizer stays consistent."""
    ps = _params(5)
    opt = fo.Adam(ps)
    opt.step()
    extra = _params(6, [(4,)] * 40)

    def work(k: int) -> None:
        for i in range(300):
            if k == 0:
                opt.step()
            elif k == 1:
                opt.zero_grad(set_to_none=False)
            elif k == 2:
                sd = opt.state_dict()
                if i % 10 == 0 and len(sd["param_groups"]) == len(opt.param_groups):
                    try:
                        opt.load_state_dict({"state": {j: {kk: (np.array(v) if isinstance(v, np.ndarray) else v)
                                                           for kk, v in s.items()} for j, s in sd["state"].items()},
                                             "param_groups": sd["param_groups"]})
                    except ValueError as e:  # groups changed between the two calls: the documented refusal
                        assert "group" in str(e)
            elif i < len(extra):
                opt.add_param_group({"params": [extra[i]]})

    errors = _in_threads(4, work)
    assert not errors, errors
    assert len(opt.param_groups) == 1 + len(extra)
    for p in ps + extra:
        assert np.isfinite(p.data).all()


def test_an_optimizer_with_a_lock_and_cached_plans_can_be_copied():
    """The lock and the cached pointer tables are not copied (each copy gets its own); the copy continues exactly."""
    import copy
    import pickle

    ps = _params(7)
    opt = fo.Adam(ps)
    opt.step()
    opt.step()
    for make in (copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x))):
        o2, p2 = make((opt, ps))
        o2.step()
        opt.step()
        for a, b in zip(ps, p2):
            np.testing.assert_array_equal(a.data, b.data)
        assert o2._lock is not opt._lock


def test_load_state_dict_holds_the_lock_until_it_commits():
    """The whole of load_state_dict runs under the optimizer's lock (its checks and its commit), so an
    add_param_group from another thread cannot slip in between them and be lost when the loaded groups are
    committed (the failure test_mixed_calls_from_several_threads caught now and then)."""
    ps = _params(5)
    opt = fo.Adam(ps)
    opt.step()
    sd = opt.state_dict()
    held = []
    load_param_state = opt._load_param_state

    def spy(*args, **kwargs):
        held.append(opt._lock._is_owned())
        return load_param_state(*args, **kwargs)

    opt._load_param_state = spy
    opt.load_state_dict(sd)
    assert held and all(held)
