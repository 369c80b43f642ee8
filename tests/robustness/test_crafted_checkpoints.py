"""Checkpoints that unpickle safely but are wrong inside: generated, loaded, and through the CLI.

Each case takes a good checkpoint (training or condensed form) and changes one thing the
safe unpickler lets through: a tensor's layout, device, dtype, strides or shape; a config
field (classes, channels, model name, form, model options); a value a layer constrains (a
channel index, a condensing stage). The property: loading either raises one EdgecnError
naming the checkpoint, or succeeds with every saved value in the model unchanged. Cases
that are known to be wrong must raise.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecn.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from edgecn.condense import deployable, set_progress
from edgecn.errors import EdgecnError
from edgecn.models import MODELS, create_model
from tests.robustness.robust_helpers import COUNTS, edgecn

FLOATS = ("float16", "bfloat16", "float32", "float64")
OTHER_DTYPES = ("int8", "uint8", "int32", "int64", "bool", "complex64", "complex128")


@pytest.fixture(scope="module")
def payloads(tmp_path_factory) -> dict:
    """Good payloads of condensenet-light, training form and condensed form."""
    d = tmp_path_factory.mktemp("crafted")
    torch.manual_seed(0)
    model = create_model("condensenet-light", num_classes=10, input_size=16)
    set_progress(model, 1.0)
    save_checkpoint(d / "train.pt", model)
    save_checkpoint(d / "condensed.pt", deployable(model.eval()))
    return {form: read_checkpoint(d / f"{form}.pt") for form in ("train", "condensed")}


def tensor_change(draw, tensor: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """A replacement for ``tensor`` and whether it must be refused."""
    kind = draw(st.sampled_from(["dtype", "sparse", "meta", "expanded", "overlapping", "shape", "view-of-larger"]))
    if kind == "dtype":
        name = draw(st.sampled_from(FLOATS + OTHER_DTYPES))
        same_kind = (name in FLOATS) == tensor.is_floating_point() and (name == "bool") == (tensor.dtype == torch.bool)
        return tensor.to(getattr(torch, name)), not same_kind
    if kind == "sparse":
        return tensor.to_sparse() if tensor.dim() else tensor.reshape(1).to_sparse(), True
    if kind == "meta":
        return torch.empty(tensor.shape, dtype=tensor.dtype, device="meta"), True
    if kind == "expanded":  # one stored value shown as many (up to a terabyte's worth)
        shape = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=4).filter(lambda s: math.prod(s) > 1))
        return torch.zeros(1, dtype=tensor.dtype).expand(*shape), True
    if kind == "overlapping":  # rows that share storage
        n = max(2, tensor.numel())
        return torch.zeros(n + 1, dtype=tensor.dtype).as_strided((n, 2), (1, 1)), True
    if kind == "shape":
        shape = draw(st.lists(st.integers(0, 40), max_size=4))
        return torch.zeros(shape, dtype=tensor.dtype), tuple(shape) != tuple(tensor.shape)
    big = torch.zeros(tensor.numel() + draw(st.integers(1, 10_000)), dtype=tensor.dtype)  # a view into more storage
    return big[:tensor.numel()].view(tensor.shape).copy_(tensor), False


OPTION_VALUES = st.one_of(st.integers(-10, 10**12), st.floats(allow_nan=True), st.text(max_size=5), st.none(),
                          st.booleans(), st.lists(st.integers(), max_size=2))


@st.composite
def crafted(draw, payloads_by_form):
    form = draw(st.sampled_from(["train", "condensed"]))
    payload = copy.deepcopy(payloads_by_form[form])
    state, config = payload["state_dict"], payload["config"]
    part = draw(st.sampled_from(["tensor", "tensor", "config", "options", "constrained"]))
    refuse = False
    if part == "tensor":
        key = draw(st.sampled_from(sorted(state)))
        state[key], refuse = tensor_change(draw, state[key])
    elif part == "config":
        field = draw(st.sampled_from(["num_classes", "in_channels", "name", "form", "input_size"]))
        value = {"num_classes": st.integers(2, 100_000), "in_channels": st.integers(1, 4),
                 "name": st.sampled_from(sorted(MODELS.names(aliases=True))), "form": st.sampled_from(["train", "condensed"]),
                 "input_size": st.integers(8, 64)}[field]
        new = draw(value)
        same = new == config[field] or (field == "name" and MODELS.get(new).name == config["name"])
        refuse = not same and field != "input_size"  # the side is not in the weights: any that runs is valid
        config[field] = new
    elif part == "options":
        keys = st.sampled_from(["groups", "condense_factor", "bottleneck", "group_3x3", "classifier_keep",
                                "stem_stride", "growth", "bogus"])
        config["overrides"] = draw(st.dictionaries(keys, OPTION_VALUES, max_size=2))
    else:
        stage = [k for k in state if k.endswith(".stage")]
        index = [k for k in state if k.endswith(".index")]
        key = draw(st.sampled_from(stage or index))
        state[key] = state[key].clone()
        state[key].view(-1)[0] = draw(st.sampled_from([-1, 10**9, -(2**40)]))
        refuse = True
    return payload, refuse


def _load(payload: dict, path):
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(buf.getvalue())
    return load_checkpoint(path)


def test_generated_checkpoints_load_exactly_or_are_refused(payloads, tmp_path):
    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=crafted(payloads))
    def one(case):
        payload, refuse = case
        COUNTS["crafted_checkpoints"] += 1
        path = tmp_path / "ck.pt"
        try:
            model, _ = _load(payload, path)
        except EdgecnError as e:
            assert "ck.pt" in e.what and "\n" not in e.message, e.message
            return
        assert not refuse, "a crafted checkpoint that must be refused was loaded"
        loaded = model.state_dict()
        for key, saved in payload["state_dict"].items():
            assert torch.equal(loaded[key], saved.to(loaded[key].dtype)), key
            assert torch.equal(saved.to(loaded[key].dtype).to(saved.dtype), saved), f"{key} was cast with loss"

    one()


def test_no_crafted_tensor_is_read_before_its_shape_is_checked(payloads, tmp_path):
    """A terabyte-sized zero-stride view is refused from its metadata: no allocation is tried."""
    payload = copy.deepcopy(payloads["train"])
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = torch.zeros(1).expand(10**6, 10**6)
    with pytest.raises(EdgecnError, match="elements"):
        _load(payload, tmp_path / "huge.pt")


CLI_CASES = {
    "sparse": lambda p: p["state_dict"].update({"features.stem.weight": p["state_dict"]["features.stem.weight"].to_sparse()}),
    "meta": lambda p: p["state_dict"].update({"features.stem.weight": torch.empty(16, 3, 3, 3, device="meta")}),
    "int-weights": lambda p: p["state_dict"].update({"features.stem.weight": p["state_dict"]["features.stem.weight"].int()}),
    "classes": lambda p: p["config"].update(num_classes=11),
    "option-type": lambda p: p["config"].update(overrides={"groups": "four"}),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_crafted_checkpoint_through_the_cli_is_one_line(payloads, tmp_path, case):
    payload = copy.deepcopy(payloads["train"])
    CLI_CASES[case](payload)
    torch.save(payload, tmp_path / "ck.pt")
    before = (tmp_path / "ck.pt").read_bytes()
    r = edgecn(["condense", "ck.pt", "-o", "out.pt"], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert "ck.pt" in r.stderr
    assert not (tmp_path / "out.pt").exists() and (tmp_path / "ck.pt").read_bytes() == before


@pytest.mark.parametrize("args", [("build", "--input-size", "24"), ("tune", "--input-size", "24"),
                                  ("tune", "--num-classes", "3")])
def test_options_that_contradict_the_checkpoint_are_refused(payloads, tmp_path, args):
    torch.save(payloads["train"], tmp_path / "ck.pt")
    verb, *rest = args
    extra = ["--out", "b"] if verb == "build" else ["--table", "t.json", "--backend", "tflite"]
    r = edgecn([verb, "--target", "rpi5", "--checkpoint", "ck.pt", *rest, *extra], tmp_path)
    assert r.returncode == 2 and "disagree with checkpoint 'ck.pt'" in r.stderr, r.stderr
    assert not (tmp_path / "b").exists() and not (tmp_path / "t.json").exists()
