r"""Gradient clipping: ``torch.nn.utils``'s ``clip_grad_norm_``, ``clip_grad_value_``, ``get_total_norm`` and
``clip_grads_with_norm_`` over fastopt Parameters.

All gradients go through one C call (csrc/clip.c) whatever their number and dtypes (float32 and float64 may be
mixed). Norms are accumulated in double, in fixed chunks whose partial sums are combined in index order, so
the result is bit-identical for any thread count. A gradient that is not C-contiguous goes through a
contiguous scratch copy (copied back after an in-place operation).

Differences from torch, on purpose:

- the total norm is returned as a NumPy ``float64`` scalar computed in double, even for float32 gradients
  (torch returns a tensor of the gradients' dtype, accumulated in that dtype). For float32 gradients the two
  agree to float32 rounding; ours does not overflow where torch's float32 sum of squares does (|g| > 1e19).
  General ``p`` uses ``pow`` in double.
- ``max_norm`` and ``clip_value`` must be non-negative and not NaN (torch accepts negative values and then
  flips or replaces the gradients' signs), and ``total_norm`` must be non-negative or NaN.
- in-place functions check every gradient first: two gradients sharing memory, or a gradient sharing memory
  with a parameter, raise ValueError before anything is changed — even when the clipping coefficient is 1.
  A read-only gradient (``np.asarray`` of a JAX array, a memory map) is fine: when it has to be written, it is
  copied into a buffer fastopt owns (one per parameter, reused while shape and dtype stay the same) and that
  buffer becomes ``.grad``; the caller's array is never written.
- ``foreach`` is accepted (None, True or False) and has no effect: fastopt has one implementation, which
  gives the same result either way, so no choice of it can change what you get.
- gradients must be float32 or float64 (no float16/bfloat16/complex).
"""
from __future__ import annotations

import math
import types
import warnings
import weakref
from collections.abc import Iterable
from typing import Any, Union

import numpy as np

from . import _kernels as K
from .parameter import Parameter

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]

ParamsArg = Union[Parameter, Iterable[Parameter]]
ArraysArg = Union[np.ndarray, Iterable[np.ndarray]]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _contiguous(a: np.ndarray) -> bool:
    return a.flags.c_contiguous and a.flags.aligned


def _check_foreach(foreach: Any) -> None:
    if foreach is not None and not isinstance(foreach, (bool, np.bool_)):
        raise TypeError(f"foreach must be None, True or False, got {foreach!r}")


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _norm_type(norm_type: Any) -> float:
    if isinstance(norm_type, (bool, np.bool_)):
        raise TypeError(f"norm_type must be a number or 'inf', got {norm_type!r}")
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"norm_type must be a number or 'inf', got {norm_type!r}") from None
    if math.isnan(p):
        raise ValueError("norm_type must not be NaN")
    return p


def _nonneg(name: str, value: Any, allow_nan: bool = False) -> float:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if math.isnan(v):
        if allow_nan:
            return v
        raise ValueError(f"{name} must not be NaN")
    if v < 0:
        raise ValueError(f"{name} must be non-negative, got {v}")
    return v


def _param_list(parameters: Any, fname: str) -> list[Parameter]:
    if isinstance(parameters, Parameter):
        return [parameters]
    if isinstance(parameters, np.ndarray):
        raise TypeError(f"{fname} takes a Parameter or an iterable of Parameters (it clips their .grad), "
                        "got a numpy.ndarray; wrap it in fastopt.Parameter or use get_total_norm for arrays")
    if isinstance(parameters, (str, bytes, dict)) or not isinstance(parameters, Iterable):
        raise TypeError(f"{fname} takes a Parameter or an iterable of Parameters, got {type(parameters).__name__}")
    is_generator = isinstance(parameters, types.GeneratorType)
    params = list(parameters)
    if is_generator and not params:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"parameters[{i}] must be a fastopt.Parameter, got {type(p).__name__}")
    return params


