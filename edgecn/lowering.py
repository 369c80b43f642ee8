"""The lowering configuration: which form each target-unfriendly construct is rewritten to."""

from __future__ import annotations

import dataclasses

from edgecn.errors import EdgecnError

INDEX_CHOICES = ("auto", "gather", "selection_conv", "dense", "slices", "late_gather")
GROUP_CONV_CHOICES = ("auto", "native", "split", "dense", "merge")
AVG_POOL_CHOICES = ("keep", "depthwise_conv")
SHUFFLE_CHOICES = ("auto", "fold", "keep", "gather")
KEPT_GATHER_CHOICES = ("late_gather", "gather")


@dataclasses.dataclass(frozen=True)
class LoweringConfig:
    """How ``edgecn.passes.rewrite`` lowers a model for one target.

    Attributes:
        index: channel gathers (index layers): ``"gather"`` keeps them, ``"selection_conv"``
            makes a 1x1 conv with a 0/1 matrix, ``"dense"`` folds gather + BN/ReLU + conv into
            one dense conv over the un-gathered input, ``"slices"`` makes slices + concat when
            the index is a few contiguous ranges, ``"late_gather"`` moves BN/ReLU in front of
            the gather and keeps it, ``"auto"`` picks per layer.
        group_conv: grouped convolutions: ``"native"``, ``"split"`` (per-group convs + concat),
            ``"dense"`` (one block-diagonal dense conv), ``"merge"`` (k neighbouring groups
            merged into one block-diagonal group, the fewest that give each group at least
            ``min_group_outputs`` outputs; dense when the whole layer has fewer) or ``"auto"``.
        min_group_outputs: for ``group_conv = "merge"``: fewest outputs per group worth running
            as is. XNNPACK's int8 3x3 grouped conv ran at 9/37/98/225/458 GMAC/s with 1/2/4/8/16
            outputs per group (1 thread, AVX-512 VNNI host), so below 16 the zeros a merge adds
            cost less than the narrow groups.
        group_multiple: for ``group_conv = "merge"``: input and output channels per group must
            be multiples of this, else groups merge. TensorRT's int8 grouped-conv kernels want
            multiples of 4; a layer that misses it runs slower tactics or leaves int8.
        avg_pool: ``"depthwise_conv"`` writes an average pool whose window equals its stride
            as the equal depthwise conv with weights 1/(k*k) (LiteRT's XNNPACK delegate does
            not take an int8 AVERAGE_POOL_2D); ``"keep"`` leaves it.
        shuffle: channel shuffles: ``"fold"`` removes every one (folded into a neighbouring
            dense conv when possible, else lowered another exact way), ``"keep"``, ``"auto"``
            (a free fold, else keep), ``"gather"`` (a free fold, else a 4-D channel gather:
            litert-torch's int8 layout pass cannot convert the 5-D view of a kept shuffle).
        fold_bn: fold a BatchNorm into the conv before it when that conv feeds only the BN.
        explicit_multi_consumer_bn: write a BatchNorm whose input conv has other consumers as
            a depthwise 1x1 conv, so int8 preparation cannot fold it into that conv.
        max_slices: most contiguous ranges an index may have for ``"slices"``.
        gather_cost: what one gathered value costs at run time when a gather is kept, in
            multiply-adds of the runtime's int8 conv (``bench/gather_cost.py`` measures it).
            Unset: ``index = "auto"`` removes every gather. Set: ``auto`` keeps a gather
            where the exact forms that remove it would cost more (a dense fold costs C times
            the grouped conv's multiply-adds, which on large layers is far more than the copy).
        kept_gather: the form ``index = "auto"`` gives a gather it keeps: ``"late_gather"``
            (BN/ReLU moved in front, so the gather reads a tensor of its own: litert-torch's
            int8 conversion cannot lay out a quantized concat read by a gather) or ``"gather"``
            (left where it is, BN/ReLU after it). For ``.pte`` the plain gather is cheaper: a
            kept gather splits the XNNPACK partitions, and with BN/ReLU in front the partition
            before it must hand over two tensors as large as the concat (the concat and its
            BN/ReLU output) instead of one.
        shuffle_behind_bn: a shuffle that is kept moves behind the BN/ReLU that follow it
            (their parameters permuted), so the BN folds into the conv that made the shuffled
            tensor and the ReLU fuses into it, instead of running as a depthwise 1x1 conv of
            its own. ``false`` leaves the shuffle in front of them, as lowerings before this
            option did.
        cost_table: a cost table written by ``edgecn tune`` (path relative to the target file,
            usually one per backend). A build then lowers each layer in the form the table
            measured fastest, and layers the table does not cover as the options above say.
        tolerance: largest allowed difference between the input and the rewritten model's
            outputs on the example input, relative to the largest output magnitude (>= 1).
    """

    index: str = "auto"
    group_conv: str = "auto"
    shuffle: str = "auto"
    min_group_outputs: int = 16
    group_multiple: int = 1
    avg_pool: str = "keep"
    fold_bn: bool = True
    explicit_multi_consumer_bn: bool = True
    max_slices: int = 8
    gather_cost: float | None = None
    kept_gather: str = "late_gather"
    shuffle_behind_bn: bool = True
    cost_table: str | None = None
    tolerance: float = 1e-5

    def __post_init__(self):
        for field, choices in (("index", INDEX_CHOICES), ("group_conv", GROUP_CONV_CHOICES),
                               ("shuffle", SHUFFLE_CHOICES), ("avg_pool", AVG_POOL_CHOICES),
                               ("kept_gather", KEPT_GATHER_CHOICES)):
            value = getattr(self, field)
            if value not in choices:
                raise EdgecnError(f"unknown {field} lowering {value!r}", f"use one of {', '.join(choices)}")
        for field in ("fold_bn", "explicit_multi_consumer_bn", "shuffle_behind_bn"):
            if not isinstance(getattr(self, field), bool):
                raise EdgecnError(f"{field} must be true or false (got {getattr(self, field)!r})",
                                  f"write {field} = true or {field} = false")
        if isinstance(self.group_multiple, bool) or not isinstance(self.group_multiple, int) \
                or not 1 <= self.group_multiple <= 64:
            raise EdgecnError(f"group_multiple must be an integer from 1 to 64 (got {self.group_multiple!r})",
                              "use 4 for TensorRT int8 (channels per group in multiples of 4), or 1 for no rule")
        if isinstance(self.min_group_outputs, bool) or not isinstance(self.min_group_outputs, int) \
                or self.min_group_outputs < 1:
            raise EdgecnError(f"min_group_outputs must be a positive integer (got {self.min_group_outputs!r})",
                              "use e.g. 16 (what XNNPACK's int8 grouped conv needs to run near its peak)")
        if not isinstance(self.max_slices, int) or self.max_slices < 1:
            raise EdgecnError(f"max_slices must be a positive integer (got {self.max_slices!r})",
                              "use a small count such as 8")
        if self.gather_cost is not None and (isinstance(self.gather_cost, bool)
                                             or not isinstance(self.gather_cost, (int, float))
                                             or not 0 <= self.gather_cost < 1e6):
            raise EdgecnError(f"gather_cost must be a non-negative number (got {self.gather_cost!r})",
                              "measure it with python bench/gather_cost.py, or leave it out")
        if self.cost_table is not None and (not isinstance(self.cost_table, str) or not self.cost_table.strip()):
            raise EdgecnError(f"cost_table must be a file path (got {self.cost_table!r})",
                              "write cost_table = { tflite = \"costs/NAME-tflite.json\" } (from `edgecn tune`), or leave it out")
        if not 0 < self.tolerance < 1e-2:
            raise EdgecnError(f"tolerance {self.tolerance!r} is out of range",
                              "use a small positive number such as 1e-5")

    @classmethod
    def from_dict(cls, data: dict, backend: str | None = None) -> "LoweringConfig":
        """Build from a TOML table; unknown keys are an error naming the valid ones.

        Any option may instead be a table per backend (``gather_cost = {executorch = 24,
        tflite = 12}``: runtimes copy, and convert, differently); ``backend`` picks from it,
        and a backend the table does not name gets the option's default.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise EdgecnError(f"unknown lowering option(s) {', '.join(unknown)}",
                              f"use only {', '.join(sorted(names))}")
        resolved = {k: v for k, v in data.items() if not isinstance(v, dict)}
        cls(**resolved)  # the plain options first, so an error names its own option
        for key, table in data.items():
            if not isinstance(table, dict):
                continue
            for name, value in table.items():
                try:
                    cls(**{**resolved, key: value})
                except EdgecnError as e:
                    raise EdgecnError(f"{key} for {name}: {e.what}", e.fix) from e
            if backend in table:
                resolved[key] = table[backend]
        return cls(**resolved)
