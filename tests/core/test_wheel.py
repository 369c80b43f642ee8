"""A non-editable install from the wheel: targets and recipes inside it, clear errors for what it lacks."""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


TOP_LEVEL_OUT = {".git", ".venv", "build", "dist", ".setuptools-build", "runs", ".pytest_cache", ".hypothesis", "bench"}


def _copy_source(dst: Path) -> Path:
    """The checkout's source, without its outputs (edgecn/build/ is source: only the top-level build/ is left out)."""
    def ignore(folder, names):
        out = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        return out | (TOP_LEVEL_OUT & set(names) if Path(folder) == REPO else set())

    shutil.copytree(REPO, dst, symlinks=True, ignore=ignore)
    return dst


def test_wheel_installs_whole_in_a_clean_venv(tmp_path):
    src = _copy_source(tmp_path / "src")
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(dist), "-q"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    # setuptools staged its files outside build/, the folder edgecn writes artifacts to.
    assert not (src / "build").exists() and (src / ".setuptools-build").is_dir()
    (wheel,) = dist.glob("edgecn-*.whl")
    import zipfile

    inside = set(zipfile.ZipFile(wheel).namelist())
    assert {"edgecn/shipped/calibration/default.toml", "edgecn/shipped/targets/raspberry-pi-5.toml",
            "edgecn/build/pipeline.py"} <= inside

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    r = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECN_") and k != "PYTHONPATH"}

    def edgecn(*args):  # from an empty folder: nothing of the checkout can be found by accident
        return subprocess.run([str(bin_dir / "edgecn"), *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)

    listed = edgecn("targets", "--json")
    assert listed.returncode == 0, listed.stderr
    import json

    names = {t["name"] for t in json.loads(listed.stdout)}
    assert names == {"android-arm64", "host", "jetson-nano", "jetson-orin-nano", "raspberry-pi-4", "raspberry-pi-5"}
    helped = edgecn("build", "--target", "rpi5", "--help")
    assert helped.returncode == 0 and "--checkpoint" in helped.stdout
    # Commands that need the full stack say which extra to install, as a user error (exit 2).
    for command in (["train", "--epochs", "1"], ["build", "--target", "rpi5"]):
        r = edgecn(*command)
        assert r.returncode == 2 and "edgecn[full]" in r.stderr and "internal error" not in r.stderr, r.stderr
