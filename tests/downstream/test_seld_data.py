"""make_seld_chunks: a DCASE recording cut into 1-s chunks with ACCDOA track targets, resume,
the options guard and bad class indices."""

import json
import math
import re

import numpy as np
import pytest
import soundfile as sf

from espnet2_gram.bin.make_seld_data import main as make_seld_data_main
from espnet2_gram.downstream.localization import seld_data
from espnet2_gram.downstream.localization.seld_data import make_seld_chunks
from espnet2_gram.downstream.localization.dcase_format import read_dcase_csv, write_dcase_csv
from espnet2_gram.utils.fileio import read_kv

FS = 8000
SECONDS = 2.5
K = 3
S = math.sqrt(0.5)
C30 = math.sqrt(3) / 2
# frame, class, source, azimuth, elevation
ROWS = [
    (0, 1, 0, 0, 0),        # front
    (1, 1, 0, 0, 0),
    (3, 0, 0, 90, 0),       # left ...
    (3, 0, 1, -90, 45),     # ... and a second event of the same class: right, up
    (3, 2, 0, 180, 0),      # behind
    (12, 2, 0, 180, -30),   # chunk 1, frame 2: behind, below
    (24, 1, 0, 45, 0),      # chunk 2, frame 4: the last frame with audio
    (27, 1, 0, 0, 0),       # beyond the 2.5 s of audio: ignored
]
# expected (chunk, frame in chunk, track, class) -> unit vector (x front, y left, z up)
ACTIVE = {
    (0, 0, 0, 1): (1.0, 0.0, 0.0),
    (0, 1, 0, 1): (1.0, 0.0, 0.0),
    (0, 3, 0, 0): (0.0, 1.0, 0.0),
    (0, 3, 1, 0): (0.0, -S, S),
    (0, 3, 0, 2): (-1.0, 0.0, 0.0),
    (1, 2, 0, 2): (-C30, 0.0, -0.5),
    (2, 4, 0, 1): (S, S, 0.0),
}


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, (int(SECONDS * FS), 4)).astype(np.float32)
    wav = tmp_path / "rec1.wav"
    sf.write(wav, audio, FS, subtype="FLOAT")
    csv = tmp_path / "meta" / "rec1.csv"
    csv.parent.mkdir()
    write_dcase_csv(csv, ROWS)
    (d / "wav.scp").write_text(f"rec1 {wav}\n")
    (d / "utt2metadata").write_text(f"rec1 {csv}\n")
    return {"dir": d, "audio": audio, "csv": csv}


def test_chunks_tracks_and_bookkeeping(tmp_path, data):
    out = tmp_path / "seld"
    recordings = make_seld_chunks(data["dir"], out, num_classes=K, chunk_seconds=1.0,
                                  label_hop_seconds=0.1)
    assert recordings == {"rec1": 25}  # ceil(2.5 s / 0.1 s)
    assert read_kv(out / "recordings") == {"rec1": "25"}
    assert seld_data.read_recordings(out / "recordings") == recordings
    chunks = [f"rec1_chunk{i:04d}" for i in range(3)]
    assert read_kv(out / "utt2recording") == {chunks[0]: "rec1 0 10", chunks[1]: "rec1 10 10",
                                              chunks[2]: "rec1 20 10"}
    wavs, tracks = read_kv(out / "wav.scp"), read_kv(out / "tracks.scp")
    assert list(wavs) == chunks and list(tracks) == chunks
    # audio: 1-s pieces of the recording, the last one 0.5 s of audio then zeros
    for i, utt in enumerate(chunks):
        x, fs = sf.read(wavs[utt], dtype="float32", always_2d=True)
        assert fs == FS and x.shape == (FS, 4)
        seg = data["audio"][i * FS:(i + 1) * FS]
        np.testing.assert_allclose(x[:len(seg)], seg, atol=1.0 / 2 ** 15)
        assert np.all(x[len(seg):] == 0.0)
    assert len(data["audio"][2 * FS:]) == FS // 2
    # targets
    for i, utt in enumerate(chunks):
        t = np.load(tracks[utt])
        assert t.shape == (10, 3, K, 4) and t.dtype == np.float32
        want = np.zeros_like(t)
        for (chunk, frame, track, cls), xyz in ACTIVE.items():
            if chunk == i:
                want[frame, track, cls] = [1.0, *xyz]
        np.testing.assert_allclose(t, want, atol=1e-6)
    # the reference CSV is copied for scoring
    assert (out / "metadata" / "rec1.csv").read_text() == data["csv"].read_text()
    assert read_dcase_csv(out / "metadata" / "rec1.csv")[3].azimuth == -90
    assert json.loads((out / "seld.json").read_text()) == {
        "num_classes": K, "chunk_seconds": 1.0, "label_hop_seconds": 0.1, "fs": None}


