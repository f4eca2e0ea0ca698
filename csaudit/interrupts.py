"""Ctrl-C and SIGTERM: while probing, stop cleanly and keep what was measured; before, give up.
A command that runs until stopped turns signals into a stop request (stop_on_signals)."""

from __future__ import annotations

import contextlib
import signal
import threading


class Interrupts:
    """Installs SIGINT/SIGTERM handlers for one run (main thread only).

    During probing a signal only sets `stop`: the engine drops what is in flight, the flows not
    yet probed stay unverified, and the partial report is still written. Outside probing a
    signal raises KeyboardInterrupt, since nothing was measured yet; unless the caller handed in
    its own `stop` (`serve`): then a signal only sets it, the run goes on to its probing, which
    stops at once, and the caller sees the run interrupted. An exception raised by a signal can
    be lost (Python only notes it when it lands in a finalizer); an event cannot.
    """

    def __init__(self, stop: threading.Event | None = None):
        self.stop = stop or threading.Event()
        self.raises = stop is None
        self.probing = False

    def _handler(self, signum, frame):
        self.stop.set()
        if self.raises and not self.probing:
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


def stop_on_signals(stop: threading.Event, signums=(signal.SIGTERM,)):
    """For a command that runs until stopped (`lab serve`, `serve`): these signals (SIGTERM unless told
    otherwise; Ctrl-C then stays KeyboardInterrupt) set `stop` instead of ending the process, so it shuts
    down cleanly. Returns the function that puts the previous handlers back. Handlers can only be set
    from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in signums}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore
