"""Every registry row against the NumPy reference (tests/reference.py) on the layouts and schedules the other kernel
tests do not reach: tensors of several 16384-element work items with a ragged tail, on 1 and 2 threads; step counts
that diverge inside a group (a first gradient at step 5, skipped steps); float32 and float64 parameters in one
group; Fortran-ordered parameters and gradients; an ``np.memmap`` parameter; 0-d parameters.

Each test steps fastopt and the reference side by side on the same gradients and compares every parameter and
state value (within helpers.REF_TOL: a few ulps from fma against separate multiply-adds)."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, GROUP_SCHEDULED, case_id, make
from helpers import assert_close, num_threads, requires_openmp
from reference import REFERENCES

DTYPES = [np.float32, np.float64]
CHUNK = 16384  # csrc/fo_common.h FO_CHUNK: elements per work item
PARALLEL_MIN = 262144  # csrc/fo_common.h FO_PARALLEL_MIN: below this many elements a call runs on one thread


class Lockstep:
    """fastopt's optimizer over Parameters wrapping ``arrays`` (used in place, whatever their layout or class) and
    the reference over copies, one state dict per parameter; ``ref_kw`` overrides options for the reference."""

    def __init__(self, case, arrays, groups=None, ref_kw=None) -> None:
        self.name, self.kw = case
        self.params = [fo.Parameter(a) for a in arrays]
        # plain C-ordered copies; a 0-d parameter's as one element of shape (1,) (the rules are elementwise, and
        # NumPy's operators turn 0-d arrays into scalars, which the reference cannot update in place)
        self.ref = [np.array(a).reshape(a.shape or (1,)) for a in arrays]
        self.states: list[dict] = [{} for _ in arrays]
        self.ref_kw = [dict(self.kw, **(ref_kw or {})) for _ in arrays]
        if groups is None:
            self.opt = make(self.name, self.params, **self.kw)
        else:  # groups: (list of parameter indices, extra options) per group
            self.opt = make(self.name, [{"params": [self.params[i] for i in idx], **extra} for idx, extra in groups],
                            **self.kw)
            for idx, extra in groups:
                for i in idx:
                    self.ref_kw[i].update(extra)

    def step(self, grads) -> None:
        """One step with these gradients (None: the parameter has no gradient this step and is skipped)."""
        for p, g in zip(self.params, grads):
            p.grad = g
        self.opt.step()
        for r, g, st, kw in zip(self.ref, grads, self.states, self.ref_kw):
            if g is not None:
                REFERENCES[self.name](r, np.array(g).reshape(r.shape), st, **kw)

    def check(self, what: str = "") -> None:
        for j, (p, r, st) in enumerate(zip(self.params, self.ref, self.states)):
            dt = p.data.dtype
            label = f"{case_id((self.name, self.kw))} {what} param {j} {dt}{list(p.data.shape)}"
            assert_close(p.data, r.reshape(p.data.shape), dt.type, label)
            live = self.opt.state.get(p, {})
            if not st:  # never stepped: no state (Adagrad's is made by its constructor, at step 0)
                assert not live or live.get("step") == 0, (label, sorted(live))
                continue
            assert set(live) == set(st), (label, sorted(live), sorted(st))
            for key, value in st.items():
                if isinstance(value, np.ndarray):
                    if value.shape != live[key].shape and p.data.ndim == 0:
                        value = value.reshape(live[key].shape)  # a 0-d parameter's buffer, kept as (1,) above
                    assert live[key].shape == value.shape and live[key].dtype == value.dtype, (label, key)
                    assert_close(live[key], value, dt.type, f"{label} state '{key}'")
                else:
                    assert live[key] == value, (label, key, live[key], value)


def _grads(rng, arrays, order="C"):
    return [np.asarray(rng.standard_normal(a.shape), dtype=a.dtype, order=order) for a in arrays]


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_several_work_items_and_a_ragged_tail_on_1_and_2_threads(case, dtype):
    """3 * 16384 + 17 elements (three full work items and a 17-element tail) next to one large enough that the call
    crosses FO_PARALLEL_MIN and really splits over two threads; the same reference for both thread counts."""
    sizes = [3 * CHUNK + 17, 16 * CHUNK + 17]
    assert sum(sizes) >= PARALLEL_MIN
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [_grads(rng, init) for _ in range(3)]
    for threads in (1, 2):
        if threads == 2:
            requires_openmp()
        run = Lockstep(case, [a.copy() for a in init])
        with num_threads(threads):
            for g in grads:
                run.step([x.copy() for x in g])
        run.check(f"{threads} thread(s)")


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_step_counts_diverging_inside_a_group(case, dtype, rng):
    """One group: A steps every time, B gets its first gradient at step 5, C skips every third step, D (0-d) only
    every other step; each keeps its own step count, as in torch, and the kernel gets per-tensor scalars."""
    if case[0] in GROUP_SCHEDULED:
        pytest.skip(f"{case[0]}'s schedule is per group (upstream's too): skipped parameters are covered against "
                    "the reference package in tests/test_parity_beyond.py")
    arrays = [rng.standard_normal(s).astype(dtype) for s in [(7,), (33,), (4, 5), ()]]
    run = Lockstep(case, arrays)
    for k in range(1, 13):
        present = [True, k >= 5, k % 3 != 1, k % 2 == 0]
        grads = _grads(rng, arrays)
        run.step([g if on else None for g, on in zip(grads, present)])
        if k in (4, 6, 12):
            run.check(f"after step {k}")
    if "step" in run.states[0]:  # the schedule's counts (check compared fastopt's to them)
        assert [st["step"] for st in run.states] == [12, 8, 8, 6]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_float32_and_float64_params_in_one_group(case, rng):
    """Each parameter is updated in its own dtype (one kernel call per dtype of the group), against the reference in
    that dtype; a second group holds one dtype only."""
    name, kw = case
    dtypes = [np.float32, np.float64, np.float32, np.float64, np.float64]
    shapes = [(9,), (9,), (4, 3), (), (2, 5)]
    arrays = [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)]
    ref_kw = None
    if name == "Adafactor" and kw.get("eps", (None,))[0] is None:
        # eps1=None means the machine epsilon of the group's first parameter with a gradient, for the whole group
        ref_kw = {"eps": (float(np.finfo(np.float32).eps), kw.get("eps", (None, 1e-3))[1])}
    run = Lockstep(case, arrays, groups=[([0, 1, 2, 3], {}), ([4], {})], ref_kw=ref_kw)
    if ref_kw is not None:  # the second group's first parameter is float64
        run.ref_kw[4]["eps"] = (float(np.finfo(np.float64).eps), run.ref_kw[4]["eps"][1])
    for k in range(5):
        run.step(_grads(rng, arrays))
    run.check()
    assert [p.data.dtype for p in run.params] == [np.dtype(d) for d in dtypes]


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fortran_ordered_params_and_grads(case, dtype, rng):
    """Fortran-ordered parameters (2-D and 3-D) are updated in place, staying the same Fortran-ordered arrays;
    Fortran-ordered gradients are read correctly, also for a C-ordered parameter."""
    arrays = [np.asfortranarray(rng.standard_normal(s).astype(dtype)) for s in [(6, 5), (3, 4, 5)]]
    arrays.append(rng.standard_normal((5, 3)).astype(dtype))  # C-ordered, given Fortran-ordered gradients
    arrays.append(np.asfortranarray(rng.standard_normal((2, 7)).astype(dtype)))  # given C-ordered gradients
    run = Lockstep(case, arrays)
    for _ in range(4):
        grads = _grads(rng, arrays, order="F")
        grads[3] = np.ascontiguousarray(grads[3])
        assert all(g.flags.f_contiguous and not g.flags.c_contiguous for g in grads[:3])
        run.step(grads)
    run.check()
    for p, a in zip(run.params, arrays):
        assert p.data is a
    assert all(p.data.flags.f_contiguous and not p.data.flags.c_contiguous
               for i, p in enumerate(run.params) if i != 2)


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_memmap_param_is_updated_in_its_file(case, dtype, rng, tmp_path):
    """An np.memmap parameter (next to an ordinary one) is updated in place: the file holds the reference's values."""
    path = tmp_path / "w.bin"
    mm = np.memmap(path, dtype=dtype, mode="w+", shape=(5, 7))
    mm[...] = rng.standard_normal((5, 7))
    arrays = [mm, rng.standard_normal(11).astype(dtype)]
    run = Lockstep(case, arrays)
    for _ in range(4):
        run.step(_grads(rng, arrays))
    run.check()
    assert run.params[0].data is mm
    mm.flush()
    on_disk = np.fromfile(path, dtype=dtype).reshape(5, 7)
    np.testing.assert_array_equal(on_disk, np.asarray(mm))
    del run, mm


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_dimensional_params(case, dtype, rng):
    """0-d parameters (one element, no axes), alone in a group and next to a 1-element vector."""
    arrays = [np.array(rng.standard_normal(), dtype=dtype), np.array(-0.5, dtype=dtype),
              rng.standard_normal(1).astype(dtype)]
    run = Lockstep(case, arrays, groups=[([0], {}), ([1, 2], {})])
    for _ in range(6):
        run.step(_grads(rng, arrays))
    run.check()
    assert run.params[0].data.shape == () and run.params[1].data.shape == ()
