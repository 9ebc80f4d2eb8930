"""The benchmark runs unattended and writes its table; its NumPy baselines and probe compute what they claim.
No timing assertions."""
from __future__ import annotations

import json

import numpy as np
import pytest

import fastopt as fo
from fastopt import _kernels as K
from fastopt.bench import main
from fastopt.bench.core import Group, rows
from fastopt.bench.numpy_impl import NUMPY_OPTIMIZERS
from fastopt.bench.step import ALGOS
from cases import CASES, PRODIGY_CASES, TORCH_NAMES


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_state,n_in", [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1)])
def test_probe_adds_grad_and_extra_inputs_to_every_written_buffer(dtype, n_state, n_in, rng):
    n = 40000
    arrs = [rng.standard_normal(n + 1).astype(dtype)[1:] for _ in range(2 + n_state + n_in)]
    before = [a.copy() for a in arrs]
    names = ("param", "grad") + tuple(f"s{k}" for k in range(n_state)) + tuple(f"in{k}" for k in range(n_in))
    table = K.TensorTable([arrs], names, (False, True) + (False,) * n_state + (True,) * n_in, 0)
    K.probe(table, n_state, 2.0, n_in)
    add = before[1].copy()
    for k in range(2 + n_state, 2 + n_state + n_in):
        add += before[k]
        np.testing.assert_array_equal(arrs[k], before[k])  # read only
    np.testing.assert_array_equal(arrs[1], before[1])
    for k in [0] + list(range(2, 2 + n_state)):
        np.testing.assert_array_equal(arrs[k], before[k] + dtype(2.0) * add)
    with pytest.raises((RuntimeError, ValueError), match="probe: (malformed tensor table|the kernel rejected)"):
        K.probe(table, n_state + n_in, 1.0, 1)  # more buffers than the table has, or n_state + n_in > 3


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


def test_core_quick_run_writes_its_table(tmp_path):
    out = tmp_path / "core"
    assert main(["--core", "--quick", "--rounds", "1", "--batch-ms", "0.2", "--out", str(out)]) == 0
    md = (out / "RESULTS_core.md").read_text()
    for figure in ("| MLP 1-20-1 Adam, whole opt.step(), reused grads (µs) |",
                   "|   fresh / reused (the fresh row's time includes assigning the 4 .grad arrays) |",
                   "|   flat-buffer NumPy step / fastopt |", "|   200 tensors / one tensor of the same size |",
                   "| Adam, one tensor of 2e6: step (ms) |", "| SGD-momentum, one tensor of 2e6: step (ms) |",
                   "|   big / in cache |",
                   "|   200 tensors / one tensor with its param and grad in 4 KiB pages as the 200 tensors' are |"):
        assert figure in md
    assert not (out / "RESULTS.md").exists()  # the main table is never overwritten by --core
    groups = json.loads((out / "results_core.json").read_text())["groups"]
    timed = {k for g in groups for k, v in g["times"].items() if v and all(t > 0 for t in v)}
    assert {"reused fastopt", "fresh fastopt", "flat numpy", "200 tensors fastopt", "one tensor fastopt",
            "adam fastopt", "sgd fastopt", "adam probe", "adam in-cache fastopt"} <= timed
    pages = next(g for g in groups if g["name"] == "model200")
    assert "one tensor, 4 KiB pages fastopt" in timed or "one tensor, 4 KiB pages fastopt" in pages["skipped"]


