"""Fixed naturalistic evaluation sets: every utterance of a data directory rendered once
through a (held-out) RIR bank with noise, with its direction in ``utt2doa``.

Utterance ``u`` draws its pack, noise clip, noise offset and SNR from
``default_rng([seed, crc32(u)])``, so a set does not depend on the order or number of
utterances, and an interrupted run resumes by skipping the audio already written.

Localisation sets need many directions: ``renders_per_utt`` K > 1 renders every utterance K
times (``<u>-r1`` ... ``<u>-rK``), and ``pack_assignment: distinct`` gives every render a pack
of its own (a seeded permutation of the bank over the sorted renders), so that the set has as
many source directions, each in its own room, as renders.
``provenance.json`` (seed, SNR range, bank, inputs...) makes sure that audio was rendered with
the same settings.
"""

import json
import logging
import zlib
from pathlib import Path

import numpy as np

from espnet2_gram.utils.audio import AudioError, load_audio, problem_of, write_audio
from espnet2_gram.utils.datadir import read_data_dir, write_data_dir
from espnet2_gram.utils.fileio import atomic_open, read_kv, remove_stale_temps
from espnet2_gram.utils.provenance import file_digest, prepare_outputs
from espnet2_gram.simulation.mixing import limit_peak, mix_scene
from espnet2_gram.simulation.rir_bank import META, RIRBank

logger = logging.getLogger(__name__)

COPIED_FILES = ("utt2label", "text", "utt2fold")
RENDERED_FILES = ("wav.scp", "utt2doa", "utt2num_samples", "utt2snr", "utt2rir")
SUMMARY = "summary.json"
PACK_ASSIGNMENTS = ("random", "distinct")


def utt_rng(seed: int, utt: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(utt.encode("utf-8"))])


def render_ids(utts, renders_per_utt: int) -> dict:
    """{render id: source utterance}: the utterances themselves for one render each."""
    if renders_per_utt == 1:
        return {u: u for u in utts}
    return {f"{u}-r{k}": u for u in utts for k in range(1, renders_per_utt + 1)}


def assign_packs(renders, num_packs: int, seed: int, assignment: str) -> dict:
    """{render id: pack index}: drawn per render (``random``, with repeats) or one pack per
    render (``distinct``: a seeded permutation of the packs over the sorted render ids)."""
    if assignment not in PACK_ASSIGNMENTS:
        raise ValueError(f"--pack_assignment {assignment!r}: expected one of {PACK_ASSIGNMENTS}")
    renders = sorted(renders)
    if assignment == "random":
        return {r: int(utt_rng(seed, r).integers(num_packs)) for r in renders}
    if len(renders) > num_packs:
        raise ValueError(f"--pack_assignment distinct: {len(renders)} renders need at least as"
                         f" many packs, the bank has {num_packs}; enlarge the bank or lower"
                         " --renders_per_utt")
    order = np.random.default_rng([seed, len(renders)]).permutation(num_packs)
    return {r: int(order[i]) for i, r in enumerate(renders)}


