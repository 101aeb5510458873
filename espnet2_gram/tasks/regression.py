"""``RegressionTask``: a real target per clip (Nat-HEAR's RT60) as an ESPnet task (every trainer
option).

Data: ``speech`` (audio ``sound`` or cached embeddings ``kaldi_ark``) and ``target``
(``utt2target`` as ``text_float``: one or more real values per clip).
"""

from typing import Tuple

from espnet2.train.class_choices import ClassChoices

from espnet2_gram.downstream.regression.regression_model import ESPnetRegressionModel
from espnet2_gram.tasks.downstream import DownstreamTask, encoder_choices

model_choices = ClassChoices("model", classes=dict(regression=ESPnetRegressionModel),
                             default="regression")


class RegressionTask(DownstreamTask):
    class_choices_list = [encoder_choices, model_choices]
    model_choices = model_choices

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",) if inference else ("speech", "target")
