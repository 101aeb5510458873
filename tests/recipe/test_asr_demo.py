"""The ASR demo recipe (egs2/gram/asr_demo): spatial event sequences, the BPE token list in
ESPnet's format, the error-rate scorer, and the recipe's stages 1-2 and 6 on tiny inputs.
(Stages 3-5 run ESPnet's own asr_train / asr_inference with ``frontend: gram``, as in
tests/frontend/test_reuse.py; with them the recipe takes minutes, too long for a smoke test.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2_gram.bin.make_event_sequences import main as cli_main
from espnet2_gram.simulation.event_sequences import (ErrorCounts, SequenceConfig, active_region,
                                                     align_counts, build_sequence, cut_event,
                                                     draw_classes, make_event_sequence_set,
                                                     score, train_bpe, transcribe, units)
from espnet2_gram.simulation.rir_bank import make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling
from espnet2_gram.utils.datadir import read_data_dir, write_data_dir

REPO = Path(__file__).resolve().parents[2]
FS = 8000
FREQS = {"low_tone": 300.0, "mid_tone": 900.0, "high_tone": 2100.0}  # one class per tone


def clip(freq, onset, seconds, total=1.0):
    """A tone of ``seconds`` at ``onset`` in a silent clip of ``total`` seconds."""
    x = np.zeros(int(total * FS), dtype=np.float32)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    x[int(onset * FS):int(onset * FS) + n] = 0.5 * np.sin(2 * np.pi * freq * t)
    return x


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two clips per class (different onsets and lengths) and one noise recording."""
    root = tmp_path_factory.mktemp("asr_demo_src")
    wavs, labels = {}, {}
    for name, freq in FREQS.items():
        for i, (onset, seconds) in enumerate([(0.1, 0.5), (0.3, 0.6)]):
            utt = f"{name}_{i}"
            path = root / "audio" / f"{utt}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, clip(freq, onset, seconds), FS, subtype="FLOAT")
            wavs[utt], labels[utt] = str(path), name
    write_data_dir(root / "clips", {"wav.scp": wavs, "utt2label": labels})
    noise = root / "audio" / "noise.wav"
    sf.write(noise, np.random.default_rng(0).standard_normal(2 * FS) * 0.1, FS, subtype="FLOAT")
    write_data_dir(root / "noise", {"wav.scp": {"noise0": str(noise)}})
    return root


@pytest.fixture(scope="module")
def banks(tmp_path_factory):
    """Two-pack binaural and FOA banks (every pack with noise sources), named like stage 3."""
    root = tmp_path_factory.mktemp("asr_demo_banks")
    sampling = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(5, 4, 3),
                            rt60=(0.15, 0.3), source_distance=(0.5, 1.2),
                            num_noise_sources=(1, 2))
    for fmt in ("binaural", "foa"):
        render = RenderConfig(format=fmt, fs=FS, n_rays=200, max_rir_seconds=0.2)
        for split in ("train", "eval"):
            out = root / f"{split}_{fmt}"
            make_bank_shards(out, 2, seed=3 if split == "train" else 4, sampling=sampling,
                             render=render, shard_size=2, prefix=f"{split}_{fmt}_")
            merge_bank(out)
    return root


def dominant_freq(x):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / FS)[int(np.argmax(spec))]


# ----------------------------------------------------------------------------- building blocks
def test_active_region_and_cut():
    x = clip(900.0, 0.3, 0.5)
    start, end = active_region(x, FS)
    assert abs(start - 0.3 * FS) <= 0.01 * FS and abs(end - 0.8 * FS) <= 0.01 * FS
    assert active_region(np.zeros(FS), FS) == (0, FS)  # silent: everything
    rng = np.random.default_rng(0)
    short = cut_event(x, FS, rng, window=(0.6, 1.2))  # active part (0.5 s) shorter: kept whole
    assert abs(len(short) - 0.5 * FS) <= 0.01 * FS
    long = cut_event(clip(900.0, 0.0, 1.9, total=2.0), FS, rng, window=(0.6, 1.2))
    assert 0.6 * FS <= len(long) <= 1.2 * FS
    assert abs(long[0]) < 1e-6 and abs(long[-1]) < 0.05  # faded at both ends
    assert np.max(np.abs(long)) > 0.45  # not silent inside


