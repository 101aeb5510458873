"""Stage 2: copy a data directory's audio into ``dump/`` at one sample rate, mono by a chosen
policy (or with every channel kept), skipping unusable audio with a summary.

Formatted files are reused when a run resumes; ``provenance.json`` makes sure they were made
with the same settings and input ``wav.scp``."""

import json
import logging
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

from espnet2_gram.utils.audio import AudioError, load_audio, problem_of, write_audio
from espnet2_gram.utils.datadir import read_data_dir, write_data_dir
from espnet2_gram.utils.fileio import atomic_open, remove_stale_temps
from espnet2_gram.utils.provenance import file_digest, prepare_outputs

logger = logging.getLogger(__name__)

RECOMPUTED = ("wav.scp", "utt2num_samples")
SUMMARY = "format_summary.json"


def _format_one(job) -> tuple:
    """(status, num_samples, changes, message): status 'ok', 'exists' or a skip reason;
    changes lists 'resampled' / 'downmixed' when the audio was converted."""
    src, dst, fs, mono_policy = job
    dst = Path(dst)
    if dst.exists():
        import soundfile as sf

        return "exists", sf.info(str(dst)).frames, [], ""
    try:
        audio = load_audio(src, fs=fs, mono_policy=mono_policy)
    except AudioError as e:
        return "unreadable", 0, [], str(e)
    problem = problem_of(audio.samples)
    if problem:
        return problem, 0, [], f"{src}: {problem} audio"
    changes, notes = [], []
    if audio.resampled_from:
        changes.append("resampled")
        notes.append(f"resampled {audio.resampled_from} -> {fs} Hz")
    if audio.downmixed_from:
        changes.append("downmixed")
        notes.append(f"{audio.downmixed_from} channels -> mono ({mono_policy})")
    write_audio(dst, audio.samples, audio.fs)
    return "ok", audio.samples.shape[-1], changes, f"{src}: " + "; ".join(notes)


def format_data_dir(in_dir, out_dir, audio_dir, fs: int, mono_policy: str = "first",
                    nj: int = 1, overwrite: bool = False) -> dict:
    """Write ``out_dir`` (a data dir pointing at wavs in ``audio_dir``); returns the summary.

    ``mono_policy``: 'first' or 'mean' for mono output, None to keep every channel.
    Already formatted files are reused, so an interrupted run resumes; outputs of other
    settings are refused, or deleted and redone with ``overwrite``.
    """
    if Path(in_dir).resolve() == Path(out_dir).resolve():
        raise ValueError(f"--out_dir {out_dir} must differ from --in_dir")
    tables = read_data_dir(in_dir)
    audio_dir = Path(audio_dir).resolve()
    utts = sorted(tables["wav.scp"])
    jobs = [(tables["wav.scp"][u], str(audio_dir / f"{u}.wav"), fs, mono_policy) for u in utts]
    settings = {"stage": "format_data", "fs": fs, "mono_policy": mono_policy,
                "audio_dir": str(audio_dir),
                "in_dir wav.scp sha256": file_digest(Path(in_dir) / "wav.scp")}
    table_names = set(tables) | set(RECOMPUTED) | {SUMMARY}
    prepare_outputs(out_dir, settings, [Path(out_dir) / n for n in table_names]
                    + [Path(job[1]) for job in jobs], overwrite=overwrite)
    remove_stale_temps(out_dir)
    remove_stale_temps(audio_dir)
    if nj > 1:
        with Pool(nj) as pool:
            results = pool.map(_format_one, jobs, chunksize=max(1, len(jobs) // (4 * nj)))
    else:
        results = [_format_one(job) for job in jobs]
    counts = Counter()
    kept = {}
    skipped = {}
    for utt, job, (status, num_samples, changes, message) in zip(utts, jobs, results):
        counts[status] += 1
        counts.update(changes)
        if status in ("ok", "exists"):
            kept[utt] = (job[1], num_samples)
            if changes:
                logger.info("%s", message)
        else:
            skipped[utt] = message
            logger.warning("skipped %s: %s", utt, message)
    if not kept:
        raise ValueError(f"{in_dir}: no usable audio ({dict(counts)})")
    out_tables = {
        "wav.scp": {u: path for u, (path, _) in kept.items()},
        "utt2num_samples": {u: n for u, (_, n) in kept.items()},
    }
    for name, table in tables.items():
        if name not in RECOMPUTED:
            out_tables[name] = {u: table[u] for u in kept}
    write_data_dir(out_dir, out_tables)
    summary = {"input": len(jobs), "kept": len(kept), "counts": dict(counts),
               "skipped": skipped, "fs": fs, "mono_policy": mono_policy}
    with atomic_open(Path(out_dir) / SUMMARY) as f:
        json.dump(summary, f, indent=2)
    logger.info("%s -> %s: kept %d of %d %s", in_dir, out_dir, len(kept), len(jobs), dict(counts))
    return summary