def test_rerun_resumes_and_other_options_are_refused(tmp_path, data):
    out = tmp_path / "seld"
    argv = ["--data_dir", str(data["dir"]), "--out_dir", str(out), "--num_classes", str(K),
            "--chunk_seconds", "1"]
    make_seld_data_main(argv)
    first = out / "audio" / "rec1_chunk0000.wav"
    second = out / "audio" / "rec1_chunk0001.wav"
    marker = np.full((FS, 4), 0.25, dtype=np.float32)
    sf.write(first, marker, FS, subtype="FLOAT")  # stands for "written by the earlier run"
    second.unlink()  # as if the earlier run was killed before this chunk
    (out / "tracks" / "rec1_chunk0000.npy").write_bytes(b"broken")
    make_seld_data_main(argv)
    np.testing.assert_array_equal(sf.read(first, dtype="float32")[0], marker)  # kept
    x = sf.read(second, dtype="float32")[0]
    np.testing.assert_allclose(x, data["audio"][FS:2 * FS], atol=1.0 / 2 ** 15)
    assert np.load(out / "tracks" / "rec1_chunk0000.npy")[0, 0, 1, 0] == 1.0  # rewritten
    for changed in (["--chunk_seconds", "2"], ["--num_classes", "4"], ["--fs", "16000"]):
        with pytest.raises(ValueError, match=re.escape(f"{out} was made with other options")):
            make_seld_data_main(argv + changed)


def test_an_interrupted_run_also_guards_its_options(tmp_path, data, monkeypatch):
    out = tmp_path / "seld"
    calls = []

    def dying(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(args)
        return write_audio(*args, **kwargs)

    write_audio = seld_data.write_audio
    monkeypatch.setattr(seld_data, "write_audio", dying)
    with pytest.raises(KeyboardInterrupt):
        make_seld_chunks(data["dir"], out, num_classes=K, chunk_seconds=1.0)
    monkeypatch.undo()
    assert (out / "audio" / "rec1_chunk0000.wav").is_file()  # a 1-s chunk was left behind
    with pytest.raises(ValueError, match=re.escape(f"{out} was made with other options")):
        make_seld_chunks(data["dir"], out, num_classes=K, chunk_seconds=0.5)
    make_seld_chunks(data["dir"], out, num_classes=K, chunk_seconds=1.0)  # the same: resumes
    assert len(read_kv(out / "wav.scp")) == 3


def test_class_index_out_of_range_names_the_csv(tmp_path, data):
    with pytest.raises(ValueError, match=re.escape(f"{data['csv']}: class 2 but --num_classes 2")):
        make_seld_chunks(data["dir"], tmp_path / "seld", num_classes=2, chunk_seconds=1.0)


def test_chunk_must_be_whole_label_frames(tmp_path, data):
    with pytest.raises(ValueError, match="whole number of label frames"):
        make_seld_chunks(data["dir"], tmp_path / "seld", num_classes=K, chunk_seconds=1.05)


def test_read_recordings_names_file_and_key(tmp_path):
    path = tmp_path / "recordings"
    path.write_text("rec1 25\nrec2 2.5\n")
    with pytest.raises(seld_data.DataDirError, match=f"{path}: rec2: expected 'frames', got '2.5'"):
        seld_data.read_recordings(path)
