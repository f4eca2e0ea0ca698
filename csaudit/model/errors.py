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
    """The CloudStack API failed us. What the server said travels as fields, for code to decide on:
    the HTTP status, CloudStack's error code (errorcode) and internal code (cserrorcode), and its text."""

    exit_status = ExitStatus.API

    def __init__(self, message: str, http_status: int | None = None, error_code: int | None = None,
                 error_text: str | None = None, cs_error_code: int | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.error_text = error_text
        self.cs_error_code = cs_error_code


class DeadlineError(ApiError):
    """The run's --deadline passed while the API was being read."""
