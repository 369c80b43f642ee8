"""What the device answers, what crosses to it and what stays on it, against a real OpenSSH server.

The "device" is an sshd on 127.0.0.1 whose sessions run through a script: it gives the device
its own TMPDIR (so "nothing left on the device" is an empty folder) and, when the test asks,
prints a login banner before every command. A fake device python answers the runner's command
with what a test wrote (the probe still gets the real python's answer).

Cases are generated: every document a device could answer is derived from a real one by
removing, retyping or poisoning each field in turn; the folders sent with --data are drawn
at random. Each case ends with success or exit 2 and one line naming the device and the fix.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecn.errors import EdgecnError
from edgecn.runner.session import read_document
from edgecn.terminal import is_visible
from runner_helpers import wait_for
from sshd_helpers import remote_argv, sshd

POISON = ("\x1b]0;owned\x07", "\x1b[2J\x1b[H", "\x9b31m", "line\rover", "\u202egnp.exe", "\x07\x08\x7f")
"""Terminal control sequences: set the title, clear the screen, C1 CSI, overwrite, reorder, bell."""


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    d = tmp_path_factory.mktemp("device")
    tmp, banner, answer = d / "tmp", d / "banner", d / "answer"
    tmp.mkdir()
    banner.write_text("")
    script = d / "login.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"export TMPDIR='{tmp}'\n"
        'case "$SSH_ORIGINAL_COMMAND" in\n'
        "  internal-sftp|*sftp-server*) exec /usr/lib/openssh/sftp-server ;;\n"
        "esac\n"
        f"cat '{banner}'\n"  # what a chatty .bashrc or motd script prints before every command
        'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n')
    fake = d / "fake-python"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-c" ]; then exec "{sys.executable}" "$@"; fi\n'  # the runtime probe: a real answer
        # keep what arrived as --data, to compare with what should have
        f'prev=; for a in "$@"; do [ "$prev" = --data ] && rm -rf "{d}/received" && cp -R "$a" "{d}/received"; prev=$a; done\n'
        f"cat '{answer}.out'; cat '{answer}.err' >&2; exit $(cat '{answer}.code')\n")
    for f in (script, fake):
        f.chmod(0o755)
    if not Path("/usr/lib/openssh/sftp-server").exists():
        pytest.skip("no /usr/lib/openssh/sftp-server: the device script needs it for scp")
    with sshd(d / "sshd", force_command=str(script)) as server:
        yield dict(server, tmp=tmp, banner=banner, answer=answer, fake=fake, received=d / "received")


def _answer(device, out: str | bytes, err: str = "", code: int = 0) -> None:
    a = device["answer"]
    Path(f"{a}.out").write_bytes(out.encode("utf-8", "surrogateescape") if isinstance(out, str) else out)
    Path(f"{a}.err").write_text(err)
    Path(f"{a}.code").write_text(str(code))


def _host(argv: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, timeout=300, **kw)


def _left_on_device(device) -> list[str]:
    return sorted(p.name for p in device["tmp"].iterdir())


def _device_processes(device, runner_only: bool = False) -> list[int]:
    """Processes whose command line names the device's TMPDIR (the host's ssh, the device's
    shell and runner); ``runner_only``: the device's python runner itself."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if str(device["tmp"]) in "\0".join(argv) and (not runner_only or argv[0] == sys.executable):
            found.append(int(pid))
    return found


def _one_line_user_error(proc) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and lines and "error:" in lines[-1] and "Fix:" in lines[-1], proc.stderr
    assert is_visible(proc.stdout) and is_visible(proc.stderr), f"a raw control character reached the terminal: {proc.stderr!r}"


# ---------------------------------------------------------------------------------------------
# What the device answers: documents generated from a real one


