"""``GRAMTask``: GRAM pretraining as an ESPnet task, with every option of ESPnet's trainer
(``--ngpu``, DDP, ``--use_amp``, ``--resume``, ``--collect_stats``, ``--print_config``...).

Data: ``speech`` (a ``sound`` wav.scp of source clips). With ``--scene_conf bank_dir=...``
each clip becomes a new naturalistic scene in the data-loader workers at every draw; without
it the audio must already have the channel count of the chosen frontend. The entry point
(``espnet2_gram.bin.gram_train``) checks the audio before training (``--audio_check``).
"""

import argparse
from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np
from espnet2.tasks.abs_task import AbsTask
from espnet2.torch_utils.initialize import initialize
from espnet2.train.class_choices import ClassChoices
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str2bool

from espnet2_gram.formats import num_channels
from espnet2_gram.frontend.spatial_features import frontend_classes
from espnet2_gram.gram.decoder import MWMAEDecoder, TransformerDecoder
from espnet2_gram.gram.encoder import GRAMEncoder
from espnet2_gram.gram.espnet_model import ESPnetGRAMModel
from espnet2_gram.gram.masking import MASKING_STRATEGIES
from espnet2_gram.scene.simulator import SceneSimulator
from espnet2_gram.utils.datacheck import AUDIO_POLICIES
from espnet2_gram.tasks.common import PaddedBatches, add_init_argument
from espnet2_gram.tasks.epoch_snapshots import SnapshotTrainer


frontend_choices = ClassChoices(
    "frontend", classes=frontend_classes(), default="binaural",
)
encoder_choices = ClassChoices("encoder", classes=dict(vit=GRAMEncoder), default="vit")
decoder_choices = ClassChoices(
    "decoder", classes=dict(mwmae=MWMAEDecoder, transformer=TransformerDecoder), default="mwmae"
)
masking_choices = ClassChoices(
    "masking",
    classes=MASKING_STRATEGIES,
    default="random",
)
model_choices = ClassChoices("model", classes=dict(gram=ESPnetGRAMModel), default="gram")


