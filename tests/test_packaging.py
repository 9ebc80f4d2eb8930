"""Packaging: the unbuilt-source-tree message, the one version source, the stub, and (in CI, where .ci/run
passes their paths) the contents of the built sdist and repaired wheel and where fastopt was imported from."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import fastopt

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PKG = Path(fastopt.__file__).resolve().parent


def test_unbuilt_source_tree_says_what_to_do(tmp_path):
    """A copy of the package's Python files with the .pyx but no compiled extension, imported from its root."""
    src = tmp_path / "fastopt"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.libs"))
    (src / "_kernels.pyx").touch()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -S: no site-packages, so an editable install's import hook cannot pick its own tree instead of this one
    # (the check runs before fastopt imports anything from site-packages)
    proc = subprocess.run([sys.executable, "-S", "-c", "import fastopt"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastopt's compiled extension (fastopt._kernels) is not built in this "
                           f"source tree ({src})"), proc.stderr
    assert "pip install -e ." in last and "build_ext --inplace" in last and "another directory" in last
    assert "partially initialized" not in proc.stderr


def test_version_is_written_once():
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", fastopt.__version__)
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("pyproject.toml is not next to tests/")
    text = pyproject.read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.M), "pyproject.toml writes the version itself"
    assert 'dynamic = ["version"]' in project
    assert 'version = {attr = "fastopt.__version__"}' in text
    assert fastopt.__version__ in (ROOT / "CHANGELOG.md").read_text() or "Unreleased" in (ROOT / "CHANGELOG.md").read_text()


def test_installed_metadata_matches_the_version():
    from importlib import metadata
    try:
        dist = metadata.distribution("fastopt")
    except metadata.PackageNotFoundError:
        pytest.skip("fastopt is not installed (an in-place build)")
    if Path(str(dist.locate_file("fastopt"))).resolve() != PKG and not os.environ.get("FASTOPT_EXPECT_INSTALLED"):
        pytest.skip("the installed fastopt is not the one imported")
    assert dist.version == fastopt.__version__


def test_stub_is_current():
    gen = ROOT / "tools" / "gen_kernels_stub.py"
    if not gen.exists() or not (ROOT / "fastopt" / "_kernels.pyx").exists():
        pytest.skip("not run from a source tree")
    proc = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_stub_names_every_kernel_the_python_modules_use():
    """Each ``K.name`` the Python modules use is declared in the stub (mypy would flag it, this says which)."""
    stub = (PKG / "_kernels.pyi").read_text()
    declared = set(re.findall(r"^(?:def |class |)(\w+)\b", stub, re.M))
    used = set()
    for path in PKG.rglob("*.py"):
        used |= set(re.findall(r"\bK\.([A-Za-z_]\w*)", path.read_text()))
    assert used and used <= declared, sorted(used - declared)


def test_py_typed_ships():
    assert (PKG / "py.typed").exists() and (PKG / "_kernels.pyi").exists()


def test_imported_from_the_installed_package():
    prefix = os.environ.get("FASTOPT_EXPECT_INSTALLED")
    if not prefix:
        pytest.skip("FASTOPT_EXPECT_INSTALLED is set by .ci/run for the run against the installed wheel")
    assert str(PKG).startswith(os.path.realpath(prefix) + os.sep), f"fastopt imported from {PKG}"
    assert "site-packages" in PKG.parts


def test_wheel_holds_only_what_runs_at_import_time():
    path = os.environ.get("FASTOPT_WHEEL")
    if not path:
        pytest.skip("FASTOPT_WHEEL (the repaired wheel) is set by .ci/run")
    assert re.search(r"-manylinux_2_\d+_x86_64\.whl$", path), path
    names = zipfile.ZipFile(path).namelist()
    assert not [n for n in names if n.endswith((".c", ".pyx", ".pxd", ".pxi", ".h"))]
    assert {"fastopt/py.typed", "fastopt/_kernels.pyi"} <= set(names)
    assert any(re.fullmatch(r"fastopt\.libs/libgomp-[0-9a-f]+\.so[.\d]*", n) for n in names), "libgomp not bundled"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert [n for n in names if re.fullmatch(r"fastopt/_kernels\.cpython-.*\.so", n)]
    allowed = re.compile(r"(fastopt/.*\.(py|pyi|so)|fastopt/py\.typed|fastopt\.libs/.*|fastopt-[^/]+\.dist-info/.*)")
    assert [n for n in names if not n.endswith("/") and not allowed.fullmatch(n)] == []


def test_sdist_holds_everything_the_tests_need():
    path = os.environ.get("FASTOPT_SDIST")
    if not path:
        pytest.skip("FASTOPT_SDIST is set by .ci/run")
    with tarfile.open(path) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    tree = Path(os.environ.get("FASTOPT_SOURCE_TREE") or ROOT)  # the checkout the sdist was built from
    here = {str(p.relative_to(tree)) for d in ("tests", "examples") for p in (tree / d).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and "out" not in p.relative_to(tree).parts[1:2]}
    assert here and here - names == set(), "files of tests/ or examples/ missing from the sdist"
    for need in ("LICENSE", "CHANGELOG.md", "README.md", "MANIFEST.in", "setup.py", "pyproject.toml",
                 "fastopt/_kernels.pyx", "fastopt/_kernels.pxd", "fastopt/_kernels.pyi", "fastopt/py.typed",
                 "csrc/fastopt.h", "examples/README.md", "docs/conf.py", "tools/gen_kernels_stub.py"):
        assert need in names, need
    assert {n for n in names if n.endswith(".pxi")}, "no .pxi in the sdist"
    assert "fastopt/_kernels.c" not in names and not [n for n in names if n.endswith((".so", ".pyc"))]
