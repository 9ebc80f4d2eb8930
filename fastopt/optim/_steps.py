"""Step counters for the functional forms: a list of ints or an integer ndarray, one count per parameter.

A functional form first computes the new counts with ``next_steps`` (which checks them and writes nothing), runs
its kernel — which checks every array before writing — and only then stores the counts with ``store_steps``, so a
rejected call leaves the counts as they were.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validate as V


def next_steps(state_steps: Any, n: int) -> list[int]:
    """Check ``state_steps`` (one count per parameter) and return each count plus one; nothing is written."""
    if isinstance(state_steps, np.ndarray):
        if state_steps.shape != (n,) or state_steps.dtype.kind not in "iu" or not state_steps.flags.writeable:
            raise ValueError(f"state_steps must be a writeable integer array of shape ({n},)")
        if n and state_steps.min() < 0:
            raise ValueError("state_steps must be non-negative")
        if n and state_steps.max() >= np.iinfo(state_steps.dtype).max:
            raise ValueError(f"state_steps would overflow its dtype {state_steps.dtype}")
        return [int(s) + 1 for s in state_steps]
    if not isinstance(state_steps, list) or len(state_steps) != n:
        raise ValueError(f"state_steps must be a list of {n} step counts (or an integer ndarray)")
    return [V.step_count(s, None, None, f"state_steps[{i}]") + 1 for i, s in enumerate(state_steps)]


def store_steps(state_steps: Any, steps: list[int]) -> None:
    """Write counts returned by ``next_steps`` back into ``state_steps`` (the list or array it checked)."""
    state_steps[:] = steps
