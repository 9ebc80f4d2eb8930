"""The elementwise driver's prefetching path (csrc/fo_common.h, FO_PEELED) gives the bits of the one-call path.

With the prefetch on, an item runs its range function in chunks (after the alignment peel) and prefetches ahead;
the chunks split the elements as the peel does, so every size and every start offset must give the same bits as
the path without prefetch. The driver's settings are globals of the extension (csrc/table.c), set here through
ctypes: fo_pf_min = 0 turns the prefetch on even for these small, in-cache calls."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import fastopt as fo
from fastopt import _kernels

KNOBS = ("fo_pf_ahead", "fo_pf_chunk", "fo_pf_stride", "fo_pf_min", "fo_pf_hint")


@pytest.fixture
def knobs():
    lib = ctypes.CDLL(_kernels.__file__)
    k = {n: ctypes.c_int64.in_dll(lib, n) for n in KNOBS}
    saved = {n: v.value for n, v in k.items()}
    yield k
    for n, v in saved.items():
        k[n].value = v


def _tensors(dtype, sizes, seed):
    """Parameters and gradients of the given sizes, each a view at an odd element offset into a larger array."""
    rng = np.random.default_rng(seed)
    out = []
    for j, n in enumerate(sizes):
        off = (3 * j + 1) % 17
        p = (rng.standard_normal(n + off + 1).astype(dtype))[off:off + n]
        g = (rng.standard_normal(n + 2 * off + 1).astype(dtype))[2 * off:2 * off + n]
        out.append((p, g))
    return out


def _run(make, dtype, sizes, steps=2):
    params = []
    for p, g in _tensors(dtype, sizes, 7):
        q = fo.Parameter(p.copy())
        q.grad = g.copy()
        params.append(q)
    opt = make(params)
    for _ in range(steps):
        opt.step()
    return [p.data.copy() for p in params] + [np.asarray(v).copy() for p in params
                                               for v in opt.state[p].values() if isinstance(v, np.ndarray)]


MAKERS = {
    "adam": lambda ps: fo.Adam(ps, lr=1e-2),
    "adamw_amsgrad": lambda ps: fo.AdamW(ps, lr=1e-2, amsgrad=True),  # 5 buffers
    "sgd_momentum": lambda ps: fo.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("chunk", [64, 192, 4096])
def test_chunked_prefetch_gives_the_unchunked_bits(knobs, name, dtype, chunk):
    sizes = list(range(0, 3001)) + [16384 + 5, 3 * 16384 - 1]  # every size to 3000, and multi-item tensors
    knobs["fo_pf_ahead"].value = 0  # off: one range call per item, as before the prefetch
    want = _run(MAKERS[name], dtype, sizes)
    knobs["fo_pf_ahead"].value = 512
    knobs["fo_pf_chunk"].value = chunk
    knobs["fo_pf_min"].value = 0
    got = _run(MAKERS[name], dtype, sizes)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()

