"""The ``fastopt`` command line: --version, --help, and what bench and demo write and print."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastopt
from fastopt.__main__ import COMMANDS, main
from fastopt._progress import Progress
from fastopt.bench import new_out_dir

QUICK = ["--quick", "--cases", "1e4", "--algos", "adam", "--threads", "1", "--rounds", "1", "--batch-ms", "0.2"]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fastopt {fastopt.__version__}"


def test_python_m_fastopt_version():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(fastopt.__file__).resolve().parent.parent),
                                                    env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "fastopt", "--version"], capture_output=True, text=True,
                          timeout=60, env=env, cwd=Path(fastopt.__file__).resolve().parent.parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"fastopt {fastopt.__version__}"


def test_help_lists_each_command_on_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        lines = [ln for ln in out.splitlines() if ln.split()[:1] == [name]]
        assert len(lines) == 1 and len(lines[0].split()) > 3, out
    assert main([]) == 2  # no command: usage on stderr, an error status


def test_bench_default_output_is_a_new_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench").mkdir()
    tracked = tmp_path / "bench" / "RESULTS.md"
    tracked.write_text("tracked results\n")
    assert main(["bench", *QUICK]) == 0
    made = [p for p in tmp_path.iterdir() if p.name != "bench"]
    assert len(made) == 1 and made[0].name.startswith("fastopt-bench-") and made[0].is_dir()
    assert (made[0] / "RESULTS.md").exists() and (made[0] / "results.json").exists()
    assert tracked.read_text() == "tracked results\n"
    captured = capsys.readouterr()
    assert str(made[0] / "RESULTS.md") in captured.out or "RESULTS.md" in captured.out
    # a second run gets its own directory, even within the same second
    first = new_out_dir(str(tmp_path))
    os.makedirs(first)
    assert new_out_dir(str(tmp_path)) != first


def test_bench_out_bench_rewrites_bench(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", *QUICK, "--out", "bench"]) == 0
    assert "fastopt benchmark results" in (tmp_path / "bench" / "RESULTS.md").read_text()


def test_bench_terminal_output_is_plain_words(tmp_path, capsys):
    assert main(["bench", *QUICK, "--cases", "1e4,mlp", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    for internal in ("**", "issue", "PARALLEL_MIN", "`"):
        assert internal not in text, (internal, text)
    assert "target met" in text or "TARGET NOT MET" in text
    assert "measured:" in text
    assert "[#" not in captured.err  # no progress bar when stderr is not a terminal
    md = (tmp_path / "RESULTS.md").read_text()
    assert "issue" not in md and "PARALLEL_MIN" not in md


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal():
    tty, pipe = FakeTTY(), io.StringIO()
    for stream in (tty, pipe):
        with Progress(4, "job", stream=stream) as bar:
            for i in range(5):
                bar.update(i, f"step {i}")
    assert pipe.getvalue() == ""
    out = tty.getvalue()
    assert "\r" in out and "job [" in out and "4/4" in out and "step 3" in out
    assert out.endswith("\r")  # the bar is cleared at the end, leaving the line for the results


def test_demo_epochs_out_and_progress(tmp_path, capsys):
    seen = []
    from fastopt.demo import run
    res = run(epochs=2, on_epoch=seen.append)
    assert seen == [1, 2] and len(res["epochs"]["Adam"]) == 2
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 epochs" in out and "Adam" in out
    if "loss curves written to" in out:
        assert (tmp_path / "fastopt_demo.png").stat().st_size > 1000


def test_demo_rejects_zero_epochs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--epochs", "0"])
    assert exc.value.code == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
