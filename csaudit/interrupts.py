"""Ctrl-C and SIGTERM: while probing, stop cleanly and keep what was measured; before, give up.
A command that runs until stopped turns SIGTERM into a stop request (stop_on_sigterm)."""

from __future__ import annotations

import contextlib
import signal
import threading


class Interrupts:
    """Installs SIGINT/SIGTERM handlers for one run (main thread only).

    During probing a signal only sets `stop`: the engine drops what is in flight, the flows not
    yet probed stay unverified, and the partial report is still written. Outside probing a
    signal raises KeyboardInterrupt, since nothing was measured yet.
    """

    def __init__(self):
        self.stop = threading.Event()
        self.probing = False

    def _handler(self, signum, frame):
        self.stop.set()
        if not self.probing:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextlib.contextmanager
    def probing_phase(self):
        self.probing = True
        try:
            yield
        finally:
            self.probing = False


def stop_on_sigterm(stop: threading.Event):
    """For a command that runs until stopped (`lab serve`, `serve`): SIGTERM sets `stop` instead of
    killing the process, so it shuts down cleanly; Ctrl-C stays KeyboardInterrupt. Returns the
    function that puts the previous handler back. Handlers can only be set from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return lambda: signal.signal(signal.SIGTERM, previous)