def test_precision_bounds_table_is_computed_from_the_medians():
    """Each state mode's bound: in-cache ns/element against ns/element at size, and the best speed-up the two
    bounds leave (float32's time over the larger of the mode's in-cache time and the probe scaled to its bytes)."""
    from fastopt.bench.precision import IN_CACHE, _regimes
    c = IN_CACHE * 1e-9  # seconds per ns per element in cache
    big = {"elements": 10**6, "times": {"fastopt float32": [1e-3], "fastopt bfloat16": [0.8e-3],
                                        "fastopt int8": [2e-3], "probe": [0.9e-3],
                                        "in cache: fastopt float32": [0.6 * c], "in cache: fastopt bfloat16": [0.7 * c],
                                        "in cache: fastopt int8": [1.9 * c]}}
    body = {ln.split(" | ")[0].strip("| "): ln.strip("|").split(" | ") for ln in _regimes(big)
            if ln.startswith("| ") and not ln.startswith("| state")}
    assert body["float32"][1:] == ["0.600", "1.000", "1.67", "memory", "1.11×", "1.00× "]
    # bfloat16: in cache 0.7 ns against the probe's 0.9 * 20 / 28 = 0.643 ns: its arithmetic bounds it at 1/0.7
    assert body["bfloat16"][1:] == ["0.700", "0.800", "1.14", "arithmetic", "1.43×", "1.25× "]
    assert body["int8"][4:6] == ["arithmetic", "0.53×"]


def test_core_rows_are_the_ratios_of_the_medians():
    mlp = Group("mlp", times={"reused fastopt": [1e-6, 2e-6, 3e-6], "fresh fastopt": [2.5e-6],
                              "assign only": [0.2e-6],
                              "flat numpy": [12e-6], "reused torch fused": [80e-6], "fresh torch fused": [100e-6]})
    m200 = Group("model200", times={"200 tensors fastopt": [2e-3], "one tensor fastopt": [1.6e-3],
                                    "200 tensors torch fused": [5e-3]})
    big = Group("big", times={"adam fastopt": [2e-2], "sgd fastopt": [1e-2], "adam in-cache fastopt": [1e-5],
                              "sgd torch fused": [2e-2], "sgd probe": [0.9e-2]},
                bytes={"adam fastopt": 10 * 10**8, "sgd fastopt": 8 * 10**8}, elements={
                    "adam fastopt": 10**7, "sgd fastopt": 10**7, "adam in-cache fastopt": 10**4})
    listed = [(w.strip(), v, t) for w, v, t in rows([mlp, m200, big])]
    table = {w: (v, t) for w, v, t in listed}  # (labels that repeat per group are checked through listed)
    assert table["MLP 1-20-1 Adam, whole opt.step(), reused grads (µs)"][0] == "2.00"
    assert table["flat-buffer NumPy step / fastopt"][0] == "6.00×"
    assert table["fresh / reused (the fresh row's time includes assigning the 4 .grad arrays)"] == ("1.250×",
                                                                                                  "≤ 1.3×")
    assert table["fresh step alone / reused: (fresh − assigning) / reused"] == ("1.150×", "≤ 1.3×")
    assert table["torch fused (fresh grad tensors) / fastopt (fresh)"][0] == "40.0×"
    assert table["200 tensors / one tensor of the same size"][0] == "1.250×"
    assert table["big / in cache"][0] == "2.000×"  # 2 ns against 1 ns per element
    shares = [v for w, v, t in listed if w.startswith("share of the best GB/s")]
    assert shares == ["62.5%", "100.0%"]  # Adam 50 GB/s, SGD 80 GB/s (the best)
    assert [v for w, v, t in listed if w == "same-traffic probe / fastopt"] == ["–", "0.900×"]
    assert [v for w, v, t in listed if w == "torch fused / fastopt"][-2:] == ["–", "2.00×"]


@pytest.mark.parametrize("key", list(ALGOS))
def test_bench_rows_are_registry_optimizers(key):
    """Every benchmarked configuration is an optimizer of the case registry, compared with the torch class the
    parity tests use."""
    algo = ALGOS[key]
    opt = algo.make_fastopt([fo.Parameter(np.zeros(3))])
    wrapper = isinstance(opt, fo.Lookahead)
    if wrapper:  # the optimizer it wraps is the registry's; its reference column is the wrapper's package
        opt = opt.optimizer
    name = type(opt).__name__
    assert name in {c[0] for c in CASES} | ({"Prodigy"} if PRODIGY_CASES else set())  # (its own registry)
    assert algo.torch_name == (None if wrapper else TORCH_NAMES[name])
    assert all(opt.defaults[k] == v for k, v in algo.torch_kwargs.items())  # torch runs the same options
