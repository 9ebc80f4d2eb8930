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
    "autograd_tree.py": (r"final loss \S+ \(first epoch \S+\): decreased", "autograd_tree.png",
                         None if importlib.util.find_spec("autograd") else "autograd is not installed"),
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
