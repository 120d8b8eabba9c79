"""Stopping a long loop cleanly on a signal: the first SIGINT (Ctrl-C, a Jupyter kernel interrupt), SIGTERM or SIGHUP
is recorded, so the loop can finish its step, save, and raise `Interrupted`; a second one stops at once. Training
(`fastdiff.train`) uses it."""
from __future__ import annotations

import signal
import threading


class Interrupted(KeyboardInterrupt):
    """Training was stopped by a signal (Ctrl-C, SIGTERM from ``timeout``, ``kill`` or a scheduler, SIGHUP from a
    closed terminal) after its state was saved; ``signal_name`` says which."""

    def __init__(self, signum: int):
        self.signum, self.signal_name = signum, signal.Signals(signum).name
        super().__init__(f"training stopped by {self.signal_name}")


class GracefulInterrupt:
    """The first SIGINT (Ctrl-C, a Jupyter kernel interrupt), SIGTERM or SIGHUP: finish the step, save, then raise
    `Interrupted`. A second one stops at once (the checkpoint then keeps its last saved step)."""
    SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)

    def __init__(self):
        self.signum = None
        self._old = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise Interrupted(signum)
        self.signum = signum

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
