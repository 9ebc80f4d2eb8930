"""Adafactor with factored (2-D and 3-D) parameters: against the NumPy reference and torch.optim.Adafactor, state
shapes, state_dict round trips, the functional form, thread-count independence and bad input.

The generic registry tests (tests/cases.py) drive 1-D parameters through the kernel tests and the shapes
(3, 5), (17,), (64,), (2, 2, 3) through the torch tests; this file covers the factored path in depth.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, case_id
from helpers import TorchPair, assert_arrays_equal, num_threads, rejected, rel_err, requires_openmp
from reference import ref_adafactor

TOL = {np.float32: 1e-5, np.float64: 1e-12}
SHAPES = [(6, 9), (3, 4, 5), (2, 3, 1, 7), (1, 8), (8, 1), (13,), ()]
KWARGS = [kw for name, kw in CASES if name == "Adafactor"]  # the registry's rows


def _kid(kw: dict) -> str:
    return case_id(("Adafactor", kw))


def _state_shapes(shape):
    if len(shape) > 1:
        return {"row_var": shape[:-1] + (1,), "col_var": shape[:-2] + (1,) + shape[-1:]}
    return {"variance": shape}


@pytest.mark.parametrize("kw", KWARGS, ids=_kid)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_matches_reference(kw, dtype, strided, rng):
    params = []
    for s in SHAPES:
        if strided and len(s) >= 1:
            base = rng.standard_normal(s[:-1] + (2 * s[-1],)).astype(dtype)
            params.append(fo.Parameter(base[..., ::2]))
        else:
            params.append(fo.Parameter(rng.standard_normal(s).astype(dtype)))
    refs = [p.data.copy() for p in params]
    states = [{} for _ in params]
    opt = fo.Adafactor(params, **kw)
    for _ in range(100):
        for p, r, st in zip(params, refs, states):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad = g
            ref_adafactor(r, g, st, **kw)
        opt.step()
    for p, r, st in zip(params, refs, states):
        assert p.data.dtype == dtype
        assert rel_err(p.data, r) <= TOL[dtype], (p.shape, rel_err(p.data, r))
        live = opt.state[p]
        assert set(live) == {"step"} | set(_state_shapes(p.shape))
        assert live["step"] == st["step"] == 100
        for key, shape in _state_shapes(p.shape).items():
            assert live[key].shape == shape and live[key].dtype == dtype
            assert rel_err(live[key], st[key]) <= TOL[dtype], (p.shape, key)


def test_empty_parameters_only_count_steps(rng):
    shapes = [(0, 5), (3, 0), (0,), (2, 0, 4)]
    params = [fo.Parameter(np.zeros(s)) for s in shapes]
    opt = fo.Adafactor(params)
    for _ in range(3):
        for p in params:
            p.grad = np.zeros(p.shape)
        opt.step()
    for p, s in zip(params, shapes):
        st = opt.state[p]
        assert st["step"] == 3
        for key, shape in _state_shapes(s).items():
            assert st[key].shape == shape and not np.any(st[key])


# ---- torch ------------------------------------------------------------------------------------------------------

def _pair(kw, dtype, seed):
    return TorchPair("Adafactor", kw, SHAPES, dtype, seed)


@pytest.mark.parametrize("kw", KWARGS, ids=_kid)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trajectory_matches_torch(kw, dtype):
    pair = _pair(kw, dtype, 21)
    pair.step(100)
    pair.check(TOL[dtype], what=_kid(kw))


@pytest.mark.parametrize("kw", KWARGS[:2], ids=_kid)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_state_dict_loads_and_continues(kw, dtype):
    pair = _pair(kw, dtype, 22)
    pair.step(10, fastopt=False)
    pair.load_torch_state()
    pair.step(20)
    pair.check(TOL[dtype], what=_kid(kw) + " after loading torch's state")


def test_eps1_none_uses_the_first_parameters_dtype_like_torch():
    """torch resolves eps1=None from the first parameter with a gradient and keeps it for the whole group."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(23)
    data = [rng.standard_normal((4, 5)).astype(np.float32) * 1e-4, rng.standard_normal((3, 6)) * 1e-5]
    params = [fo.Parameter(d.copy()) for d in data]
    tparams = [torch.tensor(d.copy(), requires_grad=True) for d in data]
    opt, topt = fo.Adafactor(params), torch.optim.Adafactor(tparams, foreach=False)
    for _ in range(30):
        for p, tp in zip(params, tparams):
            g = (rng.standard_normal(p.shape) * 1e-5).astype(p.data.dtype)
            p.grad, tp.grad = g, torch.tensor(g.copy())
        opt.step()
        topt.step()
    assert rel_err(params[0].data, tparams[0].detach().numpy()) <= TOL[np.float32]
    assert rel_err(params[1].data, tparams[1].detach().numpy()) <= TOL[np.float64]


