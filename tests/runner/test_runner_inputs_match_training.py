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
