"""The compressed weight file: bit-exact round trip, atomic writes, corrupt files, fuzzing."""

import hashlib
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecn.compress import (bundle_size, compressed_to_checkpoint, kmeans_1d, load_compressed,
                             magnitude_mask, save_compressed)
from edgecn.compress import format as fmt
from edgecn.compress.pruning import compressible_layers
from edgecn.checkpoint import load_checkpoint
from edgecn.errors import EdgecnError
from edgecn.models import create_model


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def _assert_bit_exact(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(_bits(sa[k]), _bits(sb[k])), k


@torch.no_grad()
def _shared_squeezenet():
    """SqueezeNet 1.1 pruned and weight-shared without training (fast), for file tests."""
    model = create_model("squeezenet1_1", num_classes=10, input_size=32)
    for name, m in compressible_layers(model).items():
        w = m.weight
        w.masked_fill_(~magnitude_mask(w, 0.7), 0.0)
        nz = w != 0
        centroids, labels = kmeans_1d(w[nz], 32, iters=10)
        w[nz] = centroids[labels]
    return model.eval()


@pytest.fixture(scope="module")
def shared_model():
    return _shared_squeezenet()


def test_round_trip_is_bit_exact_and_small(tmp_path, shared_model):
    path = save_compressed(tmp_path / "m.edc", shared_model)
    back = load_compressed(path)
    _assert_bit_exact(shared_model, back)
    assert back.edgecn_config == shared_model.edgecn_config
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(back(x), shared_model(x))
    float_bytes = sum(t.numel() * 4 for t in shared_model.state_dict().values())
    assert path.stat().st_size * 10 < float_bytes  # 70% sparse, 5-bit codebooks


def test_unshared_model_round_trips_raw(tmp_path):
    model = create_model("squeezenet1_1", num_classes=4, input_size=32).eval()
    _assert_bit_exact(model, load_compressed(save_compressed(tmp_path / "dense.edc", model)))


def test_to_checkpoint_and_bundle_size(tmp_path, shared_model):
    path = save_compressed(tmp_path / "m.edc", shared_model)
    ckpt = compressed_to_checkpoint(path, tmp_path / "m.pt")
    model, extra = load_checkpoint(ckpt)
    _assert_bit_exact(shared_model, model)
    assert extra["compressed_from"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    sizes = bundle_size(path)
    assert sizes["raw"] == path.stat().st_size
    assert 0 < sizes["zip"] <= sizes["raw"] * 1.01  # Huffman-coded data barely deflates
    ckpt_sizes = bundle_size(ckpt)
    assert ckpt_sizes["zip"] < ckpt_sizes["raw"]  # but the float checkpoint's zeros do


def _tiny_file() -> bytes:
    rng = np.random.default_rng(0)
    w = np.where(rng.random((6, 4, 3, 3)) < 0.6, 0, rng.choice([-0.5, 0.25, 1.0], (6, 4, 3, 3))).astype(np.float32)
    tensors = {"a.weight": w, "a.bias": rng.normal(size=6).astype(np.float32),
               "b.weight": np.full((2, 6), 0.5, np.float32), "n": np.array(3, dtype=np.int64)}
    return fmt.pack({"name": "tiny"}, tensors, {"a.weight", "b.weight"})


def test_tiny_file_round_trips():
    config, arrays = fmt.unpack(_tiny_file())
    assert config == {"name": "tiny"} and list(arrays) == ["a.weight", "a.bias", "b.weight", "n"]
    assert arrays["n"].dtype == np.int64 and int(arrays["n"]) == 3


def _refresh_checksum(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize("corrupt,match", [
    (lambda d: b"NOTEDGEC" + d[8:], "bad magic"),
    (lambda d: d[:8] + (99).to_bytes(2, "little") + d[10:], "format version 99"),
    (lambda d: d[:-40] + bytes([d[-40] ^ 1]) + d[-39:], "checksum"),
    (lambda d: d[: len(d) // 2], "checksum"),
    (lambda d: d[:12], "truncated"),
    (lambda d: b"", "truncated"),
    (lambda d: _refresh_checksum(d[:14] + b"[" * 5000 + d[5014:-32]), "corrupt"),
    (lambda d: _refresh_checksum(d[:10] + (2 ** 32 - 1).to_bytes(4, "little") + d[14:-32]), "corrupt"),
])
def test_corrupt_files_raise_with_a_fix(tmp_path, corrupt, match):
    path = tmp_path / "bad.edc"
    path.write_bytes(corrupt(_tiny_file()))
    with pytest.raises(EdgecnError, match=match) as err:
        fmt.read(path)
    assert err.value.fix


def test_missing_file_and_unknown_model(tmp_path):
    with pytest.raises(EdgecnError, match="does not exist"):
        load_compressed(tmp_path / "nope.edc")
    fmt.write(tmp_path / "t.edc", {"name": "no-such-model", "num_classes": 10, "input_size": 32}, {}, set())
    with pytest.raises(EdgecnError, match="unknown model"):
        load_compressed(tmp_path / "t.edc")
    fmt.write(tmp_path / "t.edc", {"name": "squeezenet1_1"}, {}, set())
    with pytest.raises(EdgecnError, match="can build"):
        load_compressed(tmp_path / "t.edc")
    fmt.write(tmp_path / "t.edc", {"name": "squeezenet1_1", "num_classes": 10, "input_size": 32}, {}, set())
    with pytest.raises(EdgecnError, match="can build"):  # weights missing
        load_compressed(tmp_path / "t.edc")


def test_failed_write_keeps_the_old_file(tmp_path, shared_model):
    path = save_compressed(tmp_path / "m.edc", shared_model)
    before = path.read_bytes()

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        fmt.write(path, {"bad": Unserialisable()}, {}, set())
    bad = create_model("squeezenet1_1", num_classes=10, input_size=32)
    del bad.edgecn_config
    with pytest.raises(EdgecnError, match="edgecn_config"):
        save_compressed(path, bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.edc"]  # no temporary files left behind


def _parse_never_crashes(data: bytes) -> None:
    try:
        fmt.unpack(data)
    except EdgecnError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes(data):
    _parse_never_crashes(data)
    _parse_never_crashes(fmt.MAGIC + (1).to_bytes(2, "little") + data)
    _parse_never_crashes(_refresh_checksum(fmt.MAGIC + (1).to_bytes(2, "little") + data))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=8),
       st.booleans(), st.integers(0, 64))
def test_fuzz_mutated_valid_file(edits, fix_checksum, cut):
    """Flip bytes of a valid file (then optionally make the checksum valid again, to reach the parser)."""
    data = bytearray(_tiny_file()[:-32])
    for pos, value in edits:
        data[pos % len(data)] = value
    body = bytes(data[: len(data) - cut])
    _parse_never_crashes(_refresh_checksum(body) if fix_checksum else body + os.urandom(32))
