"""Exit codes, and the errors that end a command with one of them."""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
"""Anything else: the API or the storage unreachable, a server error, an export not COMPLETED."""
EXIT_USAGE = 2
"""Bad command line (argparse's own code)."""
EXIT_NOT_FOUND = 3
EXIT_REFUSED = 4
"""The API refused the request: invalid or refused body, conflict, unauthorized, rate limit."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, as shells report it)."""


class CliError(Exception):
    """Ends the command: `message` goes to stderr, `exit_code` to the shell."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiFailure(CliError):
    """An error answer of the API, in its one shape `{"error": {status, code, message, details}}`."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(_describe(status, code, message, details), exit_code_for(status))
        self.status = status
        self.code = code
        self.api_message = message
        self.details = details


def exit_code_for(status: int) -> int:
    if status == 404:
        return EXIT_NOT_FOUND
    if 400 <= status < 500:
        return EXIT_REFUSED
    return EXIT_ERROR


def _describe(status: int, code: str, message: str, details: Any) -> str:
    lines = [f"{status} {code}: {message}"]
    if isinstance(details, dict):
        lines += [f"  {key}: {value}" for key, value in details.items() if value is not None]
    elif isinstance(details, list):  # request validation: one entry per invalid field
        for entry in details:
            if isinstance(entry, dict):
                where = ".".join(str(part) for part in entry.get("loc", []))
                lines.append(f"  {where}: {entry.get('message', '')}")
    return "\n".join(lines)
