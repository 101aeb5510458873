"""GRAM masked-autoencoder model components: patching, masking, attention, encoder, decoders."""

from espnet2_gram.gram.attention import Attention, Block, Mlp, WindowedAttentionBias
from espnet2_gram.gram.decoder import MWMAEDecoder, TransformerDecoder
from espnet2_gram.gram.encoder import GRAMEncoder, select_visible
from espnet2_gram.gram.loss import masked_patch_mse
from espnet2_gram.gram.masking import (
    FrequencyMasking,
    InverseBlockMasking,
    MaskingStrategy,
    RandomMasking,
    TimeMasking,
)
from espnet2_gram.gram.patching import PatchEmbed, grid_shape, patchify, sincos_2d

__all__ = [
    "Attention",
    "Block",
    "FrequencyMasking",
    "GRAMEncoder",
    "InverseBlockMasking",
    "MWMAEDecoder",
    "MaskingStrategy",
    "Mlp",
    "PatchEmbed",
    "RandomMasking",
    "TimeMasking",
    "TransformerDecoder",
    "WindowedAttentionBias",
    "grid_shape",
    "masked_patch_mse",
    "patchify",
    "select_visible",
    "sincos_2d",
]
