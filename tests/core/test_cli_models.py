import json
import subprocess
import sys


def _edgecn(*args):
    return subprocess.run([sys.executable, "-m", "edgecn", *args], capture_output=True, text=True, timeout=300)


def test_models_json_has_the_paper_anchors():
    r = _edgecn("models", "--json", "--input-size", "32", "--num-classes", "10", "--family", "condensenet")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    cn86 = rows["condensenet-86"]
    assert abs(cn86["condensed_params"] - 0.52e6) / 0.52e6 < 0.05
    assert abs(cn86["condensed_macs"] - 65.8e6) / 65.8e6 < 0.10
    r = _edgecn("models", "--json", "--input-size", "224", "--num-classes", "1000", "--family", "squeezenet")
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["squeezenet1_0"]["params"] == 1_248_424


def test_models_table_and_errors():
    r = _edgecn("models", "--family", "densenet")
    assert r.returncode == 0 and "densenet-bc-100" in r.stdout
    r = _edgecn("models", "--family", "resnet")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "unknown model family" in r.stderr


def test_a_mistyped_option_gets_the_subcommand_usage_and_a_suggestion(capsys):
    from edgecn.cli import main

    assert main(["build", "--target", "rpi5", "--checkpint", "x.pt"]) == 2
    err = capsys.readouterr().err
    assert "usage: edgecn build" in err and "--checkpint (did you mean --checkpoint?)" in err
    assert main(["train", "--epochs", "1", "stray"]) == 2
    assert "edgecn train: error: unrecognized arguments: stray" in capsys.readouterr().err
