"""State buffers allocated with their parameter's alignment.

NumPy guarantees only 16-byte alignment, so a parameter may start anywhere in a 64-byte cache line. The kernels
start their vector loops where the parameter reaches a 64-byte boundary (``fo_align_head`` in csrc/fo_common.h);
a state buffer that sits at the same offset within its cache line is then aligned at the same element, and no
vector store splits a cache line (measured: Adam float32 at 1e6 elements, 16/32/48-byte offsets ~300 us,
co-aligned ~190 us). The buffers are ordinary C-contiguous arrays (views into a slightly larger allocation).
"""
from __future__ import annotations

import numpy as np

__all__ = ["zeros_like_aligned", "copy_aligned"]

_LINE = 64


def zeros_like_aligned(data: np.ndarray) -> np.ndarray:
    """Zeros of ``data``'s shape and dtype, C-contiguous, at ``data``'s offset within a 64-byte line."""
    dt = data.dtype
    n = data.size
    item = dt.itemsize
    if n == 0 or data.ctypes.data % item:
        return np.zeros(data.shape, dtype=dt)
    raw = np.zeros(n + _LINE // item, dtype=dt)
    want = data.ctypes.data % _LINE
    have = raw.ctypes.data % _LINE
    shift = ((want - have) % _LINE) // item
    return raw[shift:shift + n].reshape(data.shape)


def copy_aligned(value: np.ndarray, data: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``value`` (same shape and dtype as ``data``) at ``data``'s offset in a 64-byte line."""
    out = zeros_like_aligned(data)
    np.copyto(out, value)
    return out
