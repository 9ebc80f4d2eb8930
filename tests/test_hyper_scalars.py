"""Options given as NumPy scalars or 1-element arrays (issue #11 item 1), the eps=0 NaN policy (item 3), the
state_dict snapshot (item 6) and load_state_dict's errors (item 7).

Option ranges (item 2) and the eps=0 refusals are rows of tests/cases.py ERROR_CASES (run by test_errors.py).
"""
from __future__ import annotations

import copy
import inspect
import re
import types

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, MUON_CASES, SPARSE_ADAM_CASES, case_id, make
from helpers import rejected, snapshot

SPEC_CLASSES = ["SGD", "Adam", "AdamW", "RMSprop", "ASGD", "Rprop", "Adagrad", "Adadelta", "Adamax", "NAdam",
                "RAdam", "Lion", "Adafactor", "Muon", "SparseAdam"]
PLAIN = (bool, int, float, str, type(None))


def _plain(v) -> bool:
    if type(v) is tuple:
        return all(_plain(x) for x in v)
    return type(v) in PLAIN


def _convert(v, form: str):
    """``v`` (an option value as a test row writes it) in another form: 'np' (NumPy scalar of the same kind),
    '0d' (0-d array), '1el' (1-element 1-D array), 'f32' (np.float32, floats only), 'list' (pairs as lists)."""
    if isinstance(v, tuple):
        if form == "list":
            return [_convert(x, "np") for x in v]
        return tuple(_convert(x, form) for x in v)
    if isinstance(v, bool):
        return {"np": np.bool_(v), "0d": np.array(v), "1el": np.array([v])}.get(form, v)
    if isinstance(v, int):
        return {"np": np.int64(v), "0d": np.array(v), "1el": np.array([v])}.get(form, v)
    if isinstance(v, float):
        return {"np": np.float64(v), "0d": np.array(v), "1el": np.array([v]), "f32": np.float32(v)}.get(form, v)
    return v


def _expected(v, form: str):
    """What the group must hold for ``_convert(v, form)``: the plain Python value (float32 rounded for 'f32')."""
    if isinstance(v, tuple):
        return tuple(_expected(x, form) for x in v)
    if form == "f32" and isinstance(v, float):
        return float(np.float32(v))
    return v


def _grads(rng, shapes, dtype, n):
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(n)]


