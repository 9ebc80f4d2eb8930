"""The low-precision modes' cached repeated step (fastopt/_lowp.py's plans, run by fastopt._kernels.StepPlans):
the same bits as the full path over many steps for every mode; every change it relies on noticed (the full path
then runs: the same error where it raises, everything bit-identical after a rejected step, new plans after a
successful one); and the cache really used (full steps counted)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fastopt as fo
from fastopt import _lowp

from helpers import snapshot

try:
    import ml_dtypes
    BF16: Any = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # the bfloat16-parameter modes skip
    BF16 = None
F16, F32 = np.dtype(np.float16), np.dtype(np.float32)
needs_bf16 = pytest.mark.skipif(BF16 is None, reason="ml_dtypes not installed")

# compressed state (float32 params): two groups; in int8 mode each group has a tensor of at least MIN_8BIT_SIZE
# elements (8-bit codes: the compressed kernel) and small ones (float32 moments: the float32 kernel), two plans
STATE_SHAPES = [[(70, 64), (33,)], [(5000,), (3, 5)]]
COMPRESSED = [pytest.param(cls, dict(kw, state_dtype=sd), "f32", id=f"{name}-{sd}")
              for name, cls, kw in [("adam", fo.Adam, dict(lr=1e-2, weight_decay=0.01)),
                                    ("adamw", fo.AdamW, dict(lr=1e-2, betas=(0.8, 0.99))),
                                    ("lion", fo.Lion, dict(lr=1e-3, weight_decay=0.1)),
                                    ("sgd", fo.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True))]
              for sd in ("bfloat16", "int8")]
# 16-bit params: gradients alternate between the param's dtype and float32 (two tables per group)
PARAM_SHAPES = [[(40, 30), (17,)], [(300,), (2, 3)]]
ALGOS = [("sgd", fo.SGD, dict(lr=1e-2, momentum=0.9, dampening=0.1, weight_decay=0.01)),
         ("sgd-plain", fo.SGD, dict(lr=1e-2)),
         ("adam", fo.Adam, dict(lr=1e-2, weight_decay=0.01)),
         ("adamw", fo.AdamW, dict(lr=1e-2)),
         ("rmsprop", fo.RMSprop, dict(lr=1e-2, centered=True, momentum=0.5)),
         ("lion", fo.Lion, dict(lr=1e-3, weight_decay=0.1))]
PARAM_MODES = [("float16", "f16", {}), ("float16-master", "f16", {"master_weights": True}),
               ("bfloat16", "bf16", {}), ("bfloat16-master", "bf16", {"master_weights": True}),
               ("bfloat16-stochastic", "bf16", {"rounding": "stochastic"}),
               ("mixed-16", "mixed", {})]  # float16 and bfloat16 params in each group
LOWP_PARAMS = [pytest.param(cls, dict(kw, **extra), dt, id=f"{name}-{label}",
                            marks=[needs_bf16] if dt != "f16" else [])
               for name, cls, kw in ALGOS for label, dt, extra in PARAM_MODES]


def _pick(params: list, *ids: str) -> list:
    by_id = {p.id: p for p in params}
    return [by_id[i] for i in ids]


def _dtype(kind: str, j: int) -> np.dtype:
    if kind == "f32":
        return F32
    if kind == "mixed":
        return F16 if j % 2 == 0 else BF16
    return F16 if kind == "f16" else BF16


class Model:
    """An optimizer over two groups of parameters and the gradients it is fed, rebuilt identically from a seed (so
    two copies, one on the cached path and one always on the full path, see the same inputs)."""

    def __init__(self, cls: Callable[..., fo.Optimizer], kw: dict[str, Any], kind: str, seed: int = 3) -> None:
        self.rng = np.random.default_rng(seed)
        shapes = STATE_SHAPES if kind == "f32" else PARAM_SHAPES
        self.groups = [[fo.Parameter((self.rng.standard_normal(s) * 0.5).astype(_dtype(kind, j)))
                        for j, s in enumerate(g)] for g in shapes]
        self.params = [p for g in self.groups for p in g]
        self.opt = cls([{"params": self.groups[0]}, {"params": self.groups[1], "lr": kw["lr"] * 2}], **kw)
        self.kind = kind

    def new_grads(self) -> None:
        """Fresh gradient arrays: in the param's dtype or float32 (alternating), float32 for float32 params."""
        for j, p in enumerate(self.params):
            dt = p.data.dtype if j % 2 == 0 else F32
            p.grad = (self.rng.standard_normal(p.data.shape) * 0.1).astype(dt)

    def step(self, cached: bool) -> BaseException | None:
        if not cached:
            self.opt._plans = None  # no plans: the full path
        try:
            self.opt.step()
        except (ValueError, TypeError, RuntimeError) as e:
            return e
        return None


