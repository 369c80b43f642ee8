"""Bias correction: each layer's mean int8 error on calibration images is removed, in order."""

import pytest
import torch

from edgecn.backends import BACKENDS, CompileContext


def _flat_images(n: int, seed: int) -> torch.Tensor:
    """Mostly flat images (a constant background, one bright square): int8 rounds the background
    the same way at every position, so the error survives global pooling."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.full((n, 3, 12, 12), -0.8)
    for i in range(n):
        r, c = torch.randint(0, 8, (2,), generator=gen)
        x[i, :, r:r + 4, c:c + 4] = torch.rand(3, 1, 1, generator=gen) * 2
    return x


def _int8_graphs(backend, model, calib, tmp_path, monkeypatch):
    import edgecn.quantize.pt2e as pt2e

    b = BACKENDS.get(backend)
    ctx = CompileContext(tmp_path, "t", b.options_type(), calib, "minmax", use_cache=False)
    corrected = b.int8_graph(model, calib[:1], ctx)
    monkeypatch.setattr(pt2e, "correct_biases", lambda *a: 0)
    return b.int8_graph(model, calib[:1], ctx), corrected


@pytest.mark.parametrize("backend", ["executorch", "tflite"])
def test_mean_logit_shift_is_removed(backend, tmp_path, tiny_dense, monkeypatch):
    calib = _flat_images(32, 1)
    plain, corrected = _int8_graphs(backend, tiny_dense, calib, tmp_path, monkeypatch)
    with torch.no_grad():
        ref = tiny_dense(calib)

        def shift(graph):
            return (torch.cat([graph(x[None]) for x in calib]) - ref).mean(0).abs().max()

        before, after = shift(plain), shift(corrected)
    assert before > 3e-4, "the test images must produce a coherent shift to remove"
    assert after < before / 3  # what remains is the logits' own rounding


def test_each_layer_is_corrected_after_the_ones_before_it(tmp_path, tiny_dense, monkeypatch):
    """After correction every layer with a bias (here the two BatchNorms, as depthwise convs)
    has float's mean output on the calibration images, measured in the corrected graph: a
    layer is corrected with the ones before it already corrected."""
    from edgecn.quantize.prepare import explicit_batchnorms

    calib = _flat_images(32, 2)
    plain, corrected = _int8_graphs("executorch", tiny_dense, calib, tmp_path, monkeypatch)
    reference = explicit_batchnorms(tiny_dense)
    want = _layer_means(reference, calib)
    before, after = _graph_means(plain, calib), _graph_means(corrected, calib)
    assert set(after) == {"norm", "norm_last"}
    for name, mean in after.items():
        err_before = (before[name] - want[name]).abs().max()
        err_after = (mean - want[name]).abs().max()
        assert err_after < 1e-5 + err_before / 100, (name, float(err_before), float(err_after))


def _layer_means(model, calib) -> dict:
    out = {}
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.mean(dim=(0, 2, 3))))
             for n in ("norm", "norm_last")]
    with torch.no_grad():
        model(calib)
    for h in hooks:
        h.remove()
    return out


def _graph_means(graph, calib) -> dict:
    """Per-channel mean output of each conv with a bias in a converted graph, by its module."""
    from edgecn.quantize.bias import _module_path

    convs = {n for n in graph.graph.nodes if str(n.target) == "aten.conv2d.default" and n.args[2] is not None}
    sums: dict = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n in convs:
                sums[_module_path(n)] = sums.get(_module_path(n), 0) + out.mean(dim=(0, 2, 3))
            return out

    with torch.no_grad():
        for x in calib:
            Recorder(graph).run(x[None])
    return {k: v / len(calib) for k, v in sums.items()}
