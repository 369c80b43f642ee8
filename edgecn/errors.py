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


TERMINATED_EXIT = 143
"""Exit status after SIGTERM (128 + 15, what shells report for a process killed by it)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so the clean-up that runs on Ctrl-C runs too.

    ``kill``, systemd, ``docker stop`` and CI timeouts send SIGTERM; Python's default is to die
    at once, leaving staging folders and temp files behind.
    """


def raise_on_sigterm() -> None:
    """Turn SIGTERM into ``Terminated`` in this (main) thread."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise Terminated()

        signal.signal(signal.SIGTERM, handler)

