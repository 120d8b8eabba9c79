"""Progress bars as text (stderr), so an executed notebook keeps each loop's final state; ``FASTDIFF_PROGRESS``
says how much of them to show."""
from __future__ import annotations

import os
import re
import sys


class _FinalLine:
    """A stream for tqdm that keeps only each bar's last state and writes it once, when the bar ends: an executed
    notebook then holds one line per loop instead of every refresh."""

    def __init__(self, stream):
        self.stream, self.last = stream, ""

    def write(self, text: str) -> None:
        for part in re.split(r"([\r\n])", text):
            if part == "\n":
                if self.last:
                    self.stream.write(self.last.strip() + "\n")
                self.last = ""
            elif part != "\r" and part.strip():
                self.last = part

    def flush(self) -> None:
        pass


def progress_mode() -> str:
    """``FASTDIFF_PROGRESS``: ``bars`` (live bars, the default), ``final`` (one line per loop: papermill, nbval,
    `fastdiff reproduce` set it) or ``off``."""
    mode = os.environ.get("FASTDIFF_PROGRESS", "bars")
    return mode if mode in ("bars", "final", "off") else "bars"


def progress_bar(iterable=None, *, total=None, desc=None, disable=False, leave=True, **kw):
    """A text tqdm bar (stderr). Text rather than widgets so executed notebooks keep the final state; under
    papermill (``FASTDIFF_PROGRESS=final``) each loop leaves one line."""
    from tqdm import tqdm
    mode = progress_mode()
    if mode == "final":
        return tqdm(iterable, total=total, desc=desc, disable=disable, leave=True, mininterval=1e9,
                    file=_FinalLine(sys.stderr), ncols=100, **kw)
    return tqdm(iterable, total=total, desc=desc, disable=disable or mode == "off", leave=leave, mininterval=0.5,
                dynamic_ncols=True, **kw)
