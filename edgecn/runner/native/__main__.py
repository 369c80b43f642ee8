"""``python -m edgecn.runner.native``: compile the torch-free .pte runner for this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecn.errors import USER_ERROR_EXIT, EdgecnError
from edgecn.runner import native


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgecn.runner.native", description=(
        "Compile edgecn's native ExecuTorch runner, so that .pte files profile without torch. It builds "
        "against the executorch package if one is installed here; otherwise it downloads the executorch "
        f"{native.VERSION} wheel (without dependencies) and keeps only its C++ libraries and headers."))
    p.add_argument("--out", default=None, help="where to write the binary (default: a cache folder edgecn "
                                                "looks in; set $EDGECN_PTE_RUNNER to use another)")
    p.add_argument("--cxx", default=None, help="the C++ compiler (default: $CXX, c++, g++ or clang++)")
    p.add_argument("--wheel", default=None, help="an executorch wheel file to take the libraries from "
                                                 "(for a device without a network)")
    p.add_argument("--force", action="store_true", help="rebuild even if a build for this install exists")
    args = p.parse_args(argv)
    try:
        existing = None if (args.force or args.out) else native.find_binary()
        path = existing or native.build(args.out, args.cxx, args.wheel and Path(args.wheel))
    except EdgecnError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return USER_ERROR_EXIT
    print(f"{'already built' if existing else 'built'}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