def test_classes_sequence_and_transcription():
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c"]
    for _ in range(50):
        drawn = draw_classes(rng, classes, 4)
        assert len(drawn) == 4 and all(x != y for x, y in zip(drawn, drawn[1:]))
    events = [np.ones(100, np.float32), 2 * np.ones(50, np.float32)]
    audio, spans = build_sequence(events, FS, rng, gap=(0.05, 0.05), edge=(0.1, 0.1))
    assert spans == [(800, 900), (1300, 1350)] and len(audio) == 1350 + 800
    assert np.all(audio[800:900] == 1) and np.all(audio[1300:1350] == 2)
    assert np.count_nonzero(audio) == 150
    labels = ["bell", "chirp_up", "vowel_a"]
    assert transcribe(labels, "class") == "bell chirp_up vowel_a"
    assert transcribe(labels, "split") == "bell chirp up vowel a"
    with pytest.raises(ValueError, match="text_style"):
        transcribe(labels, "dashes")


# ----------------------------------------------------------------------------- the data sets
def make_set(sources, banks, out, fmt="binaural", seed=0, num=5, **config):
    return make_event_sequence_set(
        sources / "clips", banks / f"train_{fmt}", out, out / "data", num,
        noise_dir=sources / "noise", seed=seed, prefix="u",
        config=SequenceConfig(**{"window": (0.3, 0.45), "snr_range": (30.0, 40.0), **config}))


def test_sequences_labels_in_order_lengths_and_channels(tmp_path, sources, banks):
    summary = make_set(sources, banks, tmp_path / "bin")
    assert summary["utterances"] == 5 and summary["channels"] == 2
    tables = read_data_dir(tmp_path / "bin")
    assert set(tables) >= {"wav.scp", "text", "utt2num_samples", "utt2label", "utt2events"}
    for utt, wav in tables["wav.scp"].items():
        x, fs = sf.read(wav, always_2d=True)
        assert fs == FS and x.shape == (int(tables["utt2num_samples"][utt]), 2)
        assert np.all(np.isfinite(x)) and 0.0 < np.abs(x).max() < 1.0
        labels = tables["utt2label"][utt].split()
        assert 2 <= len(labels) <= 4 and tables["text"][utt] == " ".join(labels)
        events = [e.split(":") for e in tables["utt2events"][utt].split()]
        assert [e[0] for e in events] == labels
        spans = [(int(s), int(e)) for _, s, e in events]
        assert all(0 < s < e <= len(x) for s, e in spans)
        assert all(e1 < s2 for (_, e1), (s2, _) in zip(spans, spans[1:]))  # gaps between
        for label, (s, e) in zip(labels, spans):
            assert 0.3 * FS - 1 <= e - s <= 0.45 * FS + 1  # the drawn window
            # the tone heard in the event's span is the one of its class, in order
            assert abs(dominant_freq(x[s:e, 0]) - FREQS[label]) < 40


def test_sequences_are_deterministic_and_the_text_does_not_depend_on_the_format(
        tmp_path, sources, banks):
    make_set(sources, banks, tmp_path / "a", seed=7)
    make_set(sources, banks, tmp_path / "b", seed=7)
    make_set(sources, banks, tmp_path / "c", seed=8)
    summary = make_set(sources, banks, tmp_path / "foa", fmt="foa", seed=7, text_style="split")
    a, b, c = (read_data_dir(tmp_path / n) for n in "abc")
    foa = read_data_dir(tmp_path / "foa")
    assert a["text"] == b["text"] and a["utt2events"] == b["utt2events"]
    for utt in a["wav.scp"]:
        np.testing.assert_array_equal(sf.read(a["wav.scp"][utt])[0], sf.read(b["wav.scp"][utt])[0])
    assert a["text"] != c["text"]
    assert summary["channels"] == 4
    assert sf.read(next(iter(foa["wav.scp"].values())), always_2d=True)[0].shape[1] == 4
    assert foa["utt2label"] == a["utt2label"]  # the same events in FOA
    assert foa["text"] == {u: t.replace("_", " ") for u, t in a["text"].items()}


def test_bad_inputs_are_reported(tmp_path, sources, banks):
    with pytest.raises(ValueError, match="min_events"):
        make_set(sources, banks, tmp_path / "x", min_events=3, max_events=2)
    with pytest.raises(ValueError, match="num_utts"):
        make_set(sources, banks, tmp_path / "x", num=0)
    multi = tmp_path / "multi"
    write_data_dir(multi, {"wav.scp": {"m": str(sources / "audio" / "low_tone_0.wav")},
                           "utt2label": {"m": "a b"}})
    with pytest.raises(ValueError, match="single-label"):
        make_event_sequence_set(multi, banks / "train_binaural", tmp_path / "y",
                                tmp_path / "y" / "data", 2)


