"""Step counters for the functional forms: a list of ints or an integer ndarray, advanced in place."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validate as V


def advance(state_steps: Any, n: int) -> list[int]:
    """Check ``state_steps`` (one count per parameter), then add one to each in place; return the new counts."""
    if isinstance(state_steps, np.ndarray):
        if state_steps.shape != (n,) or state_steps.dtype.kind not in "iu" or not state_steps.flags.writeable:
            raise ValueError(f"state_steps must be a writeable integer array of shape ({n},)")
        if n and state_steps.min() < 0:
            raise ValueError("state_steps must be non-negative")
        state_steps += 1
        return [int(s) for s in state_steps]
    if not isinstance(state_steps, list) or len(state_steps) != n:
        raise ValueError(f"state_steps must be a list of {n} step counts (or an integer ndarray)")
    new = [V.step_count(s, None, None, f"state_steps[{i}]") + 1 for i, s in enumerate(state_steps)]
    state_steps[:] = new
    return new
