"""Errors the domain raises. `web/errors.py` maps them to HTTP in one place and the
CLI maps them to exit code 2; nothing else catches them to translate."""

from __future__ import annotations

from dataclasses import dataclass, field


class DispatchError(Exception):
    """Base of every error a user can cause. `message` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DispatchError):
    """A value given by a user is wrong; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFound(DispatchError):
    """No record by the given key. The message carries the key."""

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"no {what} with the key {key!r} was found")
        self.what = what
        self.key = key


class NotAuthenticated(DispatchError):
    """No valid session or token, or the credentials were wrong."""


class NotAuthorised(DispatchError):
    """The caller is known but the target lies outside its scope or role."""


class Conflict(DispatchError):
    """The request contradicts the stored state (a duplicate, a state change not allowed)."""


@dataclass(frozen=True)
class RowProblem:
    """One problem in one row of an imported file; `line` counts from 1, header included."""

    line: int
    column: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "reason": self.reason}


@dataclass(eq=False)
class ImportRejected(DispatchError):
    """An import file had bad rows; nothing was written."""

    problems: list[RowProblem] = field(default_factory=list)
    total: int | None = None  # every problem found, listed or not (None: those listed)

    def __post_init__(self) -> None:
        n = len(self.problems)
        super().__init__(f"{n} problem(s) in the file; nothing was imported")
