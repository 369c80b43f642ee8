"""A training state (``last.pt``) that unpickles safely but is wrong inside: generated cases.

Each case changes one part of a real train-state (RNG, optimiser groups and per-parameter
state, gradient scaler, history, epoch count). The property: the checks in
``edgecn.train.resume`` either raise one EdgecnError, or accept the state, and then a
training step with it runs and gives finite weights (what accepting it promises).
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecn.errors import EdgecnError
from edgecn.models import create_model
from edgecn.train import resume
from edgecn.train.config import TrainConfig
from edgecn.train.loop import _optimizer
from tests.robustness.robust_helpers import COUNTS, edgecn

WHERE = "training state 'last.pt'"


def _setup(optimizer_name: str):
    torch.manual_seed(0)
    model = create_model("condensenet-light", num_classes=10, input_size=8, bottleneck=2)
    config = TrainConfig(epochs=3, optimizer=optimizer_name, input_size=8)
    return model, config, _optimizer(model, config)


def _step(model, optimizer):
    optimizer.zero_grad()
    model(torch.randn(4, 3, 8, 8)).logsumexp(1).mean().backward()
    optimizer.step()


@pytest.fixture(scope="module")
def states() -> dict:
    """A real train-state per optimiser, after two steps and two epochs of history."""
    out = {}
    for name in ("sgd", "adamw"):
        model, _, optimizer = _setup(name)
        _step(model, optimizer)
        _step(model, optimizer)
        out[name] = {"optimizer": optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()}, "scaler": {},
                     "epoch": 2, "history": [{"epoch": i, "loss": 1.5, "heldout_top1": 40.0, "heldout_top5": None,
                                              "condensed": False, "stage": 1} for i in (1, 2)]}
    return copy.deepcopy(out)


JUNK = st.one_of(st.none(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=4), st.booleans(),
                 st.lists(st.integers(0, 3), max_size=3),
                 st.builds(lambda shape, dtype: torch.zeros(shape, dtype=getattr(torch, dtype)),
                           st.lists(st.integers(0, 5), max_size=3),
                           st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "complex64"])))


@st.composite
def damaged(draw, states):
    name = draw(st.sampled_from(sorted(states)))
    extra = copy.deepcopy(states[name])
    part = draw(st.sampled_from(["rng", "group", "group-setting", "param-state", "stray-state", "scaler", "history",
                                 "epoch", "whole"]))
    opt = extra["optimizer"]
    if part == "rng":
        extra["rng"]["torch"] = draw(JUNK)
    elif part == "group":
        groups = opt["param_groups"]
        action = draw(st.sampled_from(["pop", "params", "junk"]))
        if action == "pop":
            groups.pop()
        elif action == "params":
            groups[0]["params"] = draw(st.lists(st.integers(-3, 200), max_size=80))
        else:
            groups[0] = draw(JUNK)
    elif part == "group-setting":
        key = draw(st.sampled_from(sorted(opt["param_groups"][0])))
        opt["param_groups"][0][key] = draw(JUNK)
    elif part == "param-state":
        pid = draw(st.sampled_from(sorted(opt["state"])))
        entry = opt["state"][pid]
        entry[draw(st.sampled_from(sorted(entry)))] = draw(JUNK)
    elif part == "stray-state":
        opt["state"][draw(st.integers(-5, 10**6))] = draw(st.dictionaries(st.text(max_size=3), JUNK, max_size=2))
    elif part == "scaler":
        extra["scaler"] = draw(st.one_of(JUNK, st.dictionaries(st.sampled_from(["scale", "growth_factor"]), JUNK)))
    elif part == "history":
        entry = extra["history"][draw(st.integers(0, 1))]
        entry[draw(st.sampled_from(["epoch", "loss", "heldout_top1", "condensed", "new"]))] = draw(JUNK)
    elif part == "epoch":
        extra["epoch"] = draw(JUNK)
    else:
        extra[draw(st.sampled_from(["optimizer", "rng", "history"]))] = draw(JUNK)
    return name, extra


def test_generated_train_states_are_used_safely_or_refused(states):
    @settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=damaged(states))
    def one(case):
        name, extra = case
        COUNTS["train_states"] += 1
        model, config, optimizer = _setup(name)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        try:
            rng = resume.check_rng(extra, WHERE)
            resume.check_history(extra, config.epochs, WHERE)
            resume.load_optimizer(optimizer, extra.get("optimizer"), WHERE)
            resume.check_scaler(scaler, extra.get("scaler"), WHERE)
        except EdgecnError as e:
            assert e.what.startswith(WHERE) and "\n" not in e.message, e.message
            return
        torch.set_rng_state(rng)
        _step(model, optimizer)
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())

    one()


@pytest.mark.parametrize("damage", ["momentum-shape", "rng-size", "history-short"])
def test_damaged_train_state_through_the_cli_is_one_line(tmp_path, damage):
    args = ["train", "--input-size", "8", "--batch-size", "128", "--quiet", "--set", "bottleneck=2", "--epochs", "1",
            "--out", "run"]
    assert edgecn(args, tmp_path).returncode == 0
    last = tmp_path / "run" / "last.pt"
    payload = torch.load(last, weights_only=True)
    extra = payload["extra"]
    if damage == "momentum-shape":
        extra["optimizer"]["state"][0]["momentum_buffer"] = torch.zeros(7)
    elif damage == "rng-size":
        extra["rng"]["torch"] = extra["rng"]["torch"][:10]
    else:
        extra["history"] = []
    torch.save(payload, last)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    r = edgecn([*args, "--resume"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert "last.pt" in r.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
