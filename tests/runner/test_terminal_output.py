"""No control character from a device, a file or a name reaches the terminal.

Generated cases: each terminal control sequence below, placed in each string a user did not
write that edgecn prints (a target file's fields and name, a manifest's labels, an artifact's
file name, a path in an error message), through the real command lines. What reaches stdout
and stderr is checked for raw control characters; the escaped form must be shown instead.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecn.terminal import is_visible, visible

POISON = ["\x1b]0;owned\x07", "\x1b[2J", "\x9b31m", "a\rb", "\u202eexe.png", "\x00\x08\x7f"]
PLACES = ["target description", "target file name", "manifest label", "artifact name", "missing path"]


def _targets(tmp_path: Path, place: str, poison: str) -> list[str]:
    folder = tmp_path / "targets"
    folder.mkdir()
    text = Path(__file__).resolve().parents[2].joinpath("targets", "host.toml").read_text()
    name = "host.toml"
    if place == "target description":
        text = "\n".join(f"description = {json.dumps('host ' + poison)}" if line.startswith("description") else line
                         for line in text.splitlines())
    else:
        name = f"host{poison}.toml"
    (folder / name).write_text(text)
    return ["edgecn", "targets", "--dir", str(folder)]


def _runner_case(tmp_path: Path, artifacts: Path, place: str, poison: str) -> list[str]:
    folder = tmp_path / "build"
    shutil.copytree(artifacts, folder, ignore=shutil.ignore_patterns("int8", "steady"))
    if place == "manifest label":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["labels"] = [f"{label}{poison}" for label in manifest["labels"]]
        (folder / "manifest.json").write_text(json.dumps(manifest))
        image = tmp_path / "digit.npy"
        np.save(image, np.zeros((8, 8, 1), np.float32))
        return ["edgecn", "classify", str(folder / "model.tflite"), str(image)]
    art = folder / "model.tflite"
    if place == "artifact name":
        alone = tmp_path / f"model{poison}.tflite"
        shutil.copy(art, alone)
        return ["runner", str(alone), "--runs", "3", "--threads", "1"]
    return ["runner", str(tmp_path / f"gone{poison}.tflite")]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    if argv[0] == "runner":
        from edgecn.runner.cli import main
    else:
        from edgecn.cli import main
    code = main(argv[1:])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("place,poison", list(itertools.product(PLACES, POISON)),
                         ids=[f"{p}-{i}" for p, i in itertools.product(PLACES, range(len(POISON)))])
def test_strings_from_files_and_names_are_shown_escaped(artifacts, tmp_path, capsys, place, poison):
    if place in ("target file name", "artifact name", "missing path"):
        poison = poison.replace("\x00", "\x01")  # a file name cannot hold NUL
    if "target" in place:
        argv = _targets(tmp_path, place, poison)
    else:
        argv = _runner_case(tmp_path, artifacts, place, poison)
    code, out, err = _run(argv, capsys)
    assert code in (0, 2), err
    assert is_visible(out) and is_visible(err), f"a raw control character reached the terminal: {out + err!r}"
    assert "Traceback" not in err
    if place != "target file name":  # a target file's name is not printed when its content is fine
        shown = out + err  # escaped by the output layer, or already by a repr() in the message
        assert visible(poison) in shown or visible(repr(poison)[1:-1]) in shown, shown[-2000:]
