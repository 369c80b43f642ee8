import pytest
import torch

from edgecn.condense import condense_model, set_progress
from edgecn.errors import EdgecnError
from edgecn.models import MODELS, create_model
from edgecn.models.stats import count
from edgecn.models.summary import summarize


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_builds_and_runs_small(name):
    spec = MODELS.get(name)
    size = 32 if spec.input_size == 32 else 64  # ImageNet variants also run on small inputs
    model = create_model(name, num_classes=7, input_size=size).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, 7)
    assert model.edgecn_config["name"] == name


def test_condensenet_86_matches_paper():
    """Paper: condensed CondenseNet-86 (CIFAR-10) has 0.52M parameters and 65.8M multiply-adds."""
    row = summarize("condensenet-86", 10, 32)
    assert abs(row["condensed_params"] - 0.52e6) / 0.52e6 < 0.05
    assert abs(row["condensed_macs"] - 65.8e6) / 65.8e6 < 0.10


def test_condensenet_74_matches_paper():
    """Paper (ImageNet): C=4 -> 4.8M params / 529M MACs; C=8 -> 2.9M / 274M."""
    for name, params, macs in [("condensenet-74-c4", 4.8e6, 529e6), ("condensenet-74-c8", 2.9e6, 274e6)]:
        m = create_model(name)
        set_progress(m, 1.0)
        c = count(condense_model(m.eval()), 224)
        assert abs(c["params"] - params) / params < 0.05, name
        assert abs(c["macs"] - macs) / macs < 0.10, name


def test_squeezenet_1_0_exact_parameter_count():
    assert count(create_model("squeezenet1_0", num_classes=1000, input_size=224), 224)["params"] == 1_248_424


def test_bypass_variants_add_what_the_paper_says():
    plain = count(create_model("squeezenet1_1"), 224)["params"]
    simple = count(create_model("squeezenet1_1-simple-bypass"), 224)["params"]
    complex_ = count(create_model("squeezenet1_1-complex-bypass"), 224)["params"]
    assert simple == plain  # identity bypass has no parameters
    assert complex_ > plain


def test_bad_groups_are_user_errors():
    with pytest.raises(EdgecnError, match="does not divide"):
        create_model("condensenet-light", groups=3)
    with pytest.raises(EdgecnError):
        create_model("condensenet-light", condense_factor=5)
    with pytest.raises(EdgecnError, match="unknown model"):
        create_model("condensenet-99")
