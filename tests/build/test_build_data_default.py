"""`edgecn build` takes the data the checkpoint records, not digits, when --data is not given."""

import pytest
import torch

from edgecn.build.config import BuildConfig
from edgecn.build.pipeline import _model_and_data
from edgecn.errors import EdgecnError
from edgecn.train import TrainConfig, train


def _folder(root, classes=("cat", "dog", "eel"), per_class=6):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_build_uses_the_checkpoints_data_and_names_it_when_missing(tmp_path):
    data = _folder(tmp_path / "pets")
    result = train(TrainConfig(data=str(data), input_size=8, epochs=1, batch_size=4, out_dir=str(tmp_path / "run"),
                               overrides={"bottleneck": 2}), progress=False)
    said = []
    model, ds = _model_and_data(BuildConfig(target="host", checkpoint=str(result.checkpoint)), said.append)
    assert ds.labels == ["cat", "dog", "eel"] and ds.name == str(data)
    assert any("recorded in the checkpoint" in line for line in said)
    # A checkpoint trained on data that is not here: named, with the fix, instead of "3 classes but digits has 10".
    moved = tmp_path / "elsewhere"
    data.rename(moved)
    with pytest.raises(EdgecnError, match="trained on .*pets.*not on this machine") as e:
        _model_and_data(BuildConfig(target="host", checkpoint=str(result.checkpoint)), said.append)
    assert "--data" in e.value.fix
    model, ds = _model_and_data(BuildConfig(target="host", checkpoint=str(result.checkpoint), data=str(moved)),
                                said.append)
    assert len(ds.labels) == 3 and isinstance(model, torch.nn.Module)
