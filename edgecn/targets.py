"""Deployment targets: one TOML file per device in ``targets/``, validated into a frozen dataclass.

A target names its backends, precisions, lowering choices and per-backend options
(a ``[<backend>]`` table, checked against that backend's ``Options`` dataclass). Short names
are declared by each file's ``aliases``; there is no central list. Adding a device is
adding one file.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from edgecn.errors import EdgecnError
from edgecn.registry import Registry

PRECISIONS = ("fp32", "fp16", "int8")
_FIX = "edit the target file (see targets/host.toml for a complete example)"


@dataclasses.dataclass(frozen=True)
class Target:
    """A device edgecn builds for.

    Attributes:
        name: canonical name (the file stem).
        aliases: short names that resolve to it (``rpi5``, ``jetson`` ...).
        description: one line for ``edgecn targets``.
        arch: CPU architecture (``aarch64``, ``x86_64``).
        cpu: CPU core (``cortex-a76``), for people and for qemu checks.
        threads: threads the runtime should use on the device.
        backends: backend names, in build order.
        precisions: precisions wanted; each backend builds those it supports.
        lowering: the ``[lowering]`` table (edgecn.passes.LoweringConfig fields).
        backend_options: ``{backend: Options}`` from ``[<backend>]`` tables.
        runtimes: runtime packages the device carries (informational).
        calibration: calibration recipe name (``calibration/<name>.toml``).
        path: the file it was read from.
    """

    name: str
    description: str
    arch: str
    cpu: str
    backends: tuple[str, ...]
    precisions: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    threads: int = 1
    lowering: dict = dataclasses.field(default_factory=dict)
    backend_options: dict = dataclasses.field(default_factory=dict)
    runtimes: tuple[str, ...] = ()
    calibration: str = "default"
    path: Path | None = None

    def options(self, backend: str):
        """The ``Options`` for ``backend`` (its defaults when the file has no table for it)."""
        from edgecn.backends import BACKENDS

        return self.backend_options.get(backend) or BACKENDS.get(backend).options_type()

    def precisions_for(self, backend: str) -> tuple[str, ...]:
        """The wanted precisions this backend can build, in the target's order."""
        from edgecn.backends import BACKENDS

        supported = BACKENDS.get(backend).precisions
        return tuple(p for p in self.precisions if p in supported)


_TYPES = {"name": str, "description": str, "arch": str, "cpu": str, "backends": list, "precisions": list,
          "aliases": list, "threads": int, "lowering": dict, "runtimes": list,
          "calibration": str}
_REQUIRED = ("name", "description", "arch", "cpu", "backends", "precisions")


def targets_dir() -> Path:
    """``$EDGECN_TARGETS_DIR`` (a user's own target files), else the targets shipped inside the package.

    They live in ``edgecn/shipped/targets/`` so a wheel carries them; the checkout's ``targets/``
    is a link to that folder.
    """
    from edgecn import environment

    return environment.folder(environment.TARGETS, Path(__file__).resolve().parent / "shipped" / "targets")


def load_target_file(path: str | os.PathLike) -> Target:
    """Read and validate one target file; EdgecnError names the file, the field and the fix."""
    from edgecn.limits import read_toml

    path = Path(path)
    table = read_toml(path, "target file")
    where = f"target file {path.name!r}"
    table = dict(table)
    from edgecn.backends import BACKENDS

    tables = {k: table.pop(k) for k in list(table) if k in BACKENDS}
    _check_fields(table, where)
    if table["name"] != path.stem:
        raise EdgecnError(f"{where}: field 'name' is {table['name']!r} but the file is {path.name!r}",
                          f"rename the file to {table['name']}.toml or set name = {path.stem!r}")
    return _build(table, tables, path, where)


def _check_fields(table: dict, where: str) -> None:
    for key in table:
        if key not in _TYPES:
            raise EdgecnError(f"{where}: unknown field {key!r}",
                              f"use only {', '.join(_TYPES)}, or a [BACKEND] table for a known backend")
    for key in _REQUIRED:
        if key not in table:
            raise EdgecnError(f"{where}: missing field {key!r}", f"add {key} = ... ({_FIX})")
    for key, value in table.items():
        want = _TYPES[key]
        if isinstance(value, bool) or not isinstance(value, want):
            raise EdgecnError(f"{where}: field {key!r} must be a {want.__name__} (got {type(value).__name__})",
                              f"fix the value of {key!r}")
        if want is list and not all(isinstance(v, str) for v in value):
            raise EdgecnError(f"{where}: field {key!r} must be a list of strings", f"fix the value of {key!r}")


