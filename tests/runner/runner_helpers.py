"""Helpers shared by the runner tests (a plain module: test files import it by name)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_runner(*args, python: str = sys.executable, env: dict | None = None, timeout: int = 300):
    """``python -m edgecn.runner ARGS`` in a subprocess (a crash shows as a signal, not a dead test run)."""
    return subprocess.run([python, "-m", "edgecn.runner", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


# Fixed inputs for comparing a .pte's outputs between edgecn's runner and ExecuTorch's own Python
# binding (the reference: it needs torch, so it lives in the tests, not in edgecn). Each script
# saves the outputs to argv[2] as .npy; the runner's also prints whether torch was imported.
_INPUTS = "x = np.random.default_rng(0).uniform(-1, 1, (6, 1, *shape)).astype(np.float32)\n"
RUNNER_OUTPUTS = ("import sys, numpy as np\nfrom edgecn.runner import open_runner\n"
                  "with open_runner(sys.argv[1], threads=1) as r:\n"
                  "    shape = r.inputs[0].shape[1:]\n    " + _INPUTS +
                  "    np.save(sys.argv[2], np.stack([r.infer(a) for a in x]))\n"
                  "print('torch' in sys.modules)\n")
BINDING_OUTPUTS = ("import sys, numpy as np, torch\nfrom executorch.runtime import Runtime\n"
                   "m = Runtime.get().load_program(sys.argv[1]).load_method('forward')\n"
                   "shape = tuple(m.metadata.input_tensor_meta(0).sizes())[1:]\n" + _INPUTS +
                   "np.save(sys.argv[2], np.stack([m.execute([torch.from_numpy(a)])[0].numpy() for a in x]))\n")


def outputs(script: str, path, out, python: str = sys.executable, env: dict | None = None) -> tuple:
    """(outputs, stdout) of ``script`` run on the artifact at ``path``."""
    import numpy as np

    proc = subprocess.run([python, "-c", script, str(path), str(out)], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out), proc.stdout.strip()


def wait_for(predicate, timeout: float) -> bool:
    """Poll ``predicate`` every 0.1 s for up to ``timeout`` seconds; its last answer."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def interruptible() -> None:
    """``preexec_fn`` for a child the test stops with SIGINT: Ctrl-C's default action restored.

    A shell starts background jobs (``make test &``, nohup, some CI runners) with SIGINT
    ignored, and the ignore is inherited; Python then never raises KeyboardInterrupt, so a
    test of what Ctrl-C does would test nothing. A terminal's Ctrl-C reaches a process
    whose SIGINT is at its default, which is what this restores.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
