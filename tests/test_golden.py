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
    assert sorted(RECORDED) == sorted(RUNS), "rows added or removed: regenerate tests/golden/golden.json"


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
    if name not in RECORDED:
        pytest.fail(f"{name} has no golden trajectory: regenerate tests/golden/golden.json")
    got = G.run(name, RUNS[name], dtype, threads)
    msg = compare(name, dtype, threads, got, RECORDED[name][dtype][str(threads)])
    assert msg is None, msg
