"""The thread pool behind the kernels: results are bit-identical for any thread count, and concurrent callers
(the GIL is released in kernels) each get exactly the serial result."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import fastopt as fo
from fastopt import _kernels as K

N = 3 * K.PARALLEL_MIN + 12345  # enough work for several threads, ragged last item


def _run(make, threads: int, seed: int = 7, steps: int = 3) -> list[np.ndarray]:
    old = fo.get_num_threads()
    fo.set_num_threads(threads)
    try:
        rng = np.random.default_rng(seed)
        ps = [fo.Parameter(rng.standard_normal(n).astype(np.float32)) for n in (N, 1000, K.PARALLEL_MIN)]
        opt = make(ps)
        for _ in range(steps):
            for p in ps:
                p.grad = rng.standard_normal(p.shape).astype(np.float32)
            opt.step()
        return [p.data.copy() for p in ps]
    finally:
        fo.set_num_threads(old)


MAKERS = [lambda ps: fo.Adam(ps, weight_decay=0.1), lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9),
          lambda ps: fo.RMSprop(ps, centered=True)]


@pytest.mark.skipif(not fo.have_openmp(), reason="built without threads")
@pytest.mark.parametrize("make", MAKERS)
def test_bit_identical_for_any_thread_count(make):
    ref = _run(make, 1)
    for threads in (2, 3, 8):
        for a, b in zip(ref, _run(make, threads)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not fo.have_openmp(), reason="built without threads")
def test_concurrent_callers_get_serial_results():
    ref = _run(MAKERS[0], 1, seed=3)
    out: dict[int, list[np.ndarray]] = {}

    def work(k: int) -> None:
        out[k] = _run(MAKERS[0], 2, seed=3)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for k in range(3):
        for a, b in zip(ref, out[k]):
            np.testing.assert_array_equal(a, b)