# ----------------------------------------------------------------------------- tokens
def test_token_list_has_espnets_format(tmp_path):
    from espnet2.bin.tokenize_text import tokenize

    text = tmp_path / "text"
    rng = np.random.default_rng(0)
    classes = ["bell", "chirp_up", "chirp_down", "vowel_a", "drum"]
    text.write_text("".join(f"u{i} {' '.join(draw_classes(rng, classes, 3))}\n"
                            for i in range(40)))
    model = train_bpe(text, tmp_path / "bpe" / "bpe", vocab_size=30)
    tokens = tmp_path / "tokens.txt"
    tokenize(input=str(text), output=str(tokens), field="2-", delimiter=None, token_type="bpe",
             space_symbol="<space>", non_linguistic_symbols=None, bpemodel=str(model),
             log_level="WARNING", write_vocabulary=True, vocabulary_size=0,
             remove_non_linguistic_symbols=False, cutoff=0,
             add_symbol=["<blank>:0", "<unk>:1", "<sos/eos>:-1"], cleaner=None, g2p=None,
             add_nonsplit_symbol=[])
    entries = tokens.read_text().split("\n")[:-1]
    assert entries[:2] == ["<blank>", "<unk>"] and entries[-1] == "<sos/eos>"
    assert len(set(entries)) == len(entries)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    pieces = {sp.id_to_piece(i) for i in range(sp.get_piece_size())}
    assert set(entries[2:-1]) <= pieces
    used = {p for line in text.read_text().splitlines()
            for p in sp.encode(line.split(maxsplit=1)[1], out_type=str)}
    assert set(entries[2:-1]) == used  # every unit of the training text, nothing else
    with pytest.raises(ValueError, match="no transcription"):
        (tmp_path / "empty").write_text("u1\n")
        train_bpe(tmp_path / "empty", tmp_path / "bpe2" / "bpe", 30)


# ----------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("ref, hyp, expected", [  # (correct, sub, del, ins)
    ("a b c", "a b c", (3, 0, 0, 0)),
    ("a b c", "a x c", (2, 1, 0, 0)),
    ("a b c", "", (0, 0, 3, 0)),
    ("a b", "a b c d", (2, 0, 0, 2)),
    ("a b c d", "b c x d e", (3, 0, 1, 2)),
    ("a b c", "c b a", (1, 2, 0, 0)),
    ("", "", (0, 0, 0, 0)),
    ("", "x y", (0, 0, 0, 2)),
])
def test_alignment_counts(ref, hyp, expected):
    c = align_counts(ref.split(), hyp.split())
    assert (c.correct, c.sub, c.dels, c.ins) == expected
    assert c.sentence_errors == int(sum(expected[1:]) > 0)


def test_error_rates_over_a_set():
    ref = {"u1": "bell chirp_up", "u2": "drum vowel_a siren", "u3": "bell"}
    hyp = {"u1": "bell chirp_down", "u2": ""}  # u3 has no hypothesis: empty
    words = score(ref, hyp, "word")
    assert (words.sentences, words.ref_units) == (3, 6)
    assert (words.correct, words.sub, words.dels, words.ins) == (1, 1, 4, 0)
    assert words.rate() == pytest.approx(100 * 5 / 6)
    assert words.row("test") == "|test|3|6|16.7|16.7|66.7|0.0|83.3|100.0|"
    chars = score({"u": "ab cd"}, {"u": "ab"}, "char")
    assert (chars.ref_units, chars.dels) == (5, 3)  # the space counts as a character
    assert units("ab  cd", "char") == ["a", "b", " ", "c", "d"] and units("", "char") == []
    assert score({"u": "a"}, {"u": "a"}, "word").rate() == 0.0
    empty = ErrorCounts(sentences=1, ins=2)
    assert empty.rate() == 100.0 and ErrorCounts().rate() == 0.0


