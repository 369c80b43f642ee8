"""Training that diverges stops with a user error; a model that learned nothing says so loudly."""

import numpy as np
import pytest

from edgecn.errors import EdgecnError
from edgecn.runner.evaluate import learned_nothing
from edgecn.train import TrainConfig, train


def test_a_diverging_run_stops_with_the_learning_rate_named(tmp_path):
    cfg = TrainConfig(model="condensenet-light", data="digits", epochs=1, lr=1e30, input_size=16,
                      out_dir=str(tmp_path / "run"))
    with pytest.raises(EdgecnError, match="diverged") as e:
        train(cfg, progress=False)
    assert "--lr" in e.value.fix and not (tmp_path / "run" / "final.pt").exists()


@pytest.mark.parametrize("classes, n", [(2, 10), (3, 30), (10, 359), (100, 1000)])
def test_chance_level_and_constant_answers_are_named(classes, n):
    rng = np.random.default_rng(0)
    names = [str(c) for c in range(classes)]
    y = rng.integers(0, classes, n)
    constant = np.zeros((n, classes))
    constant[:, 1] = 1.0
    found = learned_nothing(constant, y, names)
    assert any("for every image" in w for w in found) and any("chance" in w for w in found)
    good = np.eye(classes)[y] + 0.01 * rng.random((n, classes))
    assert learned_nothing(good, y, names) == []
