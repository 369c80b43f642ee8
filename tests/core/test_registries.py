"""Every registry, walked: an entry is tested the day its module lands (models, rewrites,
backends, runners, CLI commands), and a registry finds a new module without a list to edit."""

import dataclasses
import sys

import pytest

from edgecn.registry import Registry


def test_a_registry_finds_the_modules_of_its_package(tmp_path, monkeypatch):
    pkg = tmp_path / "plugins_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from edgecn.registry import Registry\nTHINGS = Registry('thing', package='plugins_pkg')\n")
    (pkg / "one.py").write_text("from plugins_pkg import THINGS\n@THINGS.register('one', aliases=('uno',))\nclass One: pass\n")
    (pkg / "_private.py").write_text("raise RuntimeError('not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from plugins_pkg import THINGS

        assert THINGS.names() == ["one"] and THINGS.get("uno").__name__ == "One"
        with pytest.raises(ValueError, match="twice"):
            THINGS.register("two", aliases=("uno",))(object)
    finally:
        for name in [m for m in sys.modules if m.startswith("plugins_pkg")]:
            del sys.modules[name]


def test_every_model_builds_and_is_listed():
    from edgecn.cli.models import configure  # noqa: F401  (the command that lists them)
    from edgecn.models import MODELS, create_model

    assert len(MODELS) >= 8
    for name, spec in MODELS.items():
        model = create_model(name, 10, spec.input_size)
        assert spec.family in ("condensenet", "densenet", "squeezenet"), name
        assert sum(p.numel() for p in model.parameters()) > 0, name
        assert model.edgecn_config["name"] == name


def test_every_rewrite_runs_in_the_pipeline_order():
    from edgecn.passes import ORDER, PASSES, Pass

    assert set(PASSES.names()) == set(ORDER), "a registered rewrite must have its place in passes/pipeline.py ORDER"
    for name, cls in PASSES.items():
        assert issubclass(cls, Pass), name


def test_every_backend_has_a_runner_options_and_tools():
    from edgecn.backends import BACKENDS
    from edgecn.runner.base import Runner, runners

    table = runners()
    assert {"executorch", "tflite", "tensorrt"} <= set(BACKENDS.names())
    for name, backend in BACKENDS.items():
        assert backend.name == name
        assert issubclass(table[backend.suffix], Runner), f"{name}: no runner for {backend.suffix}"
        options = backend.options_type()
        assert dataclasses.is_dataclass(options) and type(options).__dataclass_params__.frozen, name
        assert set(backend.precisions) <= {"fp32", "fp16", "int8"} and "fp32" in backend.precisions, name
        assert isinstance(backend.tools(), dict), name


def test_every_runner_names_its_runtime():
    from edgecn.runner.base import RUNNERS, Runner, runners

    assert {".tflite", ".pte", ".onnx", ".engine", ".plan"} <= set(runners())
    for suffix, cls in RUNNERS.items():
        assert suffix.startswith(".") and issubclass(cls, Runner) and cls.runtime, suffix


def test_every_command_has_help(capsys):
    from edgecn.cli import COMMANDS, main

    assert {"build", "condense", "demo", "models", "profile", "targets", "train", "tune"} <= set(COMMANDS.names())
    for name, command in COMMANDS.items():
        assert command.help, name
        assert main([name, "--help"]) == 0, name
        assert f"usage: edgecn {name}" in capsys.readouterr().out