class ChannelCheck:
    """Preprocessing without scene simulation: the audio must match the frontend's format."""

    def __init__(self, frontend: str):
        self.frontend = frontend
        self.channels = num_channels(frontend)

    def __call__(self, uid: str, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        speech = data["speech"]
        got = 1 if speech.ndim == 1 else speech.shape[1]
        if got != self.channels:
            raise ValueError(
                f"utterance {uid}: {got} channel(s), but --frontend {self.frontend} expects"
                f" {self.channels}; render spatial scenes first or set --scene_conf bank_dir=..."
            )
        return data


class GRAMTask(PaddedBatches, AbsTask):
    num_optimizers: int = 1
    class_choices_list = [frontend_choices, encoder_choices, decoder_choices, masking_choices,
                          model_choices]
    trainer = SnapshotTrainer  # ESPnet's, with --keep_epochs

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        add_init_argument(group, "Re-initialisation after building the model (None keeps the"
                                 " GRAM init)")
        group.add_argument(
            "--hear_conf", action=NestedDictAction, default=dict(),
            help="How the model serves the HEAR API (espnet2_gram.hear, docs/hear.md): compat"
                 " (ours | authors), authors_log_offset (written by the GRAM-T converter);"
                 " not used in training",
        )
        group.add_argument(
            "--compile_model", type=str2bool, default=False,
            help="torch.compile the encoder and the decoder in place (training only; names"
                 " and checkpoints unchanged). The first steps then include compilation",
        )
        group.add_argument(
            "--compile_conf", action=NestedDictAction, default=dict(),
            help="Options of torch.compile with --compile_model true, e.g. mode=max-autotune",
        )
        group = parser.add_argument_group(description="Preprocess related")
        group.add_argument("--use_preprocessor", type=str2bool, default=True,
                           help="Simulate scenes (or check channels) in the data loader")
        group.add_argument(
            "--audio_check", choices=AUDIO_POLICIES, default="refuse",
            help="Before training, read the header of every audio file (and of the scene noise"
                 " files): refuse stops on unreadable or empty files and a wrong sample rate or"
                 " channel count, naming them; skip leaves them out (filtered lists in"
                 " <output_dir>/data_check); off checks nothing",
        )
        group.add_argument(
            "--scene_conf", action=NestedDictAction, default=dict(),
            help="On-the-fly scenes (SceneSimulator options): bank_dir, noise_scp, fs,"
                 " clip_seconds, snr_range, clean_ratio, fade_seconds, ...",
        )
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool) -> Optional[Callable]:
        if not args.use_preprocessor:
            return None
        conf = dict(args.scene_conf or {})
        if not conf.get("bank_dir") and args.frontend != "mono":
            return ChannelCheck(args.frontend)
        conf.setdefault("format", args.frontend)  # each frontend reads the format of its name
        conf.setdefault("fs", args.frontend_conf.get("fs", 32000))
        conf.setdefault("seed", args.seed)
        return SceneSimulator(train=train, **conf)

    @classmethod
    def audio_requirements(cls, args: argparse.Namespace) -> Tuple[int, Optional[int], str]:
        """``(sample rate, channel count or None for any, who expects them)`` of the source
        audio; opens the RIR bank of on-the-fly scenes, so that a bad bank fails here."""
        preprocess = cls.build_preprocess_fn(args, train=True)
        if isinstance(preprocess, SceneSimulator):
            bank = preprocess.bank  # opened here, so that a bad bank fails before training
            return preprocess.fs, None, (f"the scenes of the RIR bank {bank.dir}" if bank
                                         else "the scenes (--scene_conf)")
        fs = frontend_choices.get_class(args.frontend)(**args.frontend_conf).fs
        return fs, num_channels(args.frontend), f"--frontend {args.frontend}"

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",)

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ()

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> ESPnetGRAMModel:
        # Sizes that follow from other parts are always derived (a printed config lists
        # their defaults too).
        frontend = frontend_choices.get_class(args.frontend)(**args.frontend_conf)
        encoder = encoder_choices.get_class(args.encoder)(**{
            **args.encoder_conf, "in_channels": frontend.out_channels,
            "n_mels": frontend.output_size(),
        })
        patch_dim = frontend.out_channels * encoder.patch_size[0] * encoder.patch_size[1]
        decoder = decoder_choices.get_class(args.decoder)(**{
            **args.decoder_conf, "num_patches_grid": encoder.grid,
            "encoder_dim": encoder.output_size(), "patch_dim": patch_dim,
        })
        masking = masking_choices.get_class(args.masking)(**args.masking_conf)
        model = model_choices.get_class(args.model)(
            frontend=frontend, encoder=encoder, decoder=decoder, masking=masking,
            **args.model_conf,
        )
        if args.init is not None:
            initialize(model, args.init)
        if getattr(args, "compile_model", False):
            model.compile_parts(**(args.compile_conf or {}))
        return model


def build_gram_model(config, **conf_overrides) -> ESPnetGRAMModel:
    """The GRAM model of a training configuration, the one way packing, the converter, the
    benchmarks and the tests build one: ``config`` is a YAML file (read by the task's parser,
    which refuses unknown options) or the mapping of a training ``config.yaml``;
    ``conf_overrides`` update its ``*_conf`` sections, e.g. ``model_conf={"crops_per_clip": 2}``.
    Training-time options (``init``, ``compile_model``) are off: the plain model is built."""
    if isinstance(config, Mapping):
        args = GRAMTask.get_parser().parse_args([])
        for key, value in config.items():
            setattr(args, key, value)
    else:
        args = GRAMTask.get_parser().parse_args(["--config", str(config)])
    for name, conf in conf_overrides.items():
        getattr(args, name).update(conf)
    args.init = None
    args.compile_model = False
    return GRAMTask.build_model(args)
