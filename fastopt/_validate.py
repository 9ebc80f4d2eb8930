"""Every user-facing check, and the one place that formats messages naming a parameter.

Checks raise before anything is written: optimizers call them for every group first, then create state, then
run kernels. Messages follow torch's (``Invalid learning rate: -0.1``) and name the place
(``param_groups[1]['params'][3]: grad is float64, param is float32``).
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from . import _kernels as K

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def where(gi: int, j: int) -> str:
    return f"param_groups[{gi}]['params'][{j}]"


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def scalar(name: str, value: Any, msg: str | None = None) -> Any:
    """``value`` unwrapped to a Python scalar: a NumPy scalar by ``.item()``, a 0-d or 1-element array (or an object
    with ``__array__``, such as a 0-d torch tensor) by its one element; anything else is returned as given. An array
    with more or fewer than one element is a ValueError naming ``name`` (torch: "Tensor lr must be 1-element")."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) or (hasattr(value, "__array__") and not isinstance(value, (str, bytes))):
        arr = np.asarray(value)
        if arr.size != 1:
            prefix = f"{msg} " if msg else ""
            raise ValueError(f"{prefix}({name} must be a scalar or a 1-element array, got an array of shape "
                             f"{arr.shape})")
        return arr.reshape(()).item()
    return value


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, message: str | None = None,
           allow_inf: bool = False) -> float:
    """``value`` as a plain Python number (a NumPy scalar or a 1-element array is unwrapped; an int stays an int,
    anything else becomes a float), checked finite (``allow_inf``: ±Inf passes to the range check, for an option
    where infinity means "no limit", such as Prodigy's ``growth_rate``) and in [low, high] (or open ends).

    TypeError for what is not a real number (a bool, a complex, a string, None); ValueError for NaN, ±Inf, an
    array of more than one element, or a value out of range. Every message starts with ``message`` (torch's
    wording, e.g. ``Invalid learning rate: -0.1``) or ``Invalid {name} value: {value}``.
    """
    msg = message or f"Invalid {name} value: {value!r}"
    raw = scalar(name, value, msg)
    if not _is_real(raw):
        raise TypeError(f"{msg} ({name} must be a real number, got {type(raw).__name__})")
    try:
        v = float(raw)
    except OverflowError:
        raise ValueError(f"{msg} ({name} must be finite)") from None
    if math.isnan(v):
        raise ValueError(f"{msg} ({name} must not be NaN)")
    if math.isinf(v) and not allow_inf:
        raise ValueError(f"{msg} ({name} must be finite)")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(msg)
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(msg)
    return int(raw) if isinstance(raw, numbers.Integral) else v


