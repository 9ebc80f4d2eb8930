"""The main job: `fastopt demo` trains the four networks and reports; the command line dispatches."""
from __future__ import annotations

import numpy as np

import fastopt as fo
from fastopt.__main__ import main as cli_main
from fastopt.demo import MLP, run


def test_demo_trains_every_optimizer():
    result = run(epochs=3)
    for name, losses in result["epochs"].items():
        assert len(losses) == 3 and all(np.isfinite(losses))
    # adaptive methods fit the parabola far better than plain SGD within a few epochs, as in the tutorial
    assert result["epochs"]["Adam"][-1] < 0.5 * result["epochs"]["SGD"][-1]
    assert result["epochs"]["RMSprop"][-1] < 0.5 * result["epochs"]["SGD"][-1]


def test_mlp_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    net = MLP(rng, dtype=np.float64)
    x = rng.uniform(-1, 1, (16, 1))
    y = x ** 2
    net.loss_and_grads(x, y)
    for p in net.parameters():
        g = p.grad.copy()
        flat = p.data.reshape(-1)
        for i in range(0, flat.size, 7):
            old = flat[i]
            flat[i] = old + 1e-6
            up = net.loss_and_grads(x, y)
            flat[i] = old - 1e-6
            down = net.loss_and_grads(x, y)
            flat[i] = old
            assert abs((up - down) / 2e-6 - g.reshape(-1)[i]) < 1e-6


def test_cli_demo_prints_table(capsys, tmp_path):
    assert cli_main(["demo", "--epochs", "2", "--out", str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr().out
    assert "epoch" in out and "Adam" in out and "RMSprop" in out


def test_cli_unknown_command(capsys):
    assert cli_main(["nope"]) == 2
    assert cli_main([]) == 2
