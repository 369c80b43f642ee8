"""A real OpenSSH server on 127.0.0.1, started by a test in a temporary folder: the "device" of --remote tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest


def sshd_binary() -> str:
    found = shutil.which("sshd") or (os.path.exists("/usr/sbin/sshd") and "/usr/sbin/sshd")
    if not found and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "openssh-server"], capture_output=True, timeout=600)
        found = shutil.which("sshd") or (os.path.exists("/usr/sbin/sshd") and "/usr/sbin/sshd")
    if not found:
        pytest.skip("sshd is not installed and this is not root: apt-get install openssh-server to run this test")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def sshd(d: Path, force_command: str | None = None) -> Iterator[dict]:
    """Serve ssh from ``d`` (keys, config, known_hosts there) until the block ends.

    ``force_command``: a script every session runs instead of the client's command (which it
    finds in $SSH_ORIGINAL_COMMAND): how a test gives the device a banner or its own TMPDIR.
    Yields url, key (the client's identity file) and known (a known_hosts file).
    """
    binary = sshd_binary()
    d.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        f"PidFile {d / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
        + (f"ForceCommand {force_command}\n" if force_command else ""))
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation folder sshd insists on
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            proc.kill()
            pytest.fail(f"sshd did not start: {proc.stderr.read().decode()[-1000:]}")
        user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        yield {"url": f"ssh://{user}@127.0.0.1:{port}", "key": d / "client_key", "known": d / "known_hosts"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def remote_argv(server: dict, *args, python: str = sys.executable) -> list[str]:
    """``python -m edgecn.runner ARGS --remote ...`` against ``server`` (its host key taken on first sight)."""
    return ["-m", "edgecn.runner", *map(str, args), "--remote", server["url"], "--remote-python", python,
            "--ssh-key", str(server["key"]), "--ssh-option", f"UserKnownHostsFile={server['known']}",
            "--ssh-option", "StrictHostKeyChecking=no"]
