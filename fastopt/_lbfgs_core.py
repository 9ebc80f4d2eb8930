"""Shared plumbing of the two L-BFGS faces (fastopt.LBFGS and fastopt.minimize): allocating the buffers of
the C state machine as NumPy arrays and naming its stop codes. No element loops here."""
from __future__ import annotations

import numpy as np

from . import _kernels as _k

# the unbounded core's requests to its caller, then its stop codes: converged, a limit, a failure (the C enum)
EVAL, ITER, NEED_SLOT, STOP = _k.LBFGS_EVAL, _k.LBFGS_ITER, _k.LBFGS_NEED_SLOT, _k.LBFGS_STOP
CONV_GRAD, CONV_F, CONV_X, CONV_GTD = _k.LBFGS_CONV_GRAD, _k.LBFGS_CONV_F, _k.LBFGS_CONV_X, _k.LBFGS_CONV_GTD
MAX_ITER, MAX_EVAL, LS_FAILED, NONFINITE = _k.LBFGS_MAX_ITER, _k.LBFGS_MAX_EVAL, _k.LBFGS_LS_FAILED, _k.LBFGS_NONFINITE

#: stop code -> (scipy status, message) of the unbounded core: the one table, read from the C core
CODES = dict(_k.LBFGS_CODES)


def _record_dtype(fields: tuple, size: int, what: str) -> np.dtype:
    """The NumPy record type of a C state struct, built from the extension's field table and checked against
    it: fields may not overlap, must cover the struct exactly and have unique names."""
    kinds = {"i": np.int64, "f": np.float64}
    dt = np.dtype({"names": [f[0] for f in fields],
                   "formats": [kinds[f[2]] if f[3] == 1 else (kinds[f[2]], (f[3],)) for f in fields],
                   "offsets": [f[1] for f in fields], "itemsize": size})
    spans = sorted((off, off + 8 * count) for _, off, _, count in fields)
    if (any(a < b for (_, b), (a, _) in zip(spans, spans[1:])) or sum(b - a for a, b in spans) != dt.itemsize
            or len({f[0] for f in fields}) != len(fields)):
        raise ImportError(f"fastopt: the {what} state table does not describe the C struct field by field; "
                          "rebuild the extension")
    return dt


LBFGS_STATE_DTYPE = _record_dtype(_k.LBFGS_FIELDS, _k.LBFGS_STATE_SIZE, "L-BFGS")
if set(CODES) != {CONV_GRAD, CONV_F, CONV_X, CONV_GTD, MAX_ITER, MAX_EVAL, LS_FAILED, NONFINITE}:
    raise ImportError("fastopt: the L-BFGS code table of the extension does not match its stop codes; rebuild it")

LINE_SEARCHES = (None, "strong_wolfe")


def _scalar(st: np.ndarray, field: str):
    v = st[field]
    return int(v) if v.dtype.kind == "i" else float(v)


class Machine:
    """The buffers of one L-BFGS run and the Cython handle that runs the C core on them.

    ``d`` and ``prev_g`` may be given (the optimizer keeps them in its state); history slots are
    allocated on demand by :meth:`add_slot`, so ``history_size`` costs memory only when it is used."""

    __slots__ = ("core", "x", "g", "d", "prev_g", "ro", "al", "st", "old_dirs", "old_stps", "n", "m",
                 "dtype", "line_search", "_x0", "_gb0", "_gb1")
    ROLLBACK = ("st", "d", "prev_g", "ro", "al")

    def __init__(self, n: int, dtype, m: int, line_search: bool, d=None, prev_g=None, ro=None, al=None):
        e = lambda: np.zeros(n, dtype)  # noqa: E731
        self.n, self.m, self.dtype, self.line_search = n, m, np.dtype(dtype), line_search
        self.x, self.g = e(), e()
        self.d = e() if d is None else d
        self.prev_g = e() if prev_g is None else prev_g
        self.ro = np.zeros(m) if ro is None else ro
        self.al = np.zeros(m) if al is None else al
        self.st = np.zeros((), LBFGS_STATE_DTYPE)      # the C struct fo_lbfgs_state, read by field name
        self.st["fresh"] = 1
        best = (None, None) if line_search else (e(), e())
        self._x0, self._gb0, self._gb1 = e(), e(), e()      # line-search origin and bracket gradients
        self.core = _k.LBFGSCore(self.x, self.g, self.d, self._x0, self.prev_g, self._gb0, self._gb1,
                                 best[0], best[1],
                                 self.ro, self.al, self.st, m)
        self.old_dirs: list = []
        self.old_stps: list = []

    def __getitem__(self, field: str):
        return _scalar(self.st, field)

    def add_slot(self, y=None, s=None) -> None:
        """Give the core its next history slot (fresh zeros unless arrays are passed)."""
        k = len(self.old_dirs)
        y = np.zeros(self.n, self.dtype) if y is None else y
        s = np.zeros(self.n, self.dtype) if s is None else s
        self.core.set_slot(k, y, s)
        self.old_dirs.append(y)
        self.old_stps.append(s)

    def rotate(self, start: int) -> None:
        """Renumber the ring so that slot ``start`` (the oldest pair) becomes slot 0; no vector is copied."""
        k = len(self.old_dirs)
        if k != self.m:
            raise RuntimeError("L-BFGS history ring rotated before it was full")
        self.old_dirs = self.old_dirs[start:] + self.old_dirs[:start]
        self.old_stps = self.old_stps[start:] + self.old_stps[:start]
        self.ro[...] = np.roll(self.ro, -start)
        for j, (y, s) in enumerate(zip(self.old_dirs, self.old_stps)):
            self.core.set_slot(j, y, s)
        self.st["hist_start"] = 0

    def snapshot(self) -> dict:
        """Copies of everything one step of the core may write (for a rollback): the arrays of
        :attr:`ROLLBACK` and the history pairs."""
        snap: dict = {b: getattr(self, b).copy() for b in self.ROLLBACK}
        snap["history"] = [(y.copy(), s.copy()) for y, s in zip(self.old_dirs, self.old_stps)]
        return snap

    def restore(self, snap: dict) -> None:
        for b in self.ROLLBACK:
            np.copyto(getattr(self, b), snap[b])
        # slots allocated during the step stay (the core points at them); they lie beyond the restored length
        for (y, s), (y0, s0) in zip(zip(self.old_dirs, self.old_stps), snap["history"]):
            np.copyto(y, y0)
            np.copyto(s, s0)


