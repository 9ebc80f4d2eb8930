"""Shared fixtures: a seeded generator, parameter factories and the bit-exact snapshot used by error tests."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def make_array(rng: np.random.Generator, n: int, dtype, strided: bool = False) -> np.ndarray:
    """A float array of n elements; strided=True gives a non-contiguous view (every other element)."""
    if strided:
        base = rng.standard_normal(2 * n).astype(dtype)
        return base[::2]
    return rng.standard_normal(n).astype(dtype)


def snapshot(opt: fo.Optimizer) -> list:
    """Every parameter's bytes and every state value, exactly, in a comparable form."""
    out = []
    for g in opt.param_groups:
        out.append(tuple(sorted((k, repr(v)) for k, v in g.items() if k not in ("params", "param_names"))))
        for p in g["params"]:
            out.append((p.data.dtype.str, p.data.shape, p.data.tobytes()))
            st = opt.state.get(p, {})
            for k in sorted(st):
                v = st[k]
                out.append((k, (v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else repr(v)))
    return out
