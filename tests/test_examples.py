"""Every script in examples/ runs with --quick in a fresh process and prints what it claims, so none of them rots.

Each runs with the interpreter running the tests, in a temporary directory, with the directory that holds the
imported fastopt package on PYTHONPATH (the checkout for an in-place build, site-packages for an installed one).
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastopt

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None

# script -> (a line its output must contain (regex), the PNG it writes or None, why it must be skipped or None)
CASES = {
    "optimizer_comparison.py": (r"lowest final loss: (Adam|RMSprop)", "optimizer_comparison.png", None),
    # fastopt's learned line must be within 1e-3 of the exact least-squares one (|difference| printed as x.xe-YY)
    "regression.py": (r"learned: +w = 1\.9\d+ +b = 4\.9\d+.*\n.*\|difference\| = \d\.\de-(0[4-9]|1\d)",
                      "regression.png", None),
    "sigmoid_mse.py": (r"max difference: SGD \S+, Adam \S+ \(float64 rounding\)", None, None),
    "digits_classifier.py": (r"test accuracy: (9\d|100)\.\d\d%", "digits_classifier.png",
                             None if importlib.util.find_spec("sklearn") else "scikit-learn is not installed"),
    "logistic_minimize.py": (r"fastopt and scipy agree", "logistic_minimize.png", None),
    "checkpoint_resume.py": (r"resumed run is bit-identical to the uninterrupted run", None, None),
    # the bounded fit must agree with scipy's nnls to 1e-5 and never evaluate outside the bounds
    "spectral_unmixing.py": (r"vs scipy\.optimize\.nnls \(pixel by pixel\): \d\.\de-(0[5-9]|1\d)\n"
                             r"evaluations outside the bounds: 0\n", "spectral_unmixing.png",
                             None if importlib.util.find_spec("scipy") else "scipy is not installed"),
    "data_parallel.py": (r"rank 0/1: test accuracy: (9\d|100)\.\d\d%", None,
                         None if importlib.util.find_spec("sklearn") and importlib.util.find_spec("mpi4py")
                         else "needs scikit-learn and mpi4py"),
    "autograd_tree.py": (r"final loss \S+ \(first epoch \S+\): decreased", "autograd_tree.png",
                         None if importlib.util.find_spec("autograd") else "autograd is not installed"),
    "precision_modes.py": (r"largest difference from float32: \d+\.\d\d accuracy points", None,
                           None if importlib.util.find_spec("sklearn") else "scikit-learn is not installed"),
}


def run_example(name: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    pkg_root = str(Path(fastopt.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, str(EXAMPLES / name), "--quick", *extra], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_quick(name, tmp_path):
    pattern, png, skip = CASES[name]
    if skip:
        pytest.skip(skip)
    out_dir = tmp_path / "out"
    proc = run_example(name, tmp_path, *(["--out-dir", str(out_dir)] if name != "sigmoid_mse.py" else []))
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert re.search(pattern, proc.stdout), f"{name}: no line matching {pattern!r} in\n{proc.stdout}"
    if png and HAVE_MPL:
        assert (out_dir / png).stat().st_size > 1000, f"{name} did not write {png}"
    if name != "sigmoid_mse.py":  # nothing written outside --out-dir (the scripts run with cwd = tmp_path)
        assert {p.name for p in tmp_path.iterdir()} <= {"out"}


def test_every_example_is_tested_and_documented():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
    assert scripts == sorted(CASES)
    readme = (EXAMPLES / "README.md").read_text()
    for name in scripts:
        assert f"examples/{name}" in readme, f"examples/README.md does not describe {name}"


MPIEXEC = Path(sys.executable).with_name("mpiexec")


@pytest.mark.parametrize("mode", [[], ["--zero"]], ids=["allreduce", "zero"])
def test_data_parallel_under_mpiexec_matches_one_process(mode, tmp_path):
    """``mpiexec -n 2 python -m mpi4py examples/data_parallel.py``: every rank prints the same final accuracy,
    and it is the single-process run's."""
    if importlib.util.find_spec("mpi4py") is None or importlib.util.find_spec("sklearn") is None:
        pytest.skip("needs mpi4py and scikit-learn")
    if not MPIEXEC.exists():
        pytest.skip(f"no mpiexec next to {sys.executable}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX", "HYDRA", "MPI"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(fastopt.__file__).resolve().parent.parent),
                                                    env.get("PYTHONPATH")) if p)
    env["MPIEXEC_TIMEOUT"] = "120"
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "mpi4py", str(EXAMPLES / "data_parallel.py"), "--quick",
           "--out-dir", str(tmp_path / "out"), *mode]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    accs = re.findall(r"rank (\d)/2: test accuracy: (\S+)%", proc.stdout)
    assert sorted(r for r, _ in accs) == ["0", "1"], proc.stdout
    assert len({a for _, a in accs}) == 1, f"the ranks disagree: {accs}"
    single = run_example("data_parallel.py", tmp_path, "--out-dir", str(tmp_path / "out1"))
    assert single.returncode == 0, single.stderr
    one = re.search(r"rank 0/1: test accuracy: (\S+)%", single.stdout)
    assert one and one.group(1) == accs[0][1], f"2 ranks: {accs[0][1]}%, 1 process: {one and one.group(1)}%"
    assert (tmp_path / "out" / "data_parallel_state.npz").stat().st_size > 1000
