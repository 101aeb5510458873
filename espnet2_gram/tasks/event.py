"""``EventTask``: HEAR's event tasks (sound event detection on timestamp embeddings) as an
ESPnet task (every trainer option).

Data: ``speech`` (cached timestamp embeddings ``kaldi_ark``, (T, D)) and ``target`` (frame
targets ``kaldi_ark``, (T, C), 1 where a label's event covers the frame).
"""

from typing import Tuple

from espnet2.train.class_choices import ClassChoices

from espnet2_gram.downstream.events.event_model import ESPnetEventModel
from espnet2_gram.tasks.downstream import DownstreamTask, encoder_choices

model_choices = ClassChoices("model", classes=dict(event=ESPnetEventModel), default="event")


class EventTask(DownstreamTask):
    class_choices_list = [encoder_choices, model_choices]
    model_choices = model_choices

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",) if inference else ("speech", "target")