def _pair(cls, kw, kind) -> tuple[Model, Model]:
    return Model(cls, kw, kind), Model(cls, kw, kind)


def _steps_agree(a: Model, b: Model, n: int, fresh: bool = True) -> None:
    for _ in range(n):
        if fresh:
            a.new_grads()
            b.new_grads()
        assert a.step(True) is None and b.step(False) is None
        assert snapshot(a.opt) == snapshot(b.opt)


def _count_full_steps(monkeypatch) -> list:
    """Count the low-precision full steps (the full path of both modes)."""
    calls: list = []
    for klass in (_lowp.Compressed, _lowp.LowParams):
        orig = klass.step

        def counted(self, opt, closure, _orig=orig):
            calls.append(type(self).__name__)
            return _orig(self, opt, closure)
        monkeypatch.setattr(klass, "step", counted)
    return calls


# ---------------------------------------------------------------------------------------------------------------
# the same bits as the full path
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kw, kind", COMPRESSED)
def test_compressed_state_cached_step_is_bit_identical(cls, kw, kind):
    a, b = _pair(cls, kw, kind)
    for k in range(30):
        if k % 7 != 3:  # new gradient arrays most steps, the same arrays (re-used) on the others
            a.new_grads()
            b.new_grads()
        if k == 12:  # a scheduler's change of the learning rate: new plans, same bits
            for m in (a, b):
                m.opt.param_groups[0]["lr"] *= 0.5
        assert a.step(True) is None and b.step(False) is None
        assert snapshot(a.opt) == snapshot(b.opt)
    assert a.opt._fast_steps == 28  # every step but the first and the one after the lr change
    assert b.opt._fast_steps == 0


@pytest.mark.parametrize("cls, kw, kind", LOWP_PARAMS)
def test_16bit_params_cached_step_is_bit_identical(cls, kw, kind):
    a, b = _pair(cls, kw, kind)
    for k in range(30):
        if k % 7 != 3:
            a.new_grads()
            b.new_grads()
        if k == 12:
            for m in (a, b):
                m.opt.param_groups[1]["lr"] *= 0.5
        assert a.step(True) is None and b.step(False) is None
        assert snapshot(a.opt) == snapshot(b.opt)
    assert a.opt._fast_steps == 28
    assert b.opt._fast_steps == 0


@pytest.mark.parametrize("cls, kw, kind", _pick(COMPRESSED, "adam-bfloat16", "adam-int8", "sgd-bfloat16", "sgd-int8"))
def test_cached_step_with_per_tensor_step_counts(cls, kw, kind):
    """Tensors of one table at different step counts (a loaded or edited state): the plans' per-tensor scalars."""
    a, b = _pair(cls, kw, kind)
    _steps_agree(a, b, 2)
    for m in (a, b):
        m.opt.state[m.params[0]]["step"] += 5
        m.opt.state[m.params[3]]["step"] += 2
    _steps_agree(a, b, 4)
    assert a.opt._fast_steps == 5


@pytest.mark.parametrize("cls, kw, kind", _pick(LOWP_PARAMS, "adam-bfloat16", "adam-bfloat16-stochastic",
                                                "sgd-bfloat16-stochastic", "adamw-float16-master"))
