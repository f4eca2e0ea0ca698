"""Report files beside stdout: several formats of one report in one run (`--json FILE --junit FILE ...`)."""

from __future__ import annotations

import contextlib
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
        write_atomically(path, content)
    except OSError as exc:
        raise CsauditError(f"cannot write {path}: {exc.strerror}") from None
    env.log(f"csaudit: report written to {os.path.abspath(path)}")


def write_atomically(path: str, content: str | Callable[[TextIO], None]) -> None:
    """A reader of `path` sees the old report or the new one, never half of one (node_exporter's
    textfile collector reads its folder at any moment): the report goes to a temporary file beside
    it, then takes its name in one rename. The file keeps the mode of the one it replaces (a new
    one gets 0666 less the umask, as open() gives). What is not a regular file (a pipe, /dev/stdout)
    is written in place. The temporary name does not end in .prom, so the collector never reads it."""
    target = os.path.realpath(path)  # through a symlink: replace the file it points to, not the link
    if os.path.exists(target) and not os.path.isfile(target):
        with open(target, "w", encoding="utf-8") as handle:
            write_content(handle, content)
        return
    folder, name = os.path.split(target)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w", encoding="utf-8") as handle:
            if os.path.exists(target):
                os.fchmod(handle.fileno(), os.stat(target).st_mode & 0o7777)
            write_content(handle, content)
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the name points at it
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_report_files(outcome, files: dict[str, str], env: Environment) -> None:
    """`files`: format -> path."""
    for fmt, path in files.items():
        write_file(path, lambda handle, fmt=fmt: outcome.write(fmt, handle), env)