# ---- functional, determinism, state_dict ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functional_matches_class(dtype, rng):
    data = [rng.standard_normal(s).astype(dtype) for s in [(5, 7), (3, 2, 4), (9,)]]
    params = [fo.Parameter(d.copy()) for d in data]
    opt = fo.Adafactor(params, lr=0.03, weight_decay=0.01, maximize=True)
    arrays = [d.copy() for d in data]
    rows = [np.zeros(a.shape[:-1] + (1,), dtype) if a.ndim > 1 else None for a in arrays]
    cols = [np.zeros(a.shape[:-2] + (1,) + a.shape[-1:], dtype) if a.ndim > 1 else None for a in arrays]
    variances = [None if a.ndim > 1 else np.zeros_like(a) for a in arrays]
    steps = [0, 0, 0]
    for _ in range(5):
        grads = [rng.standard_normal(a.shape).astype(dtype) for a in arrays]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        fo.functional.adafactor(arrays, grads, rows, cols, variances, steps, d=1.0, lr=0.03, beta2_decay=-0.8,
                                weight_decay=0.01, eps1=None, eps2=1e-3, maximize=True)
    assert steps == [5, 5, 5]
    for p, a, r, c, v in zip(params, arrays, rows, cols, variances):
        np.testing.assert_array_equal(p.data, a)
        st = opt.state[p]
        if a.ndim > 1:
            np.testing.assert_array_equal(st["row_var"], r)
            np.testing.assert_array_equal(st["col_var"], c)
        else:
            np.testing.assert_array_equal(st["variance"], v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_bits(dtype):
    """Shapes large enough for the parallel paths (rows, column blocks, chunked norms) on 1 and 2 threads."""
    requires_openmp()
    rng = np.random.default_rng(24)
    shapes = [(700, 520), (3, 300, 310), (300_000,)]
    data = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    results = []
    for nt in (1, 2):
        with num_threads(nt):
            params = [fo.Parameter(d.copy()) for d in data]
            opt = fo.Adafactor(params, weight_decay=0.1)
            for gs in grads:
                for p, g in zip(params, gs):
                    p.grad = g
                opt.step()
        results.append([p.data.copy() for p in params] + [v.copy() for p in params
                                                          for k, v in opt.state[p].items() if k != "step"])
    assert_arrays_equal(*results)


def test_state_dict_round_trip_resumes_bit_for_bit(rng, tmp_path):
    shapes = [(4, 6), (2, 3, 5), (7,)]
    data = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(6)]
    a = [fo.Parameter(d.copy()) for d in data]
    opt_a = fo.Adafactor(a, lr=0.02)
    for gs in grads[:3]:
        for p, g in zip(a, gs):
            p.grad = g
        opt_a.step()
    path = tmp_path / "af.npz"
    fo.save(opt_a.state_dict(), path)
    b = [fo.Parameter(p.data.copy()) for p in a]
    opt_b = fo.Adafactor(b, lr=0.02)
    opt_b.load_state_dict(fo.load(path))
    for gs in grads[3:]:
        for p, q, g in zip(a, b, gs):
            p.grad, q.grad = g, g.copy()
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


# ---- bad input --------------------------------------------------------------------------------------------------

def _trained(rng):
    params = [fo.Parameter(rng.standard_normal(s).astype(np.float32)) for s in [(4,), (2, 3), (2, 3, 4)]]
    opt = fo.Adafactor([{"params": params[:1]}, {"params": params[1:]}])
    for _ in range(2):
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        opt.step()
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    return opt, params


@pytest.mark.parametrize("key,make,exc,regex", [
    ("row_var", lambda v: np.zeros(v.shape + (1,), v.dtype), ValueError,
     r"param_groups\[1\]\['params'\]\[1\]: state 'row_var' is float32\[2, 3, 1, 1\], expected float32\[2, 3, 1\]"),
    ("col_var", lambda v: v.astype(np.float64), ValueError, r"\['params'\]\[1\]: state 'col_var' is float64"),
    ("col_var", lambda v: v.tolist(), TypeError, r"\['params'\]\[1\]: state 'col_var' must be a numpy.ndarray"),
    ("row_var", lambda v: np.zeros(v.shape[:-1] + (2,), v.dtype)[..., :1], ValueError,
     r"state 'row_var' must be C-contiguous"),
    ("step", lambda v: -1, ValueError, r"\['params'\]\[1\]: state 'step' must be a non-negative whole number"),
])
def test_bad_state_changes_nothing(key, make, exc, regex, rng):
    opt, params = _trained(rng)
    st = opt.state[params[2]]
    st[key] = make(st[key])
    with rejected(opt, exc, regex):
        opt.step()


def test_readonly_state_changes_nothing(rng):
    opt, params = _trained(rng)
    opt.state[params[2]]["col_var"].flags.writeable = False
    with rejected(opt, ValueError, r"\['params'\]\[1\]: state 'col_var' is read-only"):
        opt.step()


def test_missing_state_key_changes_nothing(rng):
    opt, params = _trained(rng)
    del opt.state[params[1]]["col_var"]
    with rejected(opt, ValueError, r"param_groups\[1\]\['params'\]\[0\]: state has keys"):
        opt.step()


