"""The runner's `--data digits` must feed exactly what training held out, or device top-1 lies."""

import numpy as np

from edgecn.runner.inputs import digits_inputs
from edgecn.runner.manifest import TensorSpec
from edgecn.train.data import load_dataset


def test_runner_digits_are_the_heldout_split_preprocessed_like_training():
    ds = load_dataset("digits", input_size=16)
    spec = TensorSpec("x", (1, 3, 16, 16), "float32", "NCHW", None, ds.normalize)
    inputs = digits_inputs(spec)
    x_held, y_held = ds.heldout.tensors if hasattr(ds.heldout, "tensors") else ds.heldout[:]
    assert inputs.labels == [int(y) for y in y_held]
    got = np.concatenate(inputs.arrays)
    assert got.shape == tuple(x_held.shape)
    assert np.abs(got - x_held.numpy()).max() < 1e-5


def test_the_shipped_digits_are_sklearns_heldout_split():
    from edgecn.runner.digits import from_sklearn, heldout

    want = from_sklearn()
    images, labels = heldout()
    assert np.array_equal(images * 16, want["images"]) and np.array_equal(labels, want["labels"])


def test_digits_load_without_sklearn():
    import subprocess
    import sys

    code = ("import sys; sys.modules['sklearn'] = None; from edgecn.runner.inputs import digits_inputs; "
            "from edgecn.runner.manifest import TensorSpec; "
            "i = digits_inputs(TensorSpec('x', (1, 16, 16, 3), 'int8', 'NHWC', {'scale': 0.02, 'zero_point': -3})); "
            "print(len(i.arrays), i.arrays[0].dtype, 'sklearn' in [m.split('.')[0] for m in sys.modules if sys.modules[m]])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split() == ["359", "int8", "False"], proc.stderr[-2000:]
