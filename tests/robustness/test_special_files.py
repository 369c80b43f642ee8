"""Special files, odd paths, files that parse but have the wrong structure, and the user's own files.

Each kind is checked at the one place it is read or written (limits.read_file, check_artifact,
checkpoint._check_structure, fileio.atomic_dir/atomic_path), and the cases are generated per kind.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest
import torch

from edgecn.errors import EdgecnError
from robust_helpers import COUNTS, edgecn

REPO = Path(__file__).resolve().parents[2]


def _specials(folder: Path, name: str) -> dict[str, Path]:
    """One of each kind of non-regular file, all named ``name``-something."""
    out = {}
    os.mkfifo(folder / f"{name}-fifo")
    out["fifo"] = folder / f"{name}-fifo"
    (folder / f"{name}-zero").symlink_to("/dev/zero")
    out["/dev/zero link"] = folder / f"{name}-zero"
    (folder / f"{name}-dir").mkdir()
    out["folder"] = folder / f"{name}-dir"
    (folder / f"{name}-dangling").symlink_to(folder / "nowhere")
    out["dangling link"] = folder / f"{name}-dangling"
    return out


@pytest.mark.parametrize("suffix", [".toml"])
def test_special_files_in_the_targets_folder_are_refused_not_read(tmp_path, suffix):
    tried = 0
    for kind in ("fifo", "/dev/zero link", "folder"):
        folder = tmp_path / kind.replace("/", "_").replace(" ", "_")
        shutil.copytree(REPO / "targets", folder)
        special = _specials(folder, "odd")[kind]
        special.rename(folder / f"odd{suffix}")
        proc = edgecn(["targets"], cwd=tmp_path, env={"EDGECN_TARGETS_DIR": str(folder)}, timeout=60)
        assert proc.returncode == 2 and "odd.toml" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        tried += 1
    COUNTS["bad_inputs"] += tried


def test_a_name_claimed_by_two_target_files_is_refused(tmp_path):
    folder = tmp_path / "targets"
    shutil.copytree(REPO / "targets", folder)
    text = (folder / "raspberry-pi-4.toml").read_text().replace('name = "raspberry-pi-4"', 'name = "rpi5"')
    text = text.replace('aliases = ["rpi4", "pi4"]', "aliases = []")
    (folder / "rpi5.toml").write_text(text)
    proc = edgecn(["targets"], cwd=tmp_path, env={"EDGECN_TARGETS_DIR": str(folder)}, timeout=60)
    COUNTS["bad_inputs"] += 1
    assert proc.returncode == 2 and "'rpi5' names both" in proc.stderr, proc.stderr


def test_special_and_oversized_artifacts_are_refused_without_reading_them(tmp_path):
    from edgecn.runner.check import check_artifact

    cases = {k: v for k, v in _specials(tmp_path, "m.tflite").items()}
    huge = tmp_path / "huge.tflite"
    with open(huge, "wb") as f:  # 2 GiB, sparse: reading it whole would take 2 GiB of memory
        f.truncate(2 << 30)
    cases["2 GiB of zeros"] = huge
    for kind, path in cases.items():
        with pytest.raises(EdgecnError) as e:
            check_artifact(path)
        assert e.value.fix, kind
    COUNTS["bad_inputs"] += len(cases)


def _payload(**change):
    from edgecn.models import create_model

    model = create_model("condensenet-light", num_classes=3, input_size=16)
    p = {"format": "edgecn-checkpoint", "version": 1, "config": dict(model.edgecn_config),
         "state_dict": model.state_dict(), "extra": {}}
    for k, v in change.items():
        if k.startswith("config_"):
            p["config"][k[7:]] = v
        else:
            p[k] = v
    return p


def _bad_payloads():
    nan_state = _payload()["state_dict"]
    first = next(k for k, v in nan_state.items() if v.is_floating_point())
    nan_state = {**nan_state, first: torch.full_like(nan_state[first], float("nan"))}
    inf_state = {**nan_state, first: torch.full_like(nan_state[first], float("inf"))}
    wrong = dict(_payload()["state_dict"])
    wrong[first] = torch.zeros(3, 3)
    return {"no state_dict": _payload(state_dict=None), "empty state_dict": _payload(state_dict={}),
            "config a string": _payload(config="condensenet-light"), "config without name": _payload(config={}),
            "overrides a list": _payload(config_overrides=["a"]), "num_classes 2e9": _payload(config_num_classes=2 * 10**9),
            "num_classes 0": _payload(config_num_classes=0), "num_classes a string": _payload(config_num_classes="3"),
            "input_size 1e6": _payload(config_input_size=10**6), "in_channels 99": _payload(config_in_channels=99),
            "extra a list": _payload(extra=[1]), "NaN weights": _payload(state_dict=nan_state),
            "inf weights": _payload(state_dict=inf_state), "a weight of the wrong shape": _payload(state_dict=wrong)}


def test_checkpoints_that_parse_but_have_the_wrong_structure(tmp_path):
    from edgecn.checkpoint import load_checkpoint

    for name, payload in _bad_payloads().items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        buf = io.BytesIO()
        torch.save(payload, buf)
        path.write_bytes(buf.getvalue())
        with pytest.raises(EdgecnError) as e:
            load_checkpoint(path)
        assert e.value.fix, name
        COUNTS["bad_inputs"] += 1
    for kind, path in _specials(tmp_path, "ck.pt").items():
        if kind == "folder":
            continue
        with pytest.raises(EdgecnError):
            load_checkpoint(path)
        COUNTS["bad_inputs"] += 1


def test_writes_to_odd_places_are_user_errors(tmp_path):
    from edgecn.fileio import atomic_write_text

    ok = tmp_path / ("n" * 250 + ".txt")  # a legal 254-character name: its temp name must still fit
    atomic_write_text(ok, "x")
    assert ok.read_text() == "x" and [p.name for p in tmp_path.iterdir()] == [ok.name]
    for bad in (Path("/proc/edgecn-test.txt"), Path("/sys/edgecn-test.txt"), tmp_path / ("n" * 300),
                tmp_path / "a-folder", tmp_path / ok.name / "below-a-file.txt"):
        if bad.name == "a-folder":
            bad.mkdir()
        with pytest.raises(EdgecnError) as e:
            atomic_write_text(bad, "x")
        assert e.value.fix and "disk space" not in e.value.fix, bad
        COUNTS["bad_inputs"] += 1


def test_a_build_folder_that_is_not_edgecns_is_refused_and_kept(tmp_path):
    from edgecn.fileio import atomic_dir

    def owned(p):
        return (p / "manifest.json").is_file()

    cases = {"a regular file": lambda p: p.write_text("mine"), "a link": lambda p: p.symlink_to(tmp_path),
             "a user's folder": lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine"))}
    for kind, make in cases.items():
        target = tmp_path / kind.replace(" ", "_").replace("'", "")
        make(target)
        with pytest.raises(EdgecnError, match="edgecn replaces only"):
            with atomic_dir(target, owned=owned) as stage:
                (stage / "manifest.json").write_text("{}")
        assert target.exists() or target.is_symlink(), kind
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "left a staging folder"
        COUNTS["bad_inputs"] += 1


def _swap_many(folder: str, n: int, tag: str) -> None:
    from edgecn.fileio import atomic_dir

    for i in range(n):
        with atomic_dir(folder, owned=lambda p: (p / "manifest.json").is_file()) as stage:
            (stage / "manifest.json").write_text(f"{tag}{i}")


def test_two_processes_swapping_one_folder_take_turns(tmp_path):
    folder = str(tmp_path / "out" / "model-target")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_swap_many, args=(folder, 60, tag)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert (Path(folder) / "manifest.json").read_text()[1:] == "59"
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name != "model-target"]
    assert leftovers == []
    COUNTS["bad_inputs"] += 1
