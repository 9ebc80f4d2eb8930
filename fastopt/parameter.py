"""``Parameter``: the array an optimizer updates in place, and its gradient."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Parameter"]


class Parameter:
    r"""A float32 or float64 array that optimizers update **in place**, with its gradient.

    ``.data`` is the ndarray itself (no copy is made when an ndarray is given, so the caller's array is what
    changes); ``.grad`` is an ndarray of the same shape and dtype, or None. ``np.asarray(p)`` gives ``.data``.
    Parameters hash by identity, like ``torch.nn.Parameter``.

    Args:
        data (array_like): the values. An ndarray is used as it is; anything else goes through
            ``np.asarray`` (Python floats become float64).
        name (str, optional): a label used in ``repr`` (default: None).

    Example:
        >>> w = Parameter(np.zeros(3, np.float32))
        >>> w.grad = np.ones(3, np.float32)
    """

    __slots__ = ("data", "grad", "name", "__weakref__")

    def __init__(self, data: Any, name: str | None = None) -> None:
        arr = data if isinstance(data, np.ndarray) else np.asarray(data)
        if arr.dtype not in (np.float32, np.float64) and not (arr.dtype.name in ("float16", "bfloat16")
                                                               and arr.dtype.itemsize == 2):
            raise TypeError(f"Parameter data must be float32 or float64 (or float16/bfloat16 for Adam/AdamW), "
                            f"got {arr.dtype}")
        self.data: np.ndarray = arr
        self.grad: np.ndarray | None = None
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if dtype is None and not copy:
            return self.data
        return np.array(self.data, dtype=dtype, copy=True if copy is None else copy)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        grad = "None" if self.grad is None else "set"
        return f"Parameter{label}(shape={self.data.shape}, dtype={self.data.dtype}, grad={grad})"