@pytest.fixture(scope="module")
def real_document(artifacts, tmp_path_factory) -> str:
    proc = _host(["-m", "edgecn.runner", str(artifacts / "model.tflite"), "--runs", "3", "--threads", "1", "--json"],
                 tmp_path_factory.mktemp("doc"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _leaves(value, path=()):
    """Every (path, value) in a JSON tree, containers included."""
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        yield from _leaves(v, (*path, k))


def _set(doc, path, value):
    for k in path[:-1]:
        doc = doc[k]
    if value is _DELETE:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


_DELETE = object()
_WRONG = {str: 12, int: "12", float: "1.5", dict: [], list: {}, bool: "yes"}


def bad_answers(text: str):
    """(case, answer text) for every way a device's answer can be wrong, derived from a real document."""
    doc = json.loads(text)
    yield "empty", ""
    yield "text", "Welcome to Raspberry Pi OS\n"
    yield "traceback", "Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'a'\n"
    yield "half a document", text[: len(text) // 2]
    yield "escape before the document", "\x1b]0;owned\x07" + text
    for value in ([], [doc], "a string", 42, None, True):
        yield f"json {type(value).__name__}", json.dumps(value)
    yield "no results", json.dumps(dict(doc, results=[]))
    yield "two results for one", json.dumps(dict(doc, results=doc["results"] * 2))
    yield "another format", json.dumps(dict(doc, format="something-else"))
    required = [("format",), ("version",), ("environment",), ("results",)] + [
        ("results", 0, k) for k in ("artifact", "name", "runtime", "runs", "load_ms", "first_ms", "throughput_ips",
                                    "latency_ms", "integrity")] + [
        ("results", 0, "latency_ms", k) for k in ("min", "mean", "median", "p10", "p90", "p99", "max")] + [
        ("results", 0, "integrity", "verified")]
    for path in required:
        gone = copy.deepcopy(doc)
        _set(gone, path, _DELETE)
        yield f"without {'.'.join(map(str, path))}", json.dumps(gone)
        old = copy.deepcopy(doc)
        for k in path:
            old = old[k]
        wrong = copy.deepcopy(doc)
        _set(wrong, path, _WRONG[type(old)])
        yield f"{'.'.join(map(str, path))} mistyped", json.dumps(wrong)
    strings = [p for p, v in _leaves(doc) if isinstance(v, str)]
    for i, path in enumerate(strings):
        poisoned = copy.deepcopy(doc)
        _set(poisoned, path, f"{POISON[i % len(POISON)]}x")
        yield f"control characters in {'.'.join(map(str, path))}", json.dumps(poisoned)
    keyed = copy.deepcopy(doc)
    keyed["results"][0][POISON[0]] = 1
    yield "control characters in a key", json.dumps(keyed)


def test_every_wrong_answer_is_one_clear_error(real_document):
    """read_document, which every answer from a device or a child runner goes through."""
    cases = list(bad_answers(real_document))
    assert len(cases) > 60
    assert read_document(real_document, "the runner on pi@dev", 1)["results"][0]["runs"] == 3
    for case, text in cases:
        with pytest.raises(EdgecnError) as e:
            read_document(text, "the runner on pi@dev", 1)
        message = e.value.message
        assert "the runner on pi@dev" in message and "Fix:" in message, case
        assert is_visible(message) and "\n" not in message, f"{case}: {message!r}"


def test_wrong_answers_over_ssh_are_one_clear_error(device, artifacts, real_document, tmp_path):
    """A sample of the generated answers, each from a real ssh session, half of them after a banner."""
    cases = list(bad_answers(real_document))
    sample = [cases[i] for i in sorted(random.Random(0).sample(range(len(cases)), 8))]
    sample += [("device error with escapes", "")]
    for i, (case, text) in enumerate(sample):
        device["banner"].write_text("Welcome!\n\x1b[1mLast login: today\x1b[0m\n" if i % 2 else "")
        if case == "device error with escapes":
            _answer(device, "", err="edgecn profile: error: \x1b]0;owned\x07 bad\x9b2J. Fix: reinstall", code=2)
        else:
            _answer(device, text)
        proc = _host(remote_argv(device, artifacts / "model.tflite", "--runs", "3", python=str(device["fake"])),
                     tmp_path)
        _one_line_user_error(proc)
        assert "127.0.0.1" in proc.stderr.strip().splitlines()[-1], case
        assert _left_on_device(device) == [], case
    device["banner"].write_text("")


# ---------------------------------------------------------------------------------------------
# Nothing left behind


@pytest.mark.parametrize("banner", [False, True], ids=["plain login", "login with a banner"])
def test_a_run_leaves_nothing_on_the_device_however_it_ends(device, artifacts, tmp_path, banner):
    device["banner"].write_text("Welcome to the device\n" * 3 if banner else "")
    try:
        ok = _host(remote_argv(device, artifacts / "model.tflite", "--runs", "3", "--json"), tmp_path)
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert json.loads(ok.stdout)["results"][0]["runs"] == 3  # the banner did not reach the answer
        assert _left_on_device(device) == []
        _answer(device, "", err="Segmentation fault", code=139)
        crashed = _host(remote_argv(device, artifacts / "model.tflite", "--runs", "3", python=str(device["fake"])),
                        tmp_path)
        _one_line_user_error(crashed)
        assert _left_on_device(device) == []
    finally:
        device["banner"].write_text("")


@pytest.mark.parametrize("how", ["SIGINT to the group", "SIGTERM", "SIGKILL"])
def test_stopping_the_host_stops_the_device_runner_and_clears_its_folder(device, artifacts, tmp_path, how):
    """Ctrl-C (the terminal signals the host and its ssh), SIGTERM or SIGKILL of the host alone."""
    host = subprocess.Popen([sys.executable, *remote_argv(device, artifacts / "model.tflite", "--duration", "120",
                                                         "--threads", "1")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert wait_for(lambda: _device_processes(device, runner_only=True), 60), "the device runner never started"
        time.sleep(0.5)
        if how == "SIGINT to the group":
            os.killpg(host.pid, signal.SIGINT)
        else:
            host.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
        host.wait(timeout=60)
        assert wait_for(lambda: not _device_processes(device), 30), f"still running: {_device_processes(device)}"
        assert wait_for(lambda: _left_on_device(device) == [], 15), _left_on_device(device)
        assert host.returncode == {"SIGINT to the group": 130, "SIGTERM": 143, "SIGKILL": -9}[how]
    finally:
        if host.poll() is None:
            os.killpg(host.pid, signal.SIGKILL)
        host.communicate()


# ---------------------------------------------------------------------------------------------
# What crosses to the device: random --data folders


def random_tree(root: Path, outside: Path, rng: random.Random) -> set[str]:
    """A --data folder of regular images and .npy files mixed with links (to files and folders
    inside and outside it), FIFOs, other files and odd names; returns the relative paths that
    may go to the device (regular image or .npy files inside it)."""
    import numpy as np

    wanted: set[str] = set()
    folders = [root]
    root.mkdir()
    (outside / "secrets").mkdir(parents=True, exist_ok=True)
    np.save(outside / "secret.npy", np.full((8, 8), 0.25, np.float32))
    np.save(outside / "secrets" / "key.npy", np.full((8, 8), 0.75, np.float32))
    names = ["a", "b c", "-x", "$(touch pwned)", "é", ".hidden", "x;y", "'q'"]
    for i in range(rng.randint(6, 18)):
        here = rng.choice(folders)
        name = f"{rng.choice(names)}{i}"
        kind = rng.choice(["npy", "npy", "npy", "txt", "link-out", "link-in", "dirlink-out", "dirlink-in",
                           "fifo", "dangling", "folder"])
        p = here / (name + (".npy" if kind in ("npy", "link-out", "link-in", "fifo", "dangling") else
                            ".txt" if kind == "txt" else ""))
        if kind == "npy":
            np.save(p, rng.random() * np.ones((8, 8), np.float32))
            wanted.add(p.relative_to(root).as_posix())
        elif kind == "txt":
            p.write_text("notes")
        elif kind == "link-out":
            p.symlink_to(outside / "secret.npy")
        elif kind == "link-in":
            inside = [q for q in root.rglob("*.npy") if q.is_file() and not q.is_symlink()]
            p.symlink_to(inside[0] if inside else outside / "secret.npy")
        elif kind == "dirlink-out":
            p.symlink_to(outside / "secrets", target_is_directory=True)
        elif kind == "dirlink-in":
            p.symlink_to(root, target_is_directory=True)
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "dangling":
            p.symlink_to(outside / "missing.npy")
        else:
            p.mkdir()
            folders.append(p)
    if not wanted:  # at least one file to send
        np.save(root / "one.npy", np.zeros((8, 8), np.float32))
        wanted.add("one.npy")
    return wanted


@pytest.mark.parametrize("seed", range(25))
def test_only_regular_files_inside_data_are_staged(tmp_path, seed):
    from edgecn.runner.remote import stage_data

    wanted = random_tree(tmp_path / "data", tmp_path / "outside", random.Random(seed))
    stage = tmp_path / "stage"
    stage.mkdir()
    said: list[str] = []
    staged, skipped = stage_data(tmp_path / "data", stage, say=said.append)
    got = {p.relative_to(stage).as_posix() for p in stage.rglob("*") if not p.is_dir()}
    assert got == wanted and staged == len(wanted)
    assert not any(p.is_symlink() for p in stage.rglob("*"))
    secrets = {(tmp_path / "outside" / n).read_bytes() for n in ("secret.npy", "secrets/key.npy")}
    assert not any(p.read_bytes() in secrets for p in stage.rglob("*.npy"))
    assert bool(skipped) == bool(said)


@pytest.mark.parametrize("seed", range(3))
def test_random_data_folders_over_ssh_send_only_what_they_should(device, artifacts, real_document, tmp_path, seed):
    """What the device received as --data is exactly the regular image and .npy files inside the folder."""
    wanted = random_tree(tmp_path / "data", tmp_path / "outside", random.Random(100 + seed))
    _answer(device, real_document)
    proc = _host(remote_argv(device, artifacts / "model.tflite", "--accuracy", "--data", tmp_path / "data",
                             "--runs", "3", "--threads", "1", "--json", python=str(device["fake"])), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    received = device["received"]
    assert {p.relative_to(received).as_posix() for p in received.rglob("*") if not p.is_dir()} == wanted
    assert not any(p.is_symlink() for p in received.rglob("*"))
    assert _left_on_device(device) == [] and is_visible(proc.stderr)
    assert not any(p.name == "pwned" for p in tmp_path.rglob("pwned")) and not (Path.home() / "pwned").exists()
