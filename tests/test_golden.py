"""Golden trajectories: every optimizer, clipping function and average must reproduce, bit for bit, the 100-step
results recorded in tests/golden/golden.json (see tests/golden/make_golden.py for what runs and how to regenerate).
"""
from __future__ import annotations

import json

import pytest

import fastopt as fo
from golden import make_golden as G

with open(G.GOLDEN) as _f:
    _FIXTURE = json.load(_f)
RECORDED: dict = _FIXTURE["trajectories"]
pytestmark = pytest.mark.golden
RUNS = dict(G.trajectories())
PARAMS = [(name, dtype, th) for name in RUNS for dtype in G.DTYPES for th in G.THREADS]


def test_fixture_covers_every_trajectory():
    assert _FIXTURE["steps"] == G.STEPS and tuple(_FIXTURE["checkpoints"]) == G.CHECKPOINTS
    # A row recorded before must still exist (a renamed or dropped row would silently lose its guard); a new row
    # (a new optimizer, a new registry configuration) runs skipped until tests/golden/make_golden.py records it.
    lost = sorted(set(RECORDED) - set(RUNS))
    assert not lost, f"golden rows no longer generated: {lost}"


def compare(name: str, dtype: str, threads: int, got: list, want: list) -> str | None:
    """None when equal, else a message naming the row and the first checkpoint where params or state differ."""
    for (t, gp, gs), (_, wp, ws) in zip(got, want):
        what = [w for w, a, b in (("params", gp, wp), ("state", gs, ws)) if a != b]
        if what:
            return (f"{name} [{dtype}, {threads} thread(s)]: {' and '.join(what)} differ from the golden run "
                    f"after step {t}")
    if len(got) != len(want):
        return f"{name} [{dtype}, {threads} thread(s)]: {len(got)} checkpoints, golden has {len(want)}"
    return None


@pytest.mark.parametrize("name,dtype,threads", PARAMS, ids=[f"{n}-{d}-{t}t" for n, d, t in PARAMS])
def test_trajectory_bit_identical(name, dtype, threads):
    if threads > 1 and not fo.have_openmp():
        pytest.skip("built without OpenMP")
    if G.uses_blas(name) and _FIXTURE.get("blas_platform") != G.blas_platform():
        pytest.skip(f"recorded with {_FIXTURE.get('blas_platform')}, this is {G.blas_platform()}: NumPy's matmul "
                    "may round differently here (regenerate on this machine before a refactor)")
    if name not in RECORDED:
        pytest.skip(f"{name} is new: no golden trajectory recorded yet (tests/golden/make_golden.py records it)")
    got = G.run(name, RUNS[name], dtype, threads)
    msg = compare(name, dtype, threads, got, RECORDED[name][dtype][str(threads)])
    assert msg is None, msg
