"""Errors that end a run with one clear message and a documented exit code."""

from csaudit.model.exitcodes import ExitStatus


class CsauditError(Exception):
    """An expected failure: printed as one line on stderr, never as a traceback."""

    exit_status = ExitStatus.USAGE

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UsageError(CsauditError):
    exit_status = ExitStatus.USAGE


class ConfigError(CsauditError):
    exit_status = ExitStatus.USAGE


class ApiError(CsauditError):
    exit_status = ExitStatus.API
