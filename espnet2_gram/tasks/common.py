"""Pieces shared by the GRAM ESPnet tasks: the ``--init`` option and batch collation."""

import argparse
from typing import Callable, Collection, Dict, List, Tuple

import numpy as np
import torch
from espnet2.utils.types import str_or_none

from espnet2_gram.utils.collate import PadCollate

INIT_CHOICES = ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", None]


def add_init_argument(group, help_text: str) -> None:
    group.add_argument("--init", type=lambda x: str_or_none(x.lower()), default=None,
                       choices=INIT_CHOICES, help=help_text)


class PaddedBatches:
    """Mixin (before ``AbsTask``): batches padded by :class:`PadCollate`."""

    @classmethod
    def build_collate_fn(cls, args: argparse.Namespace, train: bool) -> Callable[
        [Collection[Tuple[str, Dict[str, np.ndarray]]]],
        Tuple[List[str], Dict[str, torch.Tensor]],
    ]:
        return PadCollate(float_pad_value=0.0, int_pad_value=-1)
