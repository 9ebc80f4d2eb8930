"""Shared plumbing of the two L-BFGS faces (fastopt.LBFGS and fastopt.minimize): allocating the buffers of
the C state machine as NumPy arrays and naming its stop codes. No element loops here."""
from __future__ import annotations

import numpy as np

from . import _kernels as _k

EVAL = _k.LBFGS_EVAL
ITER = _k.LBFGS_ITER
NEED_SLOT = _k.LBFGS_NEED_SLOT
STOP = _k.LBFGS_STOP
CONV_GRAD = _k.LBFGS_CONV_GRAD
CONV_F = _k.LBFGS_CONV_F
CONV_X = _k.LBFGS_CONV_X
CONV_GTD = _k.LBFGS_CONV_GTD
MAX_ITER = _k.LBFGS_MAX_ITER
MAX_EVAL = _k.LBFGS_MAX_EVAL
LS_FAILED = _k.LBFGS_LS_FAILED
NONFINITE = _k.LBFGS_NONFINITE

# indices into the scalar (sc, float64) and integer (iv, int64) state, from csrc/fo_lbfgs.h
_ix = _k.LBFGS_INDEX
S_F, S_T, S_H_DIAG, S_PREV_LOSS = _ix["S_F"], _ix["S_T"], _ix["S_H_DIAG"], _ix["S_PREV_LOSS"]
I_PHASE, I_N_ITER, I_FUNC_EVALS = _ix["I_PHASE"], _ix["I_N_ITER"], _ix["I_FUNC_EVALS"]
I_CUR_EVALS, I_LOC_ITER, I_HIST_LEN, I_HIST_START = (_ix["I_CUR_EVALS"], _ix["I_LOC_ITER"], _ix["I_HIST_LEN"],
                                                     _ix["I_HIST_START"])
I_FRESH, I_RETRIED, I_STATUS = _ix["I_FRESH"], _ix["I_RETRIED"], _ix["I_STATUS"]

LINE_SEARCHES = (None, "strong_wolfe")


class Machine:
    """The buffers of one L-BFGS run and the Cython handle that runs the C core on them.

    ``d`` and ``prev_g`` may be given (the optimizer keeps them in its state); history slots are
    allocated on demand by :meth:`add_slot`, so ``history_size`` costs memory only when it is used."""

    __slots__ = ("core", "x", "g", "d", "prev_g", "ro", "al", "sc", "iv", "old_dirs", "old_stps", "n", "m",
                 "dtype", "line_search", "_x0", "_gb0", "_gb1")

    def __init__(self, n: int, dtype, m: int, line_search: bool, d=None, prev_g=None, ro=None, al=None):
        e = lambda: np.zeros(n, dtype)  # noqa: E731
        self.n, self.m, self.dtype, self.line_search = n, m, np.dtype(dtype), line_search
        self.x, self.g = e(), e()
        self.d = e() if d is None else d
        self.prev_g = e() if prev_g is None else prev_g
        self.ro = np.zeros(m) if ro is None else ro
        self.al = np.zeros(m) if al is None else al
        self.sc = np.zeros(_k.LBFGS_NS)
        self.iv = np.zeros(_k.LBFGS_NI, np.int64)
        self.iv[I_FRESH] = 1
        best = (None, None) if line_search else (e(), e())
        self._x0, self._gb0, self._gb1 = e(), e(), e()      # line-search origin and bracket gradients
        self.core = _k.LBFGSCore(self.x, self.g, self.d, self._x0, self.prev_g, self._gb0, self._gb1,
                                 best[0], best[1],
                                 self.ro, self.al, self.sc, self.iv, m)
        self.old_dirs: list = []
        self.old_stps: list = []

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
        self.iv[I_HIST_START] = 0
