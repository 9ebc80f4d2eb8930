"""A one-line progress bar on stderr for the command-line tools, drawn only when stderr is a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total, "bench") as bar: ... bar.update(done, "what runs now")``.

    On a terminal the bar redraws one line (``\\r``) and clears it at the end; anywhere else (a pipe, a log
    file, CI) it writes nothing, so redirected output holds only results.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 24) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._shown = 0

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        frac = min(1.0, done / self.total)
        fill = int(round(frac * self.width))
        elapsed = time.perf_counter() - self.t0
        eta = f", about {elapsed / frac - elapsed:.0f} s left" if 0 < frac < 1 else ""
        line = (f"{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {done}/{self.total} "
                f"({elapsed:.0f} s{eta}) {note}")
        pad = max(0, self._shown - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._shown = len(line)

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
