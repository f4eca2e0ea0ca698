"""Stopping a selector loop from another thread, shared by the API server and the listeners."""

from __future__ import annotations

import socket
import threading


class Waker:
    """A socket pair: its reader sits in the loop's selector, so stop() interrupts select() at once."""

    def __init__(self):
        self.reader, self.writer = socket.socketpair()

    def stop_loop(self, stop: threading.Event, thread: threading.Thread | None, timeout: float) -> None:
        stop.set()
        try:
            self.writer.send(b"x")
        except OSError:
            pass
        if thread is not None:
            thread.join(timeout)

    def sockets(self) -> tuple[socket.socket, socket.socket]:
        return self.reader, self.writer
