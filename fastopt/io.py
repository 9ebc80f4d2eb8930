r"""Checkpoints without pickle: :func:`save` and :func:`load` for optimizer and scheduler state.

The file is an ordinary ``.npz`` (a zip of ``.npy`` members, readable by ``numpy.load``): every
array of the object is one member ``a0``, ``a1``, ... and the member ``structure`` holds the rest
of the object as UTF-8 JSON (stored as a uint8 array). Loading parses JSON and ``.npy`` headers
only, with ``allow_pickle=False``; nothing in the file can run code.

What can be stored (nested freely):

* ``dict`` with ``int`` or ``str`` keys (order and key types kept, so torch's integer state
  indices survive), ``list``, ``tuple`` (kept apart from lists);
* ``numpy.ndarray`` of a numeric, boolean, string or bytes dtype (dtype, shape, byte order and
  values exact; object arrays are refused) and NumPy scalars (``np.float32(1)`` comes back as an
  ``np.float32``);
* ``bool``, ``int`` (any size), ``float`` (bit-exact, including ``nan``, ``inf`` and ``-0.0``),
  ``complex``, ``str`` and ``None``;
* :class:`~fastopt.Parameter`: its ``.data`` array is saved (and comes back as an ndarray).

One call checkpoints a whole run: parameters, optimizer, scheduler and the random generator
(``Generator.bit_generator.state`` is a dict of str and int, which is stored exactly)::

    fastopt.save({"params": {p.name: p for p in params}, "optimizer": opt.state_dict(),
                  "scheduler": sched.state_dict(), "rng": rng.bit_generator.state,
                  "epoch": epoch}, "run.npz")

    ckpt = fastopt.load("run.npz")
    for p in params:
        np.copyto(p.data, ckpt["params"][p.name])     # in place: the optimizer keeps its params
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    rng.bit_generator.state = ckpt["rng"]

Example::

    fastopt.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": 7},
                 "ckpt.npz")
    ckpt = fastopt.load("ckpt.npz")
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
"""

from __future__ import annotations

import io as _io
import json
import os
import struct
import tempfile
import zipfile
from typing import Any, BinaryIO, Union

import numpy as np

from .parameter import Parameter

__all__ = ["save", "load", "CheckpointError", "convert_state"]

_FORMAT = "fastopt-checkpoint"
_VERSION = 1
_STRUCTURE = "structure"

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]


class CheckpointError(ValueError):
    r"""A file given to :func:`load` is not a valid fastopt checkpoint (foreign, truncated or
    corrupted). The message names the file and what is wrong."""


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------
def _float_node(x: float) -> Any:
    # Finite floats are JSON numbers: Python writes the shortest repr that round-trips exactly.
    # Non-finite values (and NaN payloads) are kept bit-exact as the hex of their IEEE bits.
    if x != x or x in (float("inf"), float("-inf")):
        return {"$f64": struct.pack("<d", x).hex()}
    return x


def _encode(obj: Any, arrays: list, path: str) -> Any:
    if isinstance(obj, Parameter):  # its array is what a checkpoint keeps (loaded as an ndarray)
        obj = obj.data
    if isinstance(obj, (np.ndarray, np.generic)):  # before float: np.float64 subclasses float
        arr = np.asarray(obj)
        if arr.dtype.hasobject or arr.dtype.kind == "V":
            raise TypeError(
                f"{path}: arrays of dtype {arr.dtype} cannot be saved without pickle "
                "(only numeric, bool, str and bytes arrays)"
            )
        arrays.append(arr)
        tag = "$scalar" if isinstance(obj, np.generic) else "$array"
        return {tag: len(arrays) - 1}
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _float_node(float(obj))
    if isinstance(obj, complex):
        return {"$complex": [_float_node(obj.real), _float_node(obj.imag)]}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if type(k) is bool or not isinstance(k, (int, str)):
                raise TypeError(
                    f"{path}: dict keys must be int or str, got {type(k).__name__} key {k!r}"
                )
            items.append([int(k) if isinstance(k, int) else str(k),
                          _encode(v, arrays, f"{path}[{k!r}]")])
        return {"$dict": items}
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(
        f"{path}: cannot save a {type(obj).__module__}.{type(obj).__qualname__} without pickle "
        "(supported: dict, list, tuple, ndarray, NumPy scalars, bool, int, float, complex, str, None)"
    )


