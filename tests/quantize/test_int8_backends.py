"""int8 per backend: the artifact, run in its own runtime, stays within 20 dB SQNR of float;
the PT2E guard catches the BatchNorm-folding bug; cached ranges are reused."""

import pytest
import torch

from edgecn.backends import BACKENDS, CompileContext, run
from edgecn.metrics import sqnr_db
from edgecn.errors import EdgecnError
from edgecn.quantize.calibration import RangeCache


@pytest.fixture(scope="module")
def calib():
    return torch.randn(24, 3, 12, 12, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("backend", [n for n, b in BACKENDS.items() if "int8" in b.precisions])  # every int8 backend, the day it registers
def test_int8_sqnr_above_20db_in_the_runtime(backend, calib, tmp_path, monkeypatch, tiny_dense):
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    model, b = tiny_dense, BACKENDS.get(backend)
    ctx = CompileContext(tmp_path, "tiny", b.options_type(), calib, "minmax")
    art = b.compile(model, calib[:1], "int8", ctx)
    x = torch.randn(16, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x).numpy()
    got = run(art, x.numpy())
    assert sqnr_db(ref, got) > 20.0
    assert art.path.exists() and art.precision == "int8"


def test_guard_catches_the_batchnorm_folding_bug(tiny_dense):
    """prepare_pt2e folds ``norm`` into ``stem`` although the concat also reads stem's output."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from edgecn.quantize.pt2e import guard_prepared
    from edgecn.quantize.prepare import explicit_batchnorms

    model, x = tiny_dense, torch.randn(1, 3, 12, 12)
    q = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), q)
    with pytest.raises(EdgecnError, match="rewrote a layer it should only have observed"):
        guard_prepared(model, prepared, x)
    explicit = explicit_batchnorms(model)
    q = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    guard_prepared(explicit, prepare_pt2e(torch.export.export(explicit, (x,)).module(), q), x)


def test_calibration_cache_is_reused(calib, tmp_path, monkeypatch, tiny_dense):
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)

    from edgecn.quantize.pt2e import quantize_for_backend

    model, x = tiny_dense, calib[:1]
    ctx = CompileContext(tmp_path, "tiny", calib=calib, method="percentile")
    cfg = get_symmetric_quantization_config(is_per_channel=True)
    first = quantize_for_backend("executorch", model, x, XNNPACKQuantizer, cfg, ctx)
    stored = list((tmp_path / "cache" / "calibration").glob("*.json"))
    assert len(stored) == 1
    probe = torch.randn(4, 1, 3, 12, 12)
    again = quantize_for_backend("executorch", model, x, XNNPACKQuantizer, cfg, ctx)
    assert all(torch.equal(first(p), again(p)) for p in probe)
    # Make a hit visible: the cached ranges, widened 4x, must be what the next graph uses (a
    # build that ignored the cache would recalibrate and equal ``first`` again).
    cache = RangeCache(stored[0].stem, stored[0].parent)
    ranges = cache.load()
    cache.store({name: [lo * 4, hi * 4] for name, (lo, hi) in ranges.items()})
    widened = quantize_for_backend("executorch", model, x, XNNPACKQuantizer, cfg, ctx)
    assert not all(torch.equal(first(p), widened(p)) for p in probe)
    scales = sorted(float(n.args[1]) for n in widened.graph.nodes if "quantize_per_tensor" in str(n.target))
    want = sorted((hi - lo) / 255 for lo, hi in cache.load().values())
    assert any(abs(s - w) < 1e-6 * max(w, 1e-12) + 1e-9 for s in scales for w in want)
    # Another method is another key: a second entry appears.
    quantize_for_backend("executorch", model, x, XNNPACKQuantizer, cfg,
                         CompileContext(tmp_path, "tiny", calib=calib, method="minmax"))
    assert len(list((tmp_path / "cache" / "calibration").glob("*.json"))) == 2
