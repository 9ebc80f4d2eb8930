"""The benchmark runs unattended and writes its table; its NumPy baselines and probe compute what they claim.
No timing assertions."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fastopt as fo
from fastopt import _kernels as K
from fastopt.bench import main
from fastopt.bench.numpy_impl import NUMPY_OPTIMIZERS
from fastopt.bench.step import ALGOS


def test_quick_run_writes_results(tmp_path, capsys):
    out = tmp_path / "bench"
    rc = main(["--quick", "--cases", "1e4,mlp", "--algos", "adam,rmsprop", "--rounds", "1", "--batch-ms", "0.2",
               "--out", str(out)])
    assert rc == 0
    md = (out / "RESULTS.md").read_text()
    assert "## Summary: speed targets" in md
    assert "| Adam f32 MLP 1-20-1 opt.step(), 1 thr: ≤ 5 µs |" in md
    assert "## Adam, float32" in md and "## RMSprop, float32" in md
    assert "command: `fastopt bench --quick" in md
    data = json.loads((out / "results.json").read_text())
    assert {r["case"] for r in data["results"]} == {"1e4", "mlp"}
    assert all(r["times"]["fastopt"] and r["times"]["probe"] for r in data["results"])
    assert "speed targets" in capsys.readouterr().out  # plain-text summary in the terminal


def test_module_entry_point_rejects_unknown_command(capsys):
    from fastopt.__main__ import main as cli
    assert cli(["nope"]) == 2
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_state", [1, 2])
def test_probe_adds_grad_to_every_written_buffer(dtype, n_state, rng):
    n = 40000  # several work items, unaligned start
    arrs = [rng.standard_normal(n + 1).astype(dtype)[1:] for _ in range(2 + n_state)]
    before = [a.copy() for a in arrs]
    names = ("param", "grad") + tuple(f"s{k}" for k in range(n_state))
    table = K.TensorTable([arrs], names, (False, True) + (False,) * n_state, 0)
    K.probe(table, n_state)
    np.testing.assert_array_equal(arrs[1], before[1])
    for k in [0] + list(range(2, 2 + n_state)):
        np.testing.assert_array_equal(arrs[k], before[k] + before[1])


@pytest.mark.parametrize("algo", list(NUMPY_OPTIMIZERS))
def test_numpy_baseline_matches_fastopt(algo, rng):
    spec = ALGOS[algo]
    shapes = [(7,), (65,), (3, 5)]
    ps = [fo.Parameter(rng.standard_normal(s)) for s in shapes]
    for p in ps:
        p.grad = rng.standard_normal(p.shape)
    opt = spec.make_fastopt(ps)
    opt.step()  # first step: state created by fastopt, then both continue from identical arrays
    params = [p.data.copy() for p in ps]
    state = [[opt.state[p][k].copy() for k in spec.keys] for p in ps]
    ref = NUMPY_OPTIMIZERS[algo](params, [p.grad for p in ps], state, **spec.numpy_kwargs)
    if hasattr(ref, "t"):
        ref.t = 1
    for _ in range(3):
        opt.step()
        ref.step()
    for p, q in zip(ps, params):
        np.testing.assert_allclose(p.data, q, rtol=1e-12, atol=1e-14)
