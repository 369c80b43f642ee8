"""Building blocks shared by the model families."""

from edgecn.layers.basic import BnReluConv
from edgecn.layers.index import ChannelGather
from edgecn.layers.learned_group_conv import CondensedGroupConv, LearnedGroupConv
from edgecn.layers.learned_linear import CondensedLinear, LearnedLinear
from edgecn.layers.shuffle import ChannelShuffle

__all__ = [
    "BnReluConv",
    "ChannelGather",
    "ChannelShuffle",
    "CondensedGroupConv",
    "CondensedLinear",
    "LearnedGroupConv",
    "LearnedLinear",
]
