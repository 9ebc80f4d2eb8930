"""Every bad input gets a clear error naming the place, and leaves parameters and state bit-identical."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, ERROR_CASES, case_id, make
from helpers import rejected


@pytest.mark.parametrize("name,kw,exc,regex", ERROR_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_constructor_rejects(name, kw, exc, regex):
    p = fo.Parameter(np.zeros((2, 2)))  # 2-D: Muon takes nothing else
    with pytest.raises(exc, match=regex):
        make(name, [p], **kw)


def _trained(name, kw, rng, dtype=np.float32):
    """An optimizer over two groups that has taken two steps (so state exists)."""
    params = [fo.Parameter(rng.standard_normal(s).astype(dtype)) for s in [(4,), (2, 3), (5,)]]
    opt = make(name, [{"params": params[:1]}, {"params": params[1:]}], **kw)
    for _ in range(2):
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(dtype)
        opt.step()
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(dtype)
    return opt, params


def _bad_grad_shape(p):
    p.grad = np.zeros(p.shape + (1,), p.data.dtype)


def _bad_grad_dtype(p):
    p.grad = p.grad.astype(np.float64 if p.data.dtype == np.float32 else np.float32)


def _list_grad(p):
    p.grad = p.grad.tolist()


def _aliased_grad(p):
    p.grad = p.data


def _aliased_view_grad(p):
    p.grad = p.data.reshape(-1)[::-1].reshape(p.shape)


def _readonly_param(p):
    p.data.flags.writeable = False


def _zeros(name: str, dtype, param: bool):
    """A spoiler that gives the parameter a zero grad of dtype (param=True: zero data and grad of dtype)."""
    def spoil(p):
        if param:
            p.data = np.zeros(p.shape, dtype)
        p.grad = np.zeros(p.shape, dtype)
    spoil.__name__ = name
    return spoil


_AT = r"param_groups\[1\]\['params'\]\[1\]: "  # every spoiler hits group 1, index 1
BAD = [(spoil, exc, _AT + regex) for spoil, exc, regex in [
    (_bad_grad_shape, ValueError, "grad has shape"),
    (_bad_grad_dtype, TypeError, "grad is float64, param is float32"),
    *[(_zeros(f"_{n}_grad", dt, False), TypeError, f"grad is {np.dtype(dt).name}")
      for n, dt in (("int", np.int64), ("complex", np.complex64), ("object", object), ("half", np.float16))],
    (_list_grad, TypeError, "grad must be a numpy.ndarray"),
    (_aliased_grad, ValueError, "grad shares memory"),
    (_aliased_view_grad, ValueError, "grad shares memory"),
    (_readonly_param, ValueError, "data is read-only"),
    *[(_zeros(f"_{n}_param", dt, True), TypeError, f"dtype {np.dtype(dt).name} is not supported")
      for n, dt in (("int", np.int32), ("half", np.float16), ("complex", np.complex128))],
]]


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("spoil,exc,regex", BAD, ids=[b[0].__name__ for b in BAD])
def test_bad_step_changes_nothing(case, spoil, exc, regex, rng):
    name, kw = case
    opt, params = _trained(name, kw, rng)
    target = params[2]  # group 1, index 1: group 0 is valid and must not be updated either
    spoil(target)
    with rejected(opt, exc, regex):
        opt.step()


# torch's two message styles: "Invalid learning rate: -1.0" (most) and "Learning rate should be >= 0 but is: -1.0"
# (Adafactor, Muon); each optimizer keeps its torch counterpart's.
_LR = r"param_groups\[1\]: (Invalid learning rate|Learning rate should be >= 0)"


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("key,value,exc,regex", [
    ("lr", -1.0, ValueError, _LR),
    ("lr", float("nan"), ValueError, _LR),
    ("lr", None, TypeError, _LR),
    ("weight_decay", -1.0, ValueError, r"param_groups\[1\]: (Invalid weight_decay|weight_decay should be >= 0)"),
])
def test_bad_hyper_parameter_at_step_changes_nothing(case, key, value, exc, regex, rng):
    name, kw = case
    opt, params = _trained(name, kw, rng)
    if key not in opt.defaults:
        pytest.skip(f"{name} has no option '{key}'")
    opt.param_groups[1][key] = value
    with rejected(opt, exc, regex):
        opt.step()


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_state_replaced_by_user_is_checked(case, rng):
    name, kw = case
    opt, params = _trained(name, kw, rng)
    st = opt.state[params[2]]
    keys = [k for k, v in st.items() if isinstance(v, np.ndarray)]
    if not keys:
        pytest.skip("no array state for this configuration")
    st[keys[0]] = np.zeros(7, params[2].data.dtype)
    with rejected(opt, ValueError, rf"param_groups\[1\]\['params'\]\[1\]: state '{keys[0]}'"):
        opt.step()


def test_overlapping_parameters_rejected_without_changes(rng):
    base = rng.standard_normal(10).astype(np.float32)
    a, b = fo.Parameter(base[:6]), fo.Parameter(base[4:])
    opt = fo.Adam([a, b], lr=0.1)
    a.grad = np.ones(6, np.float32)
    b.grad = np.ones(6, np.float32)
    before = base.copy()
    with pytest.raises(ValueError, match="shares memory"):
        opt.step()
    np.testing.assert_array_equal(base, before)
    assert len(opt.state) == 0 or all(not s for s in opt.state.values())


# ---- load_state_dict ----------------------------------------------------------------------------------------
def _spoilers():
    def wrong_groups(sd):
        sd["param_groups"].append(copy.deepcopy(sd["param_groups"][0]))

    def wrong_group_size(sd):
        sd["param_groups"][1]["params"] = sd["param_groups"][1]["params"][:1]

    def wrong_shape(sd):
        st = sd["state"][2]
        k = next(k for k, v in st.items() if isinstance(v, np.ndarray))
        st[k] = np.zeros(99, st[k].dtype)

    def wrong_dtype(sd):
        st = sd["state"][2]
        k = next(k for k, v in st.items() if isinstance(v, np.ndarray))
        st[k] = st[k].astype(np.float64)

    def extra_key(sd):
        sd["state"][2]["bogus"] = np.zeros(1)

    def missing_key(sd):
        st = sd["state"][2]
        if len(st) < 2:
            return "an empty state is a fresh start, not an error"
        st.pop(next(k for k, v in st.items() if isinstance(v, np.ndarray)))

    def bad_lr(sd):
        sd["param_groups"][1]["lr"] = -3.0

    def missing_option(sd):
        sd["param_groups"][0].pop("lr")

    def unknown_param(sd):
        sd["state"][17] = {}

    def bad_step(sd):
        if "step" in sd["state"][2]:
            sd["state"][2]["step"] = -1
        else:
            sd["state"][2]["momentum_buffer"] = "x"

    def not_a_dict(sd):
        sd.pop("state")

    return [(wrong_groups, ValueError, "different number of parameter groups"),
            (wrong_group_size, ValueError, "doesn't match the size"),
            (wrong_shape, ValueError, r"param_groups\[1\]\['params'\]\[1\]: saved state"),
            (wrong_dtype, ValueError, r"param_groups\[1\]\['params'\]\[1\]: saved state .* float64"),
            (extra_key, ValueError, "saved state has keys"),
            (missing_key, ValueError, "saved state has keys"),
            (bad_lr, ValueError, "(Invalid learning rate|Learning rate should be >= 0)"),
            (missing_option, ValueError, "lacks option 'lr'"),
            (unknown_param, ValueError, "which no group lists"),
            (bad_step, (ValueError, TypeError), r"param_groups\[1\]\['params'\]\[1\]"),
            (not_a_dict, ValueError, "'state' and 'param_groups'")]


# every row that keeps per-parameter state (plain SGD keeps none, so there is nothing to spoil)
STATEFUL = [c for c in CASES if not (c[0] == "SGD" and not c[1].get("momentum"))]


@pytest.mark.parametrize("case", STATEFUL, ids=case_id)
@pytest.mark.parametrize("spoil,exc,regex", _spoilers(), ids=[s[0].__name__ for s in _spoilers()])
def test_bad_load_state_dict_changes_nothing(case, spoil, exc, regex, rng):
    name, kw = case
    opt, params = _trained(name, kw, rng)
    sd = copy.deepcopy(opt.state_dict())
    assert sd["state"].get(2), "a STATEFUL row kept no state"
    reason = spoil(sd)
    if reason:
        pytest.skip(reason)
    groups_before = opt.param_groups
    with rejected(opt, exc, regex):
        opt.load_state_dict(sd)
    assert opt.param_groups is groups_before
