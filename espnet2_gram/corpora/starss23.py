"""STARSS23: spatial recordings of real scenes with sound event and direction labels.

Layout: ``{foa_dev,mic_dev}/dev-{train,test}-{sony,tau}/<name>.wav`` (4 channels,
24 kHz) and ``metadata_dev/dev-{train,test}-{sony,tau}/<name>.csv`` whose rows are
``frame (100 ms), class index, source index, azimuth, elevation[, distance]``.
"""

from pathlib import Path
from typing import List, Sequence

from espnet2_gram.corpora.common import (corpus_dir, find_audio, find_corpus_root, iter_csv,
                                         parse_field, utt_id, write_audio_data_dir)

ZENODO = "https://zenodo.org/records/7880637/files"
FORMATS = ("foa", "mic")
SPLITS = ("train", "test")
META = "metadata_dev"


def default_urls(fmt: str) -> List[str]:
    """Zenodo archives needed for one audio format: its audio and the metadata."""
    return [f"{ZENODO}/{fmt}_dev.zip", f"{ZENODO}/{META}.zip"]


def check_metadata(path: Path) -> None:
    """Parse every row of a DCASE metadata CSV; ``ValueError`` naming file and line."""
    for lineno, row in iter_csv(path):
        if len(row) not in (5, 6):
            raise ValueError(f"{path}:{lineno}: expected 5 or 6 fields "
                             "(frame, class, source, azimuth, elevation[, distance]), "
                             f"got {len(row)}")
        for value, what in zip(row[:3], ("frame", "class index", "source index")):
            parse_field(path, lineno, value, int, what, lambda v: v >= 0)
        parse_field(path, lineno, row[3], float, "azimuth", lambda v: -180 <= v <= 180)
        parse_field(path, lineno, row[4], float, "elevation", lambda v: -90 <= v <= 90)
        if len(row) == 6:
            parse_field(path, lineno, row[5], float, "distance", lambda v: v >= 0)


def prepare_starss23(data_dir, src_dir=None, download: bool = False, download_dir="downloads",
                     urls: Sequence[str] = None, fmt: str = "foa") -> List[Path]:
    """Write ``<data_dir>/starss23_<fmt>_{train,test}``: wav.scp of the ``fmt`` ('foa' or 'mic')
    recordings and ``utt2metadata`` (absolute path of each recording's CSV)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    base = corpus_dir(src_dir, download, download_dir, urls or default_urls(fmt), "starss23")
    root = find_corpus_root(base, META, nested=("STARSS23",))
    audio_root = root / f"{fmt}_dev"
    if not audio_root.is_dir():
        raise FileNotFoundError(f"{audio_root}: no such directory (--format {fmt})")
    for wav in find_audio(audio_root, (".wav",)):
        csv_path = root / META / wav.relative_to(audio_root).with_suffix(".csv")
        if not csv_path.is_file():
            raise FileNotFoundError(f"{wav}: no metadata file {csv_path}")
    outs = []
    for split in SPLITS:
        meta_dirs = sorted((root / META).glob(f"dev-{split}-*"))
        if not meta_dirs:
            raise FileNotFoundError(f"{root / META}: no dev-{split}-* folders")
        utt2path, utt2meta = {}, {}
        for meta_dir in meta_dirs:
            for csv_path in sorted(meta_dir.glob("*.csv")):
                check_metadata(csv_path)
                utt = utt_id("starss23", fmt, csv_path.stem)
                if utt in utt2path:
                    raise ValueError(f"{csv_path}: recording name seen twice ({utt})")
                utt2path[utt] = audio_root / meta_dir.name / f"{csv_path.stem}.wav"
                utt2meta[utt] = csv_path.resolve()
        outs.append(write_audio_data_dir(Path(data_dir) / f"starss23_{fmt}_{split}", utt2path,
                                         {"utt2metadata": utt2meta}))
    return outs
