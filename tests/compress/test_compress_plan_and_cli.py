"""Unreachable taps, the sensitivity plan, and `edgecn condense` on a SqueezeNet checkpoint."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from edgecn.checkpoint import load_checkpoint, save_checkpoint
from edgecn.compress import DeepCompressionConfig, deep_compress, load_compressed
from edgecn.compress.pipeline import reachable_masks
from edgecn.compress.pruning import compressible_layers
from edgecn.compress.sensitivity import choose_sparsity, overall_sparsity, sensitivity_scan, unreachable_taps
from edgecn.models import create_model


def _squeezenet():
    torch.manual_seed(0)
    return create_model("squeezenet1_1", num_classes=10, input_size=32)


def test_unreachable_taps_of_squeezenet_at_32_are_the_outer_taps_of_fire_6_to_9():
    model = _squeezenet().eval()
    dead = unreachable_taps(model, 32)
    assert set(dead) == {f"features.{i}.expand3x3" for i in (9, 10, 11, 12)}
    for name, mask in dead.items():
        tap = mask[0, 0]
        assert not tap[1, 1] and int(tap.sum()) == 8, name  # only the centre tap sees the 1x1 map
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        layers = compressible_layers(model)
        for name, mask in dead.items():
            layers[name].weight.masked_fill_(mask, 0.0)
        assert torch.equal(model(x), before)  # exact: those weights only ever multiplied padding
    assert not unreachable_taps(model, 224)  # at its own input size every tap sees the image


def test_a_model_too_small_for_its_input_is_a_user_error():
    from edgecn.errors import EdgecnError

    small = create_model("squeezenet1_1", num_classes=10, input_size=16)
    with pytest.raises(EdgecnError, match="cannot run at its input size 16x16"):
        unreachable_taps(small, 16)
    x = TensorDataset(torch.zeros(4, 3, 16, 16), torch.zeros(4, dtype=torch.long))
    with pytest.raises(EdgecnError, match="cannot run at its input size 16x16"):
        deep_compress(small, x, x)  # before any evaluation or training


def test_unreachable_taps_follow_stride_and_padding():
    conv = nn.Sequential(nn.Conv2d(1, 1, 5, stride=4, padding=2))
    dead = unreachable_taps(conv, 3, in_channels=1)["0"][0, 0]
    # One output position reads rows/cols -2..2 of a 3-pixel input: taps 0 and 1 see padding only.
    assert dead[:, 0].all() and dead[0, :].all() and dead[:, 1].all() and not dead[2:, 2:].any()


def test_choose_sparsity_takes_the_largest_within_tolerance_and_cap():
    scan = {0.3: 99.0, 0.5: 98.6, 0.7: 97.0, 0.9: 98.9}
    assert choose_sparsity(scan, 99.0, 0.5, cap=0.9) == 0.5  # 0.7 breaks it; 0.9 is not considered
    assert choose_sparsity(scan, 99.0, 5.0, cap=0.6) == 0.5
    assert choose_sparsity(scan, 99.0, 0.0, cap=0.9) == 0.3
    assert choose_sparsity({0.3: 50.0}, 99.0, 1.0, cap=0.9) == 0.0
    assert overall_sparsity(0.5, torch.tensor([True, False, False, False])) == pytest.approx(0.875)


@pytest.fixture(scope="module")
def digits():
    from edgecn.train.data import load_dataset

    ds = load_dataset("digits", input_size=32)
    (x, y), (hx, hy) = ds.train.tensors, ds.heldout.tensors
    return TensorDataset(x[:128], y[:128]), TensorDataset(hx[:64], hy[:64])


def test_sensitivity_plan_keeps_edges_denser_and_respects_the_cap(digits):
    model = _squeezenet()
    keep = reachable_masks(model)
    config = DeepCompressionConfig(sparsity=0.8, sensitivity=100.0, edge_sparsity=0.4, prune_rounds=1,
                                   prune_epochs=0, share=False, scan_images=16,
                                   layer_sparsity={"features.3.squeeze": 0.2})
    report = deep_compress(model, *digits, config)
    by_name = {layer.name: layer for layer in report.layers}
    # A tolerance of 100 points accepts everything: each layer goes to its cap.
    assert by_name["features.0"].sparsity == pytest.approx(0.4, abs=1e-3)
    assert by_name["classifier.1"].sparsity == pytest.approx(0.4, abs=1e-3)
    assert by_name["features.4.squeeze"].sparsity == pytest.approx(0.8, abs=1e-3)
    assert by_name["features.3.squeeze"].sparsity == pytest.approx(0.2, abs=1e-3)  # an explicit override wins
    fire9 = by_name["features.12.expand3x3"]
    assert fire9.sparsity == pytest.approx(overall_sparsity(0.8, keep["features.12.expand3x3"]), abs=1e-4)


def test_sensitivity_scan_stops_where_the_drop_exceeds_the_tolerance(digits):
    model = _squeezenet().eval()
    with torch.no_grad():  # make one layer matter: its large weights carry the output
        model.classifier[1].weight.mul_(100)
    scan = sensitivity_scan(model, digits[0], ["classifier.1"], (0.3, 0.99), floor=101.0)
    assert list(scan["classifier.1"]) == [0.3]  # nothing reaches 101%, so the scan stops at once
    full = sensitivity_scan(model, digits[0], ["classifier.1", "features.0"], (0.3, 0.99))
    assert set(full["features.0"]) == {0.3, 0.99}
    assert torch.equal(model.classifier[1].weight, _squeezenet().classifier[1].weight * 100)  # restored


def test_condense_cli_deep_compresses_squeezenet_and_the_checkpoint_matches_the_file(tmp_path, capsys):
    from edgecn.cli import main
    from edgecn.train.data import load_dataset

    ds = load_dataset("digits", input_size=32)
    src = save_checkpoint(tmp_path / "sq.pt", _squeezenet(), extra={"dataset": ds.name, "labels": ds.labels,
                                                                    "normalize": ds.normalize})
    args = ["condense", str(src), "--uniform", "--sparsity", "0.6", "--conv-bits", "6", "--fc-bits", "4",
            "--epochs", "0"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "features.12.expand3x3" in text and "held-out top-1: before" in text and "zipped" in text
    ckpt, edc = tmp_path / "sq-compressed.pt", tmp_path / "sq-compressed.edc"
    model, extra = load_checkpoint(ckpt)
    shipped = load_compressed(edc)
    for k, v in model.state_dict().items():
        assert torch.equal(v, shipped.state_dict()[k]), k
    assert extra["kind"] == "compressed" and extra["labels"] == ds.labels
    for name, m in compressible_layers(model).items():
        assert torch.unique(m.weight[m.weight != 0]).numel() <= (16 if name == "classifier.1" else 64), name
    # Bad input: a clear one-line error, and the existing outputs stay as they were.
    before = edc.read_bytes(), ckpt.read_bytes()
    for bad, match in ((["--sparsity", "1.0"], "is not a finite number from 0 to 0.999"),
                       (["--conv-bits", "9"], "is not an integer from 1 to 8")):
        assert main(["condense", str(src), *bad]) == 2
        err = [line for line in capsys.readouterr().err.strip().splitlines() if "error:" in line]
        assert len(err) == 1 and match in err[0]
    assert (edc.read_bytes(), ckpt.read_bytes()) == before
    # A corrupt compressed file is refused, and the checkpoint rebuilt from it is untouched.
    edc.write_bytes(before[0][:-7])
    with pytest.raises(Exception, match="truncated|corrupt|checksum"):
        load_compressed(edc)
    assert ckpt.read_bytes() == before[1]


def test_condense_cli_refuses_deep_compression_flags_for_a_condensenet(tmp_path, capsys):
    from edgecn.cli import main

    src = save_checkpoint(tmp_path / "c.pt", create_model("condensenet-light", 10, 8))
    assert main(["condense", str(src), "--sparsity", "0.5"]) == 2
    assert "condense it before deep compression" in capsys.readouterr().err


def test_build_report_shows_raw_and_zipped_sizes(tmp_path):
    from edgecn.build.report import deflated_size, markdown_report
    from edgecn.compress import bundle_size, save_compressed

    path = save_compressed(tmp_path / "m.edc", _squeezenet())
    assert deflated_size(path) == bundle_size(path)["zip"] < path.stat().st_size  # raw float32 deflates a bit
    entry = {"path": "m.tflite", "backend": "tflite", "precision": "fp32", "size_bytes": 2048,
             "size_zip_bytes": 1024, "top1": 90.0, "float_top1": 90.0, "sqnr_db": 80.0, "float_layers": []}
    manifest = {"model": {"name": "squeezenet1_1"}, "target": "t", "float_top1": 90.0, "artifacts": [entry],
                "calibration": {"method": "minmax", "size": 16, "source": "digits"}}
    assert "2.0K (1.0K zipped)" in markdown_report(manifest)
