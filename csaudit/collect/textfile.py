"""Reading the operator's text files (inventory, catalogue, waivers, reports): one clear error, never a traceback."""

from __future__ import annotations

from csaudit.model.errors import CsauditError, UsageError


def read_text(path: str, what: str = "", error: type[CsauditError] = UsageError) -> str:
    """The file as UTF-8 text; an unreadable or non-UTF-8 file raises `error` with one line."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise error(f"cannot read {what + ' ' if what else ''}{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
