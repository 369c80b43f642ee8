"""The runner must work where torch is absent: static imports, a live process, and a clean venv without torch."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runner_helpers import BINDING_OUTPUTS, REPO, RUNNER_OUTPUTS, outputs, run_runner

RUNNER = REPO / "edgecn" / "runner"


def _imports(tree: ast.AST):
    """(module name, enclosing function path) for each import."""
    def walk(node, scope):
        for child in ast.iter_child_nodes(node):
            inner = scope + [child.name] if isinstance(child, (ast.FunctionDef, ast.ClassDef)) else scope
            if isinstance(child, ast.Import):
                for a in child.names:
                    yield a.name, ".".join(scope)
            elif isinstance(child, ast.ImportFrom) and child.module:
                yield child.module, ".".join(scope)
            yield from walk(child, inner)
    yield from walk(tree, [])


def test_no_module_imports_torch_statically():
    from edgecn.runner.remote import TORCH_FREE_CORE

    offenders = []
    for f in sorted(RUNNER.rglob("*.py")):
        for mod, scope in _imports(ast.parse(f.read_text())):
            heavy = mod.split(".")[0] in ("torch", "torchao", "executorch") or mod.startswith("edgecn.") and not (
                mod.startswith("edgecn.runner") or f"{mod.split('.', 1)[1]}.py" in TORCH_FREE_CORE)
            if heavy:
                offenders.append(f"{f.name}: {mod} in {scope or 'module'}")
    assert not offenders


def test_profiling_tflite_and_onnx_leaves_torch_unloaded(artifacts):
    code = ("import sys, edgecn.runner; from edgecn.runner.cli import main; "
            f"main([{str(artifacts / 'model.tflite')!r}, '--runs', '5', '--json', '--accuracy', '--op-profile']); "
            "from edgecn.runner import open_runner; import numpy as np; "
            f"r = open_runner({str(artifacts / 'model.onnx')!r}, threads=1); r.activate(); "
            "r.infer(np.zeros((1, 1, 8, 8), np.float32)); "
            "assert 'torch' not in sys.modules, 'torch imported'; print('TORCH-FREE')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0 and "TORCH-FREE" in proc.stdout, proc.stderr[-2000:]


@pytest.fixture(scope="session")
def no_torch_python() -> Path:
    """A venv with only ``edgecn[runner]`` installed, cached on pyproject.toml's hash."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgecn-tests" / f"runner-venv-{key}"
    python = cache / "bin" / "python"
    if not (cache / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(cache)], check=True, timeout=300)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", f"{REPO}[runner]"], capture_output=True,
                              text=True, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"pip install edgecn[runner] failed: {proc.stderr[-2000:]}")
        (cache / ".complete").write_text("ok")
    return python


def test_runner_in_venv_without_torch(no_torch_python, artifacts):
    probe = subprocess.run([str(no_torch_python), "-c", "import torch"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    env = dict(os.environ, PYTHONPATH=str(REPO))  # this checkout's runner, on the venv's own packages
    proc = run_runner(artifacts / "model.tflite", "--runs", "30", "--json", "--threads", "1",
                      python=str(no_torch_python), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)["results"][0]
    assert r["runs"] == 30 and r["integrity"]["verified"] and 0 < r["latency_ms"]["median"] < 100
    assert r["accuracy"] is None and "ai-edge-litert" in r["versions"]


def test_pte_in_a_venv_without_torch_or_executorch(no_torch_python, artifacts, tmp_path):
    """`python -m edgecn.runner.native` fetches the wheel's C++ libraries; the .pte then runs as with torch."""
    env = dict(os.environ, PYTHONPATH=str(REPO), EDGECN_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    probe = subprocess.run([str(no_torch_python), "-c", "import importlib.util as u; "
                            "print(u.find_spec('torch'), u.find_spec('executorch'))"], capture_output=True, text=True)
    assert probe.stdout.strip() == "None None", probe.stdout + probe.stderr
    build = subprocess.run([str(no_torch_python), "-m", "edgecn.runner.native"], capture_output=True, text=True,
                           env=env, cwd=REPO, timeout=1200)
    assert build.returncode == 0 and build.stdout.startswith("built: "), build.stderr[-3000:]
    assert (tmp_path / "cache" / "native").is_dir() and not any((tmp_path / "cache").rglob("*.whl"))
    pte = artifacts / "int8" / "model.pte"
    native, torch_loaded = outputs(RUNNER_OUTPUTS, pte, tmp_path / "native.npy", python=str(no_torch_python), env=env)
    reference, _ = outputs(BINDING_OUTPUTS, pte, tmp_path / "binding.npy")  # ExecuTorch's Python binding, with torch
    assert torch_loaded == "False"
    np.testing.assert_array_equal(native, reference)  # int8: the same kernels, bit for bit
    proc = run_runner(artifacts / "model.pte", "--runs", "20", "--threads", "1", "--json", "--accuracy", "--data",
                      "digits", python=str(no_torch_python), env=env)  # the digits ship with the runner: no scikit-learn
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)["results"][0]
    assert r["versions"]["runner"].startswith("edgecn-pte-runner") and r["integrity"]["verified"] and r["runs"] == 20
    assert r["accuracy"]["samples"] == 359


def test_accuracy_on_an_image_folder_with_only_the_runner_extra(no_torch_python, artifacts, tmp_path):
    """The README's device recipe: `edgecn[runner]` alone scores a folder of the user's images (Pillow decodes them)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i in range(20):
        folder = tmp_path / "images" / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 255 / 16).astype("uint8")).convert("RGB").save(folder / f"{i}.png")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = run_runner(artifacts / "model.tflite", "--runs", "5", "--json", "--threads", "1", "--accuracy",
                      "--data", str(tmp_path / "images"), python=str(no_torch_python), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    accuracy = json.loads(proc.stdout)["results"][0]["accuracy"]
    assert accuracy is not None and accuracy["samples"] == 20 and accuracy["top1"] >= 50, accuracy
