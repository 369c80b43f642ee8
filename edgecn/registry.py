"""A small named registry filled by decorators in the module that defines each entry."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from edgecn.errors import EdgecnError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; ``@registry.register("name")`` adds one.

    Args:
        kind: what the entries are ("model", "backend", "pass"), used in error messages.
        list_command: the command that lists valid names, quoted in errors.
    """

    def __init__(self, kind: str, list_command: str | None = None):
        self.kind = kind
        self.list_command = list_command
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
            return obj

        return add

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; raises EdgecnError if unknown."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        candidates = sorted(self._entries) + sorted(self._aliases)
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        listing = f"run `{self.list_command}` to list them" if self.list_command else (
            "known: " + ", ".join(sorted(self._entries)))
        raise EdgecnError(f"unknown {self.kind} {name!r}", f"{hint}{listing}")

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def __len__(self) -> int:
        return len(self._entries)
