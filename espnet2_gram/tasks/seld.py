"""``SELDTask``: frame-level sound event localisation and detection (ACCDOA) as an ESPnet task.

Data: ``speech`` (audio chunks ``sound`` or their cached embeddings ``kaldi_ark``) and
``tracks`` (``npy``: (label frames, 3, classes, 4) [active, x, y, z]), as written by
``espnet2_gram.bin.make_seld_data``.
"""

from typing import Tuple

from espnet2.train.class_choices import ClassChoices

from espnet2_gram.downstream.localization.seld_model import ESPnetSELDModel
from espnet2_gram.tasks.downstream import DownstreamTask, encoder_choices

model_choices = ClassChoices("model", classes=dict(seld=ESPnetSELDModel), default="seld")


class SELDTask(DownstreamTask):
    class_choices_list = [encoder_choices, model_choices]
    model_choices = model_choices

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",) if inference else ("speech", "tracks")
