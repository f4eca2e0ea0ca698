"""Process exit codes, documented in README and `csaudit --help`."""

import enum


class ExitStatus(enum.IntEnum):
    OK = 0  # every verified flow passed
    FLOWS_FAILED = 1  # at least one flow failed (with --strict: also unverified/error)
    USAGE = 2  # bad arguments, configuration, catalogue or inventory file
    API = 3  # the CloudStack API was unreachable or answered badly
    INTERRUPTED = 130  # Ctrl-C / SIGTERM


EXIT_CODE_HELP = """exit codes:
  0    no flow failed
  1    at least one flow failed (with --strict, also any unverified or error flow)
  2    usage or configuration error
  3    CloudStack API unreachable or bad answer, or the API key's role refuses a command (see `csaudit role`)
  130  interrupted"""
