"""Errors that carry the CLI's exit code, so every module fails the same testable way.

Exit codes: 0 ok, 1 operation failed or only partly done, 2 usage error (bad arguments or input
file), 3 the named thing does not exist.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3


class OpsError(Exception):
    exit_code = EXIT_FAILED


class UsageError(OpsError):
    exit_code = EXIT_USAGE


class NotFound(OpsError):
    exit_code = EXIT_NOT_FOUND