def _build(table: dict, tables: dict, path: Path, where: str) -> Target:
    from edgecn.backends import BACKENDS

    backends = tuple(table["backends"])
    for b in backends:
        if b not in BACKENDS:
            raise EdgecnError(f"{where}: field 'backends' names unknown backend {b!r}",
                              f"use some of {', '.join(BACKENDS.names())}")
    if not backends:
        raise EdgecnError(f"{where}: field 'backends' is empty", f"list at least one of {', '.join(BACKENDS.names())}")
    for p in table["precisions"]:
        if p not in PRECISIONS:
            raise EdgecnError(f"{where}: field 'precisions' names unknown precision {p!r}", f"use some of {', '.join(PRECISIONS)}")
    if not 1 <= table.get("threads", 1) <= 1024:
        raise EdgecnError(f"{where}: field 'threads' must be from 1 to 1024", "set threads to the device's core count")
    lowering = dict(table.get("lowering", {}))
    _check_lowering(lowering, where)
    opts = _backend_tables(tables, backends, where)
    _check_backend_lowering(lowering, opts, backends, where)
    rest = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()
            if k not in ("backends", "precisions", "lowering")}
    return Target(backends=backends, precisions=tuple(table["precisions"]), lowering=lowering,
                  backend_options=opts, path=path, **rest)


def _check_lowering(lowering: dict, where: str) -> None:
    from edgecn.lowering import LoweringConfig  # plain data: no torch needed to check a target

    try:
        LoweringConfig.from_dict(lowering)
    except EdgecnError as e:
        raise EdgecnError(f"{where}: [lowering]: {e.what}", e.fix) from e
    except TypeError as e:
        raise EdgecnError(f"{where}: [lowering] has a value of the wrong type ({e})", "fix the [lowering] table") from e


def _check_backend_lowering(lowering: dict, opts: dict, backends: tuple[str, ...], where: str) -> None:
    """A backend's options that cannot build what the lowering makes for it (e.g. a .pte that
    must run all in XNNPACK, from a lowering that keeps gathers) are refused when the file loads,
    not at the end of a build."""
    from edgecn.backends import BACKENDS
    from edgecn.lowering import LoweringConfig

    for b in backends:
        conflict = getattr(opts.get(b) or BACKENDS.get(b).options_type(), "lowering_conflict", None)
        problem = conflict(LoweringConfig.from_dict(lowering, b)) if conflict else None
        if problem:
            raise EdgecnError(f"{where}: {problem[0]}", problem[1])


def _backend_tables(tables: dict, backends: tuple[str, ...], where: str) -> dict:
    from edgecn.backends import BACKENDS

    out = {}
    for name, values in tables.items():
        if name not in backends:
            raise EdgecnError(f"{where}: table [{name}] is for a backend the target does not use",
                              f"add {name!r} to 'backends' or remove the table (known: {', '.join(BACKENDS.names())})")
        out[name] = _options(BACKENDS.get(name).options_type, values, f"{where}: [{name}]")
    return out


def _options(cls, values: Any, where: str):
    if not isinstance(values, dict):
        raise EdgecnError(f"{where} must be a table", "write it as [BACKEND] with key = value lines")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            raise EdgecnError(f"{where}: unknown field {key!r}", f"use only {', '.join(fields)}")
        want = type(fields[key].default)
        if want is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
            values = {**values, key: tuple(value)}
            continue
        ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
        if not ok:
            kind = "list of strings" if want is tuple else want.__name__
            raise EdgecnError(f"{where}: field {key!r} must be a {kind} (got {type(value).__name__})",
                              f"fix the value of {key!r}")
    try:
        return cls(**values)
    except EdgecnError as e:
        raise EdgecnError(f"{where}: {e.what}", e.fix) from e


def load_targets(folder: str | os.PathLike | None = None) -> Registry[Target]:
    """Every ``*.toml`` in ``folder`` (default ``targets_dir()``), aliases included."""
    folder = Path(folder) if folder else targets_dir()
    reg: Registry[Target] = Registry("target", "edgecn targets")
    targets = [load_target_file(path) for path in sorted(folder.glob("*.toml"))]
    owner: dict[str, str] = {}
    for t in targets:  # a name or alias that two files claim is refused, whichever kind each is
        for key in (t.name, *t.aliases):
            if key in owner and owner[key] != t.name:
                raise EdgecnError(f"targets folder {str(folder)!r}: {key!r} names both {owner[key]!r} and {t.name!r}",
                                  f"rename one of them (file {key}.toml, or the alias in its 'aliases')")
            owner[key] = t.name
    for t in targets:
        reg.register(t.name, aliases=t.aliases)(t)
    return reg


def get_target(name: str, folder: str | os.PathLike | None = None) -> Target:
    """A target by name, alias or path to a ``.toml`` file."""
    if name.endswith(".toml"):
        return load_target_file(name)
    return load_targets(folder).get(name)