def render_eval_set(data_dir, bank_dir, out_dir, audio_dir, noise_dir=None, seed: int = 0,
                    snr_range=(5.0, 40.0), fade_seconds: float = 0.2,
                    mono_policy: str = "first", overwrite: bool = False,
                    renders_per_utt: int = 1, pack_assignment: str = "random") -> dict:
    """Render ``data_dir`` through the bank; returns a summary (also in ``summary.json``).

    Audio already rendered with the same settings is reused; outputs of other settings are
    refused, or deleted and redone with ``overwrite``.
    """
    lo, hi = snr_range
    if not lo <= hi:
        raise ValueError(f"--snr_range must be low <= high, got {list(snr_range)}")
    if int(renders_per_utt) != renders_per_utt or renders_per_utt < 1:
        raise ValueError(f"--renders_per_utt must be an integer >= 1, got {renders_per_utt}")
    if Path(data_dir).resolve() == Path(out_dir).resolve():
        raise ValueError(f"--out_dir {out_dir} must differ from --data_dir")
    tables = read_data_dir(data_dir)
    bank = RIRBank(bank_dir)
    renders = render_ids(tables["wav.scp"], renders_per_utt)
    packs = assign_packs(renders, len(bank), seed, pack_assignment)
    noises = read_kv(Path(noise_dir) / "wav.scp") if noise_dir else {}
    noise_keys = sorted(noises)
    audio_dir = Path(audio_dir).resolve()
    settings = {
        "stage": "make_eval_set", "seed": seed, "snr_range": [lo, hi],
        "fade_seconds": fade_seconds, "mono_policy": mono_policy, "audio_dir": str(audio_dir),
        "renders_per_utt": renders_per_utt, "pack_assignment": pack_assignment,
        "data_dir wav.scp sha256": file_digest(Path(data_dir) / "wav.scp"),
        "bank_dir meta.jsonl sha256": file_digest(Path(bank_dir) / META),
        "noise_dir wav.scp sha256":
            file_digest(Path(noise_dir) / "wav.scp") if noise_dir else None,
    }
    names = RENDERED_FILES + COPIED_FILES + (SUMMARY,)
    prepare_outputs(out_dir, settings, [Path(out_dir) / n for n in names]
                    + [audio_dir / f"{r}.wav" for r in renders], overwrite=overwrite)
    remove_stale_temps(out_dir)
    remove_stale_temps(audio_dir)
    out = {name: {} for name in RENDERED_FILES}
    copied = {name: {} for name in COPIED_FILES if name in tables}
    skipped = {}
    for utt, src in sorted(renders.items()):
        rng = utt_rng(seed, utt)
        rng.integers(len(bank))  # the draw of a random pack (assign_packs): later draws stay put
        pack = packs[utt]
        noise_utt = noise_keys[int(rng.integers(len(noise_keys)))] if noise_keys else None
        snr = float(rng.uniform(lo, hi))
        wav = audio_dir / f"{utt}.wav"
        try:
            num_samples = _render_one(
                tables["wav.scp"][src], wav, bank, pack, noises.get(noise_utt), snr, rng,
                fade_seconds, mono_policy,
            )
        except AudioError as e:
            logger.warning("skipped %s: %s", utt, e)
            skipped[utt] = str(e)
            continue
        meta = bank.meta[pack]
        out["wav.scp"][utt] = str(wav)
        out["utt2doa"][utt] = f"{meta['azimuth']:.2f} {meta['elevation']:.2f} {meta['distance']:.3f}"
        out["utt2num_samples"][utt] = num_samples
        out["utt2snr"][utt] = f"{snr:.2f}" if noise_utt else "inf"
        out["utt2rir"][utt] = meta["id"]
        for name in copied:
            copied[name][utt] = tables[name][src]
    if not out["wav.scp"]:
        raise ValueError(f"{data_dir}: no utterance could be rendered ({len(skipped)} skipped)")
    write_data_dir(out_dir, {**out, **copied})
    summary = {"rendered": len(out["wav.scp"]), "skipped": len(skipped),
               "skipped_utts": skipped, "format": bank.format, "fs": bank.fs}
    with atomic_open(Path(out_dir) / SUMMARY) as f:
        json.dump(summary, f, indent=2)
    logger.info("%s: %d rendered, %d skipped", out_dir, summary["rendered"], summary["skipped"])
    return summary


def _render_one(src_path, wav: Path, bank: RIRBank, pack: int, noise_path, snr: float,
                rng: np.random.Generator, fade_seconds: float, mono_policy: str) -> int:
    """Write one scene unless it exists; returns its length in samples."""
    if wav.exists():
        import soundfile as sf

        return sf.info(str(wav)).frames
    source = load_audio(src_path, fs=bank.fs, mono_policy=mono_policy).samples
    problem = problem_of(source)
    if problem:
        raise AudioError(f"{src_path}: {problem} audio")
    source_rir, noise_rirs, _ = bank.pack(pack)
    noise = None
    if noise_path is not None:
        noise = load_audio(noise_path, fs=bank.fs, mono_policy=mono_policy).samples
        if problem_of(noise):
            raise AudioError(f"{noise_path}: {problem_of(noise)} noise")
    scene = mix_scene(source, source_rir, noise, noise_rirs, snr, rng, bank.fs, fade_seconds)
    mix, _ = limit_peak(scene.mix)
    write_audio(wav, mix, bank.fs)
    return mix.shape[-1]
