"""User-facing errors.

Everything a user can cause (a bad scenario, a missing binary, not being root) is raised as a
`SimnetError`; the CLI prints it as one line and exits with its `exit_code`, never with a traceback.
"""

from __future__ import annotations


class SimnetError(Exception):
    """An error whose message is meant for the user, with what to do about it."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


class ScenarioError(SimnetError):
    """The scenario file (or an override) is invalid; nothing was built."""

    exit_code = 2


class EnvironmentProblem(SimnetError):
    """The machine lacks something a run needs (root, a binary, a kernel feature)."""

    exit_code = 3
