"""Kaldi-style data dirs written as a HEAR task: layout, labels, links or resampled copies,
metadata, an up-to-date task left alone, and bad splits."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from espnet2_gram.nat_hear.from_data import write_hear_task
from espnet2_gram.nat_hear.generate import read_task

FS = 8000


def data_dir(root, name, utts, fs=FS):
    d = root / name
    d.mkdir(parents=True)
    scp, labels = [], []
    for utt, label in utts:
        path = root / "audio" / f"{utt}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, np.zeros(fs // 2, "float32"), fs)
        scp.append(f"{utt} {path}\n")
        labels.append(f"{utt} {label}\n")
    (d / "wav.scp").write_text("".join(scp))
    (d / "utt2label").write_text("".join(labels))
    return d


def test_a_task_from_data_dirs(tmp_path):
    splits = {"train": data_dir(tmp_path, "tr", [("a1", "dog"), ("a2", "cat")]),
              "valid": data_dir(tmp_path, "va", [("b1", "dog")]),
              "test": data_dir(tmp_path, "te", [("c1", "cat"), ("c2", "dog bird")], fs=16000)}
    out = write_hear_task(splits, tmp_path / "task", "toy", FS)
    meta = json.loads((out / "task_metadata.json").read_text())
    assert (meta["task_name"], meta["embedding_type"], meta["split_mode"]) == (
        "toy", "scene", "trainvaltest")
    assert meta["sample_duration"] == 0.5
    task = read_task(out)  # HEAR's layout: labels and audio agree
    assert task["labels"]["test"] == {"c1.wav": ["cat"], "c2.wav": ["dog", "bird"]}
    assert os.path.islink(out / str(FS) / "train" / "a1.wav")
    resampled = out / str(FS) / "test" / "c1.wav"  # a 16-kHz source is written at 8 kHz
    assert not os.path.islink(resampled) and sf.info(str(resampled)).samplerate == FS
    assert (out / "labelvocabulary.csv").read_text() == "idx,label\n0,bird\n1,cat\n2,dog\n"
    stamp = (out / "task_metadata.json").stat().st_mtime_ns
    write_hear_task(splits, out, "toy", FS)  # up to date: left alone
    assert (out / "task_metadata.json").stat().st_mtime_ns == stamp
    (splits["valid"] / "utt2label").write_text("b1 cat\n")  # a changed list: rebuilt
    write_hear_task(splits, out, "toy", FS)
    assert read_task(out)["labels"]["valid"] == {"b1.wav": ["cat"]}
    assert not list(tmp_path.glob(".task.tmp"))


def test_bad_splits(tmp_path):
    d = data_dir(tmp_path, "tr", [("a1", "dog")])
    with pytest.raises(ValueError, match=r"splits \['test', 'train'\]: expected train, valid"):
        write_hear_task({"train": d, "test": d}, tmp_path / "task", "toy", FS)
    (d / "wav.scp").write_text(f"a1 {tmp_path / 'missing.wav'}\n")
    with pytest.raises(FileNotFoundError, match="missing.wav: audio file not found"):
        write_hear_task({"train": d, "valid": d, "test": d}, tmp_path / "task", "toy", FS)
    assert not (tmp_path / "task").exists()
