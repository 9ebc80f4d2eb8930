"""The same inputs give bit-identical results for any thread count (work is split in fixed chunks)."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from cases import CASES, case_id, make
from helpers import assert_arrays_equal, num_threads, requires_openmp


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_one_and_two_threads_bit_identical(case):
    name, kw = case
    requires_openmp()
    sizes = [700_001, 3, 130_000]  # large enough that the kernel runs in parallel

    def run(threads):
        rng = np.random.default_rng(0)
        params = [fo.Parameter(rng.standard_normal(n).astype(np.float32)) for n in sizes]
        opt = make(name, params, **kw)
        with num_threads(threads):
            for _ in range(3):
                for p in params:
                    p.grad = rng.standard_normal(p.shape).astype(np.float32)
                opt.step()
        return [p.data.copy() for p in params]

    assert_arrays_equal(run(1), run(2))
