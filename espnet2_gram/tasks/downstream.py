"""Shared parts of the localisation and regression tasks (DoA, SELD, RT60 regression): the
encoder choices and ESPnet plumbing.

``encoder: gram`` takes audio (``speech`` as ``sound``, ``--input_size`` = channels) through a
packed GRAM model (``encoder_conf: {model_path, freeze_steps, random_init, layer, ...}``,
see ``espnet2_gram.frontend.pretrained_gram``); ``encoder: identity`` takes cached frame embeddings (``speech`` as
``kaldi_ark`` from ``espnet2_gram.bin.extract_embeddings``, ``--input_size`` = their size);
``encoder: seldnet`` is the supervised DCASE 2023 baseline network trained from scratch on audio
(``--input_size`` = 2 binaural or 4 FOA channels, see ``espnet2_gram.downstream.localization.seldnet``).
"""

import argparse
from typing import Callable, Optional, Tuple

from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.tasks.abs_task import AbsTask
from espnet2.torch_utils.initialize import initialize
from espnet2.train.class_choices import ClassChoices
from espnet2.train.trainer import Trainer
from espnet2.utils.types import int_or_none

from espnet2_gram.downstream.heads import IdentityEncoder
from espnet2_gram.downstream.localization.seldnet import SELDnetEncoder
from espnet2_gram.frontend.pretrained_gram import GRAMESPnetEncoder, initialize_sparing_gram
from espnet2_gram.tasks.common import PaddedBatches, add_init_argument

encoder_choices = ClassChoices(
    "encoder", classes=dict(gram=GRAMESPnetEncoder, identity=IdentityEncoder,
                            seldnet=SELDnetEncoder),
    type_check=AbsEncoder, default="identity",
)


class DownstreamTask(PaddedBatches, AbsTask):
    """Base of ``DOATask``, ``SELDTask`` and ``RegressionTask``; subclasses give the data names and the model."""

    num_optimizers: int = 1
    trainer = Trainer
    model_choices: ClassChoices = None

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument("--input_size", type=int_or_none, default=None,
                           help="audio channels (encoder gram) or embedding size (identity)")
        add_init_argument(group, "Initialisation of the model (pretrained GRAM weights are"
                                 " reloaded after it)")
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool) -> Optional[Callable]:
        return None

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ()

    @classmethod
    def build_encoder(cls, args: argparse.Namespace) -> AbsEncoder:
        if args.input_size is None:
            raise ValueError("--input_size is required: audio channels for encoder gram, the"
                             " embedding size for encoder identity")
        return encoder_choices.get_class(args.encoder)(input_size=args.input_size,
                                                       **args.encoder_conf)

    @classmethod
    def build_model(cls, args: argparse.Namespace):
        model_class = cls.model_choices.get_class(args.model)
        model = model_class(encoder=cls.build_encoder(args), **args.model_conf)
        if args.init is not None:
            initialize_sparing_gram(model, args.init, initialize)
        return model
