"""One error type for everything a user can fix, and the exit code it maps to."""

from __future__ import annotations

USER_ERROR_EXIT = 2
"""Exit status of every user error (bad path, bad file, bad option), across all subcommands."""

INCOMPLETE_EXIT = 3
"""Exit status of a build that wrote some of its target's artifacts but not all (see report.md)."""


class EdgecnError(Exception):
    """A problem the user can fix: says what is wrong and how to fix it.

    Args:
        what: what is wrong, in one sentence.
        fix: what to do about it, in one sentence (optional but strongly encouraged).
    """

    exit_code = USER_ERROR_EXIT

    def __init__(self, what: str, fix: str | None = None):
        self.what = what.rstrip(".")
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.what}. Fix: {self.fix}" if self.fix else f"{self.what}."
