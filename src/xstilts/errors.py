"""Errors meant for the user: the CLI prints their message on one line, no traceback."""
from __future__ import annotations

from os import PathLike


class XstiltsError(Exception):
    """A problem the user can fix (bad input, missing package, unwritable directory)."""


class DataFormatError(XstiltsError):
    """A data file does not have the expected format.

    The message always names the file and, where it applies, the line (1-based) or
    record and what was expected there.
    """

    def __init__(self, path: str | PathLike[str], expected: str, *, line: int | None = None,
                 record: str | None = None, got: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.record = record
        self.expected = expected
        self.got = got
        where = self.path
        if line is not None:
            where += f", line {line}"
        if record is not None:
            where += f", record {record}"
        msg = f"{where}: expected {expected}"
        if got is not None:
            msg += f", got {got}"
        super().__init__(msg)


class UnknownNameError(XstiltsError, KeyError):
    """An unknown task, language or other name; the message lists the valid choices."""

    def __init__(self, kind: str, name: str, choices: list[str] | tuple[str, ...]) -> None:
        self.kind, self.name, self.choices = kind, name, list(choices)
        super().__init__(f"unknown {kind} {name!r}; valid choices: {', '.join(sorted(self.choices))}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])