def _grads(params: list[Parameter], writeable: bool) -> tuple[list[np.ndarray], list[str], list[Parameter]]:
    """The non-None gradients (checked), their names ``parameters[i].grad`` and their parameters.

    With ``writeable`` (the in-place functions), the one overlap check also runs over every gradient and every
    parameter: two gradients sharing memory, or a gradient sharing memory with any parameter (writing it would
    change the parameter), raise ValueError. Read-only gradients are allowed: :func:`_writable` swaps them for a
    buffer fastopt owns just before the first write."""
    grads, names, owners = [], [], []
    for i, p in enumerate(params):
        g = p.grad
        if g is None:
            continue
        name = f"parameters[{i}].grad"
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray or None, got {type(g).__name__}"
                            + (" (convert it with np.asarray)" if hasattr(g, "__array__") else ""))
        if g.dtype not in _FLOATS:
            raise TypeError(f"{name} has dtype {g.dtype}; expected float32 or float64")
        if g.shape != p.data.shape:
            raise ValueError(f"{name} has shape {g.shape}, the parameter has shape {p.data.shape}")
        grads.append(g)
        names.append(name)
        owners.append(i)
    if writeable and grads:
        datas = [p.data for p in params]
        pair = K.find_overlap(datas + grads, [False] * len(datas) + [True] * len(grads))
        if pair is not None:
            a, b = pair
            what = [f"parameters[{k}]" if k < len(datas) else names[k - len(datas)] for k in (a, b)]
            if a == b:
                raise ValueError(f"{what[0]} overlaps itself (zero or interleaved strides); clipping writes it "
                                 "in place")
            raise ValueError(f"{what[0]} and {what[1]} share memory; gradients are written in place, so each must "
                             "be a separate array that shares no memory with any parameter")
    return grads, names, [params[i] for i in owners]


# Read-only gradients (np.asarray of a JAX array, a broadcast view, a memory map) are clipped in a buffer fastopt
# owns: one per parameter, made the first time and reused while the shape and dtype stay the same, so a training
# loop that assigns a fresh read-only gradient every step allocates nothing after the first.
_BUFFERS: "weakref.WeakKeyDictionary[Parameter, np.ndarray]" = weakref.WeakKeyDictionary()


def _writable(grads: list[np.ndarray], owners: list[Parameter]) -> list[np.ndarray]:
    """``grads`` with every read-only one replaced (in the list and as its parameter's ``.grad``) by fastopt's
    buffer holding the same values. Called after every check has passed, right before the first write."""
    out = []
    for p, g in zip(owners, grads):
        if not g.flags.writeable:
            buf = _BUFFERS.get(p)
            if buf is None or buf.shape != g.shape or buf.dtype != g.dtype:
                buf = np.empty(g.shape, g.dtype)
                _BUFFERS[p] = buf
            np.copyto(buf, g)
            p.grad = buf
            g = buf
        out.append(g)
    return out


def _total_norm(grads: list[np.ndarray], names: list[str], p: float, error_if_nonfinite: bool) -> np.float64:
    if not grads:
        return np.float64(0.0)
    table = K.grad_table([g if _contiguous(g) else np.ascontiguousarray(g) for g in grads], False, names)
    try:
        total = K.grad_norm(table, p)
    finally:
        K.release_grad_table(table)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"the total norm of order {p:g} of the gradients is non-finite ({total}), so they "
                           "cannot be clipped; pass error_if_nonfinite=False to scale them by it anyway")
    return np.float64(total)


def _in_place(grads: list[np.ndarray], names: list[str], owners: list[Parameter], kernel: Any,
              *args: float) -> None:
    """Run ``kernel(table, *args)`` over the gradients in place, after every check: read-only gradients swapped
    for fastopt's buffers, strided ones through contiguous scratch copies written back afterwards."""
    grads = _writable(grads, owners)
    work, back = [], []
    for g in grads:
        if _contiguous(g):
            work.append(g)
        else:
            s = np.array(g, order="C", copy=True)
            work.append(s)
            back.append((g, s))
    table = K.grad_table(work, True, names)
    try:
        kernel(table, *args)
    finally:
        K.release_grad_table(table)
    for g, s in back:
        np.copyto(g, s)


