"""``import fastopt`` never imports mpi4py; ``import fastopt.distributed`` without mpi4py says how to install it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fastopt

PKG_ROOT = str(Path(fastopt.__file__).resolve().parent.parent)


def run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -c code`` in ``cwd`` (not the checkout, whose uncompiled fastopt/ would shadow an installed one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI", "HYDRA", "PMIX"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_ROOT, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_import_fastopt_does_not_import_mpi4py(tmp_path):
    proc = run("import sys, fastopt, fastopt.functional, fastopt.lr_scheduler\n"
               "print('mpi4py' in sys.modules, 'fastopt.distributed' in sys.modules)", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_distributed_without_mpi4py_says_how_to_install(tmp_path):
    # A meta-path finder that refuses mpi4py stands for an environment without it.
    proc = run("import sys\n"
               "class Hide:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name == 'mpi4py' or name.startswith('mpi4py.'):\n"
               "            raise ImportError('No module named ' + repr(name))\n"
               "sys.meta_path.insert(0, Hide())\n"
               "try:\n"
               "    import fastopt.distributed\n"
               "except ImportError as e:\n"
               "    print('ImportError:', e)\n"
               "else:\n"
               "    print('imported')\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ImportError:"), proc.stdout
    assert 'pip install "fastopt[mpi]"' in proc.stdout
