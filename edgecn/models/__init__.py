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
        options: the family-specific options ``create_model`` accepts, by name (see ``Option``).
    """

    name: str
    family: str
    builder: Callable[..., Any]
    input_size: int
    num_classes: int
    description: str
    options: dict = dataclasses.field(default_factory=dict)


MODELS: Registry[ModelSpec] = Registry("model", "edgecn models", package="edgecn.models")


def register_model(name: str, *, family: str, input_size: int, num_classes: int, description: str,
                   aliases: tuple[str, ...] = (), options: dict | None = None):
    """Decorator registering ``builder`` under ``name`` (``options``: see ``ModelSpec``)."""

    def add(builder):
        MODELS.register(name, aliases=aliases)(
            ModelSpec(name, family, builder, input_size, num_classes, description, dict(options or {})))
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
    check_options(spec, overrides)
    model = spec.builder(num_classes=num_classes, input_size=input_size, in_channels=in_channels, **overrides)
    model.edgecn_config = {"name": spec.name, "num_classes": num_classes, "input_size": input_size,
                           "in_channels": in_channels, "overrides": dict(overrides), "form": "train"}
    return model


@dataclasses.dataclass(frozen=True)
class Option:
    """What one model option takes: a number in a range, one of some strings, or true/false.

    Attributes:
        kind: ``int``, ``float``, ``bool``, or a tuple of the strings allowed.
        lo, hi: the range of a number (inclusive).
        optional: ``None`` is allowed too (the model then picks, e.g. C defaults to G).
    """

    kind: type | tuple
    lo: float | None = None
    hi: float | None = None
    optional: bool = False

    def describe(self) -> str:
        what = (" | ".join(self.kind) if isinstance(self.kind, tuple) else "true or false" if self.kind is bool
                else f"{self.kind.__name__} {self.lo}..{self.hi}")
        return f"{what} or null" if self.optional else what

    def check(self, value, label: str) -> None:
        from edgecn.limits import check_number

        if value is None and self.optional:
            return
        if isinstance(self.kind, tuple) or self.kind is bool:
            ok = value in self.kind if isinstance(self.kind, tuple) else isinstance(value, bool)
            if not ok or (isinstance(self.kind, tuple) and not isinstance(value, str)):
                raise EdgecnError(f"{label} is {value!r}, not {self.describe()}", f"write {self.describe()}")
        else:
            check_number(value, self.kind, self.lo, self.hi, label)


def check_options(spec: ModelSpec, overrides: dict, where: str = "") -> None:
    """Every model option (``--set KEY=VALUE``, or a checkpoint's saved ones) is known and in range.

    Options come from the command line and from checkpoint files, so they are input: an
    unknown name, a string where a number belongs or a group count of a billion is one
    error naming the option and what it takes, never a TypeError deep in a constructor.
    """
    known = ", ".join(f"{k} ({v.describe()})" for k, v in spec.options.items()) or "none"
    for key, value in overrides.items():
        label = f"{where}model option {key!r} of {spec.name!r}"
        if key not in spec.options:
            raise EdgecnError(f"{label} does not exist", f"{spec.name} takes: {known}")
        spec.options[key].check(value, label)


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


__all__ = ["MODELS", "ModelSpec", "Option", "check_input_size", "check_options", "create_model", "rebuild_model", "register_model"]
