"""Event-sequence data for the ASR demo recipe (egs2/gram/asr_demo) and its two helpers.

    # spatial sequences of 2-4 sound events, transcribed as their class names
    python -m espnet2_gram.bin.make_event_sequences simulate --data_dir dump/raw/demo_train \\
        --bank_dir exp/rir_bank/train_binaural --noise_dir dump/raw/demo_noise \\
        --out_dir data/asr_demo/train_binaural --num_utts 300 --seed 0

    # a sentencepiece model trained on the transcriptions of a Kaldi text file
    python -m espnet2_gram.bin.make_event_sequences bpe --text data/asr_demo/train_binaural/text \\
        --model_prefix data/asr_demo/token_list/binaural/bpe40/bpe --vocab_size 40

    # word / character / BPE-token error rates (ESPnet's RESULTS.md tables), one row per set
    python -m espnet2_gram.bin.make_event_sequences score \\
        --ref data/asr_demo/test_binaural/text --hyp exp/.../test_binaural/text \\
        --dataset decode/test_binaural [--ref ... --hyp ... --dataset ...] \\
        --bpemodel .../bpe.model --output score.md

    # mean ± std over training seeds: one row per system, one column per set and unit
    python -m espnet2_gram.bin.make_event_sequences compare \\
        --system asr_gram --dataset test --ref data/asr_demo/test_binaural/text \\
        --hyp exp/.../asr_asr_gram_seed0/.../test_binaural/text [--system ... --dataset ...
        --ref ... --hyp ...] --output comparison.md

See espnet2_gram/simulation/event_sequences.py for what the sequences are made of.
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from espnet2_gram.simulation.event_sequences import (TEXT_STYLES, SequenceConfig,
                                                     align_counts, make_event_sequence_set,
                                                     score, train_bpe, units)
from espnet2_gram.utils.cli import run, setup_logging, str2bool
from espnet2_gram.utils.fileio import atomic_open, read_kv
from espnet2_gram.utils.seed_stats import mean_std_cell

HEADER = "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|\n|---|---|---|---|---|---|---|---|---|\n"
UNITS = (("word", "WER"), ("char", "CER"), ("token", "TER"))


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log_level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)

    d = SequenceConfig()
    s = sub.add_parser("simulate", help="write a data directory of spatial event sequences")
    s.add_argument("--data_dir", required=True, help="single-label clips (wav.scp, utt2label)")
    s.add_argument("--bank_dir", required=True, help="a merged RIR bank (run.sh stage 3)")
    s.add_argument("--noise_dir", help="data directory of noise recordings (none: no noise)")
    s.add_argument("--out_dir", required=True)
    s.add_argument("--audio_dir", help="where the wavs go (default: <out_dir>/data)")
    s.add_argument("--num_utts", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--prefix", default="seq", help="utterance ids: <prefix><index>")
    s.add_argument("--min_events", type=int, default=d.min_events)
    s.add_argument("--max_events", type=int, default=d.max_events)
    s.add_argument("--window", type=float, nargs=2, default=d.window, metavar=("LOW", "HIGH"),
                   help="seconds; an active part longer than the drawn length is cut to it")
    s.add_argument("--gap", type=float, nargs=2, default=d.gap, metavar=("LOW", "HIGH"))
    s.add_argument("--edge", type=float, nargs=2, default=d.edge, metavar=("LOW", "HIGH"))
    s.add_argument("--threshold_db", type=float, default=d.threshold_db)
    s.add_argument("--snr_range", type=float, nargs=2, default=d.snr_range,
                   metavar=("LOW", "HIGH"))
    s.add_argument("--text_style", default=d.text_style, choices=TEXT_STYLES,
                   help="class: 'chirp_up' stays one word; split: 'chirp up'")

    b = sub.add_parser("bpe", help="train a sentencepiece model on a Kaldi text file")
    b.add_argument("--text", required=True)
    b.add_argument("--model_prefix", required=True)
    b.add_argument("--vocab_size", type=int, required=True)
    b.add_argument("--model_type", default="bpe", choices=("bpe", "unigram", "char", "word"))

    c = sub.add_parser("score", help="error rates of hypotheses against references")
    c.add_argument("--ref", required=True, action="append",
                   help="Kaldi text file of references (once per scored set)")
    c.add_argument("--hyp", required=True, action="append",
                   help="Kaldi text file of hypotheses (once per scored set)")
    c.add_argument("--dataset", action="append",
                   help="name of the set in the first column (default: the hyp's folder)")
    c.add_argument("--bpemodel", help="sentencepiece model: adds the token error rate")
    c.add_argument("--output", help="markdown file of the WER/CER(/TER) tables (else stdout)")
    c.add_argument("--write_details", type=str2bool, default=False,
                   help="write result.jsonl (ref, hyp, word counts per utterance) beside each hyp")

    m = sub.add_parser("compare", help="error rates over seeds: mean ± std per system and set")
    m.add_argument("--system", required=True, action="append",
                   help="the system (config) of a decoding, once per --hyp")
    m.add_argument("--dataset", required=True, action="append", help="set name, once per --hyp")
    m.add_argument("--ref", required=True, action="append", help="references, once per --hyp")
    m.add_argument("--hyp", required=True, action="append",
                   help="hypotheses of one seed; several per (system, dataset) are its seeds")
    m.add_argument("--output", help="markdown file of the table (else stdout)")
    return p


def simulate(args) -> None:
    config = SequenceConfig(min_events=args.min_events, max_events=args.max_events,
                            window=tuple(args.window), gap=tuple(args.gap),
                            edge=tuple(args.edge), threshold_db=args.threshold_db,
                            snr_range=tuple(args.snr_range), text_style=args.text_style)
    make_event_sequence_set(args.data_dir, args.bank_dir, args.out_dir,
                            args.audio_dir or f"{args.out_dir}/data", args.num_utts,
                            noise_dir=args.noise_dir, seed=args.seed, prefix=args.prefix,
                            config=config)


def score_tables(sets, bpe=None) -> str:
    """The ``### WER`` / ``### CER`` (/ ``### TER``) sections of ESPnet's RESULTS.md, one row
    per ``(name, ref, hyp)`` of ``sets``."""
    out = []
    for unit, title in UNITS:
        if unit == "token" and bpe is None:
            continue
        rows = "".join(score(ref, hyp, unit, bpe).row(name) + "\n" for name, ref, hyp in sets)
        out.append(f"### {title}\n\n{HEADER}{rows}")
    return "\n".join(out)


def read_decoding(ref_file, hyp_file):
    """References and hypotheses (Kaldi text files); a hypothesis without a reference is an
    error, a reference without a hypothesis counts as recognised empty."""
    ref = read_kv(ref_file, allow_empty_value=True)
    hyp = read_kv(hyp_file, allow_empty_value=True)
    unknown = sorted(set(hyp) - set(ref))
    if unknown:
        raise ValueError(f"{hyp_file}: utterances {unknown[:5]} are not in {ref_file}")
    return ref, hyp


def check_counts(args, *options: str) -> None:
    counts = {o: len(getattr(args, o) or []) for o in options}
    if len(set(counts.values())) != 1:
        raise ValueError("give one --" + ", one --".join(options[:-1]) + f" per --{options[-1]}: "
                         + ", ".join(f"{n} --{o}" for o, n in counts.items()))


def score_cmd(args) -> None:
    args.dataset = args.dataset or [Path(h).parent.name for h in args.hyp]
    check_counts(args, "ref", "dataset", "hyp")
    sets = []
    for name, ref_file, hyp_file in zip(args.dataset, args.ref, args.hyp):
        ref, hyp = read_decoding(ref_file, hyp_file)
        sets.append((name, ref, hyp))
        if args.write_details:
            with atomic_open(Path(hyp_file).parent / "result.jsonl") as f:
                for utt in sorted(ref):
                    c = align_counts(units(ref[utt], "word"), units(hyp.get(utt, ""), "word"))
                    f.write(json.dumps({"utt": utt, "ref": ref[utt], "hyp": hyp.get(utt, ""),
                                        "cor": c.correct, "sub": c.sub, "del": c.dels,
                                        "ins": c.ins}) + "\n")
    bpe = None
    if args.bpemodel:
        import sentencepiece as spm

        bpe = spm.SentencePieceProcessor(model_file=args.bpemodel)
    write_or_print(score_tables(sets, bpe), args.output)


def write_or_print(text: str, output) -> None:
    if output:
        with atomic_open(Path(output)) as f:
            f.write(text)
    else:
        print(text, end="")


def comparison_table(decodings) -> str:
    """Markdown table of ``(system, dataset, ref, hyp)`` decodings: one row per system, the
    WER and CER of each set as mean ± std over the system's decodings of it (its seeds)."""
    rates = defaultdict(list)
    systems, datasets = {}, {}
    for system, dataset, ref, hyp in decodings:
        systems.setdefault(system, None)
        datasets.setdefault(dataset, None)
        for unit, _ in UNITS[:2]:
            rates[system, dataset, unit].append(score(ref, hyp, unit).rate())
    header = ["system", "seeds"] + [f"{title} {d}" for _, title in UNITS[:2] for d in datasets]
    lines = ["|" + "|".join(header) + "|", "|" + "---|" * len(header)]
    for system in systems:
        counts = {d: len(rates[system, d, "word"]) for d in datasets}
        if len(set(counts.values())) != 1:
            raise ValueError(f"system {system}: its sets have different numbers of decodings"
                             f" (seeds): {counts}")
        cells = [mean_std_cell(np.array(rates[system, d, unit]), 1)
                 for unit, _ in UNITS[:2] for d in datasets]
        lines.append("|" + "|".join([system, str(counts[next(iter(datasets))]), *cells]) + "|")
    return "\n".join(lines) + "\n"


def compare_cmd(args) -> None:
    check_counts(args, "system", "dataset", "ref", "hyp")
    decodings = [(system, dataset, *read_decoding(ref, hyp)) for system, dataset, ref, hyp
                 in zip(args.system, args.dataset, args.ref, args.hyp)]
    write_or_print(comparison_table(decodings), args.output)


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.command == "simulate":
        simulate(args)
    elif args.command == "bpe":
        train_bpe(args.text, args.model_prefix, args.vocab_size, args.model_type)
    elif args.command == "score":
        score_cmd(args)
    else:
        compare_cmd(args)


if __name__ == "__main__":
    run(main)