def test_score_command_writes_espnet_tables(tmp_path):
    (tmp_path / "ref").write_text("u1 bell chirp_up\nu2 drum\n")
    for name, text in (("a", "u1 bell chirp_up\nu2\n"), ("b", "u1 bell\nu2 drum bell\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "text").write_text(text)
    cli_main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "a" / "text"),
              "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "b" / "text"),
              "--output", str(tmp_path / "score.md"), "--write_details", "true"])
    text = (tmp_path / "score.md").read_text()
    assert "### WER" in text and "### CER" in text and "### TER" not in text
    wer = text.split("### CER")[0]
    assert "|a|2|3|66.7|0.0|33.3|0.0|33.3|50.0|" in wer  # one row per set, named by folder
    assert "|b|2|3|66.7|0.0|33.3|33.3|66.7|100.0|" in wer
    assert len((tmp_path / "a" / "result.jsonl").read_text().splitlines()) == 2
    (tmp_path / "bad").write_text("u9 bell\n")
    with pytest.raises(ValueError, match="u9"):
        cli_main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "bad")])
    with pytest.raises(ValueError, match="one --ref"):
        cli_main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "bad"),
                  "--hyp", str(tmp_path / "bad")])


# ----------------------------------------------------------------------------- the recipe
def run_recipe(*args, check=True, cwd=REPO):
    env = {**os.environ, "GRAM_SKIP_ENSURE_ENV": "1", "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["egs2/gram/asr_demo/run.sh", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_recipe_stages_1_2_and_6_on_tiny_inputs(tmp_path, sources, banks):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("clips", "noise"):
        (raw / name).symlink_to(sources / name)
    opts = ["--datadir", str(tmp_path / "data"), "--dumpdir", str(tmp_path / "dump"),
            "--expdir", str(tmp_path / "exp"), "--rawdir", str(raw), "--bankdir", str(banks),
            "--train_source", "clips", "--valid_source", "clips", "--test_source", "clips",
            "--noise_set", "noise", "--num_train", "8", "--num_valid", "2", "--num_test", "3",
            "--nbpe", "20", "--python", sys.executable]
    run_recipe("--stop_stage", "2", *opts)
    data = tmp_path / "data"
    sizes = {s: len(read_data_dir(data / f"{s}_binaural")["text"])
             for s in ("train", "valid", "test")}
    assert sizes == {"train": 8, "valid": 2, "test": 3}
    test = read_data_dir(data / "test_binaural")
    rirs = {r.rsplit("_", 1)[0] for r in test["utt2rir"].values()}
    assert rirs == {"eval_binaural"}  # the test set uses the held-out bank
    tokens = (data / "token_list" / "demo_binaural" / "bpe20" / "tokens.txt").read_text().split()
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>"

    # Stage 6 on made-up decodings of two configs and two training seeds. gram, seed 0: one
    # utterance recognised, one with an event missing, one empty; seed 1: all recognised.
    # logmel: all empty (both seeds). valid: all recognised.
    utts = sorted(test["text"])
    refs = [test["text"][u].split() for u in utts]
    valid = read_data_dir(data / "valid_binaural")["text"]
    hyps = {("gram", 0): f"{utts[0]} {' '.join(refs[0])}\n{utts[1]} {' '.join(refs[1][1:])}\n"
                         f"{utts[2]}\n",
            ("gram", 1): "".join(f"{u} {' '.join(r)}\n" for u, r in zip(utts, refs)),
            ("logmel", 0): "", ("logmel", 1): ""}
    exp = tmp_path / "exp" / "asr_demo_binaural"
    for (name, seed), text in hyps.items():
        decode = exp / f"asr_{name}_seed{seed}" / "decode_beam4_ctc0.5_valid.acc.ave"
        (decode / "test_binaural").mkdir(parents=True)
        (decode / "test_binaural" / "text").write_text(text)
        (decode / "valid_binaural").mkdir()
        (decode / "valid_binaural" / "text").write_text(
            "".join(f"{u} {t}\n" for u, t in sorted(valid.items())))
    configs = tmp_path / "conf"
    configs.mkdir()
    for name in ("gram", "logmel"):
        (configs / f"{name}.yaml").write_text("frontend: default\n")
    compare = ["--asr_configs", f"{configs / 'gram.yaml'} {configs / 'logmel.yaml'}",
               "--train_seeds", "0 1"]
    run_recipe("--stage", "6", "--stop_stage", "6", *opts, *compare)
    results = (exp / "RESULTS.md").read_text()
    n = sum(map(len, refs))
    expected = 100 * (1 + len(refs[2])) / n
    gram0 = results[results.index("## " + str(exp / "asr_gram_seed0")):]
    row = next(line for line in gram0.splitlines()
               if line.startswith("|decode_beam4_ctc0.5_valid.acc.ave/test_binaural|"))
    assert row.split("|")[2:4] == ["3", str(n)] and row.split("|")[8] == f"{expected:.1f}"
    assert "### WER" in results and "### CER" in results and "### TER" in results
    assert "## Environments" in results
    # the comparison: WER mean ± std (ddof=1) over the two seeds, per config and set
    table = results[results.index("## Comparison"):].splitlines()
    assert table[2] == "|system|seeds|WER valid|WER test|CER valid|CER test|"
    gram, logmel = (line.split("|") for line in table[4:6])
    std = np.std([expected, 0.0], ddof=1)
    assert gram[1:5] == ["gram", "2", "0.0 ± 0.0", f"{expected / 2:.1f} ± {std:.1f}"]
    assert logmel[1:5] == ["logmel", "2", "0.0 ± 0.0", "100.0 ± 0.0"]
    (exp / "asr_logmel_seed1" / "decode_beam4_ctc0.5_valid.acc.ave" / "test_binaural"
     / "text").unlink()
    proc = run_recipe("--stage", "6", "--stop_stage", "6", *opts, *compare, check=False)
    assert proc.returncode != 0 and "asr_logmel_seed1" in proc.stderr


def test_recipe_stage_7_packs_each_experiment(tmp_path):
    """Stage 7: ESPnet's pack puts each experiment's model, config, BPE model, feature
    statistics and scores in one zip, with the config's paths pointing into it (the recipe's
    directories are relative to its root, as by default: here a root of links to the
    repository's)."""
    import yaml
    from espnet2.main_funcs.pack_funcs import unpack

    root = tmp_path / "root"
    root.mkdir()
    for name in ("path.sh", "cmd.sh", "db.sh", "egs2", "espnet2_gram", "conf"):
        (root / name).symlink_to(REPO / name)
    exp = root / "exp" / "asr_demo_binaural"
    bpe = root / "data" / "asr_demo" / "token_list" / "demo_binaural" / "bpe20" / "bpe.model"
    bpe.parent.mkdir(parents=True)
    bpe.write_bytes(b"a sentencepiece model")
    stats = exp / "stats_asr_gram" / "train" / "feats_stats.npz"
    stats.parent.mkdir(parents=True)
    np.savez(stats, count=np.array(3), sum=np.ones(4), sum_square=np.ones(4))
    for seed in (0, 1):
        run = exp / f"asr_asr_gram_seed{seed}"
        run.mkdir()
        (run / "valid.acc.ave.pth").write_bytes(f"weights of seed {seed}".encode())
        (run / "score.md").write_text(f"### WER of seed {seed}\n")
        (run / "config.yaml").write_text(yaml.safe_dump(
            {"frontend": "gram", "bpemodel": str(bpe.relative_to(root)),
             "token_list": ["<blank>", "a"], "normalize": "global_mvn",
             "normalize_conf": {"stats_file": str(stats.relative_to(root))}}))
    run_recipe("--stage", "7", "--stop_stage", "7", "--nbpe", "20", "--train_seeds", "0 1",
               "--python", sys.executable, cwd=root)
    for seed in (0, 1):
        run = exp / f"asr_asr_gram_seed{seed}"
        assert sorted(p.name for p in run.glob("*.zip")) == [
            f"asr_asr_gram_seed{seed}_valid.acc.ave.zip"]  # no temporary left
        files = unpack(run / f"asr_asr_gram_seed{seed}_valid.acc.ave.zip", tmp_path / f"u{seed}")
        assert Path(files["asr_model_file"]).read_bytes() == f"weights of seed {seed}".encode()
        config = yaml.safe_load(Path(files["asr_train_config"]).read_text())
        inside = tmp_path / f"u{seed}"
        assert Path(config["bpemodel"]).read_bytes() == b"a sentencepiece model"
        assert Path(config["normalize_conf"]["stats_file"]).is_relative_to(inside)
        assert Path(config["bpemodel"]).is_relative_to(inside)
        assert np.load(config["normalize_conf"]["stats_file"])["count"] == 3


def test_recipe_takes_your_own_corpus(tmp_path, sources):
    """--corpus_dir: stage 1 checks your train/valid/test directories, stage 2 trains the BPE
    model on your train text; a missing file is named."""
    corpus = tmp_path / "my_speech"
    wav = sources / "audio" / "low_tone_0.wav"
    for split, words in (("train", "hello world"), ("valid", "hello"), ("test", "world")):
        write_data_dir(corpus / split, {"wav.scp": {f"{split}1": str(wav), f"{split}2": str(wav)},
                                        "text": {f"{split}1": words, f"{split}2": "world"}})
    opts = ["--corpus_dir", str(corpus), "--datadir", str(tmp_path / "data"),
            "--expdir", str(tmp_path / "exp"), "--nbpe", "20", "--python", sys.executable]
    run_recipe("--stop_stage", "2", *opts)
    tokens = (tmp_path / "data" / "token_list" / "my_speech_binaural" / "bpe20"
              / "tokens.txt").read_text().split()
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>"
    assert "▁world" in tokens and set("".join(tokens[2:-1])) <= set("▁helowrd")  # your text
    (corpus / "valid" / "text").unlink()
    proc = run_recipe("--stop_stage", "2", *opts, check=False)
    assert proc.returncode == 1 and f"--corpus_dir: expected {corpus}/valid/text" in proc.stderr


def test_recipe_refuses_bad_options():
    proc = run_recipe("--format", "quad", check=False)
    assert proc.returncode != 0 and "--format: expected one of binaural foa mic, got 'quad'" \
        in proc.stderr
    proc = run_recipe("--no_such_option", "1", check=False)
    assert proc.returncode != 0
    for args, words in ((["--stage", "8"], "--stage: expected an integer from 1 to 7, got '8'"),
                        (["--stage", "3", "--stop_stage", "2"], "--stop_stage: expected a stage"),
                        (["--nj", "two"], "--nj: expected an integer >= 1, got 'two'"),
                        (["--train_seeds", "0 x"], "--train_seeds: expected integers >= 0, got 'x'"),
                        (["--asr_configs", "no/such.yaml"], "--asr_configs: no/such.yaml: no such file"),
                        (["--asr_configs", "egs2/gram/asr_demo/conf/asr_gram.yaml "
                          "egs2/gram/asr_demo/conf/asr_gram.yaml"], "--asr_configs: egs2/gram/asr_demo/conf/"
                          "asr_gram.yaml and egs2/gram/asr_demo/conf/asr_gram.yaml have one"
                          " name (asr_gram)"),
                        (["--test_sets", "eval"], "--test_sets: expected words from: train valid"
                                                  " test, got 'eval'")):
        proc = run_recipe(*args, check=False)
        assert proc.returncode == 1 and f"asr_demo/run.sh: error: {words}" in proc.stderr


# ----------------------------------------------------------------------------- the configs
CONFIGS = sorted((REPO / "egs2/gram/asr_demo/conf").glob("asr_*.yaml"))
# what a frontend of the comparison may change; everything else is the one ASR model
FRONTEND_KEYS = {"frontend", "frontend_conf", "specaug_conf"}


def test_compared_configs_differ_only_in_the_frontend():
    """The configs of the comparison parse with ESPnet's ASR parser, every ``*_conf`` option
    exists in its class, and they share the ASR model, the training and the decoding options
    (log-mel also changes its input layer, since GRAM's 80-ms frames need no subsampling)."""
    import inspect

    import yaml
    from espnet2.tasks.asr import ASRTask

    import espnet2_gram  # noqa: F401  (registers frontend: gram)

    assert {c.stem for c in CONFIGS} >= {"asr_gram", "asr_gram_last", "asr_gram_finetune",
                                         "asr_logmel"}
    choices = {c.name: c for c in ASRTask.class_choices_list}
    configs = {c.stem: yaml.safe_load(c.read_text()) for c in CONFIGS}
    for name, config in configs.items():
        args = ASRTask.get_parser().parse_args(
            [f"--{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in config.items()])
        for part in ("frontend", "encoder", "decoder", "specaug"):
            params = inspect.signature(choices[part].get_class(getattr(args, part))).parameters
            assert set(config.get(f"{part}_conf", {})) <= set(params), (name, part)
    base = configs["asr_gram"]
    for name, config in configs.items():
        other = {k: v for k, v in config.items() if k not in FRONTEND_KEYS}
        same = {k: v for k, v in base.items() if k not in FRONTEND_KEYS}
        if config["frontend"] != "gram":
            assert other["encoder_conf"].pop("input_layer") == "conv2d"
            same = {**same, "encoder_conf": {k: v for k, v in same["encoder_conf"].items()
                                             if k != "input_layer"}}
        assert other == same, name
    assert configs["asr_gram_finetune"]["frontend_conf"]["freeze_steps"] > 0
    assert configs["asr_gram_last"]["frontend_conf"]["weighted_sum"] is False