@pytest.mark.parametrize("spoil,regex", [
    (lambda s: s[2].update(row_var=np.zeros((2, 3), np.float32)), r"saved state 'row_var' is float32\[2, 3\]"),
    (lambda s: s[1].update(variance=np.zeros((2, 3), np.float32)), r"saved state has keys"),
    (lambda s: s[0].pop("variance"), r"param_groups\[0\]\['params'\]\[0\]: saved state has keys"),
    (lambda s: s[2].update(col_var=np.zeros((2, 1, 4), np.float64)), r"saved state 'col_var' is float64"),
])
def test_bad_load_state_dict_changes_nothing(spoil, regex, rng):
    opt, params = _trained(rng)
    sd = copy.deepcopy(opt.state_dict())
    spoil(sd["state"])
    with rejected(opt, ValueError, regex):
        opt.load_state_dict(sd)


def test_functional_rejects_before_writing(rng):
    p = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    g = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    rows, cols, var = [np.zeros((3, 1)), None], [np.zeros((1, 4)), None], [None, np.zeros(5)]
    steps = [0, 0]
    keep = [a.copy() for a in p]
    kw = dict(d=1.0, lr=0.01, beta2_decay=-0.8, weight_decay=0.0, eps1=None, eps2=1e-3, maximize=False)
    with pytest.raises(ValueError, match=r"params\[1\]: state 'variance' is float64\[4\]"):
        fo.functional.adafactor(p, g, rows, cols, [None, np.zeros(4)], steps, **kw)
    with pytest.raises(ValueError, match=r"params\[0\]: state 'col_var' is float64\[4, 1\]"):
        fo.functional.adafactor(p, g, rows, [np.zeros((4, 1)), None], var, steps, **kw)
    with pytest.raises(ValueError, match="share memory"):
        fo.functional.adafactor(p, g, [var[1][:3, None], None], cols, var, steps, **kw)
    with pytest.raises(ValueError, match="Clipping threshold d should be >= 1"):
        fo.functional.adafactor(p, g, rows, cols, var, steps, **{**kw, "d": 0.5})
    with pytest.raises(ValueError, match="state_steps"):
        fo.functional.adafactor(p, g, rows, cols, var, [0], **kw)
    assert steps == [0, 0] and not rows[0].any() and not cols[0].any() and not var[1].any()
    assert_arrays_equal(p, keep)
    fo.functional.adafactor(p, g, rows, cols, var, steps, **kw)
    assert steps == [1, 1] and rows[0].any() and var[1].any()


def test_foreach_is_not_accepted():
    with pytest.raises(TypeError, match="foreach"):
        fo.Adafactor([fo.Parameter(np.zeros((2, 2)))], foreach=True)


def test_step_allocates_no_array_after_the_first(rng):
    """The update buffer and the sums' scratch are the optimizer's, kept between steps (nothing the size of a
    tensor is allocated by a repeated step); the functional form allocates its own each call."""
    import tracemalloc
    params = [fo.Parameter(rng.standard_normal(s)) for s in ((512, 512), (3, 40, 50), (1000,))]
    opt = fo.Adafactor(params)
    grads = [rng.standard_normal(p.data.shape) for p in params]
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    ws = opt._workspace
    kept = (dict(ws._flat), ws.scratch)
    tracemalloc.start()
    try:
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 512 * 512 * 8 // 8, peak  # an update array of the large tensor alone would be 2 MiB
    assert ws._flat.keys() == kept[0].keys() and all(ws._flat[k] is v for k, v in kept[0].items())
    assert ws.scratch is kept[1]
    assert all(v.size == 512 * 512 for v in ws._flat.values())  # one buffer per dtype, the largest tensor's size


def test_kernel_scratch_is_checked(rng):
    from fastopt import _kernels as K
    x = rng.standard_normal(3 * 16384 + 1)
    assert K.adafactor_scratch_size(x.shape) == 4 and K.adafactor_scratch_size((5, 2, 3, 4)) == 10
    assert K.adafactor_sumsq(x, np.empty(4)) == K.adafactor_sumsq(x)
    with pytest.raises(ValueError, match="at least 4"):
        K.adafactor_sumsq(x, np.empty(3))
    with pytest.raises(ValueError, match="float64"):
        K.adafactor_sumsq(x, np.empty(4, np.float32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.adafactor_sumsq(x, [0.0] * 4)
    with pytest.raises(ValueError, match="shares memory"):
        K.adafactor_sumsq(x, x[:4])


def test_copies_do_not_share_or_carry_the_scratch(rng):
    import pickle
    p = fo.Parameter(rng.standard_normal((64, 32)))
    p.grad = rng.standard_normal((64, 32))
    opt = fo.Adafactor([p])
    opt.step()
    assert "_workspace" not in pickle.loads(pickle.dumps(opt)).__dict__
    twin = copy.deepcopy(opt)
    assert "_workspace" not in twin.__dict__
    twin.step()
    assert twin._workspace is not opt._workspace
