"""The process environment, injected so that tests can drive the CLI in-process."""

import dataclasses
import os
import sys
from collections.abc import Mapping
from typing import TextIO

PIPED_COLUMNS = 120  # the report's width when stdout is no terminal


@dataclasses.dataclass
class Environment:
    stdout: TextIO = dataclasses.field(default_factory=lambda: sys.stdout)
    stderr: TextIO = dataclasses.field(default_factory=lambda: sys.stderr)
    env: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(os.environ))
    cwd: str = dataclasses.field(default_factory=os.getcwd)

    @property
    def stdout_isatty(self) -> bool:
        return getattr(self.stdout, "isatty", lambda: False)()

    @property
    def stderr_isatty(self) -> bool:
        return getattr(self.stderr, "isatty", lambda: False)()

    @property
    def colour(self) -> bool:
        """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
        return self.stdout_isatty and "NO_COLOR" not in self.env

    @property
    def columns(self) -> int:
        """The width a report's lines are cut to: COLUMNS when set, else the terminal's on a TTY, else
        PIPED_COLUMNS (a file or a pipe has no width; lines cut there stay readable in a wide window)."""
        try:
            if int(self.env.get("COLUMNS", "")) > 0:
                return int(self.env["COLUMNS"])
        except ValueError:
            pass
        if self.stdout_isatty:
            try:
                return os.get_terminal_size(self.stdout.fileno()).columns or PIPED_COLUMNS
            except (AttributeError, OSError, ValueError):  # a TTY-like stream without a descriptor
                return PIPED_COLUMNS
        return PIPED_COLUMNS

    def log(self, message: str) -> None:
        """Progress and diagnostics go to stderr; stdout carries only the report."""
        print(message, file=self.stderr, flush=True)
