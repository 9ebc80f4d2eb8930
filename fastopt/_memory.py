"""State buffers allocated with their parameter's alignment.

NumPy guarantees only 16-byte alignment, so a parameter may start anywhere in a 64-byte cache line. The kernels
start their vector loops where the parameter reaches a 64-byte boundary (``fo_align_head`` in csrc/fo_common.h);
a state buffer that sits at the same offset within its cache line is then aligned at the same element, and no
vector store splits a cache line (measured: Adam float32 at 1e6 elements, 16/32/48-byte offsets ~300 us,
co-aligned ~190 us). The buffers are ordinary C-contiguous arrays (views into a slightly larger allocation).

``zeros_aligned_many`` makes the new buffers of one state key for a whole group at once, as consecutive views of ONE
allocation (an arena), each still at its parameter's offset within a cache line. Many small separate arrays live in
the malloc heap in 4 KiB pages, scattered: a kernel streaming through them restarts the hardware prefetchers and
misses the TLB at every page and every tensor. One large allocation is contiguous and NumPy asks the kernel for
transparent huge pages for it (allocations of 4 MiB and more), so the state streams of a 200-tensor model run as
they do for one tensor (README "Speed": the 200-tensor model). The views are ordinary arrays: replacing one, saving
or loading a state dict works as for separate arrays; the allocation is freed when its last view goes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["zeros_like_aligned", "zeros_aligned_many", "copy_aligned"]

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


def zeros_aligned_many(datas: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``[zeros_like_aligned(d) for d in datas]``, but consecutive views of one allocation when there are two or more
    of one dtype (each C-contiguous, of its array's shape and dtype, at its array's offset within a 64-byte line,
    disjoint from the others); an empty or element-misaligned array gets its own zeros, as in zeros_like_aligned."""
    if len(datas) < 2 or len({d.dtype for d in datas}) != 1:
        return [zeros_like_aligned(d) for d in datas]
    dt = datas[0].dtype
    item = dt.itemsize
    pad = _LINE // item
    placed = [d.size > 0 and d.ctypes.data % item == 0 for d in datas]
    raw = np.zeros(sum(d.size + pad for d, ok in zip(datas, placed) if ok) + pad, dtype=dt)
    base = raw.ctypes.data
    out = []
    at = 0  # elements into raw
    for d, ok in zip(datas, placed):
        if not ok:
            out.append(np.zeros(d.shape, dtype=dt))
            continue
        at += ((d.ctypes.data - (base + at * item)) % _LINE) // item
        out.append(raw[at:at + d.size].reshape(d.shape))
        at += d.size
    return out


def copy_aligned(value: np.ndarray, data: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``value`` (same shape and dtype as ``data``) at ``data``'s offset in a 64-byte line."""
    out = zeros_like_aligned(data)
    np.copyto(out, value)
    return out