def integer(name: str, value: Any, low: int, message: str | None = None) -> int:
    """``value`` as a Python int (a NumPy integer or a 1-element integer array is unwrapped), at least ``low``:
    TypeError for a bool, a float or anything not an integer, ValueError below ``low``."""
    raw = scalar(name, value)
    if isinstance(raw, (bool, np.bool_)) or not isinstance(raw, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if raw < low:
        raise ValueError(message or f"Invalid {name} value: {value} (expected >= {low})")
    return int(raw)


def positive_eps(name: str, v: float, message: str, why: str) -> float:
    """An ``eps`` that must stay positive in every supported dtype: refused if it is 0, or so small that it rounds to
    0 in float32 (at most 2**-150). ``why`` says what a zero would break; ``v`` is already checked finite and >= 0."""
    if not np.float32(v) > 0:
        raise ValueError(f"{message} ({name} must be positive and not round to 0 in float32, i.e. above 2**-150 = "
                         f"7.0e-46: {why})")
    return v


def lr(value: Any) -> float:
    return number("lr", value, low=0.0, message=f"Invalid learning rate: {value}")


def eps(value: Any) -> float:
    return number("eps", value, low=0.0, message=f"Invalid epsilon value: {value}")


def denominator_eps(value: Any) -> float:
    """The ``eps`` added to a denominator that is 0 where every gradient so far was 0 (Adam-family, RMSprop,
    Adamax, Adadelta, Muon): refused at 0 (0/0 would write NaN into the parameter from finite inputs)."""
    v = eps(value)
    return positive_eps("eps", v, f"Invalid epsilon value: {value}",
                        "with eps=0 a zero gradient gives 0/0 = NaN in the update")


def weight_decay(value: Any) -> float:
    return number("weight_decay", value, low=0.0, message=f"Invalid weight_decay value: {value}")


def momentum(value: Any, message: str | None = None) -> float:
    """A momentum factor in [0, 1] (torch refuses < 0; above 1 the buffer grows geometrically)."""
    msg = message or f"Invalid momentum value: {value}"
    v = number("momentum", value, low=0.0, message=msg)
    if v > 1:
        raise ValueError(f"{msg} (momentum must be <= 1: above 1 the momentum buffer grows without bound)")
    return v


def pair(name: str, value: Any) -> tuple[Any, Any]:
    """A 2-sequence (tuple or list; a 2-element 1-D array too), returned as a tuple of its two entries."""
    if isinstance(value, np.ndarray) and value.shape == (2,):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair of floats, got {value!r}")
    return value[0], value[1]


def betas(value: Any) -> tuple[float, float]:
    try:
        v0, v1 = pair("betas", value)
    except TypeError:
        raise TypeError(f"betas must be a pair of floats, got {value!r}") from None
    b0 = number("betas[0]", v0, low=0.0, high=1.0, high_open=True,
                message=f"Invalid beta parameter at index 0: {v0}")
    b1 = number("betas[1]", v1, low=0.0, high=1.0, high_open=True,
                message=f"Invalid beta parameter at index 1: {v1}")
    return b0, b1


def flag(name: str, value: Any) -> bool:
    """A bool option: a Python bool, a NumPy bool or a 1-element bool array (an int is refused, as a typo guard)."""
    raw = scalar(name, value, f"{name} must be a bool, got {value!r}")
    if not isinstance(raw, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(raw)


def param_data(p: Any, gi: int, j: int) -> np.ndarray:
    """The parameter's array, checked to be a writeable float32/float64 ndarray."""
    data = p.data
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{where(gi, j)}: data must be a numpy.ndarray, got {type(data).__name__}")
    if data.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where(gi, j)}: dtype {data.dtype} is not supported; expected float32 or float64")
    if not data.flags.writeable:
        raise ValueError(f"{where(gi, j)}: data is read-only; fastopt updates parameters in place")
    return data


def dtype_hint(param_dtype: np.dtype, grad_dtype: np.dtype) -> str:
    """A hint for the usual sources of a gradient whose dtype is not its parameter's (appended to the error)."""
    if param_dtype == np.float64 and grad_dtype == np.float32:
        return (" (JAX computes in float32 unless jax.config.update('jax_enable_x64', True); or cast the "
                "gradient: g.astype(np.float64))")
    if param_dtype == np.float32 and grad_dtype == np.float64:
        return (" (NumPy gives float64 when float32 arrays meet float64 arrays or Python-float arrays; cast the "
                "gradient: g.astype(np.float32), or keep the data float32)")
    if grad_dtype.kind in "iub":
        return " (an integer/bool gradient: check what the gradient function returns)"
    return f" (cast the gradient: g.astype(np.{param_dtype}))"


def grad(g: Any, gi: int, j: int, data: np.ndarray) -> np.ndarray:
    """A parameter's gradient ``g`` (read once from ``.grad``), checked against its data: ndarray, same shape and
    dtype, no shared memory."""
    if not isinstance(g, np.ndarray):
        hint = (" (a JAX, torch or autograd array: pass np.asarray(g); a read-only result is fine)"
                if hasattr(g, "__array__") else "")
        raise TypeError(f"{where(gi, j)}: grad must be a numpy.ndarray or None, got {type(g).__name__}{hint}")
    if g.dtype != data.dtype:
        raise TypeError(f"{where(gi, j)}: grad is {g.dtype}, param is {data.dtype}; they must match"
                        + dtype_hint(data.dtype, g.dtype))
    if g.shape != data.shape:
        raise ValueError(f"{where(gi, j)}: grad has shape {g.shape}, param has shape {data.shape}")
    if g.size and np.may_share_memory(g, data) and np.shares_memory(g, data):
        raise ValueError(f"{where(gi, j)}: grad shares memory with the parameter's data; pass a separate array")
    return g


def state_buffer(value: Any, key: str, data: np.ndarray, gi: int, j: int) -> np.ndarray:
    """A live state buffer: an ndarray of the parameter's shape and dtype that we can write."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where(gi, j)}: state '{key}' must be a numpy.ndarray, got {type(value).__name__}")
    if value.shape != data.shape or value.dtype != data.dtype:
        raise ValueError(f"{where(gi, j)}: state '{key}' is {value.dtype}{list(value.shape)}, "
                         f"expected {data.dtype}{list(data.shape)} like the parameter")
    if not value.flags.writeable:
        raise ValueError(f"{where(gi, j)}: state '{key}' is read-only")
    return value


MAX_STEP = 2**63 - 2  # the largest step count a state may hold: the next step must still fit in int64


def step_count(value: Any, gi: int | None, j: int | None, what: str = "state 'step'") -> int:
    """A step counter: a non-negative whole number (an int, or a 0-d array such as torch's float32 step)."""
    place = f"{where(gi, j)}: " if gi is not None and j is not None else ""  # callers give both or neither
    if isinstance(value, np.ndarray):
        if value.shape != ():
            raise ValueError(f"{place}{what} must be a scalar, got shape {value.shape}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{place}{what} must be a whole number, got {type(value).__name__}")
    if isinstance(value, (int, np.integer)):
        count = int(value)  # exactly: a float round trip would change counts beyond 2**53
        ok = count >= 0
    else:
        v = float(value)
        ok = v >= 0 and math.isfinite(v) and v == int(v)
        count = int(v) if ok else 0
    if not ok:
        raise ValueError(f"{place}{what} must be a non-negative whole number, got {value!r}")
    if count > MAX_STEP:
        raise ValueError(f"{place}{what} must be at most 2**63 - 2 (the kernels count steps in a signed 64-bit "
                         f"integer, and the next step adds one), got {value!r}")
    return count


def scalar_state(value: Any, key: str, gi: int, j: int) -> float:
    """A per-parameter scalar state value (a 0-d float32/float64 array, as torch's scalar tensors convert with
    np.asarray, or a real number), checked finite; returned as a float."""
    if isinstance(value, np.ndarray):
        if value.shape != () or value.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{where(gi, j)}: state '{key}' must be a 0-d float32 or float64 array, got "
                             f"{value.dtype}{list(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where(gi, j)}: state '{key}' must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{where(gi, j)}: state '{key}' must be finite, got {value!r}")
    return v


def no_overlap(entries: list[tuple[np.ndarray | None, bool, str, str]]) -> None:
    """Refuse, before anything is written, arrays that overlap where a write would corrupt another: ``entries`` are
    ``(array, written, place, what)`` (place such as ``param_groups[0]['params'][1]``, what such as ``data``, ``grad``
    or ``state 'exp_avg'``), across every group and dtype of a call. One sort-based check (``_kernels.find_overlap``):
    a written array overlapping itself, or any two arrays sharing memory where at least one is written."""
    pair = K.find_overlap([e[0] for e in entries], [e[1] for e in entries])
    if pair is None:
        return
    i, j = pair
    if i == j:
        _, _, place, what = entries[i]
        raise ValueError(f"{place}: {what} overlaps itself (a zero or overlapping stride); fastopt writes it in "
                         "place and needs every element in memory of its own")
    _, _, place_i, what_i = entries[i]
    _, _, place_j, what_j = entries[j]
    raise ValueError(f"{place_j}: {what_j} shares memory with {place_i} {what_i}; an array fastopt writes must not "
                     "overlap any other array of the step")


def grad_like(g: np.ndarray | Any, label: str, data: np.ndarray) -> np.ndarray:
    """A gradient that is read into another buffer, never written through (so it may share the data's memory):
    checked to be an ndarray of the data's dtype and shape. ``label`` names the place, e.g.
    ``param_groups[0]['params'][1]``; a None gradient is the caller's case."""
    if not isinstance(g, np.ndarray):
        raise TypeError(f"{label}: grad must be a numpy.ndarray or None, got {type(g).__name__}")
    if g.dtype != data.dtype:
        raise TypeError(f"{label}: grad is {g.dtype}, param is {data.dtype}; they must match")
    if g.shape != data.shape:
        raise ValueError(f"{label}: grad has shape {g.shape}, param has shape {data.shape}")
    return g
