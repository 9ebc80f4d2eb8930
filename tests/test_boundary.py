"""The Cython boundary's own guards: malformed tables, swapped buffers, released gradients, aliased L-BFGS buffers.

These are the last line of defence behind the Python checks, so they are exercised directly on fastopt._kernels.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastopt import _kernels as K

NAMES = ("param", "grad", "momentum_buffer")
SGD = K.KERNELS["sgd"]


def _sgd(t, lr):
    SGD(t, SGD.pack(dict(lr=lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False)))


def _table(n=5):
    p, g, b = np.ones(n), np.ones(n), np.zeros(n)
    return K.TensorTable([[p, g, b]], NAMES, (False, True, False), 1), p, g, b


def test_readonly_flags_must_match_the_names():
    p, g = np.ones(3), np.ones(3)
    with pytest.raises(ValueError, match="read-only flags"):
        K.TensorTable([[p, g]], ("param", "grad"), (False,), 0)


def test_only_read_only_positions_can_be_swapped_or_released():
    t, p, g, b = _table()
    for k in (0, 2, 3, -1):
        with pytest.raises(IndexError):
            t.set_grads([np.ones(5)], k)
        with pytest.raises(IndexError):
            t.release(k)
    with pytest.raises(ValueError, match="2 arrays for 1 tensors"):
        t.set_grads([np.ones(5), np.ones(5)])


def test_a_released_table_refuses_to_run_until_it_has_gradients_again():
    t, p, g, b = _table()
    t.release(1)
    before = p.copy()
    with pytest.raises(RuntimeError, match="required buffer is missing"):
        _sgd(t, 0.1)
    np.testing.assert_array_equal(p, before)
    assert t.set_grads([np.full(5, 2.0)]) == -1
    _sgd(t, 0.5)
    np.testing.assert_array_equal(p, before - 1.0)


def test_the_table_keeps_its_own_rows():
    p, g, b = np.ones(4), np.ones(4), np.zeros(4)
    rows = [[p, g, b]]
    t = K.TensorTable(rows, NAMES, (False, True, False), 1)
    rows[0][0] = None  # the caller's list changing must not drop the array the table points into
    del p
    _sgd(t, 0.5)


def _lbfgs_buffers(n=3, m=2):
    vec = [np.zeros(n) for _ in range(9)]
    return vec + [np.zeros(m), np.zeros(m), np.zeros((), np.dtype([("raw", np.uint8, (K.LBFGS_STATE_SIZE,))]))]


def test_lbfgs_buffers_must_not_share_memory():
    bufs = _lbfgs_buffers()
    K.LBFGSCore(*bufs, 2)  # separate arrays are fine
    bufs[1] = bufs[0]      # g is x
    with pytest.raises(ValueError, match="share memory"):
        K.LBFGSCore(*bufs, 2)
    core = K.LBFGSCore(*_lbfgs_buffers(), 2)
    y = np.zeros(3)
    with pytest.raises(ValueError, match="history slot 0"):
        core.set_slot(0, y, y)


def test_kernels_pack_their_hyper_block_by_field_name():
    assert SGD.fields == ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
    with pytest.raises(ValueError, match=r"missing \['maximize'\], unknown \['maximise'\]"):
        SGD.pack(dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximise=False))
    with pytest.raises(TypeError, match="'nesterov' takes a bool or an int"):
        SGD.pack(dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=0.5, maximize=False))
    t, p, g, b = _table()
    with pytest.raises(ValueError, match="hyper block of 3 bytes"):
        SGD(t, b"abc")
    # the same values in another order pack to the same block
    a = SGD.pack(dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True, maximize=False))
    z = SGD.pack(dict(maximize=False, nesterov=True, weight_decay=0.0, dampening=0.0, momentum=0.9, lr=0.1))
    assert a == z


def test_every_spec_matches_the_c_table():
    """Each optimizer's spec feeds exactly its kernel's C fields (checked at import; here for the record), and a
    spec that does not is refused when it is built."""
    from fastopt._spec import Buffer, Option, Spec

    import fastopt as fo
    for cls in (fo.SGD, fo.Adam, fo.AdamW, fo.RMSprop, fo.Adagrad, fo.Adadelta, fo.Adamax, fo.NAdam, fo.RAdam,
                fo.Lion, fo.ASGD, fo.Rprop):
        spec = cls._spec
        fed = sorted(f for o in spec.options for f in o.fields)
        assert fed == sorted(spec.kernel.fields), cls
        assert 2 + len(spec.buffers) == spec.kernel.n_bufs, cls
    with pytest.raises(RuntimeError, match="feeds C fields"):
        Spec("lion", options=(Option("lr", 1.0, float, "lr"),), buffers=(Buffer("exp_avg"),))
    with pytest.raises(RuntimeError, match="reads 3 buffers"):
        Spec("lion", options=fo.Lion._spec.options, buffers=())


def test_a_class_whose_signature_disagrees_with_its_spec_is_refused():
    import fastopt as fo

    with pytest.raises(TypeError, match="lr=0.5, its spec 0.0001"):
        class Bad(fo.Lion):  # noqa: F811 - defined only to be refused
            _spec = fo.Lion._spec

            def __init__(self, params, lr: float = 0.5):
                super().__init__(params, lr=lr)


def test_every_optimizer_checks_its_options_once_at_construction(monkeypatch):
    import fastopt as fo

    calls = []
    for cls in (fo.Adam, fo.SGD, fo.Muon, fo.SparseAdam, fo.Adafactor):
        spec = cls._spec
        monkeypatch.setattr(spec, "check", lambda o, _c=spec.check: (calls.append(1), _c(o))[1])
        calls.clear()
        p = fo.Parameter(np.zeros((2, 2)))
        cls([p])
        assert len(calls) == 1, cls
