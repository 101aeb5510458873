"""Batching of ESPnet data-loader items for the GRAM tasks.

Same contract as ESPnet's common collate function (``(uids, {name: tensor, name_lengths:
lengths})``, float arrays padded with 0.0 and integer arrays with -1 along the first axis),
written here because importing ``espnet2.train.collate_fn`` pulls in ESPnet's text
preprocessing (g2p, nltk), about 7 s of start-up for every process.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch


class PadCollate:
    def __init__(self, float_pad_value: float = 0.0, int_pad_value: int = -1):
        self.float_pad_value = float_pad_value
        self.int_pad_value = int_pad_value

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(float_pad_value={self.float_pad_value},"
                f" int_pad_value={self.int_pad_value})")

    def __call__(self, data: Sequence[Tuple[str, Dict[str, np.ndarray]]]
                 ) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        uids = [uid for uid, _ in data]
        names = list(data[0][1])
        batch = {}
        for name in names:
            arrays = [np.asarray(d[name]) for _, d in data]
            integer = arrays[0].dtype.kind == "i"  # signed only, as ESPnet (uint8 pads 0)
            pad = self.int_pad_value if integer else self.float_pad_value
            lengths = [a.shape[0] if a.ndim else 1 for a in arrays]
            arrays = [a.reshape(1) if a.ndim == 0 else a for a in arrays]
            out = np.full((len(arrays), max(lengths), *arrays[0].shape[1:]), pad,
                          dtype=arrays[0].dtype)
            for i, a in enumerate(arrays):
                if a.shape[1:] != out.shape[2:]:
                    raise ValueError(f"{name} of {uids[i]} has shape {a.shape}, but"
                                     f" {uids[0]} has {arrays[0].shape}: only the first axis"
                                     " may differ within a batch")
                out[i, :a.shape[0]] = a
            batch[name] = torch.from_numpy(out)
            batch[f"{name}_lengths"] = torch.tensor(lengths, dtype=torch.long)
        return uids, batch