def save(obj: Any, f: PathOrFile) -> None:
    r"""Write ``obj`` (e.g. ``{'optimizer': opt.state_dict(), 'scheduler': sched.state_dict()}``)
    to ``f`` in a format whose loading never executes code.

    The file is written to a temporary file in the same directory and then renamed over ``f``,
    so an interrupted save never leaves a half-written checkpoint under the final name. The name
    is used exactly as given (no ``.npz`` is appended, unlike ``numpy.savez``).

    Args:
        obj: nested dicts (int or str keys), lists, tuples, ndarrays, NumPy scalars, bool, int,
            float, complex, str and None.
        f (str, os.PathLike or binary file): where to write.

    Raises:
        TypeError: ``obj`` contains anything else (the message gives its path in ``obj``, e.g.
            ``obj['state'][0]['exp_avg']``); nothing is written then.

    Example:
        >>> import io
        >>> buf = io.BytesIO()  # a path such as "ckpt.npz" works the same
        >>> fastopt.save({"epoch": 7, "w": np.arange(3.0)}, buf)
        >>> _ = buf.seek(0)
        >>> fastopt.load(buf)
        {'epoch': 7, 'w': array([0., 1., 2.])}
    """
    arrays: list = []
    root = _encode(obj, arrays, "obj")
    header = {"format": _FORMAT, "version": _VERSION, "n_arrays": len(arrays), "root": root}
    text = json.dumps(header, allow_nan=False, separators=(",", ":"))
    # member name -> array; Any, not ndarray, because savez's stub lets **members reach its allow_pickle flag
    members: dict[str, Any] = {_STRUCTURE: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    for i, arr in enumerate(arrays):
        members[f"a{i}"] = arr
    if hasattr(f, "write"):
        np.savez(f, **members)
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastopt-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **members)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------
class _Decoder:
    def __init__(self, name: str, arrays: list) -> None:
        self.name = name
        self.arrays = arrays
        self.used: set = set()

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.name}: {what}")

    def float_(self, node: Any, path: str) -> float:
        if isinstance(node, float) or (isinstance(node, int) and not isinstance(node, bool)):
            return float(node)
        if isinstance(node, dict) and set(node) == {"$f64"} and isinstance(node["$f64"], str):
            try:
                raw = bytes.fromhex(node["$f64"])
                (value,) = struct.unpack("<d", raw)
            except (ValueError, struct.error):
                raise self.fail(f"bad float encoding at {path}") from None
            return value
        raise self.fail(f"bad float at {path}")

    def array(self, index: Any, path: str) -> np.ndarray:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.arrays):
            raise self.fail(f"array reference {index!r} at {path} does not exist")
        if index in self.used:
            raise self.fail(f"array a{index} is referenced twice (at {path})")
        self.used.add(index)
        return self.arrays[index]

    def decode(self, node: Any, path: str) -> Any:
        if node is None or isinstance(node, (bool, str, int)):
            return node
        if isinstance(node, float):
            return node
        if isinstance(node, list):
            return [self.decode(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict) or len(node) != 1:
            raise self.fail(f"unexpected entry at {path}")
        (tag, value), = node.items()
        if tag == "$dict":
            if not isinstance(value, list):
                raise self.fail(f"bad dict at {path}")
            out: dict = {}
            for item in value:
                if not (isinstance(item, list) and len(item) == 2):
                    raise self.fail(f"bad dict item at {path}")
                key = item[0]
                if isinstance(key, bool) or not isinstance(key, (int, str)):
                    raise self.fail(f"bad dict key {key!r} at {path}")
                if key in out:
                    raise self.fail(f"duplicate dict key {key!r} at {path}")
                out[key] = self.decode(item[1], f"{path}[{key!r}]")
            return out
        if tag == "$tuple":
            if not isinstance(value, list):
                raise self.fail(f"bad tuple at {path}")
            return tuple(self.decode(v, f"{path}[{i}]") for i, v in enumerate(value))
        if tag == "$f64":
            return self.float_(node, path)
        if tag == "$complex":
            if not (isinstance(value, list) and len(value) == 2):
                raise self.fail(f"bad complex at {path}")
            return complex(self.float_(value[0], path), self.float_(value[1], path))
        if tag == "$array":
            return self.array(value, path)
        if tag == "$scalar":
            arr = self.array(value, path)
            if arr.ndim != 0:
                raise self.fail(f"scalar at {path} is stored with shape {arr.shape}")
            return arr[()]
        raise self.fail(f"unknown entry {tag!r} at {path}")


def _read_member(npz: Any, key: str, name: str) -> np.ndarray:
    try:
        arr = npz[key]
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{name}: member {key!r} is corrupted ({e})") from None
    except ValueError as e:  # includes allow_pickle=False refusing object arrays, bad headers
        raise CheckpointError(f"{name}: member {key!r} is not a plain array ({e})") from None
    except Exception as e:  # untrusted bytes: zlib/struct/NotImplementedError (bad method)...
        raise CheckpointError(
            f"{name}: member {key!r} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
        raise CheckpointError(f"{name}: member {key!r} holds objects, which are refused")
    return arr


def load(f: PathOrFile) -> Any:
    r"""Read an object written by :func:`save`. Never unpickles or executes anything.

    Args:
        f (str, os.PathLike or binary file): the checkpoint.

    Returns:
        The saved object, with the same types: dicts (int/str keys, in order), lists, tuples,
        ndarrays (same dtype and shape, writeable), NumPy scalars, bool, int, float, complex,
        str, None.

    Raises:
        FileNotFoundError: ``f`` does not exist.
        CheckpointError: (a ``ValueError``) the file is not a fastopt checkpoint, or is truncated
            or corrupted; the message names the file and the problem.

    Example:
        >>> import io
        >>> buf = io.BytesIO()
        >>> fastopt.save({"state": {0: {"step": 3}}, "lr": (0.1, np.float32(0.5))}, buf)
        >>> _ = buf.seek(0)
        >>> ckpt = fastopt.load(buf)
        >>> ckpt["state"][0]["step"], type(ckpt["lr"]).__name__, type(ckpt["lr"][1]).__name__
        (3, 'tuple', 'float32')
    """
    if hasattr(f, "read"):
        name = getattr(f, "name", None) or "<file object>"
        data = f.read()
    else:
        name = os.fspath(f)
        with open(name, "rb") as fh:
            data = fh.read()
    name = str(name)
    if not data.startswith(b"PK"):
        raise CheckpointError(f"{name}: not a fastopt checkpoint (not a zip/.npz file)")
    try:
        npz = np.load(_io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # untrusted bytes: any parsing failure is reported the same way
        raise CheckpointError(
            f"{name}: truncated or corrupted checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{name}: not a fastopt checkpoint (not an .npz archive)")
    with npz:
        keys = set(npz.files)
        if _STRUCTURE not in keys:
            raise CheckpointError(f"{name}: not a fastopt checkpoint (no {_STRUCTURE!r} entry)")
        raw = _read_member(npz, _STRUCTURE, name)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise CheckpointError(f"{name}: not a fastopt checkpoint (bad {_STRUCTURE!r} entry)")
        try:
            header = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise CheckpointError(f"{name}: corrupted structure entry ({e})") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise CheckpointError(f"{name}: not a fastopt checkpoint (unknown format)")
        if header.get("version") != _VERSION:
            raise CheckpointError(
                f"{name}: checkpoint version {header.get('version')!r} is not supported "
                f"(this fastopt reads version {_VERSION})"
            )
        n = header.get("n_arrays")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or "root" not in header:
            raise CheckpointError(f"{name}: corrupted structure entry (bad header)")
        expected = {f"a{i}" for i in range(n)}
        missing = sorted(expected - keys)
        extra = sorted(keys - expected - {_STRUCTURE})
        if missing:
            raise CheckpointError(f"{name}: truncated checkpoint (missing arrays {missing[:5]})")
        if extra:
            raise CheckpointError(f"{name}: unexpected members {extra[:5]} in checkpoint")
        arrays = [_read_member(npz, f"a{i}", name) for i in range(n)]
    decoder = _Decoder(name, arrays)
    try:
        obj = decoder.decode(header["root"], "obj")
    except RecursionError:
        raise CheckpointError(f"{name}: structure nested too deeply") from None
    if len(decoder.used) != n:
        raise CheckpointError(f"{name}: corrupted structure entry (unreferenced arrays)")
    return obj


def convert_state(state_dict: dict, state_dtype: str) -> dict:
    """An Adam / AdamW, Lion or SGD-momentum ``state_dict()`` with its moments converted to another ``state_dtype``.

    ``"float32"`` gives torch's layout (``exp_avg``, ``exp_avg_sq`` as float32 arrays; the compressed moments
    decoded exactly, so this direction loses nothing); ``"bfloat16"`` rounds them to bfloat16 bits (nearest-even)
    and ``"int8"`` quantizes them blockwise (bitsandbytes' keys; tensors under 4096 elements stay float32), each
    with a ``UserWarning`` because the rounding cannot be undone. Lion's ``exp_avg`` and SGD's ``momentum_buffer``
    (told apart by the param group's options) convert the same way, with ``state1``/``absmax1``/``qmap1`` in int8.
    ``param_groups`` and ``step`` are kept. Load the
    result into an optimizer constructed with the same ``state_dtype``.

    Example::

        torch_layout = fastopt.io.convert_state(opt8.state_dict(), "float32")
        fp32_opt.load_state_dict(torch_layout)
    """
    from . import _lowp

    _lowp.check_state_dtype(state_dtype)
    if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict):
        raise ValueError("state_dict must be a dict with a 'state' dict (an optimizer's state_dict())")
    lossy = False
    state = {}
    first: dict = {}  # parameter index -> its one moment's key: SGD's groups have momentum and no betas
    for group in state_dict.get("param_groups", ()):
        if isinstance(group, dict):
            sgd = "momentum" in group and "betas" not in group
            for i in group.get("params", ()):
                first[i] = "momentum_buffer" if sgd else "exp_avg"
    for key, st in state_dict["state"].items():
        if not isinstance(st, dict):
            raise TypeError(f"state[{key!r}] must be a dict, got {type(st).__name__}")
        try:
            state[key], lost = _lowp.convert_param_state(st, state_dtype, first.get(key, "exp_avg"))
        except (ValueError, TypeError) as e:
            raise type(e)(f"state[{key!r}]: {e}") from None
        lossy = lossy or lost
    if lossy:
        _lowp.warn_lossy(f"converting optimizer state to state_dtype={state_dtype!r}")
    out = {k: v for k, v in state_dict.items() if k != "state"}
    out["state"] = state
    return out
