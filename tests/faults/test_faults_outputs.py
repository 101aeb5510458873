"""Fault matrix of the output-writing entry points: make_rir_bank, format_data, make_eval_set.

Every case asserts the exit status, that the message names the file or option at fault, and
that nothing partial or stale is left. Entry points run in-process through their ``run``
wrapper; kills and concurrent writers run as subprocesses.
"""

import copy
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from espnet2_gram.bin import format_data, make_eval_set, make_rir_bank
from espnet2_gram.simulation.rir_bank import RIRBank
from espnet2_gram.utils.datadir import read_data_dir, write_data_dir
from espnet2_gram.utils.provenance import RECORD
from fault_world import BANK

FS = 8000
ENTRY_POINTS = {"make_rir_bank": make_rir_bank, "format_data": format_data,
                "make_eval_set": make_eval_set}


def call(module, *argv, capsys):
    """(exit status, stderr) of ``module.main(argv)`` through the module's ``run`` wrapper."""
    try:
        module.run(module.main, [str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def files_under(root) -> dict:
    """{relative path: bytes} of every file under ``root``."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def temps_under(root) -> list:
    return [p for p in Path(root).rglob("*.tmp")]


def write_config(path, cfg) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def bank_args(config, out_dir, *extra):
    return ["--config", config, "--out_dir", out_dir, "--seed", 3, "--log_level", "WARNING",
            *extra]


def build_bank(tmp_path, capsys, name="bank", cfg=BANK, seed=3):
    config = write_config(tmp_path / f"{name}.yaml", cfg)
    out = tmp_path / name
    args = bank_args(config, out, "--seed", seed)
    assert call(make_rir_bank, *args, capsys=capsys)[0] == 0
    assert call(make_rir_bank, "--out_dir", out, "--merge", "true", capsys=capsys)[0] == 0
    return out


def tone(seconds=0.3, freq=440.0, channels=1, fs=FS):
    t = np.arange(int(seconds * fs)) / fs
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def make_data_dir(root: Path, clips: dict, labels=True) -> Path:
    """clips: {utt: ndarray (16-bit wav at FS), (ndarray, fs), bytes (raw file) or a path}."""
    wavs = {}
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    for utt, clip in clips.items():
        path = src / f"{utt}.wav"
        if isinstance(clip, str):
            path = Path(clip)
        elif isinstance(clip, bytes):
            path.write_bytes(clip)
        else:
            x, fs = clip if isinstance(clip, tuple) else (clip, FS)
            sf.write(path, x, fs, subtype="FLOAT")
        wavs[utt] = str(path)
    tables = {"wav.scp": wavs}
    if labels:
        tables["utt2label"] = {u: "dog" for u in clips}
    return write_data_dir(root / "data", tables)


# --------------------------------------------------------------------------------------------
# make_rir_bank: bad configuration and options fail before anything is written

def edit(section, key, value):
    def apply(cfg):
        if section is None:
            cfg[key] = value
        elif key is None:
            cfg[section] = value
        else:
            cfg[section][key] = value
    return apply


BAD_CONFIGS = {
    "unknown section": (edit(None, "renderr", {"fs": 8000}), ["renderr", "known"]),
    "unknown sampling key": (edit("sampling", "room_size", [3, 3, 3]), ["room_size"]),
    "unknown render key": (edit("render", "nrays", 10), ["nrays", "render"]),
    "unknown bank key": (edit("bank", "packs", 3), ["packs", "bank"]),
    "string for integer": (edit("render", "ism_order", "three"),
                           ["render.ism_order", "an integer", "'three'"]),
    "string for range": (edit("sampling", "rt60", "long"),
                         ["sampling.rt60", "a list of 2 numbers", "'long'"]),
    "short range": (edit("sampling", "rt60", [0.2]), ["sampling.rt60", "a list of 2"]),
    "short room size": (edit("sampling", "room_size_min", [3, 3]),
                        ["sampling.room_size_min", "a list of 3"]),
    "string for bool": (edit("render", "air_absorption", "yes"),
                        ["render.air_absorption", "true or false"]),
    "string for shard size": (edit("bank", "shard_size", "8"), ["bank.shard_size", "'8'"]),
    "float for fs": (edit("render", "fs", 8000.5), ["render.fs", "an integer"]),
    "string for n_rays": (edit("render", "n_rays", "many"), ["render.n_rays"]),
    "unknown format": (edit("render", "format", "5.1"), ["--format", "5.1"]),
    "unknown method": (edit("render", "method", "fdtd"), ["--method", "fdtd"]),
    "negative rir length": (edit("render", "max_rir_seconds", -1.0), ["--max_rir_seconds"]),
    "reversed rt60": (edit("sampling", "rt60", [0.5, 0.2]), ["--rt60"]),
    "elevation out of range": (edit("sampling", "source_elevation", [-100, 0]),
                               ["--source_elevation"]),
    "negative noise count": (edit("sampling", "num_noise_sources", [-1, 2]),
                             ["--num_noise_sources"]),
    "margin fills the room": (edit("sampling", "wall_margin", 2.0), ["--wall_margin"]),
    "rt60 longer than the rir": (edit("sampling", "rt60", [0.1, 5.0]),
                                 ["sampling.rt60", "render.max_rir_seconds"]),
    "sources cannot fit": (edit("sampling", "source_distance", [8.0, 9.0]),
                           ["--source_distance"]),
    "section not a mapping": (edit("render", None, 3), ["'render'", "mapping"]),
    "zero packs in config": (edit("bank", "num_packs", 0), ["--num_packs", "bank.num_packs"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bank_bad_config_fails_before_writing(case, tmp_path, capsys):
    change, expected = BAD_CONFIGS[case]
    cfg = copy.deepcopy(BANK)
    change(cfg)
    config = write_config(tmp_path / "bank.yaml", cfg)
    out = tmp_path / "out"
    code, err = call(make_rir_bank, *bank_args(config, out), capsys=capsys)
    assert code == 1 and "Traceback" not in err, err
    for text in expected + ["bank.yaml"]:
        assert text in err, (text, err)
    assert not out.exists()


BAD_FILES = {
    "missing file": (None, ["missing.yaml", "no such file"]),
    "invalid yaml": ("sampling: [1, 2\n", ["invalid YAML"]),
    "list at top level": ("- 1\n- 2\n", ["mapping"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bank_unreadable_config_is_named(case, tmp_path, capsys):
    text, expected = BAD_FILES[case]
    config = tmp_path / "missing.yaml"
    if text is not None:
        config.write_text(text)
    out = tmp_path / "out"
    code, err = call(make_rir_bank, *bank_args(config, out), capsys=capsys)
    assert code == 1 and "missing.yaml" in err and "Traceback" not in err
    assert all(t in err for t in expected), err
    assert not out.exists()


BAD_OPTIONS = {
    "zero packs": (["--num_packs", 0], 1, "--num_packs"),
    "zero shard size": (["--shard_size", 0], 1, "--shard_size"),
    "job index beyond jobs": (["--job_index", 3, "--num_jobs", 2], 1, "--job_index"),
    "zero fs": (["--fs", 0], 1, "--fs"),
    "fs not a number": (["--fs", "abc"], 2, "--fs"),
    "missing hrtf": (["--format", "binaural", "--hrtf", "nosuch.sofa"], 1, "nosuch.sofa"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bank_bad_option_fails_before_writing(case, tmp_path, capsys):
    extra, status, name = BAD_OPTIONS[case]
    config = write_config(tmp_path / "bank.yaml", BANK)
    out = tmp_path / "out"
    code, err = call(make_rir_bank, *bank_args(config, out, *extra), capsys=capsys)
    assert code == status and name in err and "Traceback" not in err, err
    assert not out.exists()


def test_bank_without_config_names_the_option(tmp_path, capsys):
    code, err = call(make_rir_bank, "--out_dir", tmp_path / "out", capsys=capsys)
    assert code == 1 and "--config" in err
    assert not (tmp_path / "out").exists()


def test_merge_of_no_bank_or_an_incomplete_bank_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = call(make_rir_bank, "--out_dir", out, "--merge", "true", capsys=capsys)
    assert code == 1 and "config.json" in err
    config = write_config(tmp_path / "bank.yaml", BANK)
    assert call(make_rir_bank, *bank_args(config, out, "--num_jobs", 2), capsys=capsys)[0] == 0
    code, err = call(make_rir_bank, "--out_dir", out, "--merge", "true", capsys=capsys)
    assert code == 1 and str(out) in err and "incomplete" in err and "Traceback" not in err
    assert not (out / "rirs.scp").exists() and not (out / "bank.json").exists()


# --------------------------------------------------------------------------------------------
# make_rir_bank: claims, concurrent writers, kills, where the bank opens from

def test_bank_of_other_settings_is_refused_naming_the_difference(tmp_path, capsys):
    out = build_bank(tmp_path, capsys)
    before = files_under(out)
    config = tmp_path / "bank.yaml"
    code, err = call(make_rir_bank, *bank_args(config, out, "--seed", 4), capsys=capsys)
    assert code == 1 and str(out) in err and "seed: 3 -> 4" in err
    code, err = call(make_rir_bank, *bank_args(config, out, "--fs", 16000), capsys=capsys)
    assert code == 1 and "render.fs: 8000 -> 16000" in err
    assert files_under(out) == before


@pytest.mark.parametrize("bad", ["source_distance", "hrtf"])
def test_bank_failed_on_a_bad_config_runs_once_fixed(bad, tmp_path, capsys):
    cfg = copy.deepcopy(BANK)
    if bad == "hrtf":
        cfg["render"].update(format="binaural", hrtf=str(tmp_path / "nosuch.sofa"))
    else:
        cfg["sampling"]["source_distance"] = [8.0, 9.0]
    config = write_config(tmp_path / "bank.yaml", cfg)
    out = tmp_path / "out"
    code, err = call(make_rir_bank, *bank_args(config, out), capsys=capsys)
    assert code == 1 and ("nosuch.sofa" in err or "--source_distance" in err)
    write_config(config, BANK)
    assert call(make_rir_bank, *bank_args(config, out), capsys=capsys)[0] == 0
    assert call(make_rir_bank, "--out_dir", out, "--merge", "true", capsys=capsys)[0] == 0
    assert len(RIRBank(out)) == BANK["bank"]["num_packs"]


def subprocess_env():
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": root + (os.pathsep + path if path else "")}


def bank_command(config, out, *extra):
    return [sys.executable, "-m", "espnet2_gram.bin.make_rir_bank",
            *map(str, bank_args(config, out, *extra))]


def test_two_writers_of_other_settings_never_mix(tmp_path, capsys):
    config = write_config(tmp_path / "bank.yaml", BANK)
    out = tmp_path / "out"
    procs = {seed: subprocess.Popen(bank_command(config, out, "--seed", seed),
                                    env=subprocess_env(), stderr=subprocess.PIPE, text=True)
             for seed in (3, 4)}
    results = {seed: (p.wait(timeout=120), p.stderr.read()) for seed, p in procs.items()}
    codes = sorted(code for code, _ in results.values())
    assert codes == [0, 1], results
    (winner,) = [s for s, (code, _) in results.items() if code == 0]
    loser_err = [err for code, err in results.values() if code == 1][0]
    assert str(out) in loser_err and "seed" in loser_err
    assert call(make_rir_bank, "--out_dir", out, "--merge", "true", capsys=capsys)[0] == 0
    ref = build_bank(tmp_path, capsys, name="ref", seed=winner)
    assert (out / "meta.jsonl").read_bytes() == (ref / "meta.jsonl").read_bytes()
    assert files_under(out / "shards") == files_under(ref / "shards")


def test_two_jobs_of_one_bank_run_at_once(tmp_path, capsys):
    config = write_config(tmp_path / "bank.yaml", BANK)
    out = tmp_path / "out"
    procs = [subprocess.Popen(bank_command(config, out, "--job_index", j, "--num_jobs", 2),
                              env=subprocess_env(), stderr=subprocess.PIPE, text=True)
             for j in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    assert call(make_rir_bank, "--out_dir", out, "--merge", "true", capsys=capsys)[0] == 0
    ref = build_bank(tmp_path, capsys, name="ref")
    assert files_under(out / "shards") == files_under(ref / "shards")


KILLER = textwrap.dedent("""
    import os, runpy, signal, sys
    import {module} as target
    original, calls = target.{attr}, [0]
    def kill_midway(path, *args, **kwargs):
        calls[0] += 1
        if calls[0] == {at_call}:
            open(path, "wb").write(b"torn")
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path, *args, **kwargs)
    target.{attr} = kill_midway
    sys.argv = ["{entry}"] + sys.argv[1:]
    runpy.run_module("{entry}", run_name="__main__")
""")


def run_killed(module, attr, at_call, entry, argv):
    """Run ``entry`` in a subprocess that SIGKILLs itself while writing its ``at_call``-th file
    (``module.attr`` is the writer); returns the exit status."""
    code = KILLER.format(module=module, attr=attr, at_call=at_call, entry=entry)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, argv)], env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    return proc.returncode


def test_bank_killed_mid_shard_resumes_to_the_same_bank(tmp_path, capsys):
    config = write_config(tmp_path / "bank.yaml", BANK)
    out = tmp_path / "out"
    status = run_killed("kaldiio", "save_ark", 2, "espnet2_gram.bin.make_rir_bank",
                        bank_args(config, out))
    assert status == -signal.SIGKILL
    assert temps_under(out) and not (out / "shards" / "rirs.00001.jsonl").exists()
    assert call(make_rir_bank, *bank_args(config, out), capsys=capsys)[0] == 0
    assert call(make_rir_bank, "--out_dir", out, "--merge", "true", capsys=capsys)[0] == 0
    ref = build_bank(tmp_path, capsys, name="ref")
    assert files_under(out) == files_under(ref)
    assert not temps_under(out)


def test_bank_opens_from_any_working_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_bank(Path("."), capsys, name="bank")  # a relative --out_dir
    for line in (tmp_path / "bank" / "rirs.scp").read_text().splitlines():
        assert line.split()[1].startswith("shards/rirs.")
    monkeypatch.chdir(tmp_path / "bank" / "shards")
    bank = RIRBank(tmp_path / "bank")
    assert bank.pack(3)[0].shape[0] == 4


def test_bank_of_an_older_version_still_opens(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_bank(Path("."), capsys, name="bank")
    expected = RIRBank("bank").pack(1)
    scp = Path("bank/rirs.scp")
    scp.write_text(scp.read_text().replace(" shards/", " bank/shards/"))  # cwd-relative paths
    for a, b in zip(RIRBank("bank").pack(1)[:2], expected[:2]):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------
# format_data: bad audio is skipped and counted, bad data dirs refused

def format_args(in_dir, out, *extra):
    return ["--in_dir", in_dir, "--out_dir", out, "--fs", FS, "--log_level", "WARNING", *extra]


def silent_wav(path):
    sf.write(path, np.zeros(FS // 4), FS, subtype="FLOAT")
    return path.read_bytes()


def nan_clip():
    x = tone()
    x[10] = np.nan
    return x


BAD_AUDIO = {
    "missing": (lambda root: str(root / "nowhere.wav"), "unreadable", "nowhere.wav"),
    "corrupt": (lambda root: b"RIFF....not audio", "unreadable", "bad.wav"),
    "empty file": (lambda root: b"", "unreadable", "bad.wav"),
    "no samples": (lambda root: (np.zeros(0), FS), "empty", "bad.wav"),
    "silent": (lambda root: (np.zeros(FS // 4), FS), "silent", "bad.wav"),
    "nan": (lambda root: (nan_clip(), FS), "nan", "bad.wav"),
}


@pytest.mark.parametrize("case", sorted(BAD_AUDIO))
def test_format_skips_and_counts_bad_audio(case, tmp_path, capsys):
    make_clip, status, name = BAD_AUDIO[case]
    in_dir = make_data_dir(tmp_path, {"good": tone(), "bad": make_clip(tmp_path)})
    out = tmp_path / "out"
    code, err = call(format_data, *format_args(in_dir, out), capsys=capsys)
    assert code == 0, err
    summary = json.loads((out / "format_summary.json").read_text())
    assert summary["counts"][status] == 1 and name in summary["skipped"]["bad"]
    assert set(read_data_dir(out)["wav.scp"]) == {"good"}
    assert sorted(p.name for p in (out / "data").iterdir()) == ["good.wav"]


def test_format_with_no_usable_audio_fails(tmp_path, capsys):
    in_dir = make_data_dir(tmp_path, {"a": (np.zeros(100), FS), "b": b"junk"})
    out = tmp_path / "out"
    code, err = call(format_data, *format_args(in_dir, out), capsys=capsys)
    assert code == 1 and str(in_dir) in err and "no usable audio" in err
    assert not (out / "wav.scp").exists() and not list((out / "data").glob("*"))


@pytest.mark.parametrize("policy,channels", [("first", 1), ("mean", 1), ("keep", 3)])
def test_format_converts_rate_and_channels(policy, channels, tmp_path, capsys):
    in_dir = make_data_dir(tmp_path, {"hi": (tone(fs=16000), 16000),
                                      "multi": (tone(channels=3), FS)})
    out = tmp_path / "out"
    code, _ = call(format_data, *format_args(in_dir, out, "--mono_policy", policy),
                   capsys=capsys)
    assert code == 0
    tables = read_data_dir(out)
    info = sf.info(tables["wav.scp"]["hi"])
    assert info.samplerate == FS and int(tables["utt2num_samples"]["hi"]) == info.frames
    assert sf.info(tables["wav.scp"]["multi"]).channels == channels
    counts = json.loads((out / "format_summary.json").read_text())["counts"]
    assert counts["resampled"] == 1 and counts.get("downmixed", 0) == (policy != "keep")


def write_raw_dir(root, files: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


BAD_DATA_DIRS = {
    "duplicate ids": ({"wav.scp": "a {w}\na {w}\n"}, ["wav.scp:2", "duplicated", "'a'"]),
    "mismatched files": ({"wav.scp": "a {w}\nb {w}\n", "utt2label": "a dog\nc cat\n"},
                         ["utt2label", "'b'", "'c'"]),
    "line without value": ({"wav.scp": "a {w}\nb\n"}, ["wav.scp:2", "key value"]),
    "empty wav.scp": ({"wav.scp": ""}, ["wav.scp is empty"]),
    "no wav.scp": ({"utt2label": "a dog\n"}, ["no wav.scp"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA_DIRS))
def test_format_refuses_a_broken_data_dir(case, tmp_path, capsys):
    files, expected = BAD_DATA_DIRS[case]
    wav = tmp_path / "x.wav"
    sf.write(wav, tone(), FS)
    in_dir = write_raw_dir(tmp_path / "in", {k: v.format(w=wav) for k, v in files.items()})
    out = tmp_path / "out"
    code, err = call(format_data, *format_args(in_dir, out), capsys=capsys)
    assert code == 1 and str(in_dir) in err and "Traceback" not in err, err
    assert all(t in err for t in expected), err
    assert not out.exists()


BAD_FORMAT_OPTIONS = {
    "missing in_dir": (lambda d, o: ["--in_dir", d.parent / "nowhere", "--out_dir", o,
                                     "--fs", FS], 1, "nowhere"),
    "zero fs": (lambda d, o: ["--in_dir", d, "--out_dir", o, "--fs", 0], 1, "--fs"),
    "zero jobs": (lambda d, o: ["--in_dir", d, "--out_dir", o, "--fs", FS, "--nj", 0], 1,
                  "--nj"),
    "unknown mono policy": (lambda d, o: ["--in_dir", d, "--out_dir", o, "--fs", FS,
                                          "--mono_policy", "left"], 2, "--mono_policy"),
    "output onto input": (lambda d, o: ["--in_dir", d, "--out_dir", d, "--fs", FS], 1,
                          "--out_dir"),
}


@pytest.mark.parametrize("case", sorted(BAD_FORMAT_OPTIONS))
def test_format_bad_option_is_named(case, tmp_path, capsys):
    make_argv, status, name = BAD_FORMAT_OPTIONS[case]
    in_dir = make_data_dir(tmp_path, {"a": tone()})
    before = files_under(tmp_path)
    out = tmp_path / "out"
    code, err = call(format_data, *make_argv(in_dir, out), capsys=capsys)
    assert code == status and name in err and "Traceback" not in err, err
    assert files_under(tmp_path) == before


# --------------------------------------------------------------------------------------------
# format_data: outputs of other settings are refused or redone, never mixed

CHANGES = {
    "fs": (["--fs", 16000], "fs: 8000 -> 16000"),
    "mono policy": (["--mono_policy", "mean"], "mono_policy: 'first' -> 'mean'"),
    "input": (None, "in_dir wav.scp sha256"),
}


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_format_refuses_outputs_of_other_settings(case, tmp_path, capsys):
    extra, difference = CHANGES[case]
    clips = {"a": np.stack([tone(), 0.5 * tone()], axis=1), "b": tone(freq=300)}
    in_dir = make_data_dir(tmp_path, clips)
    out = tmp_path / "out"
    assert call(format_data, *format_args(in_dir, out), capsys=capsys)[0] == 0
    before = files_under(out)
    if extra is None:
        make_data_dir(tmp_path, {**clips, "c": tone()})
        extra = []
    code, err = call(format_data, *format_args(in_dir, out), *extra, capsys=capsys)
    assert code == 1 and str(out) in err and difference in err and "--overwrite" in err, err
    assert files_under(out) == before
    code, _ = call(format_data, *format_args(in_dir, out), *extra, "--overwrite", "true",
                   capsys=capsys)
    assert code == 0
    fresh = tmp_path / "fresh"
    assert call(format_data, *format_args(in_dir, fresh), *extra, capsys=capsys)[0] == 0
    redone, ref = read_data_dir(out), read_data_dir(fresh)
    assert set(redone["wav.scp"]) == set(ref["wav.scp"])
    for utt, wav in redone["wav.scp"].items():
        assert Path(wav).read_bytes() == Path(ref["wav.scp"][utt]).read_bytes()
    assert not temps_under(out)


def test_format_refuses_audio_without_a_record(tmp_path, capsys):
    in_dir = make_data_dir(tmp_path, {"a": tone()})
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    sf.write(out / "data" / "a.wav", tone(freq=200), 16000)  # from an older version
    code, err = call(format_data, *format_args(in_dir, out), capsys=capsys)
    assert code == 1 and "a.wav" in err and RECORD in err and "--overwrite" in err
    assert sf.info(out / "data" / "a.wav").samplerate == 16000
    assert call(format_data, *format_args(in_dir, out, "--overwrite", "true"),
                capsys=capsys)[0] == 0
    assert sf.info(out / "data" / "a.wav").samplerate == FS


def test_format_resumes_and_clears_what_a_kill_left(tmp_path, capsys):
    in_dir = make_data_dir(tmp_path, {"a": tone(), "b": tone(freq=300)})
    out = tmp_path / "out"
    assert call(format_data, *format_args(in_dir, out), capsys=capsys)[0] == 0
    reused = (out / "data" / "a.wav").stat().st_mtime_ns
    (out / "data" / "b.wav").unlink()
    (out / "data" / ".b.wav.deadbeef.tmp").write_bytes(b"torn")
    code, _ = call(format_data, *format_args(in_dir, out), capsys=capsys)
    assert code == 0
    assert (out / "data" / "a.wav").stat().st_mtime_ns == reused
    assert json.loads((out / "format_summary.json").read_text())["counts"] == {"exists": 1,
                                                                                "ok": 1}
    assert not temps_under(out)


# --------------------------------------------------------------------------------------------
# make_eval_set

@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory):
    """Two tiny banks, a clean data dir and a noise dir."""
    root = tmp_path_factory.mktemp("eval_inputs")
    banks = {}
    for name, seed in (("bank", 3), ("other_bank", 5)):
        config = write_config(root / f"{name}.yaml", BANK)
        for argv in (bank_args(config, root / name, "--seed", seed),
                     ["--out_dir", root / name, "--merge", "true"]):
            make_rir_bank.main([str(a) for a in argv])
        banks[name] = root / name
    clean = make_data_dir(root / "clean", {f"u{i}": tone(freq=300 + 40 * i) for i in range(4)})
    rng = np.random.default_rng(0)
    noise = make_data_dir(root / "noise", {"n1": rng.standard_normal(FS) * 0.1}, labels=False)
    return {"clean": clean, "noise": noise, **banks}


def eval_args(inputs, out, *extra, data_dir=None):
    return ["--data_dir", data_dir or inputs["clean"], "--bank_dir", inputs["bank"],
            "--noise_dir", inputs["noise"], "--out_dir", out, "--seed", 1,
            "--log_level", "WARNING", *extra]


def eval_outputs(out) -> dict:
    """Tables (wav paths replaced by the audio's bytes) and the summary of an eval set."""
    tables = read_data_dir(out)
    tables["wav.scp"] = {u: Path(w).read_bytes() for u, w in tables["wav.scp"].items()}
    return {"tables": tables, "summary": (out / "summary.json").read_text()}


@pytest.fixture(scope="module")
def eval_reference(eval_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_ref") / "set"
    make_eval_set.main([str(a) for a in eval_args(eval_inputs, out)])
    return eval_outputs(out)


BAD_EVAL_INPUTS = {
    "missing bank": (lambda i, t: ["--bank_dir", t / "nowhere"], "rirs.scp"),
    "bank without metadata": (lambda i, t: ["--bank_dir", strip_bank(i, t, "meta.jsonl")],
                              "meta.jsonl"),
    "bank with a torn metadata line": (lambda i, t: ["--bank_dir", tear_meta(i, t)],
                                       "meta.jsonl:2"),
    "missing data dir": (lambda i, t: ["--data_dir", t / "nowhere"], "nowhere"),
    "noise dir without wav.scp": (lambda i, t: ["--noise_dir", t], "wav.scp"),
    "reversed snr range": (lambda i, t: ["--snr_range", 30, 10], "--snr_range"),
    "output onto input": (lambda i, t: ["--out_dir", i["clean"]], "--out_dir"),
}


def copy_bank(inputs, tmp_path) -> Path:
    bank = tmp_path / "bank_copy"
    bank.mkdir()
    for name in ("rirs.scp", "meta.jsonl"):
        (bank / name).write_bytes((inputs["bank"] / name).read_bytes())
    (bank / "shards").symlink_to(inputs["bank"] / "shards")
    return bank


def strip_bank(inputs, tmp_path, name) -> Path:
    bank = copy_bank(inputs, tmp_path)
    (bank / name).unlink()
    return bank


def tear_meta(inputs, tmp_path) -> Path:
    bank = copy_bank(inputs, tmp_path)
    lines = (bank / "meta.jsonl").read_text().splitlines()
    (bank / "meta.jsonl").write_text(lines[0] + "\n" + lines[1][:20] + "\n")
    return bank


@pytest.mark.parametrize("case", sorted(BAD_EVAL_INPUTS))
def test_eval_set_bad_input_is_named(case, eval_inputs, tmp_path, capsys):
    make_extra, name = BAD_EVAL_INPUTS[case]
    extra = make_extra(eval_inputs, tmp_path)
    out = tmp_path / "out"
    code, err = call(make_eval_set, *eval_args(eval_inputs, out), *extra, capsys=capsys)
    assert code == 1 and name in err and "Traceback" not in err, err
    assert not out.exists()
    assert not (eval_inputs["clean"] / RECORD).exists()


@pytest.mark.parametrize("case", ["missing", "silent"])
def test_eval_set_skips_and_counts_bad_sources(case, eval_inputs, tmp_path, capsys):
    clip = str(tmp_path / "nowhere.wav") if case == "missing" else (np.zeros(FS // 4), FS)
    data = make_data_dir(tmp_path, {"good": tone(), "bad": clip})
    out = tmp_path / "out"
    code, err = call(make_eval_set, *eval_args(eval_inputs, out, data_dir=data), capsys=capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] == 1
    assert ("nowhere.wav" if case == "missing" else "silent") in summary["skipped_utts"]["bad"]
    assert sorted(p.name for p in (out / "data").iterdir()) == ["good.wav"]


def test_eval_set_with_no_usable_source_fails(eval_inputs, tmp_path, capsys):
    data = make_data_dir(tmp_path, {"bad": (np.zeros(FS // 4), FS)})
    out = tmp_path / "out"
    code, err = call(make_eval_set, *eval_args(eval_inputs, out, data_dir=data), capsys=capsys)
    assert code == 1 and str(data) in err and "no utterance" in err
    assert not (out / "wav.scp").exists() and not list((out / "data").glob("*"))


EVAL_CHANGES = {
    "seed": (lambda i: ["--seed", 2], "seed: 1 -> 2"),
    "snr range": (lambda i: ["--snr_range", 10, 20], "snr_range: [5.0, 40.0] -> [10.0, 20.0]"),
    "bank": (lambda i: ["--bank_dir", i["other_bank"]], "bank_dir meta.jsonl sha256"),
    "fade": (lambda i: ["--fade_seconds", 0.05], "fade_seconds: 0.2 -> 0.05"),
    "mono policy": (lambda i: ["--mono_policy", "mean"], "mono_policy: 'first' -> 'mean'"),
    "noise": (lambda i: ["--noise_dir", i["clean"]], "noise_dir wav.scp sha256"),
}


@pytest.mark.parametrize("case", sorted(EVAL_CHANGES))
def test_eval_set_refuses_outputs_of_other_settings(case, eval_inputs, eval_reference,
                                                    tmp_path, capsys):
    make_extra, difference = EVAL_CHANGES[case]
    out = tmp_path / "out"
    assert call(make_eval_set, *eval_args(eval_inputs, out), capsys=capsys)[0] == 0
    assert eval_outputs(out) == eval_reference
    before = files_under(out)
    extra = make_extra(eval_inputs)
    code, err = call(make_eval_set, *eval_args(eval_inputs, out), *extra, capsys=capsys)
    assert code == 1 and str(out) in err and difference in err and "--overwrite" in err, err
    assert files_under(out) == before


def test_eval_set_overwrite_redoes_with_the_new_settings(eval_inputs, tmp_path, capsys):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    assert call(make_eval_set, *eval_args(eval_inputs, out), capsys=capsys)[0] == 0
    new = ["--seed", 2, "--bank_dir", eval_inputs["other_bank"]]
    assert call(make_eval_set, *eval_args(eval_inputs, out), *new, "--overwrite", "true",
                capsys=capsys)[0] == 0
    assert call(make_eval_set, *eval_args(eval_inputs, fresh), *new, capsys=capsys)[0] == 0
    assert eval_outputs(out) == eval_outputs(fresh)


def test_eval_set_killed_mid_write_resumes_to_the_same_set(eval_inputs, eval_reference,
                                                           tmp_path, capsys):
    out = tmp_path / "out"
    status = run_killed("soundfile", "write", 3, "espnet2_gram.bin.make_eval_set",
                        eval_args(eval_inputs, out))
    assert status == -signal.SIGKILL
    assert temps_under(out) and not (out / "wav.scp").exists()
    assert call(make_eval_set, *eval_args(eval_inputs, out), capsys=capsys)[0] == 0
    assert eval_outputs(out) == eval_reference
    assert not temps_under(out)


# --------------------------------------------------------------------------------------------
# Outputs are readable by the group the umask lets in

def produce(entry, tmp_path, capsys, inputs) -> Path:
    out = tmp_path / "out"
    if entry == "make_rir_bank":
        config = write_config(tmp_path / "bank.yaml", BANK)
        argv_list = [bank_args(config, out), ["--out_dir", out, "--merge", "true"]]
    elif entry == "format_data":
        argv_list = [format_args(make_data_dir(tmp_path, {"a": tone()}), out)]
    else:
        argv_list = [eval_args(inputs, out)]
    for argv in argv_list:
        assert call(ENTRY_POINTS[entry], *argv, capsys=capsys)[0] == 0
    return out


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664)], ids=["022", "002"])
def test_outputs_respect_the_umask(entry, umask, mode, eval_inputs, tmp_path, capsys):
    old = os.umask(umask)
    try:
        out = produce(entry, tmp_path, capsys, eval_inputs)
    finally:
        os.umask(old)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 4
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        p.name: oct(mode) for p in files}
