"""A progress bar on stderr while probes run: only on a terminal, and only once a run lasts.

It draws on one line (carriage return, no newline), at most a few times a second, and erases
itself when probing ends, so the log lines after it and a report piped from stdout stay clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"


class ProgressBar:
    def __init__(self, stream: TextIO, label: str = "probing", width: int = 30, delay: float = 0.5,
                 interval: float = 0.1, clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.label = label
        self.width = width
        self.delay = delay  # short runs never show a bar
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.drawn_at: float | None = None

    def update(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.started < self.delay:
            return
        if self.drawn_at is not None and now - self.drawn_at < self.interval and done < total:
            return
        filled = self.width * done // total if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total} targets")
        self.stream.flush()
        self.drawn_at = now

    def close(self) -> None:
        if self.drawn_at is not None:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self.drawn_at = None
