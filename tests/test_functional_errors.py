"""A functional form that rejects its input leaves the parameters, the state buffers and the step counts as they
were: the counts are stored only after the kernel's checks have passed."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo

F = fo.functional


def z(params):
    return [np.zeros_like(p) for p in params]


# name -> call(params, grads, steps, bufs): bufs is the list of state-buffer lists the call mutates
CALLS = {
    "adam": lambda p, g, s, b: F.adam(p, g, b[0], b[1], b[2], s, amsgrad=True, beta1=0.9, beta2=0.999, lr=0.1,
                                      weight_decay=0.0, eps=1e-8, maximize=False),
    "adamw": lambda p, g, s, b: F.adamw(p, g, b[0], b[1], b[2], s, amsgrad=False, beta1=0.9, beta2=0.999, lr=0.1,
                                        weight_decay=0.01, eps=1e-8, maximize=False),
    "rmsprop": lambda p, g, s, b: F.rmsprop(p, g, b[0], b[1], b[2], s, lr=0.1, alpha=0.99, eps=1e-8,
                                            weight_decay=0.0, momentum=0.5, centered=True, maximize=False),
    "adagrad": lambda p, g, s, b: F.adagrad(p, g, b[0], s, lr=0.1, weight_decay=0.0, lr_decay=0.0, eps=1e-10,
                                            maximize=False),
    "adadelta": lambda p, g, s, b: F.adadelta(p, g, b[0], b[1], s, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0,
                                              maximize=False),
    "adamax": lambda p, g, s, b: F.adamax(p, g, b[0], b[1], s, eps=1e-8, beta1=0.9, beta2=0.999, lr=0.1,
                                          weight_decay=0.0, maximize=False),
    "nadam": lambda p, g, s, b: F.nadam(p, g, b[0], b[1], [1.0] * len(p), s, beta1=0.9, beta2=0.999, lr=0.1,
                                        weight_decay=0.0, momentum_decay=4e-3, eps=1e-8, maximize=False),
    "radam": lambda p, g, s, b: F.radam(p, g, b[0], b[1], s, beta1=0.9, beta2=0.999, lr=0.1, weight_decay=0.0,
                                        eps=1e-8, maximize=False),
    "asgd": lambda p, g, s, b: F.asgd(p, g, b[0], [np.array(1.0, np.float32) for _ in p],
                                      [np.array(0.1, np.float32) for _ in p], s, lambd=1e-4, lr=0.1, t0=1e6,
                                      alpha=0.75, weight_decay=0.0, maximize=False),
    "rprop": lambda p, g, s, b: F.rprop(p, g, b[0], [np.full_like(x, 0.1) for x in p], s, step_size_min=1e-6,
                                        step_size_max=50.0, etaminus=0.5, etaplus=1.2, maximize=False),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("as_array", [False, True], ids=["list", "ndarray"])
def test_rejected_call_changes_nothing(name, as_array):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(5), rng.standard_normal(4)]
    bufs = [z(params), z(params), z(params)]
    steps = np.array([3, 3]) if as_array else [3, 3]
    grads = [rng.standard_normal(5), rng.standard_normal(3)]  # the second has the wrong shape
    before = [p.copy() for p in params], [[a.copy() for a in b] for b in bufs]
    with pytest.raises((ValueError, TypeError)):
        CALLS[name](params, grads, steps, bufs)
    assert list(steps) == [3, 3]
    for p, q in zip(params, before[0]):
        np.testing.assert_array_equal(p, q)
    for b, c in zip(bufs, before[1]):
        for x, y in zip(b, c):
            np.testing.assert_array_equal(x, y)
    # and a valid call does advance the counts
    grads[1] = rng.standard_normal(4)
    CALLS[name](params, grads, steps, bufs)
    assert list(steps) == [4, 4]
