"""GRAM feature frontends (ESPnet ``AbsFrontend`` subclasses returning (B, C, F, T) features)."""

from espnet2_gram.frontend.spatial_features import (
    BinauralFrontend,
    FOAFrontend,
    MonoFrontend,
    SpatialFrontend,
    mel_filterbank,
    num_frames,
    per_crop_normalize,
)

__all__ = [
    "BinauralFrontend",
    "FOAFrontend",
    "MonoFrontend",
    "SpatialFrontend",
    "mel_filterbank",
    "num_frames",
    "per_crop_normalize",
]
