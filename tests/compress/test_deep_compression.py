"""Deep Compression stages on SqueezeNet 1.1: config checks, pruning, weight sharing, report, builds."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from edgecn.compress import (DeepCompressionConfig, deep_compress, format_report, layer_plan, load_compressed,
                             magnitude_mask, prune, report_json, save_compressed, share_weights)
from edgecn.backends import run
from edgecn.compress.pipeline import reachable_masks
from edgecn.compress.pruning import compressible_layers
from edgecn.compress.sensitivity import overall_sparsity
from edgecn.errors import EdgecnError
from edgecn.metrics import sqnr_db
from edgecn.models import create_model


def _digits(n_train=192, n_held=96):
    """A slice of the embedded digits at 32x32 (the project's default data)."""
    try:
        from edgecn.train.data import load_dataset

        ds = load_dataset("digits", input_size=32)
        train, held = ds.train.tensors, ds.heldout.tensors
    except ImportError:
        from sklearn.datasets import load_digits

        raw = load_digits()
        x = torch.nn.functional.interpolate(torch.from_numpy(raw.images / 16.0).float()[:, None], size=32,
                                            mode="bilinear").expand(-1, 3, -1, -1)
        x = (x - x.mean()) / x.std()
        y = torch.from_numpy(raw.target).long()
        train, held = (x[:-400], y[:-400]), (x[-400:], y[-400:])
    return TensorDataset(train[0][:n_train], train[1][:n_train]), TensorDataset(held[0][:n_held], held[1][:n_held])


@pytest.fixture(scope="module")
def data():
    return _digits()


def _model():
    torch.manual_seed(0)
    return create_model("squeezenet1_1", num_classes=10, input_size=32)


FAST = dict(lr=0.005, momentum=0.9, weight_decay=0.0, batch_size=64)


@pytest.mark.parametrize("kwargs,match", [
    ({"sparsity": -0.1}, "outside"), ({"sparsity": 1.0}, "outside"), ({"sparsity": True}, "outside"),
    ({"layer_sparsity": {"features.0": 1.5}}, "outside"), ({"conv_bits": 0}, "1..8"), ({"fc_bits": 9}, "1..8"),
    ({"layer_bits": {"features.0": 2.5}}, "1..8"), ({"prune_rounds": 0}, ">= 1"), ({"share_epochs": -1}, ">= 0"),
    ({"lr": 0.0}, "positive"), ({"optimizer": "rmsprop"}, "unknown optimizer"),
])
def test_bad_config_values_raise(kwargs, match):
    with pytest.raises(EdgecnError, match=match) as err:
        DeepCompressionConfig(**kwargs)
    assert err.value.fix


def test_config_from_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[deep_compression]\nsparsity = 0.6\nconv_bits = 6\n[deep_compression.layer_sparsity]\n"features.0" = 0.3\n')
    config = DeepCompressionConfig.from_toml(path)
    assert (config.sparsity, config.conv_bits, config.layer_sparsity) == (0.6, 6, {"features.0": 0.3})
    with pytest.raises(EdgecnError, match="unknown deep compression option"):
        DeepCompressionConfig.from_dict({"sparsityy": 0.5})
    # Bad files get the same errors as a bad target file (one TOML reader for all of them).
    (tmp_path / "bad.toml").write_text("sparsity = = 1\n")
    for bad, match in ((tmp_path / "missing.toml", "does not exist"), (tmp_path, "is a folder"),
                       (tmp_path / "bad.toml", "not valid TOML")):
        with pytest.raises(EdgecnError, match=match):
            DeepCompressionConfig.from_toml(bad)


def test_layer_plan_gives_the_classifier_fc_bits():
    model = _model()
    sparsity, bits = layer_plan(model, DeepCompressionConfig(sparsity=0.6, layer_bits={"features.0": 7}))
    assert bits["classifier.1"] == 5 and bits["features.0"] == 7 and bits["features.3.squeeze"] == 6
    assert set(sparsity.values()) == {0.6} and len(sparsity) == 26  # stem + 8 Fires x 3 + classifier
    with pytest.raises(EdgecnError, match="unknown layer"):
        layer_plan(model, DeepCompressionConfig(layer_sparsity={"features.99": 0.5}))


def test_magnitude_mask_prunes_the_smallest_exactly_and_only_shrinks():
    w = torch.tensor([0.5, -0.1, 0.0, 2.0, -3.0, 0.2, 0.2, 0.2])
    m1 = magnitude_mask(w, 0.5)
    assert m1.sum() == 4 and m1[[0, 3, 4]].all() and not m1[[1, 2]].any()
    m2 = magnitude_mask(w * torch.tensor([1, 1, 1, 0.01, 1, 1, 1, 1.0]), 0.75, keep=m1)
    assert m2.sum() == 2 and not (m2 & ~m1).any()


def test_pruning_reaches_each_layers_target_and_masks_stay_fixed(data):
    model = _model()
    targets = {name: 0.8 for name in compressible_layers(model)} | {"features.0": 0.25}
    reached = prune(model, data[0], targets, rounds=2, epochs=1, **FAST)
    for name, m in compressible_layers(model).items():
        n = m.weight.numel()
        zeros = int((m.weight == 0).sum())
        assert zeros == round(targets[name] * n), name  # retraining revived no pruned weight
        assert reached[name] == pytest.approx(zeros / n)


def test_weight_sharing_codebook_sizes_and_zeros_stay_zero(data):
    model = _model()
    layers = compressible_layers(model)
    with torch.no_grad():
        for m in layers.values():
            m.weight.masked_fill_(~magnitude_mask(m.weight, 0.5), 0.0)
    zero_before = {name: m.weight == 0 for name, m in layers.items()}
    bits = {name: 3 for name in layers} | {"classifier.1": 2, "features.0": 8}
    shared = share_weights(model, data[0], bits, epochs=1, centroid_lr=1e-3, kmeans_iters=20, **FAST)
    for name, m in layers.items():
        nonzero = m.weight[m.weight != 0]
        assert torch.unique(nonzero).numel() <= 2 ** bits[name], name
        assert shared[name] <= 2 ** bits[name]
        assert torch.equal(m.weight == 0, zero_before[name]), name  # pruned stay pruned, no new zeros


def test_centroids_are_fine_tuned_with_shared_gradients(data):
    """After fine-tuning the codebook differs from plain k-means, and the loss went down."""
    runs = {}
    for epochs in (0, 2):
        model = _model()
        bits = {name: 4 for name in compressible_layers(model)}
        share_weights(model, data[0], bits, epochs=epochs, centroid_lr=1e-3, kmeans_iters=20, **FAST)
        runs[epochs] = model
    w0, w2 = (runs[e].features[3].squeeze.weight for e in (0, 2))
    assert torch.equal(w0 == 0, w2 == 0)
    assert not torch.equal(w0, w2)
    x, y = data[0].tensors
    with torch.no_grad():
        losses = {e: float(torch.nn.functional.cross_entropy(m.eval()(x), y)) for e, m in runs.items()}
    assert losses[2] < losses[0]


def test_deep_compress_end_to_end(tmp_path, data):
    model = _model()
    config = DeepCompressionConfig(sparsity=0.7, sensitivity=None, conv_bits=8, prune_rounds=2, prune_epochs=1,
                                   share_epochs=1, lr=0.005, optimizer="sgd")
    keep = reachable_masks(model)
    report = deep_compress(model, data[0], data[1], config)
    assert set(report.accuracy) == {"before", "pruned", "shared", "after"}
    assert report.weights_ratio >= 10  # 70% sparse, 8/5-bit codebooks, Huffman-coded
    for layer in report.layers:
        # 70% of the weights that see the image; taps that only see padding go too.
        assert layer.sparsity == pytest.approx(overall_sparsity(0.7, keep.get(layer.name)), abs=1e-3)
        assert layer.clusters <= 2 ** layer.bits
    path = save_compressed(tmp_path / "m.edc", model)
    assert path.stat().st_size == report.file_bytes  # the report measures the real file
    back = load_compressed(path)
    assert torch.equal(back(data[1].tensors[0][:8]), model(data[1].tensors[0][:8]))
    text = format_report(report)
    assert "classifier.1" in text and "total" in text and "held-out top-1" in text
    parsed = json.loads(report_json(report))
    assert parsed["total"]["bytes_after"] == report.bytes_after
    assert len(parsed["layers"]) == 26


def test_each_stage_alone(data):
    model = _model()
    only_share = DeepCompressionConfig(prune=False, share_epochs=0, conv_bits=4)
    report = deep_compress(model, data[0], data[1], only_share)
    assert set(report.accuracy) == {"before", "shared", "after"}
    assert all(layer.sparsity < 0.01 and layer.clusters <= 16 for layer in report.layers if layer.name != "classifier.1")
    model = _model()
    only_prune = DeepCompressionConfig(share=False, sparsity=0.5, sensitivity=None, prune_rounds=1, prune_epochs=0)
    report = deep_compress(model, data[0], data[1], only_prune)
    assert set(report.accuracy) == {"before", "pruned", "after"}
    assert all(layer.clusters is None and layer.bits is None for layer in report.layers)  # unshared: stored raw


def test_condensenet_in_training_form_is_refused(data):
    from edgecn.models import MODELS

    name = next(n for n, spec in MODELS.items() if spec.family == "condensenet")
    model = create_model(name, num_classes=10, input_size=32)
    with pytest.raises(EdgecnError, match="condense it first"):
        deep_compress(model, data[0], data[1], DeepCompressionConfig())


def test_compressed_model_builds_to_tflite_and_pte(tmp_path, data):
    backends = pytest.importorskip("edgecn.backends")
    if not {"tflite", "executorch"} <= set(backends.BACKENDS.names()):
        pytest.skip("the tflite and executorch backends are not registered")
    model = _model()
    with torch.no_grad():
        for m in compressible_layers(model).values():
            m.weight.masked_fill_(~magnitude_mask(m.weight, 0.7), 0.0)
    model = load_compressed(save_compressed(tmp_path / "m.edc", model))
    x = data[1].tensors[0][:1]
    ref = model(x).detach().numpy()
    for name in ("tflite", "executorch"):
        backend = backends.BACKENDS.get(name)
        ctx = backends.CompileContext(out_dir=tmp_path, stem="squeezenet-dc")
        artifact = backend.compile(model, x, "fp32", ctx)
        assert artifact.path.exists()
        got = run(artifact, x.numpy())
        assert sqnr_db(ref, got) > 60, name


def test_same_config_same_model_and_the_callers_random_state_is_kept(data):
    """Dropout during fine-tuning is seeded from the config, not from whatever ran before."""
    config = DeepCompressionConfig(prune=False, conv_bits=4, share_epochs=1)
    runs = []
    for noise in (1, 2):
        model = _model()
        torch.manual_seed(noise)  # different global state before each run
        state = torch.get_rng_state()
        deep_compress(model, data[0], data[1], config)
        assert torch.equal(torch.get_rng_state(), state)
        runs.append(model.state_dict())
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k