# ---- L-BFGS-B ----------------------------------------------------------------------------------------
B_EVAL, B_ITER, B_STOP = _k.LBFGSB_EVAL, _k.LBFGSB_ITER, _k.LBFGSB_STOP
#: stop code -> (scipy status, message): the one table, read from the C core
B_CODES = dict(_k.LBFGSB_CODES)
_B_NAMES = {10: "CONV_PGTOL", 11: "CONV_FTOL", 12: "MAX_ITER", 13: "MAX_FUN", 14: "ABNORMAL", 15: "NONFINITE",
            16: "CALLBACK", 17: "FUN_ERROR", 18: "CONV_FABS", 19: "CONV_XABS"}
if set(_B_NAMES) != set(B_CODES):
    raise ImportError(f"fastopt: the L-BFGS-B code table of the extension {sorted(B_CODES)} does not match "
                      f"the Python names {sorted(_B_NAMES)}; rebuild the extension")
B_CALLBACK, B_FUN_ERROR = 16, 17


STATE_DTYPE = _record_dtype(_k.LBFGSB_FIELDS, _k.LBFGSB_STATE_SIZE, "L-BFGS-B")


def float_bounds(lo: np.ndarray, hi: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Bounds in the iterate's dtype, rounded inward so that a point inside them is inside the given ones."""
    dtype = np.dtype(dtype)
    lo_t, hi_t = lo.astype(dtype), hi.astype(dtype)
    if dtype != np.float64:
        up = lo_t.astype(np.float64) < lo
        lo_t[up] = np.nextafter(lo_t[up], dtype.type(np.inf))
        down = hi_t.astype(np.float64) > hi
        hi_t[down] = np.nextafter(hi_t[down], dtype.type(-np.inf))
        fix = lo == hi                      # a fixed variable stays fixed even if its value is not representable
        lo_t[fix] = hi_t[fix] = lo[fix].astype(dtype)
        bad = lo_t > hi_t                   # no representable value inside: take the nearest one
        lo_t[bad] = hi_t[bad] = lo[bad].astype(dtype)
    return lo_t, hi_t


class BMachine:
    """The buffers of one L-BFGS-B problem (all NumPy arrays, so they can be saved and restored) and the
    Cython handle that runs the C core on them. ``st`` is one record of :data:`STATE_DTYPE`, read by name."""

    BUFFERS = ("x", "g", "lo", "hi", "x0", "g0", "d", "z", "S", "Y", "tb", "iw", "mw", "st")

    def __init__(self, n: int, dtype, m: int, lo: np.ndarray, hi: np.ndarray) -> None:
        dtype = np.dtype(dtype)
        self.n, self.m, self.dtype = n, m, dtype
        e = lambda: np.zeros(n, dtype)  # noqa: E731
        self.x, self.g, self.x0, self.g0, self.d, self.z = e(), e(), e(), e(), e(), e()
        self.lo, self.hi = float_bounds(np.asarray(lo, np.float64), np.asarray(hi, np.float64), dtype)
        self.S, self.Y = np.zeros((m, n), dtype), np.zeros((m, n), dtype)
        self.tb = np.zeros(n)
        self.iw = np.zeros(3 * n, np.int64)
        self.mw = np.zeros(_k.lbfgsb_mw_size(m))
        self.st = np.zeros((), STATE_DTYPE)
        self.st["theta"] = 1.0
        # spelled out (BUFFERS order) so the type checker sees each argument of the constructor
        self.core = _k.LBFGSBCore(self.x, self.g, self.lo, self.hi, self.x0, self.g0, self.d, self.z, self.S, self.Y,
                                  self.tb, self.iw, self.mw, self.st, m)

    def snapshot(self) -> dict:
        """Copies of everything the core may write (for a rollback)."""
        return {b: getattr(self, b).copy() for b in self.BUFFERS if b not in ("lo", "hi")}

    def restore(self, snap: dict) -> None:
        for b, a in snap.items():
            np.copyto(getattr(self, b), a)

    def __getitem__(self, field: str):
        return _scalar(self.st, field)
