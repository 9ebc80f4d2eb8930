"""LAMB's and LARS's reduce-then-update driver (csrc/fo_reduce.h) runs a small tensor's two passes back to back on
one thread (pass 2 then reads the tensor from cache) and a large tensor's pass 1 over the thread pool before its pass
2: every tensor gets the same bits on either path and for any thread count; and LAMB's benchmark probe
(csrc/probe_two_pass.c) moves what its note says, in that schedule."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo
from fastopt import _kernels as K
from helpers import num_threads, requires_openmp
from reference import REFERENCES

# Element counts around fo_reduce.h's 2 MiB line (LAMB float32: 16 bytes per element, 131072 elements; float64 half
# that; LARS 12 / 24 bytes): one item, several 16384-element items, just below and above the line, and well beyond.
SIZES = [7, 16384, 16385, 50000, 65536, 65537, 131072, 131073, 300001]
CASES = [("LAMB", dict(lr=1e-2, weight_decay=1e-2)),
         ("LAMB", dict(lr=1e-2, weight_decay=1e-2, weight_decouple=False, maximize=True)),
         ("LARS", dict(lr=1e-2, weight_decay=1e-4)),
         ("LARS", dict(lr=1e-2, weight_decay=1e-3, momentum=0.0))]
STEPS = 3


def _shape(name: str, n: int) -> tuple[int, ...]:
    return (n, 1) if name == "LARS" else (n,)  # LARS adapts only arrays of more than one dimension


def _run(name: str, kw: dict, dtype, sizes: list[int], seed: int) -> list[np.ndarray]:
    """The parameters after STEPS steps of one optimizer over tensors of these sizes (gradients from seed, per
    tensor by its size, so a tensor gets the same gradients alone or in a list)."""
    ps = [fo.Parameter(np.random.default_rng([seed, n]).standard_normal(_shape(name, n)).astype(dtype))
          for n in sizes]
    opt = getattr(fo, name)(ps, **kw)
    for step in range(STEPS):
        for p, n in zip(ps, sizes):
            p.grad = np.random.default_rng([seed, n, step + 1]).standard_normal(p.data.shape).astype(dtype)
        opt.step()
    return [p.data.copy() for p in ps]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_each_tensor_has_the_bits_of_itself_alone_for_any_thread_count(case, dtype):
    requires_openmp()
    name, kw = CASES[case]
    with num_threads(1):
        alone = [_run(name, kw, dtype, [n], case)[0] for n in SIZES]
    for threads in (1, 2):  # the list is large enough (> FO_PARALLEL_MIN elements) to run on 2 threads
        with num_threads(threads):
            together = _run(name, kw, dtype, SIZES, case)
        for n, a, b in zip(SIZES, alone, together):
            assert a.tobytes() == b.tobytes(), f"{name} {np.dtype(dtype).name} size {n}, {threads} threads"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_both_paths_follow_the_reference(case, dtype):
    name, kw = CASES[case]
    got = _run(name, kw, dtype, SIZES, case)
    rtol = 2e-5 if dtype == np.float32 else 1e-11
    for n, x in zip(SIZES, got):
        p = np.random.default_rng([case, n]).standard_normal(_shape(name, n)).astype(dtype)
        state: dict = {}
        for step in range(STEPS):
            g = np.random.default_rng([case, n, step + 1]).standard_normal(p.shape).astype(dtype)
            REFERENCES[name](p, g, state, **kw)
        np.testing.assert_allclose(x, p, rtol=rtol, atol=rtol * 1e-2, err_msg=f"{name} size {n}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probe_two_pass_moves_what_it_says(dtype):
    """Pass 1: a += c g, b += c p; pass 2: p += c a + c b (the new a, b), on every tensor whichever path it takes."""
    rng = np.random.default_rng(5)
    rows = [[rng.standard_normal(n).astype(dtype) for _ in range(4)] for n in SIZES]
    want = []
    for p, g, a, b in rows:
        a2, b2 = a + g * 2, b + p * 2
        want.append((p + a2 * 2 + b2 * 2, a2, b2))
    table = K.TensorTable(rows, ("param", "grad", "a", "b"), (False, True, False, False), 0)
    kernel = K.KERNELS["probe_two_pass"]
    kernel(table, kernel.pack({"scale": 2.0}))
    for (p, _, a, b), (wp, wa, wb) in zip(rows, want):
        assert p.tobytes() == wp.tobytes() and a.tobytes() == wa.tobytes() and b.tobytes() == wb.tobytes()


def test_bench_lamb_probe_is_that_kernel_at_scale_zero():
    """LAMB's bench probe runs probe_two_pass over param, grad, exp_avg, exp_avg_sq (10 values per element: pass 1
    reads 4 and writes 2, pass 2 reads 3 and writes 1, LAMB's minimum), one call over every tensor, at scale 0."""
    from fastopt.bench import step as S

    algo = S.ALGOS["lamb"]
    assert algo.probe_kernel == "probe_two_pass" and algo.probe_passes is None
    assert algo.bytes_per_element(1) == algo.min_values == (4 + 2) + (3 + 1)
    skipped: dict = {}
    shapes = [(5,), (300,), (140000,)]
    calls = []
    real = K.KERNELS["probe_two_pass"]

    class Spy:
        def pack(self, values):
            calls.append(dict(values))
            return real.pack(values)

        def __call__(self, t, hyper):
            calls.append((t.n_tensors, t.total))
            real(t, hyper)

    kernels = dict(K.KERNELS)
    try:
        K.KERNELS["probe_two_pass"] = Spy()
        steps = S.build(algo, np.dtype(np.float32), shapes, ["probe"], skipped)
    finally:
        K.KERNELS.clear()
        K.KERNELS.update(kernels)
    steps["probe"]()
    assert calls == [{"scale": 0.0}, (3, 140305)]
