"""Simulate SELD recordings in DCASE / STARSS23 layout (audio, metadata CSVs, classes.txt)
plus a Kaldi-style data dir listing them.

    python -m espnet2_gram.bin.export_dcase --data_dir data/esc50_train \\
        --noise_dir data/wham_noise --out_root dump/dcase_sim --split dev-train-sim \\
        --kaldi_dir data/dcase_sim_train --config conf/export_dcase.yaml --num_recordings 200

``--config`` is a YAML mapping with up to three sections, each optional::

    sampling: {rt60: [0.2, 1.0], num_noise_sources: [0, 3], ...}   # RoomSampling fields
    render: {format: foa, fs: 24000, method: hybrid, ...}            # RenderConfig fields
    dcase: {num_recordings: 200, max_polyphony: 2, ...}               # export options

Options given on the command line override the YAML values.
"""

import argparse
import dataclasses
import logging
import sys

from espnet2_gram.simulation.dcase import export_recordings
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling
from espnet2_gram.utils.cli import load_yaml, run, setup_logging, str2bool

logger = logging.getLogger("espnet2_gram.export_dcase")

PATH_OPTIONS = ("data_dir", "noise_dir", "out_root", "split", "kaldi_dir")
REQUIRED = ("data_dir", "out_root", "split")

# Export options: name -> (type, nargs, help). Defaults live in export_recordings.
EXPORT_OPTIONS = {
    "num_recordings": (int, None, "number of recordings to simulate (required here or in YAML)"),
    "duration_seconds": (float, None, "length of each recording (default 10)"),
    "events_per_recording": (int, 2, "range of the number of events drawn per recording"),
    "max_polyphony": (int, None, "most events active at once (tracks; default 2)"),
    "snr_range": (float, 2, "range of the event-to-noise ratio in dB (default 5 40)"),
    "seed": (int, None, "recording r draws from default_rng([seed, r]) (default 0)"),
    "fade_seconds": (float, None, "fades of cropped events and fitted noise (default 0.2)"),
    "frame_seconds": (float, None, "label frame hop (default 0.1)"),
    "label_threshold_db": (float, None,
                           "an event is labelled from the first to the last frame within this"
                           " many dB of its loudest frame (default -40)"),
    "max_event_seconds": (float, None, "crop longer events to a random window of this length"),
    "event_level_dbfs": (float, 2, "range of the dry events' RMS over their labelled span in"
                         " dBFS, before the RIR (gain about 1/distance in m; default -30 -20)"),
    "mono_policy": (str, None, "how multichannel inputs are made mono: mean (default) or first"),
}
SECTIONS = {"sampling": RoomSampling, "render": RenderConfig}


def _field_option(field: dataclasses.Field):
    """argparse type and nargs of a dataclass field, from its default value."""
    default = field.default
    if isinstance(default, bool):
        return str2bool, None
    if isinstance(default, (tuple, list)):
        return type(default[0]), len(default)
    return type(default), None


def _metavar(name: str, nargs):
    if nargs == 2:
        return ("LOW", "HIGH")
    if nargs == 3:
        return ("X", "Y", "Z")
    return name.upper()


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--data_dir", help="data dir of the events: wav.scp and utt2label")
    io.add_argument("--noise_dir", help="data dir of noises (wav.scp); omit for no noise")
    io.add_argument("--out_root", help="root of the DCASE-style output")
    io.add_argument("--split", help="split folder name, e.g. dev-train-sim")
    io.add_argument("--kaldi_dir", help="Kaldi-style data dir listing the recordings")
    io.add_argument("--config", help="YAML with sampling:, render: and dcase: sections")
    io.add_argument("--log_level", default="INFO", help="logging level (default INFO)")
    group = parser.add_argument_group("export options (YAML section dcase:)")
    for name, (kind, nargs, text) in EXPORT_OPTIONS.items():
        group.add_argument(f"--{name}", type=kind, nargs=nargs, help=text,
                           metavar=_metavar(name, nargs))
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{cls.__name__} options (YAML section {section}:)")
        for field in dataclasses.fields(cls):
            kind, nargs = _field_option(field)
            group.add_argument(f"--{field.name}", type=kind, nargs=nargs,
                               metavar=_metavar(field.name, nargs),
                               help=f"default {field.default!r}")
    return parser


def build_options(args: argparse.Namespace) -> dict:
    """Merge the YAML config and the command line into export_recordings keyword arguments."""
    given = vars(args)
    config = load_yaml(given["config"]) if "config" in given else {}
    where = f"--config {given.get('config')}"
    unknown = sorted(set(config) - {"dcase", *SECTIONS})
    if unknown:
        raise ValueError(f"{where}: unknown section(s) {unknown}; known: dcase, sampling, render")
    known = {
        "dcase": set(EXPORT_OPTIONS) | set(PATH_OPTIONS),
        **{s: {f.name for f in dataclasses.fields(c)} for s, c in SECTIONS.items()},
    }
    merged = {}
    for section, names in known.items():
        values = config.get(section) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{where}: section {section}: must be a mapping")
        bad = sorted(set(values) - names)
        if bad:
            raise ValueError(f"{where}: unknown key(s) {bad} in section {section}:")
        values = dict(values)
        values.update({k: v for k, v in given.items() if k in names})
        merged[section] = values
    options = merged["dcase"]
    missing = [name for name in (*REQUIRED, "num_recordings") if options.get(name) is None]
    if missing:
        raise ValueError("missing option(s): " + ", ".join(f"--{m}" for m in missing))
    options.setdefault("noise_dir", None)
    for section, cls in SECTIONS.items():
        try:
            options[section] = cls(**merged[section])
        except TypeError as e:  # e.g. a scalar where a range is expected
            raise ValueError(f"section {section}: invalid value(s) {merged[section]} ({e})") from e
    return options


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    options = build_options(args)
    logger.info("exporting %s recordings (%s) to %s/%s", options["num_recordings"],
                options["render"].format, options["out_root"], options["split"])
    summary = export_recordings(**options)
    logger.info("done: %d written, %d kept from an earlier run, %d events (%d dropped)",
                summary["written"], summary["skipped"], summary["events"],
                summary["dropped_events"])


if __name__ == "__main__":
    run(main, sys.argv[1:])
