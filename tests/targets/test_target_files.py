"""Every target file loads; aliases resolve; bad files name the field and the fix."""

from pathlib import Path

import pytest

from edgecn.backends import BACKENDS
from edgecn.errors import EdgecnError
from edgecn.targets import get_target, load_target_file, load_targets, targets_dir

REPO = Path(__file__).resolve().parents[2]

FILES = sorted(targets_dir().glob("*.toml"))


def test_there_are_target_files():
    names = {p.stem for p in FILES}
    assert {"raspberry-pi-4", "raspberry-pi-5", "android-arm64", "jetson-orin-nano", "jetson-nano", "host"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_target_file_loads(path):
    t = load_target_file(path)
    assert t.name == path.stem and t.backends and t.precisions
    for b in t.backends:
        assert b in BACKENDS
        assert isinstance(t.options(b), BACKENDS.get(b).options_type)
        assert t.precisions_for(b), f"{t.name}: {b} builds none of {t.precisions}"


@pytest.mark.parametrize("alias,name", [("jetson", "jetson-orin-nano"), ("rpi5", "raspberry-pi-5"), ("pi5", "raspberry-pi-5"),
                                        ("rpi4", "raspberry-pi-4"), ("android", "android-arm64"), ("host", "host")])
def test_aliases_resolve(alias, name):
    assert get_target(alias).name == name


def test_unknown_target_suggests():
    with pytest.raises(EdgecnError, match="unknown target 'jetsn'.*did you mean"):
        get_target("jetsn")


GOOD = 'name = "dev"\ndescription = "d"\narch = "aarch64"\ncpu = "a"\nbackends = ["tflite"]\nprecisions = ["fp32"]\n'


@pytest.mark.parametrize("text,field", [
    (GOOD + 'colour = "red"\n', "unknown field 'colour'"),
    (GOOD.replace('cpu = "a"\n', ""), "missing field 'cpu'"),
    (GOOD + "threads = \"four\"\n", "field 'threads' must be a int"),
    (GOOD.replace('["tflite"]', '["coreml"]'), "unknown backend 'coreml'"),
    (GOOD.replace('["fp32"]', '["int4"]'), "unknown precision 'int4'"),
    (GOOD + "[tflite]\nchannel_last_io = 3\n", r"\[tflite\]: field 'channel_last_io' must be a bool"),
    (GOOD + "[tflite]\nspeed = 3\n", r"\[tflite\]: unknown field 'speed'"),
    (GOOD + "[tensorrt]\nopset = 13\n", r"\[tensorrt\] is for a backend the target does not use"),
    (GOOD + "[lowering]\nindex = \"magic\"\n", r"\[lowering\]: unknown index lowering 'magic'"),
    (GOOD + "[lowering]\ngather_cost = -3\n", "gather_cost must be a non-negative number"),
    (GOOD.replace('["tflite"]', '["executorch"]') + "[executorch]\nallowed_outside = [1]\n",
     r"\[executorch\]: field 'allowed_outside' must be a list of strings"),
    (GOOD.replace('["tflite"]', '["executorch"]') + "[lowering]\ngather_cost = 24\n",
     r"can keep channel gathers in the .pte .* requires every op in XNNPACK"),
    (GOOD.replace('["tflite"]', '["executorch"]') + '[lowering]\nindex = "gather"\n[executorch]\nallowed_outside = ["aten.cat"]\n',
     r"can keep channel gathers"),
    (GOOD.replace('name = "dev"', 'name = "other"'), "field 'name' is 'other'"),
    (GOOD + "backends = [\n", "not valid TOML"),
])
def test_bad_target_file_names_the_field(tmp_path, text, field):
    path = tmp_path / "dev.toml"
    path.write_text(text)
    with pytest.raises(EdgecnError, match=field) as info:
        load_target_file(path)
    assert info.value.fix


def test_backend_list_option_reads_as_a_tuple(tmp_path):
    text = GOOD.replace('["tflite"]', '["executorch"]') + '[executorch]\nallowed_outside = ["aten.index_select"]\n'
    (tmp_path / "dev.toml").write_text(text)
    assert load_target_file(tmp_path / "dev.toml").options("executorch").allowed_outside == ("aten.index_select",)


def test_duplicate_alias_is_an_error(tmp_path):
    for n in ("a", "b"):
        (tmp_path / f"{n}.toml").write_text(GOOD.replace('"dev"', f'"{n}"') + 'aliases = ["x"]\n')
    with pytest.raises(EdgecnError, match="'x' names both 'a' and 'b'"):
        load_targets(tmp_path)


def test_tensorrt_opset_outside_parser_range(tmp_path):
    text = GOOD.replace('["tflite"]', '["tensorrt"]') + "[tensorrt]\nopset = 17\nopset_max = 13\n"
    (tmp_path / "dev.toml").write_text(text)
    with pytest.raises(EdgecnError, match="opset 17 is outside"):
        load_target_file(tmp_path / "dev.toml")


def test_cli_targets_lists_every_file(capsys):
    from edgecn.cli import main

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for p in FILES:
        assert p.stem in out
    assert main(["build", "--target", "nowhere"]) == 2
    assert "unknown target 'nowhere'" in capsys.readouterr().err


def test_every_number_in_a_target_file_is_finite_and_in_range(tmp_path):
    """NaN, +-inf and negatives for every numeric field of a target (top level, [lowering], the
    backend tables), generated from the dataclasses that define them."""
    import dataclasses

    from edgecn.passes import LoweringConfig

    base = (REPO / "targets" / "raspberry-pi-5.toml").read_text()
    fields = [("", "threads")]
    fields += [("lowering", f.name) for f in dataclasses.fields(LoweringConfig) if f.type in ("int", "float", "float | None")]
    fields += [("tensorrt", f.name) for f in dataclasses.fields(BACKENDS.get("tensorrt").options_type)
               if f.type in ("int", "float")]
    assert len(fields) >= 8
    tried = 0
    for table, key in fields:
        for value in ("nan", "inf", "-inf", "-1"):
            text = base.replace('name = "raspberry-pi-5"', 'name = "t"').replace('aliases = ["rpi5", "pi5"]', "aliases = []")
            lines = [line for line in text.splitlines() if not line.startswith(f"{key} =")]
            if table == "tensorrt":
                lines = [line.replace('backends = ["tflite", "executorch"]', 'backends = ["tflite", "executorch", "tensorrt"]')
                         for line in lines] + ["[tensorrt]"]
            at = len(lines) if table == "tensorrt" else (lines.index(f"[{table}]") + 1 if table else 1)
            lines.insert(at, f"{key} = {value}")
            (tmp_path / "t.toml").write_text("\n".join(lines) + "\n")
            with pytest.raises(EdgecnError, match=key):
                load_target_file(tmp_path / "t.toml")
            tried += 1
    print(f"target numbers: {len(fields)} fields, {tried} bad values refused")


def test_targets_load_and_validate_without_torch():
    """`edgecn targets` and the lowering check are plain data: no torch import (and no silent skip)."""
    import subprocess
    import sys

    code = ("import sys; from edgecn.targets import load_targets; reg = load_targets(); "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
