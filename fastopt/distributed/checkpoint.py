r"""Sharded checkpoints of a :class:`ZeroRedundancyOptimizer`: one file per rank plus a manifest.

A checkpoint directory holds

- ``shard-RRRRR-of-WWWWW.npz``: rank R's pieces, written with :func:`fastopt.save` (no pickle): a list of records
  ``{'param': k, 'start': a, 'stop': b, 'state': {...}}``, one per piece (parameter ``k`` in group order, elements
  ``[a, b)`` of it flattened; array state is the piece's, scalar state such as ``step`` the parameter's); rank
  0's file also holds the groups' options;
- ``manifest.json``: the format, the world size, every parameter's group, index, shape and dtype, and for each
  shard file the ranges it holds. It is written last, so a directory with a manifest is complete.

Loading reads the manifest, then only the shard files that overlap this rank's pieces (plus rank 0's, for the
options), so a checkpoint written by W ranks loads on any number of ranks: each rank cuts its new pieces out of
the saved ones.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..io import load, save
from ._comm import agree
from .zero import ZeroRedundancyOptimizer, _options

__all__ = ["load_sharded", "save_sharded"]

FORMAT = "fastopt-zero-sharded"
VERSION = 1
MANIFEST = "manifest.json"


def _shard_name(rank: int, world: int) -> str:
    return f"shard-{rank:05d}-of-{world:05d}.npz"


def _check(zopt: Any, fname: str) -> None:
    if not isinstance(zopt, ZeroRedundancyOptimizer):
        raise TypeError(f"{fname} takes a ZeroRedundancyOptimizer, got {type(zopt).__name__}")


def save_sharded(zopt: ZeroRedundancyOptimizer, directory: str | os.PathLike[str]) -> None:
    r"""Write ``zopt``'s state as one file per rank plus ``manifest.json`` into ``directory`` (collective).

    Each rank writes only its own shard (no gathering: about :math:`1/W` of the state each), rank 0 then
    writes the manifest. ``directory`` is created if needed and must be visible to every rank (a shared file
    system when the ranks run on several machines). A previous manifest there is removed first, so an
    interrupted save never leaves a manifest that points at half-written files.

    Args:
        zopt (ZeroRedundancyOptimizer): the optimizer whose state to write.
        directory (str or PathLike): the checkpoint directory.

    Raises:
        OSError and others from writing: raised on every rank (as ``rank R: ...``), so no rank hangs.

    Example:
        >>> dist.save_sharded(zopt, "ckpt/step_1000")         # on every rank
    """
    _check(zopt, "save_sharded")
    comm = zopt.comm
    path = Path(directory)
    err = None
    try:
        if comm.rank == 0:
            path.mkdir(parents=True, exist_ok=True)
            (path / MANIFEST).unlink(missing_ok=True)
    except Exception as e:  # noqa: BLE001
        err = e
    agree(comm, err)
    err = None
    records: list[dict[str, Any]] = []
    try:
        records = zopt.local_records()
        payload: dict[str, Any] = {"format": FORMAT, "version": VERSION, "rank": comm.rank,
                                   "world_size": comm.size, "pieces": records}
        if comm.rank == 0:
            payload["param_groups"] = [_options(g) for g in zopt.param_groups]
        save(payload, path / _shard_name(comm.rank, comm.size))
    except Exception as e:  # noqa: BLE001
        err = e
    agree(comm, err)
    ranges = [[r["param"], r["start"], r["stop"]] for r in records]
    every = comm.gather(ranges, root=0) if comm.size > 1 else [ranges]
    err = None
    try:
        if comm.rank == 0:
            assert every is not None        # gather() returns the list on the root, None elsewhere
            params = [{"group": gi, "index": j, "shape": list(p.data.shape), "dtype": str(p.data.dtype)}
                      for gi, g in enumerate(zopt.param_groups) for j, p in enumerate(g["params"])]
            manifest = {"format": FORMAT, "version": VERSION, "optimizer": zopt.optimizer_class.__name__,
                        "world_size": comm.size, "params": params,
                        "shards": [{"file": _shard_name(r, comm.size), "ranges": rs} for r, rs in enumerate(every)]}
            tmp = path / (MANIFEST + ".tmp")
            tmp.write_text(json.dumps(manifest, indent=1))
            os.replace(tmp, path / MANIFEST)
    except Exception as e:  # noqa: BLE001
        err = e
    agree(comm, err)


def _read_manifest(path: Path, zopt: ZeroRedundancyOptimizer) -> dict[str, Any]:
    file = path / MANIFEST
    if not file.exists():
        raise FileNotFoundError(f"{file} does not exist: not a sharded checkpoint, or its save did not finish")
    manifest = json.loads(file.read_text())
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{file} is not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise ValueError(f"{file} has version {manifest.get('version')!r}; this fastopt reads version {VERSION}")
    saved = manifest["params"]
    live = [(gi, j, p) for gi, g in enumerate(zopt.param_groups) for j, p in enumerate(g["params"])]
    if len(saved) != len(live):
        raise ValueError(f"{file} holds {len(saved)} parameters, the optimizer has {len(live)}")
    for entry, (gi, j, p) in zip(saved, live):
        here = (gi, j, list(p.data.shape), str(p.data.dtype))
        there = (entry["group"], entry["index"], list(entry["shape"]), entry["dtype"])
        if here != there:
            raise ValueError(f"param_groups[{gi}]['params'][{j}]: the checkpoint has group {there[0]} index "
                             f"{there[1]} {there[3]}{there[2]}, this optimizer {here[3]}{here[2]}")
    return manifest


def load_sharded(zopt: ZeroRedundancyOptimizer, directory: str | os.PathLike[str]) -> None:
    r"""Load a checkpoint written by :func:`save_sharded`, by any number of ranks, into ``zopt`` (collective).

    Each rank reads the manifest and the shard files that hold parts of its pieces, and loads its pieces' state
    into its local optimizer; the groups' options are restored too. Everything is checked first (format,
    parameter shapes and dtypes, complete coverage of every piece, state keys): on any error every rank raises
    the same error and nothing changes on any rank.

    Args:
        zopt (ZeroRedundancyOptimizer): the optimizer to load into (same parameters as the saved one).
        directory (str or PathLike): the checkpoint directory.

    Example:
        >>> zopt = dist.ZeroRedundancyOptimizer(params, fastopt.AdamW, comm=comm, lr=1e-3)   # any number of ranks
        >>> dist.load_sharded(zopt, "ckpt/step_1000")
    """
    _check(zopt, "load_sharded")
    path = Path(directory)
    err = None
    try:
        manifest = _read_manifest(path, zopt)
        wanted = {piece.k for piece in zopt._pieces()}
        files = [manifest["shards"][0]["file"]]
        for shard in manifest["shards"][1:]:
            if any(k in wanted for k, _, _ in shard["ranges"]):
                files.append(shard["file"])
        records: list[dict[str, Any]] = []   # the saved pieces this rank owns
        group_options = None
        for name in files:
            payload = load(path / name)
            if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                raise ValueError(f"{path / name} is not a {FORMAT} shard")
            if payload.get("world_size") != manifest["world_size"]:
                raise ValueError(f"{path / name} was written by {payload.get('world_size')} ranks, the manifest "
                                 f"says {manifest['world_size']}: the directory mixes two checkpoints")
            if "param_groups" in payload:
                group_options = payload["param_groups"]
            records.extend(r for r in payload["pieces"] if r["param"] in wanted)
        if group_options is None or len(group_options) != len(zopt.param_groups):
            raise ValueError(f"{path}: the shard of rank 0 lacks the options of the {len(zopt.param_groups)} "
                             "param groups")
        zopt._load_records(list(group_options), records)
    except Exception as e:  # noqa: BLE001
        err = e
    zopt.finish_load(err)