def test_16bit_cached_step_with_per_tensor_step_counts(cls, kw, kind):
    a, b = _pair(cls, kw, kind)
    _steps_agree(a, b, 2)
    for m in (a, b):
        m.opt.state[m.params[1]]["step"] += 3
    _steps_agree(a, b, 4)
    assert a.opt._fast_steps == 5


# ---------------------------------------------------------------------------------------------------------------
# the cache is used
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kw, kind", [pytest.param(fo.Adam, dict(lr=1e-3, state_dtype="int8"), "f32", id="int8"),
                                           pytest.param(fo.SGD, dict(lr=1e-3, momentum=0.9, state_dtype="bfloat16"),
                                                        "f32", id="bf16-state"),
                                           pytest.param(fo.Adam, dict(lr=1e-3), "f16", id="f16-params"),
                                           pytest.param(fo.Lion, dict(lr=1e-3, master_weights=True), "bf16",
                                                        id="bf16-params-master", marks=needs_bf16)])
def test_repeated_steps_skip_the_full_path(cls, kw, kind, monkeypatch):
    calls = _count_full_steps(monkeypatch)
    m = Model(cls, kw, kind)
    m.new_grads()
    for _ in range(20):
        m.opt.step()
    assert len(calls) == 1 and m.opt._fast_steps == 19
    m.opt.param_groups[0]["lr"] = 1e-4  # a changed option: one full step makes new plans
    for k in range(5):
        if k != 2:
            m.new_grads()  # new gradient arrays of the same kind do not need the full path
        m.opt.step()
    assert len(calls) == 2 and m.opt._fast_steps == 23
    m.opt.step(lambda: 1.0)  # with a closure: the full path's entry, which runs the plans after the closure
    assert len(calls) == 3 and m.opt._fast_steps == 24


def test_step_hooks_run_with_the_cached_step(monkeypatch):
    calls = _count_full_steps(monkeypatch)
    m = Model(fo.AdamW, dict(lr=1e-3, state_dtype="int8"), "f32")
    seen = []
    m.opt.register_step_pre_hook(lambda opt, args, kwargs: seen.append("pre"))
    m.opt.register_step_post_hook(lambda opt, args, kwargs: seen.append("post"))
    m.new_grads()
    for _ in range(4):
        m.opt.step()
    assert seen == ["pre", "post"] * 4
    assert len(calls) == 4 and m.opt._fast_steps == 3  # hooked steps enter the full path, which runs the plans


def test_cached_step_holds_the_lock():
    """Two threads stepping one optimizer: every step runs whole, as one after the other."""
    a, b = _pair(fo.Adam, dict(lr=1e-3, state_dtype="int8"), "f32")
    a.new_grads()
    b.new_grads()
    a.opt.step()

    def run() -> None:
        for _ in range(40):
            a.opt.step()
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(81):
        b.step(False)
    assert snapshot(a.opt) == snapshot(b.opt)
    assert a.opt._fast_steps == 80


# ---------------------------------------------------------------------------------------------------------------
# every change noticed: the full path runs (and raises where it raises)
# ---------------------------------------------------------------------------------------------------------------
def _add_group(m: Model) -> None:
    p = fo.Parameter(np.linspace(-1, 1, 4100).astype(m.params[0].data.dtype))
    m.opt.add_param_group({"params": [p]})
    m.params.append(p)
    m.new_grads()


def _grad(j: int, make: Callable[[Model, np.ndarray], Any], lowp_only: bool = False) -> Callable[[Model], Any]:
    def mutate(m: Model) -> Any:
        if lowp_only and m.kind == "f32":
            pytest.skip("for 16-bit parameters")
        m.params[j].grad = make(m, m.params[j].data)
    return mutate


def _state(j: int, change: Callable[[dict, str], Any]) -> Callable[[Model], Any]:
    def mutate(m: Model) -> Any:
        st = m.opt.state[m.params[j]]
        key = next((k for k in ("exp_avg", "state1", "momentum_buffer", "square_avg", "master")
                    if isinstance(st.get(k), np.ndarray)), None)
        if key is None:
            pytest.skip("no state array")
        change(st, key)
    return mutate


