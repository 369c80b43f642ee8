"""The ``edgecn`` command: a thin shell over the Python API.

Each subcommand is one module in this package that calls ``@subcommand`` (the registry finds
the modules), so adding a subcommand is adding a file. Handlers import the heavy API lazily,
so ``edgecn --help`` and ``edgecn profile`` stay fast and torch-free.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import traceback
from typing import Callable

from edgecn import __version__
from edgecn.errors import TERMINATED_EXIT, USER_ERROR_EXIT, EdgecnError, Terminated, raise_on_sigterm
from edgecn.fileio import writes_fail_past_size_limit
from edgecn.registry import Registry
from edgecn.terminal import STDOUT_CLOSED, safe_output


@dataclasses.dataclass(frozen=True)
class Subcommand:
    """One ``edgecn COMMAND``: its one-line help and ``configure(parser)``, which adds the
    options and sets ``parser.set_defaults(run=handler)``."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]


COMMANDS: Registry[Subcommand] = Registry("command", "edgecn --help", package="edgecn.cli")


def subcommand(name: str, help: str):
    """Decorator registering ``configure(parser)`` as ``edgecn NAME``."""

    def add(configure):
        COMMANDS.register(name)(Subcommand(help, configure))
        return configure

    return add


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecn",
        description="Train, condense, rewrite, quantize and compile efficient CNNs for edge devices, and profile them there.",
        epilog="Run `edgecn COMMAND --help` for a command's options. Exit status 2 means a problem with the input.")
    parser.add_argument("--version", action="version", version=f"edgecn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = subs.add_parser(name, help=command.help, description=command.help)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
        command.configure(p)
    parser.set_defaults(_subparsers=subs.choices)
    return parser


def unrecognized(extra: list[str], parser: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments" message, with the closest option of ``parser`` for each typo."""
    import difflib

    known = [o for action in parser._actions for o in action.option_strings]
    words = []
    for token in extra:
        close = difflib.get_close_matches(token.split("=")[0], known, n=1, cutoff=0.6) if token.startswith("-") else []
        words.append(f"{token} (did you mean {close[0]}?)" if close else token)
    return "unrecognized arguments: " + " ".join(words)


# Optional packages by import name -> how to get them. The core install has numpy only;
# `edgecn[runner]` adds an interpreter (what a device needs for `edgecn profile`).
OPTIONAL = {
    "torch": "pip install 'edgecn[full]' (training, condensing, building and tuning need the full stack; "
             "a device needs only 'edgecn[runner]' for `edgecn profile`)",
    "executorch": "pip install 'edgecn[full]'", "litert_torch": "pip install 'edgecn[full]'",
    "onnx": "pip install 'edgecn[full]'", "onnxruntime": "pip install 'edgecn[full]' (or onnxruntime alone to profile .onnx)",
    "onnxsim": "pip install 'edgecn[full]'", "sklearn": "pip install scikit-learn (or 'edgecn[full]')",
    "ai_edge_litert": "pip install 'edgecn[runner]'", "tflite_runtime": "pip install 'edgecn[runner]'",
    "PIL": "pip install pillow", "matplotlib": "pip install matplotlib", "tqdm": "pip install tqdm",
    "polygraphy": "pip install 'edgecn[full]'",
}


def missing_dependency_fix(module: str) -> str | None:
    """How to install ``module`` (a ModuleNotFoundError's name), if it is one of edgecn's optional packages."""
    return OPTIONAL.get(module.split(".")[0])


def main(argv: list[str] | None = None) -> int:
    """``edgecn ...``; returns the exit status. Everything printed goes through ``terminal.safe_output``."""
    with safe_output() as stdout_open:
        if not stdout_open:
            print(f"edgecn: error: {EdgecnError(*STDOUT_CLOSED).message}", file=sys.stderr)
            return USER_ERROR_EXIT
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the subcommand's parser: its usage, and the option the user likely meant
            sub = (getattr(args, "_subparsers", None) or {}).get(getattr(args, "command", None), parser)
            sub.error(unrecognized(extra, sub))
    except SystemExit as e:  # a bad option (argparse printed it) or --help: a status, for callers of main()
        return e.code if isinstance(e.code, int) else USER_ERROR_EXIT
    if not getattr(args, "run", None):
        parser.print_help()
        return USER_ERROR_EXIT
    raise_on_sigterm()
    writes_fail_past_size_limit()
    try:
        return int(args.run(args) or 0)
    except EdgecnError as e:
        if args.debug:
            traceback.print_exc()
        print(f"edgecn {args.command}: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        # The reader went away (`edgecn targets | head -3`): stop quietly, as tools killed by
        # SIGPIPE do, and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except Terminated:
        print(f"edgecn {args.command}: terminated (SIGTERM); finished files are kept, partial ones were removed",
              file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print(f"edgecn {args.command}: interrupted; finished files are kept, partial ones were removed", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        fix = missing_dependency_fix(e.name or "")
        if fix is None or args.debug:
            raise
        print(f"edgecn {args.command}: error: {args.command} needs {e.name.split('.')[0]}, which is not installed here. "
              f"Fix: {fix}", file=sys.stderr)
        return USER_ERROR_EXIT
    except Exception as e:  # an edgecn bug or an unexpected environment problem
        if args.debug:
            raise
        print(f"edgecn {args.command}: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}\n"
              f"  rerun with --debug for the traceback, and report it if the input looks right", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
