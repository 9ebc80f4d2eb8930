"""Option checks the Schedule-Free and Prodigy specs share (beyond ``fastopt._validate``'s torch ones): a finite
real number and a non-negative int, with the messages ``Invalid <name> value: ...``."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _validate as V


def finite(name: str, low: float | None = None) -> Callable[[Any], float]:
    """A check: a finite real number (at least ``low`` if given)."""
    def check(v: Any) -> float:
        return V.number(name, v, low=low)  # finite, NumPy scalars and 0-d arrays unwrapped
    return check


def whole(name: str) -> Callable[[Any], int]:
    """A check: a non-negative int (TypeError for another type, ValueError below 0)."""
    def check(v: Any) -> int:
        v = V.scalar(name, v, f"Invalid {name} value: {v!r} (expected a non-negative int)")  # NumPy ints unwrapped
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"Invalid {name} value: {v!r} (expected a non-negative int)")
        if v < 0:
            raise ValueError(f"Invalid {name} value: {v!r} (expected a non-negative int)")
        return int(v)
    return check
