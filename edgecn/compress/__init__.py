"""Deep Compression (Han, Mao, Dally 2016) for models without learned group convs (SqueezeNet).

Three stages, each usable alone: magnitude pruning with retraining (``pruning``), k-means
weight sharing with centroid fine-tuning (``weight_sharing``), and Huffman coding into one
checksummed compressed weight file (``huffman``, ``sparse``, ``format``)::

    report = deep_compress(model, train_data, heldout_data, DeepCompressionConfig(sparsity=0.5, sensitivity=1.0))
    print(format_report(report))
    save_compressed("model.edc", model)
    model = load_compressed("model.edc")   # bit-exact weights

Before pruning by magnitude, kernel taps that only ever see padding at the model's input size
are pruned exactly (``unreachable_taps``); per-layer targets can come from a sensitivity scan
(``sensitivity_scan``). ``edgecn.condense.condense_checkpoint`` runs it for models without
learned group convs (``checkpoints.compress``: the ``.edc`` file and a checkpoint rebuilt from it).
"""

from edgecn.compress.config import DeepCompressionConfig
from edgecn.compress.finetune import evaluate
from edgecn.compress.pipeline import deep_compress, layer_plan
from edgecn.compress.pruning import compressible_layers, magnitude_mask, prune
from edgecn.compress.sensitivity import sensitivity_scan, unreachable_taps
from edgecn.compress.report import CompressionReport, LayerReport, format_report, measure, report_json
from edgecn.compress.store import bundle_size, compressed_to_checkpoint, load_compressed, save_compressed
from edgecn.compress.weight_sharing import kmeans_1d, share_weights

__all__ = [
    "CompressionReport",
    "DeepCompressionConfig",
    "LayerReport",
    "bundle_size",
    "compressed_to_checkpoint",
    "compressible_layers",
    "deep_compress",
    "evaluate",
    "format_report",
    "kmeans_1d",
    "layer_plan",
    "load_compressed",
    "magnitude_mask",
    "measure",
    "prune",
    "report_json",
    "save_compressed",
    "sensitivity_scan",
    "share_weights",
    "unreachable_taps",
]