def _scale(grads: list[np.ndarray], names: list[str], owners: list[Parameter], coef: float) -> None:
    if grads and coef != 1.0:  # g * 1 == g for every g: nothing to write (the checks have run)
        _in_place(grads, names, owners, K.grad_scale, coef)


def _clip_coef(max_norm: float, total_norm: float) -> float:
    """torch's coefficient min(max_norm / (total_norm + 1e-6), 1), with NaN kept (torch.clamp keeps NaN)."""
    denom = total_norm + 1e-6
    if denom == 0.0:  # only for total_norm == -1e-6, which the checks exclude; keep the division defined
        return 1.0
    coef = max_norm / denom
    return coef if math.isnan(coef) else min(coef, 1.0)


def get_total_norm(tensors: ArraysArg, norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> np.float64:
    r"""The ``norm_type``-norm of a list of arrays, as if they were concatenated — computed as torch does, as the
    norm of the vector of per-array norms.

    .. math::
        \|g\|_p = \Big(\sum_i \|g_i\|_p^p\Big)^{1/p},\quad \|g_i\|_p = \Big(\sum_k |g_{ik}|^p\Big)^{1/p};\qquad
        p=\infty: \max_i \|g_i\|_\infty,\quad p=-\infty: \min_i \|g_i\|_{-\infty},\quad
        p=0: \#\{i : \|g_i\|_0 \ne 0\}

    (for ``p = 0``, as in torch, the total counts the arrays that have a non-zero element; each array's own
    0-norm is its number of non-zero elements, NaN counting as non-zero). Accumulated in double; bit-identical
    for any thread count.

    Args:
        tensors (ndarray or iterable of ndarray): float32/float64 arrays (any strides; mixed dtypes allowed).
        norm_type (float or str, optional): the order ``p``: any real, ``inf``/``'inf'`` or ``-inf``
            (default: 2.0).
        error_if_nonfinite (bool, optional): raise RuntimeError if the total is NaN or infinite
            (default: False).
        foreach (bool, optional): accepted for torch compatibility; no effect (default: None).

    Returns:
        numpy.float64: the total norm (0.0 for an empty list).

    Raises:
        RuntimeError: ``p`` is ``inf``, ``-inf`` or negative and an array is empty (torch raises too), or the
            total is non-finite with ``error_if_nonfinite=True``.

    Example:
        >>> get_total_norm([np.array([3.0, 0.0]), np.array([4.0], np.float32)])
        np.float64(5.0)
    """
    p = _norm_type(norm_type)
    error_if_nonfinite = _check_flag("error_if_nonfinite", error_if_nonfinite)
    _check_foreach(foreach)
    if isinstance(tensors, Parameter):
        raise TypeError("get_total_norm takes arrays (gradients), got a Parameter; pass [p.grad for p in params]")
    arrays = [tensors] if isinstance(tensors, np.ndarray) else list(tensors)
    names = [f"tensors[{i}]" for i in range(len(arrays))]
    for name, a in zip(names, arrays):
        if isinstance(a, Parameter):
            raise TypeError(f"{name} is a Parameter; get_total_norm takes arrays (pass its .grad)")
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
        if a.dtype not in _FLOATS:
            raise TypeError(f"{name} has dtype {a.dtype}; expected float32 or float64")
    return _total_norm(arrays, names, p, error_if_nonfinite)


def clip_grads_with_norm_(parameters: ParamsArg, max_norm: float, total_norm: Any,
                          foreach: bool | None = None) -> None:
    r"""Scale the gradients in place by torch's coefficient for a given total norm.

    .. math::
        g \leftarrow g\cdot\min\Big(\frac{\text{max\_norm}}{\text{total\_norm} + 10^{-6}},\ 1\Big)

    The coefficient is computed in double and multiplied in each gradient's dtype; a NaN total makes every
    gradient NaN, as in torch. Gradients that are None are skipped.

    Args:
        parameters (Parameter or iterable of Parameter): whose ``.grad`` to scale.
        max_norm (float): the largest allowed norm (non-negative; ``inf`` disables clipping).
        total_norm (float, numpy scalar or 0-d array): the norm to scale by, e.g. from :func:`get_total_norm`.
        foreach (bool, optional): accepted for torch compatibility; no effect (default: None).

    Raises:
        ValueError: negative or NaN ``max_norm``, negative ``total_norm``, gradients
            sharing memory (checked before anything changes).

    Example:
        >>> w = Parameter(np.zeros(2)); w.grad = np.array([3.0, 4.0])
        >>> clip_grads_with_norm_([w], 1.0, get_total_norm([w.grad]))
    """
    _check_foreach(foreach)
    params = _param_list(parameters, "clip_grads_with_norm_")
    max_norm = _nonneg("max_norm", max_norm)
    total = _nonneg("total_norm", total_norm, allow_nan=True)
    grads, names, owners = _grads(params, writeable=True)
    _scale(grads, names, owners, _clip_coef(max_norm, total))


def clip_grad_norm_(parameters: ParamsArg, max_norm: float, norm_type: float | str = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> np.float64:
    r"""Clip the gradients' total norm in place; returns the total norm before clipping.

    :func:`get_total_norm` of the gradients, then :func:`clip_grads_with_norm_` with it:

    .. math::
        N = \big\|(g_1, \dots, g_n)\big\|_p,\qquad g_i \leftarrow g_i\cdot\min\Big(\frac{\text{max\_norm}}{N + 10^{-6}},\ 1\Big)

    One C pass computes the norm (in double, deterministic for any thread count) and one scales. Every
    gradient is checked before either (a rejected call changes nothing); a read-only gradient is clipped in a
    buffer fastopt owns, which becomes its ``.grad``.

    Args:
        parameters (Parameter or iterable of Parameter): whose ``.grad`` to clip (None grads are skipped).
        max_norm (float): the largest allowed total norm (non-negative; ``inf`` only measures).
        norm_type (float or str, optional): the order ``p`` (see :func:`get_total_norm`) (default: 2.0).
        error_if_nonfinite (bool, optional): raise RuntimeError, changing nothing, if the total norm is NaN or
            infinite (default: False: the gradients are scaled by it, as torch does).
        foreach (bool, optional): accepted for torch compatibility; no effect (default: None).

    Returns:
        numpy.float64: the total norm of the gradients, before clipping.

    Example:
        >>> w = Parameter(np.zeros(2, np.float32)); w.grad = np.array([3.0, 4.0], np.float32)
        >>> float(clip_grad_norm_([w], max_norm=1.0))
        5.0
    """
    p = _norm_type(norm_type)
    error_if_nonfinite = _check_flag("error_if_nonfinite", error_if_nonfinite)
    _check_foreach(foreach)
    params = _param_list(parameters, "clip_grad_norm_")
    max_norm = _nonneg("max_norm", max_norm)
    grads, names, owners = _grads(params, writeable=True)
    total = _total_norm(grads, names, p, error_if_nonfinite)
    _scale(grads, names, owners, _clip_coef(max_norm, float(total)))
    return total


def clip_grad_value_(parameters: ParamsArg, clip_value: float, foreach: bool | None = None) -> None:
    r"""Clamp every gradient element in place to :math:`[-\text{clip\_value}, \text{clip\_value}]` (NaN stays NaN).

    Args:
        parameters (Parameter or iterable of Parameter): whose ``.grad`` to clamp (None grads are skipped).
        clip_value (float): the bound, non-negative (cast to each gradient's dtype).
        foreach (bool, optional): accepted for torch compatibility; no effect (default: None).

    Raises:
        ValueError: negative or NaN ``clip_value``, gradients sharing memory with each other or a parameter (checked
            before anything changes).

    Example:
        >>> w = Parameter(np.zeros(3)); w.grad = np.array([-5.0, 0.5, 5.0])
        >>> clip_grad_value_(w, 1.0); w.grad
        array([-1. ,  0.5,  1. ])
    """
    _check_foreach(foreach)
    params = _param_list(parameters, "clip_grad_value_")
    v = _nonneg("clip_value", clip_value)
    grads, names, owners = _grads(params, writeable=True)
    if grads:
        _in_place(grads, names, owners, K.grad_clamp, -v, v)
