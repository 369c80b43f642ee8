"""Model registry: every family file registers its named variants with ``@register_model``.

``create_model(name, num_classes, input_size)`` builds one; ``edgecn models`` lists them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from edgecn.errors import EdgecnError
from edgecn.registry import Registry


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered model variant.

    Attributes:
        name: registry name, e.g. ``condensenet-86``.
        family: ``condensenet``, ``squeezenet`` or ``densenet``.
        builder: ``builder(num_classes, input_size, in_channels, **overrides) -> nn.Module``.
        input_size: the input side the variant was designed for (32 for CIFAR, 224 for ImageNet).
        num_classes: default class count.
        description: one line for ``edgecn models``.
    """

    name: str
    family: str
    builder: Callable[..., Any]
    input_size: int
    num_classes: int
    description: str


MODELS: Registry[ModelSpec] = Registry("model", "edgecn models", package="edgecn.models")


def register_model(name: str, *, family: str, input_size: int, num_classes: int, description: str,
                   aliases: tuple[str, ...] = ()):
    """Decorator registering ``builder`` under ``name``."""

    def add(builder):
        MODELS.register(name, aliases=aliases)(
            ModelSpec(name, family, builder, input_size, num_classes, description))
        return builder

    return add


def create_model(name: str, num_classes: int | None = None, input_size: int | None = None,
                 in_channels: int = 3, **overrides):
    """Build a registered model in its training form.

    Args:
        name: a registry name (see ``edgecn models``).
        num_classes: output classes (default: the variant's).
        input_size: input side in pixels (default: the variant's).
        in_channels: input channels.
        **overrides: family-specific options (e.g. ``groups``, ``condense_factor`` for CondenseNet).

    Returns:
        The model, with ``model.edgecn_config`` holding what rebuilds it.
    """
    spec = MODELS.get(name)
    num_classes = spec.num_classes if num_classes is None else int(num_classes)
    input_size = spec.input_size if input_size is None else int(input_size)
    if num_classes < 2:
        raise EdgecnError(f"num_classes must be at least 2 (got {num_classes})", "pass the number of labels in your data")
    if input_size < 8:
        raise EdgecnError(f"input size {input_size} is too small", "use an input side of at least 8 pixels (32 for CIFAR-style models)")
    try:
        model = spec.builder(num_classes=num_classes, input_size=input_size, in_channels=in_channels, **overrides)
    except TypeError as e:
        raise EdgecnError(f"model {spec.name!r} does not take these options: {e}",
                          "check the option names in `edgecn models --help`") from e
    model.edgecn_config = {"name": spec.name, "num_classes": num_classes, "input_size": input_size,
                           "in_channels": in_channels, "overrides": dict(overrides), "form": "train"}
    return model


def check_input_size(model, input_size: int, in_channels: int = 3) -> None:
    """Raise EdgecnError when ``model`` cannot run at ``input_size`` (pooled away to nothing)."""
    import torch

    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_channels, input_size, input_size))
    except RuntimeError as e:
        name = getattr(model, "edgecn_config", {}).get("name", "this model")
        raise EdgecnError(f"{name} cannot run at input size {input_size}x{input_size} ({str(e).splitlines()[0][:100]})",
                          "pass a larger --input-size (SqueezeNet needs at least 32)") from e
    finally:
        model.train(was_training)


def rebuild_model(config: dict):
    """Rebuild the model described by ``edgecn_config`` (training or condensed form)."""
    from edgecn.condense import condense_model

    model = create_model(config["name"], config["num_classes"], config["input_size"],
                         config.get("in_channels", 3), **config.get("overrides", {}))
    if config.get("form") == "condensed":
        model = condense_model(model.eval(), strict=False)
    return model


__all__ = ["MODELS", "ModelSpec", "check_input_size", "create_model", "rebuild_model", "register_model"]
