"""``DOATask``: direction-of-arrival regression as an ESPnet task (every trainer option).

Data: ``speech`` (audio ``sound`` or cached embeddings ``kaldi_ark``) and ``doa``
(``utt2doa`` as ``text_float``: azimuth elevation [distance], degrees).
"""

from typing import Tuple

from espnet2.train.class_choices import ClassChoices

from espnet2_gram.downstream.localization.doa_model import ESPnetDOAModel
from espnet2_gram.tasks.downstream import DownstreamTask, encoder_choices

model_choices = ClassChoices("model", classes=dict(doa=ESPnetDOAModel), default="doa")


class DOATask(DownstreamTask):
    class_choices_list = [encoder_choices, model_choices]
    model_choices = model_choices

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",) if inference else ("speech", "doa")
