"""The one registry style of edgecn: a named registry filled by ``@registry.register(name)`` in
the module that defines each entry, with the package's modules found, not listed.

Models, rewrites, backends, runners and CLI commands each have one: adding an entry is adding a
module with the decorator; ``tests/core/test_registries.py`` walks every registry.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

from edgecn.errors import EdgecnError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; ``@registry.register("name")`` adds one.

    Args:
        kind: what the entries are ("model", "backend", "pass"), used in error messages.
        list_command: the command that lists valid names, quoted in errors.
        package: the package whose modules register the entries; every module in it whose
            name does not start with ``_`` is imported on the first lookup (so a module that
            needs a heavy library imports it inside its functions, not at the top).
    """

    def __init__(self, kind: str, list_command: str | None = None, package: str | None = None):
        self.kind = kind
        self.list_command = list_command
        self.package = package
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._discovered = package is None

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True  # first: a module that looks an entry up while it loads must not recurse
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = obj
            for alias in aliases:
                if alias in self._entries or alias in self._aliases:
                    raise ValueError(f"{self.kind} {alias!r} registered twice")
                self._aliases[alias] = name
            return obj

        return add

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; raises EdgecnError if unknown."""
        self._discover()
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

    def names(self, aliases: bool = False) -> list[str]:
        """Registered names (with ``aliases``: their aliases too)."""
        self._discover()
        return sorted(self._entries) + (sorted(self._aliases) if aliases else [])

    def items(self) -> Iterator[tuple[str, T]]:
        self._discover()
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries or name in self._aliases

    def __len__(self) -> int:
        self._discover()
        return len(self._entries)
