"""Report files beside stdout: several formats of one report in one run (`--json FILE --junit FILE ...`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TextIO

from csaudit.model.environment import Environment
from csaudit.model.errors import CsauditError, UsageError


def check_writable(paths) -> None:
    """Before a long run, not after it: a report that cannot be written is a usage error."""
    for path in paths:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {path}: the folder {folder} does not exist")
        if os.path.isdir(path) or not os.access(folder, os.W_OK):
            raise UsageError(f"cannot write {path}: " + ("it is a folder" if os.path.isdir(path) else "permission denied"))


def write_content(handle: TextIO, content: str | Callable[[TextIO], None]) -> None:
    """`content`: the text, or a function that writes it to the handle (a large report streams)."""
    if isinstance(content, str):
        handle.write(content)
    else:
        content(handle)


def write_file(path: str, content: str | Callable[[TextIO], None], env: Environment) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            write_content(handle, content)
    except OSError as exc:
        raise CsauditError(f"cannot write {path}: {exc.strerror}") from None
    env.log(f"csaudit: report written to {os.path.abspath(path)}")


def write_report_files(outcome, files: dict[str, str], env: Environment) -> None:
    """`files`: format -> path."""
    for fmt, path in files.items():
        write_file(path, lambda handle, fmt=fmt: outcome.write(fmt, handle), env)
