"""The process environment, injected so that tests can drive the CLI in-process."""

import dataclasses
import os
import sys
from collections.abc import Mapping
from typing import TextIO


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

    def log(self, message: str) -> None:
        """Progress and diagnostics go to stderr; stdout carries only the report."""
        print(message, file=self.stderr, flush=True)
