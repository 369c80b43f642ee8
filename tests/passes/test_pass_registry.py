"""Every registered pass, on a small condensed CondenseNet, under configs covering each choice."""

import pytest
import torch

from edgecn.errors import EdgecnError
from edgecn.passes import ORDER, PASSES, LoweringConfig, RewriteMismatch, check_exact, rewrite

CONFIGS = [
    LoweringConfig(index="dense", group_conv="native", shuffle="fold"),
    LoweringConfig(index="selection_conv", group_conv="native", shuffle="fold"),
    LoweringConfig(index="auto", group_conv="dense", shuffle="fold"),
    LoweringConfig(index="slices", group_conv="split", shuffle="keep", max_slices=64),
    LoweringConfig(index="late_gather", group_conv="merge", shuffle="gather", avg_pool="depthwise_conv"),
    LoweringConfig(),
]
KEYS = {"pass", "site", "choice", "reason", "macs_before", "macs_after"}


@pytest.fixture(scope="module")
def small(randomize_bn):
    """A two-block condensed CondenseNet: every construct the passes lower, in seconds."""
    from edgecn.condense import condense_model, set_progress
    from edgecn.models.condensenet import CondenseNet

    torch.manual_seed(0)
    model = randomize_bn(CondenseNet([2, 1], [8, 8], num_classes=5).eval())
    set_progress(model, 1.0)
    return condense_model(model).eval()


def test_every_registered_pass_is_in_the_pipeline():
    assert sorted(ORDER) == PASSES.names()


@pytest.mark.parametrize("name", PASSES.names())
def test_pass_is_exact_and_reports(name, small, assert_same):
    x = torch.randn(1, 3, 16, 16)
    upto = ORDER[:ORDER.index(name) + 1]  # the graph this pass sees in the pipeline
    rewritten = 0
    for cfg in CONFIGS:
        model, report = rewrite(small, cfg, x, passes=upto)
        assert_same(small, model, (2, 3, 16, 16))
        for entry in report:
            assert set(entry) == KEYS and entry["reason"] and entry["macs_after"] >= 0
        rewritten += sum(r["pass"] == name for r in report)
    assert rewritten > 0, f"no config exercised pass {name!r}"


def test_input_model_is_not_modified(small):
    before = {k: v.clone() for k, v in small.state_dict().items()}
    rewrite(small, CONFIGS[0], torch.randn(1, 3, 16, 16))
    after = small.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_unknown_pass_name_is_a_user_error(small):
    with pytest.raises(EdgecnError, match="unknown pass"):
        rewrite(small, LoweringConfig(), torch.randn(1, 3, 16, 16), passes=["shufle"])


def test_mismatch_is_detected():
    ref = torch.ones(2, 3)
    assert check_exact(ref, ref + 1e-6, 1e-5, "p") < 2e-6
    with pytest.raises(RewriteMismatch, match="'p'"):
        check_exact(ref, ref + 1e-3, 1e-5, "p")


@pytest.mark.parametrize("kwargs", [{"index": "gathr"}, {"group_conv": "blocks"}, {"shuffle": "yes"},
                                    {"fold_bn": "no"}, {"max_slices": 0}, {"tolerance": 1.0},
                                    {"avg_pool": "max"}, {"min_group_outputs": 0}, {"min_group_outputs": True}])
def test_config_validates(kwargs):
    with pytest.raises(EdgecnError):
        LoweringConfig(**kwargs)


def test_config_from_dict():
    assert LoweringConfig.from_dict({"index": "dense", "shuffle": "fold"}) == LoweringConfig(index="dense", shuffle="fold")
    with pytest.raises(EdgecnError, match="unknown lowering option"):
        LoweringConfig.from_dict({"indx": "dense"})


def test_config_gather_cost_per_backend():
    table = {"index": "auto", "gather_cost": {"executorch": 24, "tflite": 12.5}}
    assert LoweringConfig.from_dict(table, "executorch").gather_cost == 24
    assert LoweringConfig.from_dict(table, "tflite").gather_cost == 12.5
    # A backend the table does not name removes every gather, as without gather_cost.
    assert LoweringConfig.from_dict(table, "tensorrt").gather_cost is None
    assert LoweringConfig.from_dict(table).gather_cost is None
    with pytest.raises(EdgecnError, match="gather_cost for tflite"):
        LoweringConfig.from_dict({"gather_cost": {"executorch": 24, "tflite": -1}}, "executorch")
