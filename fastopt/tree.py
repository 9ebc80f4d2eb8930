r"""Models kept as trees of arrays (nested dicts, lists and tuples), as autograd and JAX users keep them.

:func:`parameters` turns every array leaf of a tree into a named :class:`~fastopt.Parameter` that
wraps the leaf itself (no copy: the optimizer updates the tree's arrays in place), and
:func:`set_grads` gives those parameters their gradients from a gradient tree of the same shape,
such as the one ``autograd.grad`` or ``jax.grad`` returns. Together they replace the loop every
user writes::

    params = {"w1": rng.standard_normal((4, 16)), "b1": np.zeros(16), "out": [w2, b2]}
    plist = fastopt.tree.parameters(params)        # names 'w1', 'b1', 'out.0', 'out.1'
    opt = fastopt.AdamW(plist, lr=1e-3)
    for x, y in batches:
        g = grad_fn(params, x, y)                  # same structure as params
        fastopt.tree.set_grads(plist, g)
        opt.step()                                 # params' arrays change in place

Leaves are matched by their path (``'out.0'``), not by position, so a gradient tree whose dicts
list their keys in another order (JAX sorts dict keys) still lands on the right parameters.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from ._validate import dtype_hint
from .parameter import Parameter

__all__ = ["leaves", "parameters", "set_grads"]


def leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    r"""The ``(path, leaf)`` pairs of a tree, depth first, in the tree's own order.

    A path joins dict keys and list/tuple indices with dots (``'layers.0.w'``). Dicts, lists and
    tuples are containers; everything else is a leaf. ``None`` leaves are skipped (a frozen part).

    Args:
        tree: nested dicts (str or int keys), lists and tuples of leaves.
        prefix (str, optional): prepended to every path (default: "").
    """
    return ((path, leaf) for path, leaf in _walk(tree, prefix) if leaf is not None)


def _walk(tree: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every ``(path, leaf)`` of ``tree``, None leaves included; keys are checked."""
    if isinstance(tree, dict):
        items: Iterable[tuple[Any, Any]] = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        yield prefix, tree
        return
    for key, sub in items:
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise TypeError(f"tree key {key!r} at {prefix or '<root>'!r} is not a str or int")
        if isinstance(key, str) and "." in key:
            raise ValueError(f"tree key {key!r} at {prefix or '<root>'!r} contains '.', "
                             "which separates the parts of a path")
        yield from _walk(sub, f"{prefix}.{key}" if prefix else str(key))


def parameters(tree: Any) -> list[Parameter]:
    r"""One named :class:`~fastopt.Parameter` per array leaf of ``tree``, wrapping the leaf itself.

    Each leaf must be a float32 or float64 ``numpy.ndarray`` (the optimizer writes into it, so an
    array another library owns, such as a JAX array, must first become a NumPy array of yours:
    ``np.array(x)``). A leaf that already is a Parameter is used as it is (and named if it has no
    name). The Parameter's ``name`` is the leaf's path, which :func:`set_grads` uses to match the
    gradients, and which optimizers use as the param's name.

    Args:
        tree: nested dicts, lists and tuples whose leaves are arrays (``None`` leaves are skipped).

    Returns:
        list of Parameter, in the tree's depth-first order.

    Raises:
        TypeError: a leaf is not a float ndarray (the message gives its path).
        ValueError: two leaves are the same array (an optimizer would update it twice).

    Example:
        >>> tree = {"w": np.zeros((2, 3)), "head": [np.zeros(3)]}
        >>> [p.name for p in parameters(tree)]
        ['w', 'head.0']
    """
    out: list[Parameter] = []
    seen: dict[int, str] = {}
    for path, leaf in leaves(tree):
        if isinstance(leaf, Parameter):
            param = leaf
            if param.name is None:
                param.name = path
        elif isinstance(leaf, np.ndarray):
            if leaf.dtype not in (np.float32, np.float64):
                raise TypeError(f"tree leaf {path!r}: dtype {leaf.dtype}; parameters must be float32 "
                                "or float64 arrays")
            if not leaf.flags.writeable:
                raise TypeError(f"tree leaf {path!r} is read-only; the optimizer updates parameters "
                                "in place, so give it an array you own (np.array(leaf))")
            param = Parameter(leaf, name=path)
        else:
            raise TypeError(
                f"tree leaf {path!r} is a {type(leaf).__module__}.{type(leaf).__name__}, not a NumPy "
                "array; the optimizer updates parameters in place, so convert it first "
                "(np.array(leaf) for a JAX or torch array)")
        key = id(param.data)
        if key in seen:
            raise ValueError(f"tree leaves {seen[key]!r} and {path!r} are the same array")
        seen[key] = path
        out.append(param)
    return out


def set_grads(params: Iterable[Parameter], grad_tree: Any) -> None:
    r"""Set ``p.grad`` of every parameter from the leaf of ``grad_tree`` at the same path.

    ``params`` are the Parameters :func:`parameters` made (their names are the paths). Each
    gradient leaf is taken with ``np.asarray`` (JAX, torch-CPU and autograd arrays become NumPy
    arrays without a copy where possible; a read-only result is fine, optimizers never write into
    gradients). Everything is checked before any ``.grad`` is set: the same set of paths, and for
    each the param's shape and dtype.

    Args:
        params (iterable of Parameter): named parameters, as returned by :func:`parameters`.
        grad_tree: the gradients, with the structure of the tree the parameters came from. A
            ``None`` leaf sets that parameter's grad to None (no gradient this step).

    Raises:
        ValueError: a path is missing or extra, or a shape differs.
        TypeError: a dtype differs (with a hint for the usual sources: JAX's float32 default, integer
            output).
    """
    params = list(params)
    by_name: dict[str, Parameter] = {}
    for i, p in enumerate(params):
        if not isinstance(p, Parameter) or p.name is None:
            raise TypeError(f"params[{i}] is not a named Parameter; make them with "
                            "fastopt.tree.parameters(tree)")
        by_name[p.name] = p
    grads = dict(_walk(grad_tree, ""))
    missing = [n for n in by_name if n not in grads]
    extra = [n for n in grads if n not in by_name and grads[n] is not None]
    if missing or extra:
        raise ValueError(f"the gradient tree does not match the parameters: missing {missing}, "
                         f"unexpected {extra}")
    staged: list[tuple[Parameter, np.ndarray | None]] = []
    for name, p in by_name.items():
        g = grads[name]
        if g is None:
            staged.append((p, None))
            continue
        arr = np.asarray(g)
        if arr.shape != p.shape:
            raise ValueError(f"gradient {name!r} has shape {arr.shape}, parameter has {p.shape}")
        if arr.dtype != p.dtype:
            raise TypeError(f"gradient {name!r} is {arr.dtype}, parameter is {p.dtype}"
                            + dtype_hint(p.dtype, arr.dtype))
        staged.append((p, arr))
    for p, staged_grad in staged:
        p.grad = staged_grad
