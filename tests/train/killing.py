"""Start a training run in its own process and SIGKILL it as soon as its first epoch's last.pt exists."""

import signal
import subprocess
import sys
import time


def kill_after_first_epoch(argv: list[str], out, env, timeout: float = 300) -> None:
    """Run ``python -m edgecn train *argv`` (writing to ``out``) and kill it once ``out/last.pt`` appears."""
    proc = subprocess.Popen([sys.executable, "-m", "edgecn", "train", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "final.pt").exists(), "the run finished before it could be killed"