def _set(st: dict, key: str, value: Any) -> None:
    st[key] = value


def _data(j: int, change: Callable[[Model, fo.Parameter], Any]) -> Callable[[Model], Any]:
    return lambda m: change(m, m.params[j])


def _other_16bit(m: Model, dt: np.dtype) -> np.dtype:
    if m.kind == "f32":
        pytest.skip("for 16-bit parameters")
    return BF16 if dt == F16 else F16


def _reshape(a: np.ndarray) -> None:
    a.shape = (-1,)


# name -> (mutation of one Model, what the full path does: "reject", "accept" or "either" by mode); each mutation is
# applied to both models, after fresh gradients
MUTATIONS: dict[str, tuple[Callable[[Model], Any], str]] = {
    "grad-flattened": (_grad(0, lambda m, d: np.zeros(d.size, F32)), "reject"),
    "grad-wrong-size": (_grad(2, lambda m, d: np.zeros(7, F32)), "reject"),
    "grad-float64": (_grad(1, lambda m, d: np.zeros(d.shape)), "reject"),
    "grad-int32": (_grad(1, lambda m, d: np.zeros(d.shape, np.int32)), "reject"),
    "grad-list": (_grad(3, lambda m, d: [0.0] * d.size), "reject"),
    "grad-shares-data": (_grad(0, lambda m, d: d[...]), "reject"),
    "grad-none": (_grad(1, lambda m, d: None), "accept"),
    "grad-strided": (_grad(0, lambda m, d: np.repeat(m.params[0].grad, 2, axis=-1)[..., ::2]), "accept"),
    "grad-other-16bit": (_grad(0, lambda m, d: m.params[0].grad.astype(_other_16bit(m, d.dtype)), True), "reject"),
    "grad-16bit-to-float32": (_grad(0, lambda m, d: m.params[0].grad.astype(F32), True), "accept"),
    "state-copied": (_state(0, lambda st, k: st.update({k: v.copy() for k, v in st.items()
                                                         if isinstance(v, np.ndarray)})), "accept"),
    "state-float64": (_state(2, lambda st, k: _set(st, k, st[k].astype(np.float64))), "reject"),
    "state-read-only": (_state(2, lambda st, k: st[k].setflags(write=False)), "reject"),
    "state-reshaped": (_state(0, lambda st, k: _reshape(st[k])), "reject"),
    "state-dropped": (_state(3, lambda st, k: st.pop(k)), "reject"),
    "state-cleared": (lambda m: m.opt.state[m.params[3]].clear(), "accept"),
    "step-float": (lambda m: _set(m.opt.state[m.params[0]], "step", 2.5), "either"),
    "step-negative": (lambda m: _set(m.opt.state[m.params[0]], "step", -1), "reject"),
    "option-changed": (lambda m: _set(m.opt.param_groups[1], "weight_decay", 0.25), "accept"),
    "option-invalid": (lambda m: _set(m.opt.param_groups[0], "lr", -1.0), "reject"),
    "key-added": (lambda m: _set(m.opt.param_groups[0], "note", "x"), "accept"),  # not an option: still cached
    "load-state-dict": (lambda m: m.opt.load_state_dict(m.opt.state_dict()), "accept"),
    "add-param-group": (_add_group, "accept"),
    "param-removed": (lambda m: m.opt.param_groups[1]["params"].pop(), "accept"),
    "data-copied": (_data(1, lambda m, p: setattr(p, "data", p.data.copy())), "accept"),
    "data-read-only": (_data(1, lambda m, p: p.data.setflags(write=False)), "reject"),
    "data-reshaped": (_data(0, lambda m, p: _reshape(p.data)), "reject"),
    "data-float64": (_data(2, lambda m, p: setattr(p, "data", p.data.astype(np.float64))), "reject"),
    "data-other-16bit": (_data(2, lambda m, p: setattr(p, "data", p.data.astype(_other_16bit(m, p.data.dtype)))),
                         "reject"),  # its gradient is still of the old dtype
    "data-and-grad-other-16bit": (_data(2, lambda m, p: (setattr(p, "data", p.data.astype(
        _other_16bit(m, p.data.dtype))), setattr(p, "grad", p.grad.astype(F32)))), "either"),  # stochastic: bf16
}
PLAN_MODES = (_pick(COMPRESSED, "adam-int8", "adamw-bfloat16", "lion-bfloat16", "sgd-int8")
              + _pick(LOWP_PARAMS, "adam-float16", "adam-bfloat16-master", "sgd-bfloat16-stochastic",
                      "rmsprop-mixed-16", "lion-float16-master", "sgd-plain-bfloat16"))