def _run(opt, params, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g.copy()
        opt.step()


# ---- item 1: NumPy scalars and 1-element arrays --------------------------------------------------------------
FORMS = ["np", "0d", "1el", "f32", "list"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_numpy_scalar_options_are_stored_plain_and_step_the_same(case, form, rng):
    """Every option of every registry row given as a NumPy scalar / 0-d / 1-element array: the groups and the
    state_dict hold plain Python values equal to the value meant, and the trajectory is bit-identical to the one
    from those plain values."""
    name, kw = case
    given = {k: _convert(v, form) for k, v in kw.items()}
    plain = {k: _expected(v, form) for k, v in kw.items()}
    shapes = [(5,), (2, 3)]
    grads = _grads(rng, shapes, np.float32, 3)
    pa = [fo.Parameter(np.linspace(-1, 1, int(np.prod(s)), dtype=np.float32).reshape(s)) for s in shapes]
    pb = [fo.Parameter(p.data.copy()) for p in pa]
    a, b = make(name, pa, **given), make(name, pb, **plain)
    group = a.param_groups[0]
    for k, v in plain.items():
        assert _plain(group[k]) and group[k] == v, (k, group[k], v)
    assert all(_plain(v) for k, v in a.defaults.items())
    _run(a, pa, grads)
    _run(b, pb, grads)
    for x, y in zip(pa, pb):
        assert x.data.tobytes() == y.data.tobytes()
    sd = a.state_dict()["param_groups"][0]
    assert all(_plain(v) for k, v in sd.items() if k != "params")


@pytest.mark.parametrize("form", ["np", "0d", "1el", "f32"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_lr_set_later_as_numpy_scalar(case, form, rng):
    """A user or scheduler sets ``param_groups[0]['lr']`` to a NumPy value between steps: the step accepts it,
    normalises it in place to a Python float, and steps exactly as with that float (the fast path resumes)."""
    name, kw = case
    shapes = [(4,), (3,)]
    grads = _grads(rng, shapes, np.float64, 4)
    pa = [fo.Parameter(np.linspace(-1, 1, s[0])) for s in shapes]
    pb = [fo.Parameter(p.data.copy()) for p in pa]
    a, b = make(name, pa, **kw), make(name, pb, **kw)
    _run(a, pa, grads[:2])
    _run(b, pb, grads[:2])
    new = a.param_groups[0]["lr"] * 0.5
    a.param_groups[0]["lr"] = _convert(float(new), form)
    b.param_groups[0]["lr"] = _expected(float(new), form)
    _run(a, pa, grads[2:])
    _run(b, pb, grads[2:])
    assert type(a.param_groups[0]["lr"]) is float and a.param_groups[0]["lr"] == b.param_groups[0]["lr"]
    for x, y in zip(pa, pb):
        assert x.data.tobytes() == y.data.tobytes()


def test_scheduler_with_numpy_factor():
    """A LambdaLR whose factor is a np.float32 writes NumPy values into the group: accepted and normalised."""
    p = fo.Parameter(np.ones(3))
    opt = fo.SGD([p], lr=0.1)
    sched = fo.lr_scheduler.LambdaLR(opt, lambda epoch: np.float32(0.5) ** epoch)
    for _ in range(3):
        p.grad = np.ones(3)
        opt.step()
        sched.step()
        p.grad = np.ones(3)
        opt.step()
        assert type(opt.param_groups[0]["lr"]) is float


def test_rejected_step_restores_the_numpy_values_it_normalised():
    """Normalising at step is undone when the step is rejected: group 0's np.float32 lr is the very object again."""
    p, q = fo.Parameter(np.ones(3, np.float32)), fo.Parameter(np.ones(3, np.float32))
    opt = fo.Adam([{"params": [p]}, {"params": [q]}], lr=0.1)
    p.grad, q.grad = np.ones(3, np.float32), np.ones(3, np.float32)
    lr0 = np.float32(0.5)
    opt.param_groups[0]["lr"] = lr0
    opt.param_groups[1]["betas"] = (0.9, float("inf"))
    with rejected(opt, ValueError, r"param_groups\[1\]: Invalid beta parameter at index 1: inf"):
        opt.step()
    assert opt.param_groups[0]["lr"] is lr0


def test_muon_sparse_adam_lbfgs_numpy_options():
    w = fo.Parameter(np.eye(3))
    m = fo.Muon([w], lr=np.float32(0.02), momentum=np.array(0.9), ns_steps=np.int64(3),
                ns_coefficients=np.array([3.4445, -4.775, 2.0315]), eps=np.array([1e-7]), nesterov=np.bool_(False))
    g = m.param_groups[0]
    assert type(g["ns_steps"]) is int and type(g["nesterov"]) is bool and type(g["eps"]) is float
    assert g["ns_coefficients"] == (3.4445, -4.775, 2.0315) and _plain(g["ns_coefficients"])
    w.grad = np.ones((3, 3))
    m.step()
    e = fo.Parameter(np.ones((4, 2)))
    s = fo.SparseAdam([e], lr=np.float64(0.1), betas=(np.float32(0.5), np.array(0.9)), eps=np.array(1e-6))
    assert _plain(s.param_groups[0]["betas"]) and type(s.param_groups[0]["lr"]) is float
    e.grad = fo.SparseGrad([1], np.ones((1, 2)))
    s.step()
    x = fo.Parameter(np.array([3.0, -1.0]))
    lb = fo.LBFGS([x], lr=np.float64(1.0), max_iter=np.int32(5), history_size=np.array(4),
                  tolerance_grad=np.float32(1e-6), tolerance_change=np.array([1e-9]), maximize=np.bool_(False))
    g = lb.param_groups[0]
    assert type(g["max_iter"]) is int and type(g["history_size"]) is int and type(g["tolerance_change"]) is float
    assert g["max_eval"] == 6

    def closure():
        x.grad = 2 * x.data
        return float(x.data @ x.data)

    lb.step(closure)
    assert np.all(np.abs(x.data) < 1e-6)


def test_torch_scalar_tensors_as_options():
    """A 0-d or 1-element torch tensor (torch accepts tensor learning rates) is read through ``__array__``."""
    torch = pytest.importorskip("torch")
    p = fo.Parameter(np.ones(3))
    opt = fo.Adam([p], lr=torch.tensor(0.01, dtype=torch.float64), betas=(torch.tensor([0.8]), 0.99))
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["betas"] == (pytest.approx(0.8), 0.99)
    assert _plain(opt.param_groups[0]["betas"]) and type(opt.param_groups[0]["lr"]) is float
    with pytest.raises(ValueError, match="lr must be a scalar or a 1-element array"):
        fo.Adam([p], lr=torch.tensor([0.1, 0.2]))


def test_pickled_optimizer_steps():
    import pickle

    p = fo.Parameter(np.ones(3))
    opt = fo.SGD([p], lr=0.1)
    other = pickle.loads(pickle.dumps(opt))
    other.param_groups[0]["lr"] = np.float32(0.5)
    other.param_groups[0]["params"][0].grad = np.ones(3)
    other.step()
    assert type(other.param_groups[0]["lr"]) is float and other.param_groups[0]["params"][0].data[0] == 0.5


def _numeric_options(name: str):
    """(option, element index or None, element name used in messages) for every numeric option of a class."""
    out = []
    for o in getattr(fo, name)._spec.options:
        d = o.default
        if isinstance(d, bool) or o.name == "adjust_lr_fn":
            continue
        if isinstance(d, tuple):
            for i, x in enumerate(d):
                elem = ("eps1" if i == 0 else "eps2") if name == "Adafactor" else f"{o.name}[{i}]"
                out.append((o.name, i, elem))
        elif isinstance(d, (int, float)):
            out.append((o.name, None, o.name))
    return out


OPTION_ROWS = [(n, *row) for n in SPEC_CLASSES for row in _numeric_options(n)]
BAD_VALUES = [
    (np.complex128(0.5 + 0j), TypeError, "must be a real number, got complex"),
    (0.5 + 0j, TypeError, "must be a real number, got complex"),
    (True, TypeError, "must be a real number, got bool"),
    (np.bool_(True), TypeError, "must be a real number, got bool"),
    (None, TypeError, "must be a real number, got NoneType"),
    ("0.1", TypeError, "must be a real number, got str"),
    (np.array([0.1, 0.2]), ValueError, r"must be a scalar or a 1-element array, got an array of shape \(2,\)"),
    (np.zeros((0,)), ValueError, r"must be a scalar or a 1-element array, got an array of shape \(0,\)"),
    (float("nan"), ValueError, "must not be NaN"),
    (np.float32("nan"), ValueError, "must not be NaN"),
    (float("inf"), ValueError, "must be finite"),
    (-np.inf, ValueError, "must be finite"),
    (np.array(np.inf), ValueError, "must be finite"),
]


@pytest.mark.parametrize("bad,exc,regex", BAD_VALUES, ids=[f"{type(b[0]).__name__}-{i}" for i, b in
                                                             enumerate(BAD_VALUES)])
@pytest.mark.parametrize("name,option,index,elem", OPTION_ROWS, ids=[f"{r[0]}-{r[3]}" for r in OPTION_ROWS])
def test_bad_numeric_option_names_it(name, option, index, elem, bad, exc, regex):
    """Complex, bool, None, str, arrays of != 1 element, NaN, ±Inf: refused with the option's name, at
    construction and when set in a group later (then the step changes nothing)."""
    if elem == "ns_steps" and not (isinstance(bad, np.ndarray) and bad.size != 1):  # an integer option
        exc, regex = TypeError, "must be an int"
    spec_default = getattr(fo, name)._spec.defaults[option]
    if index is None:
        value = bad
    else:
        if name == "Adafactor" and index == 0 and bad is None:
            pytest.skip("eps1=None is Adafactor's default (the dtype's machine epsilon)")
        value = list(spec_default)
        value[index] = bad
        value = tuple(value)
    pattern = re.escape(elem) + ".*" + regex
    p = fo.Parameter(np.ones((2, 2)))
    with pytest.raises(exc, match=pattern):
        make(name, [p], **{option: value})
    opt = make(name, [p])
    opt.param_groups[0][option] = value
    p.grad = fo.SparseGrad([0], np.ones((1, 2))) if name == "SparseAdam" else np.ones((2, 2))
    with rejected(opt, exc, r"param_groups\[0\]: "):
        opt.step()


@pytest.mark.parametrize("name", SPEC_CLASSES)
def test_flags_accept_numpy_bools_and_refuse_numbers(name):
    p = fo.Parameter(np.ones((2, 2)))
    takes = inspect.signature(getattr(fo, name).__init__).parameters
    flags = [o.name for o in getattr(fo, name)._spec.options if isinstance(o.default, bool) and o.name in takes]
    assert flags
    for f in flags:
        for v in (np.bool_(True), np.array(True), np.array([False])):
            kw = {f: v}
            if name == "SGD" and f == "nesterov":
                kw.update(momentum=0.9)
            opt = make(name, [p], **kw)
            assert type(opt.param_groups[0][f]) is bool and opt.param_groups[0][f] == bool(np.asarray(v).item())
        for v in (1, 0.0, np.int64(1), None):
            with pytest.raises(TypeError, match=f"{f} must be a bool"):
                make(name, [p], **{f: v})


@pytest.mark.parametrize("kw,exc,regex", [
    (dict(max_iter=np.float64(3.0)), TypeError, "max_iter must be an int"),
    (dict(max_iter=True), TypeError, "max_iter must be an int"),
    (dict(history_size=np.array([2, 3])), ValueError, "history_size must be a scalar or a 1-element array"),
    (dict(max_eval=0), ValueError, "Invalid max_eval value: 0"),
    (dict(lr=np.complex64(1)), TypeError, r"Invalid learning rate.*lr must be a real number"),
    (dict(lr=np.inf), ValueError, "lr must be finite"),
    (dict(tolerance_grad=-1.0), ValueError, "Invalid tolerance_grad value"),
    (dict(tolerance_change=float("nan")), ValueError, "tolerance_change must not be NaN"),
    (dict(tolerance_change=np.inf), ValueError, "tolerance_change must be finite"),
    (dict(maximize=np.array([1, 0])), ValueError, "maximize must be a bool"),
])
def test_lbfgs_bad_options(kw, exc, regex):
    with pytest.raises(exc, match=regex):
        fo.LBFGS([fo.Parameter(np.ones(2))], **kw)


# ---- item 3: no NaN from finite inputs ------------------------------------------------------------------------
TINY = 2.0 ** -149  # the smallest positive float32 (subnormal): the smallest eps accepted


def _smallest_eps(name: str, kw: dict) -> dict:
    """The row with its eps at the smallest value accepted (where it has one)."""
    kw = dict(kw)
    if name == "Adafactor":
        kw["eps"] = (2.0 ** -74, kw.get("eps", (None, 1e-3))[1])  # eps1**2 = 2**-148 > 0 in float32
    elif name == "RAdam":
        kw["eps"] = float(np.finfo(np.float32).tiny)  # its 1 / (sqrt(v) + eps) must stay finite
    elif "eps" in getattr(fo, name)._spec.defaults:
        kw["eps"] = TINY
        if name == "Adagrad":
            kw["initial_accumulator_value"] = 0.0
    return kw


ALL_ROWS = CASES + [("Muon", kw) for kw in MUON_CASES]


@pytest.mark.parametrize("smallest", [False, True], ids=["as-given", "smallest-eps"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ALL_ROWS, ids=case_id)
def test_zero_gradients_give_finite_parameters(case, dtype, smallest):
    """Every row, and every row with its eps at the smallest accepted value: 8 all-zero gradients, then a mix of
    zero and non-zero entries, keep every parameter and state array finite (no 0/0)."""
    name, kw = case
    if smallest:
        kw = _smallest_eps(name, kw)
    params = [fo.Parameter(np.linspace(-1, 1, 12, dtype=dtype).reshape(3, 4)), fo.Parameter(np.zeros((2, 2), dtype))]
    opt = make(name, params, **kw)
    for t in range(12):
        for p in params:
            g = np.zeros(p.shape, dtype)
            if t >= 8:
                g.reshape(-1)[::2] = 0.5
            p.grad = g
        opt.step()
    for p in params:
        assert np.isfinite(p.data).all(), (name, kw)
        assert all(np.isfinite(v).all() for v in opt.state[p].values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_adam_zero_gradient_values_are_finite(dtype):
    e = fo.Parameter(np.ones((4, 3), dtype))
    opt = fo.SparseAdam([e], eps=TINY)
    for _ in range(6):
        e.grad = fo.SparseGrad([0, 2], np.zeros((2, 3), dtype))
        opt.step()
    assert np.isfinite(e.data).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adagrad_eps_zero_with_positive_accumulator_is_finite(dtype):
    p = fo.Parameter(np.ones(5, dtype))
    opt = fo.Adagrad([p], eps=0.0, initial_accumulator_value=0.1)
    for _ in range(4):
        p.grad = np.zeros(5, dtype)
        opt.step()
    np.testing.assert_array_equal(p.data, np.ones(5, dtype))


# ---- item 6: state_dict() is a snapshot, state_dict(copy=False) is live ----------------------------------------
def _state_arrays(sd):
    for i, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                yield (i, k), v
            elif isinstance(v, list):
                for n, x in enumerate(v):
                    if isinstance(x, np.ndarray):
                        yield (i, k, n), x


def _trained(name, kw, rng, steps=2):
    shape = (3, 4)
    params = [fo.Parameter(rng.standard_normal(shape)) for _ in range(2)]
    opt = make(name, params, **kw)
    for _ in range(steps):
        for p in params:
            p.grad = (fo.SparseGrad([0, 2], rng.standard_normal((2, 4))) if name == "SparseAdam"
                      else rng.standard_normal(shape))
        opt.step()
    return opt, params


SNAPSHOT_ROWS = ([c for c in CASES if not (c[0] == "SGD" and not c[1].get("momentum"))]
                 + [("Muon", kw) for kw in MUON_CASES[:2]] + [("SparseAdam", kw) for kw in SPARSE_ADAM_CASES[:2]])


@pytest.mark.parametrize("case", SNAPSHOT_ROWS, ids=case_id)
def test_state_dict_is_a_snapshot(case, rng):
    name, kw = case
    opt, params = _trained(name, kw, rng)
    kept = opt.state_dict()
    frozen = copy.deepcopy(kept)
    live = opt.state_dict(copy=False)
    live_arrays = dict(_state_arrays(live))
    kept_arrays = dict(_state_arrays(kept))
    assert kept_arrays and kept_arrays.keys() == live_arrays.keys()
    for key, a in kept_arrays.items():
        assert not np.shares_memory(a, live_arrays[key])
        assert a.flags.writeable and a.tobytes() == live_arrays[key].tobytes()
    for (i, k), a in live_arrays.items():  # copy=False hands out the optimizer's own arrays (one group: index i)
        assert a is opt.state[params[i]][k]
    before = {key: a.copy() for key, a in live_arrays.items()}
    data_then = [p.data.copy() for p in params]
    grads = _trained_more(opt, params, name, rng)
    for key, a in kept_arrays.items():
        np.testing.assert_array_equal(a, dict(_state_arrays(frozen))[key])
    assert any(a.tobytes() != before[key].tobytes() for key, a in live_arrays.items()), "copy=False is not live"
    # the kept snapshot is the state at that point: loaded over the parameters of then, the same step gives the
    # same parameters as the optimizer that went on
    params2 = [fo.Parameter(d) for d in data_then]
    opt2 = make(name, params2, **kw)
    opt2.load_state_dict(kept)
    for p, g in zip(params2, grads):
        p.grad = g
    opt2.step()
    for p, q in zip(params, params2):
        assert p.data.tobytes() == q.data.tobytes()


def _trained_more(opt, params, name, rng):
    grads = [fo.SparseGrad([0, 2], rng.standard_normal((2, 4))) if name == "SparseAdam"
             else rng.standard_normal(p.shape) for p in params]
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    return grads


def test_state_dict_copy_false_is_the_live_state(rng):
    opt, params = _trained("Adam", dict(lr=1e-2), rng)
    live = opt.state_dict(copy=False)
    for i, p in enumerate(params):
        assert live["state"][i]["exp_avg"] is opt.state[p]["exp_avg"]
    with pytest.raises(TypeError, match="copy must be a bool"):
        opt.state_dict(copy="no")


def test_lbfgs_state_dict_snapshot_copies_its_history():
    x = fo.Parameter(np.array([1.5, -0.5, 2.0]))
    opt = fo.LBFGS([x], max_iter=3, history_size=5)
    A = np.diag([1.0, 10.0, 100.0])

    def closure():
        x.grad = A @ x.data
        return 0.5 * float(x.data @ A @ x.data)

    opt.step(closure)
    kept = opt.state_dict()
    frozen = copy.deepcopy(kept)
    st = kept["state"][0]
    assert st["old_dirs"] and not any(np.shares_memory(a, b) for a, b in
                                      zip(st["old_dirs"], opt.state[x]["old_dirs"]))
    opt.step(closure)
    for (key, a), (_, b) in zip(_state_arrays(kept), _state_arrays(frozen)):
        np.testing.assert_array_equal(a, b, err_msg=str(key))
    live = opt.state_dict(copy=False)["state"][0]
    assert live["old_dirs"][0] is opt.state[x]["old_dirs"][0]


# ---- item 7: load_state_dict of a non-mapping / a mapping without the keys -------------------------------------
@pytest.mark.parametrize("bad", [None, [], ["state", "param_groups"], "state", 3, np.zeros(2)],
                         ids=lambda b: type(b).__name__)
def test_load_state_dict_non_mapping_is_type_error(bad, rng):
    opt, _ = _trained("Adam", dict(lr=1e-2), rng)
    with rejected(opt, TypeError, "state_dict must be a mapping"):
        opt.load_state_dict(bad)


@pytest.mark.parametrize("keys,missing", [((), "'state', 'param_groups'"), (("state",), "'param_groups'"),
                                          (("param_groups",), "'state'")])
def test_load_state_dict_missing_keys_is_value_error(keys, missing, rng):
    opt, _ = _trained("Adam", dict(lr=1e-2), rng)
    sd = {k: v for k, v in opt.state_dict().items() if k in keys}
    with rejected(opt, ValueError, re.escape(f"lacks [{missing}]")):
        opt.load_state_dict(sd)


def test_load_state_dict_accepts_any_mapping(rng):
    opt, params = _trained("Adam", dict(lr=1e-2), rng)
    sd = opt.state_dict()
    other, params2 = _trained("Adam", dict(lr=1e-2), np.random.default_rng(1))
    other.load_state_dict(types.MappingProxyType(sd))
    assert snapshot(other)[1:] != [] and all(
        np.array_equal(other.state[q]["exp_avg"], opt.state[p]["exp_avg"]) for p, q in zip(params, params2))


def test_loaded_numpy_options_are_stored_plain(rng):
    """A checkpoint whose options are NumPy values (e.g. read back from an .npz) loads as plain Python values."""
    opt, _ = _trained("Adam", dict(lr=1e-2), rng)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = np.array(0.25)
    sd["param_groups"][0]["betas"] = [np.float32(0.5), np.float64(0.9)]
    sd["param_groups"][0]["amsgrad"] = np.bool_(False)
    opt.load_state_dict(sd)
    g = opt.param_groups[0]
    assert type(g["lr"]) is float and g["betas"] == (0.5, 0.9) and _plain(g["betas"]) and type(g["amsgrad"]) is bool


# ---- the functional forms take the same values -----------------------------------------------------------------
def _functional_calls():
    F = fo.functional
    z = lambda: [np.zeros(3)]  # noqa: E731
    return {
        "sgd": lambda p, g, c: F.sgd(p, g, [None], weight_decay=c(0.1), momentum=c(0.9), lr=c(0.1), dampening=c(0.2),
                                     nesterov=False, maximize=c(False)),
        "adam": lambda p, g, c: F.adam(p, g, z(), z(), [], [0], amsgrad=c(False), beta1=c(0.9), beta2=c(0.99),
                                       lr=c(0.1), weight_decay=c(0.0), eps=c(1e-8), maximize=False),
        "asgd": lambda p, g, c: F.asgd(p, g, z(), [np.array(1.0, np.float32)], [np.array(0.1, np.float32)], [0],
                                       lambd=c(1e-4), lr=c(0.1), t0=c(1e6), alpha=c(0.75), weight_decay=c(0.0),
                                       maximize=False),
        "nadam": lambda p, g, c: F.nadam(p, g, z(), z(), [1.0], [0], beta1=c(0.9), beta2=c(0.999), lr=c(0.1),
                                         weight_decay=c(0.0), momentum_decay=c(4e-3), eps=c(1e-8), maximize=False),
        "rprop": lambda p, g, c: F.rprop(p, g, z(), [np.full(3, 0.01)], [0], step_size_min=c(1e-6),
                                         step_size_max=c(50.0), etaminus=c(0.5), etaplus=c(1.2), maximize=False),
    }


def _matrix_calls():
    F = fo.functional
    return {
        "muon": lambda p, g, c: F.muon(p, g, [np.zeros((2, 3))], lr=c(0.02), weight_decay=c(0.1), momentum=c(0.9),
                                       nesterov=c(True), ns_coefficients=(c(3.4445), c(-4.775), c(2.0315)),
                                       ns_steps=c(3), eps=c(1e-7), adjust_lr_fn=None),
        "adafactor": lambda p, g, c: F.adafactor(p, g, [np.zeros((2, 1))], [np.zeros((1, 3))], [None], [0],
                                                 d=c(1.0), lr=c(1e-2), beta2_decay=c(-0.8), weight_decay=c(0.1),
                                                 eps1=c(1e-10), eps2=c(1e-3), maximize=c(False)),
        "sparse_adam": lambda p, g, c: F.sparse_adam(p, [fo.SparseGrad([1], g[0][1:])], [np.zeros((2, 3))],
                                                     [np.zeros((2, 3))], [1], eps=c(1e-8), beta1=c(0.9),
                                                     beta2=c(0.99), lr=c(0.1), maximize=c(False)),
    }


@pytest.mark.parametrize("form", ["np", "0d", "1el"])
@pytest.mark.parametrize("fn", sorted(_matrix_calls()))
def test_matrix_functional_forms_take_numpy_scalars(fn, form):
    call = _matrix_calls()[fn]
    start = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]])
    a, b = [start.copy()], [start.copy()]
    g = [np.array([[0.5, 0.25, -1.0], [1.0, 2.0, -0.5]])]
    call(a, g, lambda v: _convert(v, form))
    call(b, g, lambda v: v)
    assert a[0].tobytes() == b[0].tobytes() and a[0].tobytes() != start.tobytes()


@pytest.mark.parametrize("form", ["np", "0d", "1el"])
@pytest.mark.parametrize("fn", sorted(_functional_calls()))
def test_functional_forms_take_numpy_scalars(fn, form):
    call = _functional_calls()[fn]
    a, b = [np.array([1.0, -2.0, 3.0])], [np.array([1.0, -2.0, 3.0])]
    g = [np.array([0.5, 0.25, -1.0])]
    call(a, g, lambda v: _convert(v, form))
    call(b, g, lambda v: v)
    assert a[0].tobytes() == b[0].tobytes()
