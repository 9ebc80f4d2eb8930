"""Every ```python block of README.md runs, so the README cannot go stale.

The blocks run in order in one fresh interpreter, sharing one namespace (as a reader pastes them into one
session: later blocks use names defined by earlier ones), in an empty temporary directory (blocks may write
files such as ckpt.npz).

Opting a block out: a block that cannot run as written (it uses placeholders such as ``my_backward`` or
``batches``, or needs ``mpiexec``) is preceded, on the line right before its opening fence, by the marker
``<!-- not-tested: REASON -->`` with a non-empty reason. Nothing else skips a block.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastopt

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"^<!--\s*not-tested:\s*(?P<reason>.*?)\s*-->\s*$")

pytestmark = pytest.mark.skipif(not README.exists(), reason="README.md is not next to tests/")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line of the opening fence, code, opt-out reason or None) for each ```python block."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            assert j < len(lines), f"README.md:{start + 1}: ```python block is never closed"
            m = MARKER.match(lines[start - 1].strip()) if start > 0 else None
            blocks.append((start + 1, "\n".join(lines[start + 1:j]), None if m is None else m.group("reason")))
            i = j + 1
        else:
            i += 1
    return blocks


RUNNER = r"""
import json, sys, traceback
blocks = json.load(sys.stdin)
ns = {"__name__": "__readme__"}
for line, code in blocks:
    try:
        exec(compile(code, f"README.md:{line}", "exec"), ns)
    except BaseException:
        print(f"README.md block at line {line} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
print(f"ran {len(blocks)} blocks")
"""


def test_every_python_block_runs(tmp_path):
    blocks = python_blocks(README.read_text())
    run = [(line, code) for line, code, reason in blocks if reason is None]
    assert len(run) >= 5, f"only {len(run)} README blocks run; is the marker overused?"
    env = dict(os.environ, MPLBACKEND="Agg")
    # the directory holding the fastopt these tests import (an in-place build or the installed package)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(fastopt.__file__).resolve().parent.parent),
                                                    env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(run), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"ran {len(run)} blocks" in proc.stdout


def test_opt_outs_give_a_reason():
    for line, _, reason in python_blocks(README.read_text()):
        assert reason is None or reason.strip(), f"README.md:{line}: not-tested marker without a reason"


def test_block_parser_sees_markers():
    text = "x\n<!-- not-tested: needs mpiexec -->\n```python\nraise SystemExit\n```\n\n```python\nx = 1\n```\n"
    assert python_blocks(text) == [(3, "raise SystemExit", "needs mpiexec"), (7, "x = 1", None)]


def test_ci_runs_the_readme_test_command():
    ci = ROOT / ".ci" / "run"
    if not ci.exists():
        pytest.skip(".ci/run is not next to tests/")
    m = re.search(r"^pip install \"\.\[test\]\" && pytest tests", README.read_text(), re.M)
    assert m, "README.md no longer starts with the test command .ci/run runs"
    assert any(line.strip() == m.group(0) for line in ci.read_text().splitlines()), \
        ".ci/run does not run the README's test command verbatim"