@pytest.mark.parametrize("name", list(MUTATIONS))
@pytest.mark.parametrize("cls, kw, kind", PLAN_MODES)
def test_every_change_is_noticed(cls, kw, kind, name):
    """After the change, the cached path gives what the full path gives: the same error with nothing written, or the
    same bits (then new plans for the next steps)."""
    mutate, expect = MUTATIONS[name]
    a, b = _pair(cls, kw, kind)
    _steps_agree(a, b, 2)  # armed: a's second step ran from its plans
    assert a.opt._plans is not None and a.opt._fast_steps == 1
    a.new_grads()
    b.new_grads()
    for m in (a, b):
        mutate(m)
    before = snapshot(a.opt)
    ea, eb = a.step(True), b.step(False)
    assert expect == "either" or (eb is not None) == (expect == "reject"), eb
    assert a.opt._fast_steps == (2 if name == "key-added" else 1)  # the changed step took the full path
    if eb is not None:
        assert type(ea) is type(eb) and str(ea) == str(eb)  # the error the uncached path raises
        assert snapshot(a.opt) == before  # nothing written
        return
    assert ea is None
    assert snapshot(a.opt) == snapshot(b.opt)
    if name == "grad-none":  # a parameter without a gradient: no plans until every parameter has one again
        assert a.opt._plans is None
    _steps_agree(a, b, 3)
    assert a.opt._plans is not None and a.opt._fast_steps >= 3  # new plans after the full step


def test_grad_overlapping_another_groups_state_is_rejected():
    """The cross-table overlap check: a gradient that is a view of another group's state array."""
    a, b = _pair(fo.Adam, dict(lr=1e-3, state_dtype="int8"), "f32")
    _steps_agree(a, b, 2)
    for m in (a, b):
        m.new_grads()
        m.params[3].grad = m.opt.state[m.params[1]]["exp_avg"][:15].reshape(3, 5)  # group 1's grad, group 0's state
    before = snapshot(a.opt)
    ea, eb = a.step(True), b.step(False)
    assert eb is not None and type(ea) is type(eb) and str(ea) == str(eb)
    assert "share" in str(ea)
    assert snapshot(a.opt) == before


@pytest.mark.parametrize("kw", [dict(state_dtype="int8"), dict(state_dtype="bfloat16")], ids=["int8", "bf16-state"])
def test_memmap_param_takes_the_cached_step(kw, tmp_path):
    """A parameter that is an ndarray subclass (a memory-mapped file) is planned and updated in its file."""
    x = (np.random.default_rng(1).standard_normal(5000) * 0.1).astype(F32)
    mm = np.memmap(tmp_path / "w.bin", dtype=F32, mode="w+", shape=x.shape)
    mm[:] = x
    a, b = fo.Parameter(mm), fo.Parameter(x.copy())
    oa, ob = fo.Adam([a], lr=1e-2, **kw), fo.Adam([b], lr=1e-2, **kw)
    g = np.linspace(-1, 1, x.size, dtype=F32)
    for _ in range(4):
        a.grad, b.grad = g, g.copy()
        oa.step()
        ob._plans = None
        ob.step()
    assert oa._fast_steps == 3
    np.testing.assert_array_equal(np.fromfile(tmp_path / "w.bin", dtype=F32), b.data)
