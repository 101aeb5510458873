"""Preparers of the real corpora on tiny copies in their published layouts, downloads
(local file:// archives, a loopback HTTP server, a refused loopback port), the command
line and local/data.sh. Nothing here reaches beyond 127.0.0.1."""

import http.server
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2_gram.bin.prepare_corpus import main as prepare_main
from espnet2_gram.corpora import audioset, esc50, speech_commands, starss23, wham
from espnet2_gram.corpora.audioset import prepare_audioset
from espnet2_gram.corpora.download import DownloadError, download, download_and_extract
from espnet2_gram.corpora.esc50 import prepare_esc50
from espnet2_gram.corpora.speech_commands import prepare_speech_commands
from espnet2_gram.corpora.starss23 import prepare_starss23
from espnet2_gram.corpora.wham import prepare_wham
from espnet2_gram.utils.datadir import read_data_dir

REPO = Path(__file__).resolve().parents[2]
REFUSED = "http://127.0.0.1:9/corpus.zip"  # the discard port: refused at once on loopback
PREPARERS = {
    "audioset": prepare_audioset, "wham": prepare_wham, "esc50": prepare_esc50,
    "speech_commands": prepare_speech_commands, "starss23": prepare_starss23,
}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Keep urllib from sending loopback requests to a proxy."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def write_wav(path: Path, channels: int = 1, fs: int = 16000, seconds: float = 0.1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(fs * seconds)) / fs
    x = 0.1 * np.sin(2 * np.pi * 440 * t)[:, None] * np.ones(channels)
    sf.write(str(path), x, fs)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def tables_of(data_dir: Path) -> dict:
    tables = read_data_dir(data_dir)
    for path in tables["wav.scp"].values():
        assert Path(path).is_absolute() and Path(path).is_file()
    return tables


# ----------------------------------------------------------------------------- ESC-50
ESC50_HEADER = "filename,fold,target,category,esc10,src_file,take\n"


@pytest.fixture
def esc50_copy(tmp_path):
    root = tmp_path / "src" / "ESC-50-master"
    for name in ("1-100032-A-0.wav", "1-100038-A-14.wav", "2-109505-A-21.wav"):
        write_wav(root / "audio" / name)
    write_text(root / "meta" / "esc50.csv", ESC50_HEADER + (
        "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
        "1-100038-A-14.wav,1,14,chirping_birds,False,100038,A\n"
        "2-109505-A-21.wav,2,21,sneezing,False,109505,A\n"
        "5-9032-A-0.wav,5,0,dog,True,9032,A\n"))  # listed, but its audio is missing
    return root


def test_esc50(esc50_copy, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    outs = prepare_esc50(tmp_path / "data", src_dir=esc50_copy.parent)
    assert [p.name for p in outs] == ["esc50", "esc50_fold1", "esc50_fold2"]
    full = tables_of(tmp_path / "data" / "esc50")
    assert full["utt2label"] == {"esc50_1-100032-A-0": "dog",
                                 "esc50_1-100038-A-14": "chirping_birds",
                                 "esc50_2-109505-A-21": "sneezing"}
    assert full["utt2fold"] == {"esc50_1-100032-A-0": "1", "esc50_1-100038-A-14": "1",
                                "esc50_2-109505-A-21": "2"}
    assert set(full["utt2num_samples"].values()) == {"1600"}
    assert full["wav.scp"]["esc50_1-100032-A-0"] == str(esc50_copy / "audio" / "1-100032-A-0.wav")
    fold2 = tables_of(tmp_path / "data" / "esc50_fold2")
    assert fold2["utt2label"] == {"esc50_2-109505-A-21": "sneezing"}
    assert "skipped 1 missing" in caplog.text and "5-9032-A-0.wav" in caplog.text
    # the corpus folder itself is accepted too
    prepare_esc50(tmp_path / "data2", src_dir=esc50_copy)
    assert read_data_dir(tmp_path / "data2" / "esc50") == full


def test_esc50_bad_inputs(esc50_copy, tmp_path):
    meta = esc50_copy / "meta" / "esc50.csv"
    meta.write_text(ESC50_HEADER + "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
                    "1-100038-A-14.wav,one,14,chirping_birds,False,100038,A\n")
    with pytest.raises(ValueError, match=r"esc50\.csv:3: bad fold 'one'"):
        prepare_esc50(tmp_path / "data", src_dir=esc50_copy)
    assert not (tmp_path / "data").exists()
    meta.write_text("filename,target\n")
    with pytest.raises(ValueError, match=r"esc50\.csv:1: header lacks"):
        prepare_esc50(tmp_path / "data", src_dir=esc50_copy)
    meta.unlink()
    with pytest.raises(FileNotFoundError, match=r"meta/esc50\.csv"):
        prepare_esc50(tmp_path / "data", src_dir=esc50_copy)
    with pytest.raises(FileNotFoundError, match="--src_dir"):
        prepare_esc50(tmp_path / "data", src_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="--download true"):
        prepare_esc50(tmp_path / "data")


# ----------------------------------------------------------------------------- WHAM!
def test_wham(tmp_path):
    root = tmp_path / "src" / "wham_noise"
    for split in ("tr", "cv", "tt"):
        for i in range(2):
            write_wav(root / split / f"01{split}010{i}_1.9857_20ga010m_-1.9857.wav", channels=2)
    write_text(root / "metadata" / "noise_meta_tr.csv", "utterance_id,noise_file\n")
    outs = prepare_wham(tmp_path / "data", src_dir=root.parent)
    assert [p.name for p in outs] == ["wham_noise_tr", "wham_noise_cv", "wham_noise_tt"]
    cv = tables_of(tmp_path / "data" / "wham_noise_cv")
    assert sorted(cv["wav.scp"]) == ["wham_cv_01cv0100_1.9857_20ga010m_-1.9857",
                                     "wham_cv_01cv0101_1.9857_20ga010m_-1.9857"]
    assert set(cv["utt2num_samples"].values()) == {"1600"}
    assert "utt2label" not in cv
    shutil.rmtree(root / "tt")
    with pytest.raises(FileNotFoundError, match=r"wham_noise/tt"):
        prepare_wham(tmp_path / "data", src_dir=root)


# ----------------------------------------------------------------------------- Speech Commands
@pytest.fixture
def speech_commands_copy(tmp_path):
    root = tmp_path / "speech_commands_v0.02"
    for rel in ("yes/0a7c2a8d_nohash_0.wav", "yes/0a7c2a8d_nohash_1.wav",
                "yes/0b09edd3_nohash_0.wav", "no/0a7c2a8d_nohash_0.wav",
                "no/0c40e715_nohash_0.wav", "backward/0165e0e8_nohash_0.wav",
                "_background_noise_/white_noise.wav", "_background_noise_/running_tap.wav"):
        write_wav(root / rel)
    write_text(root / "validation_list.txt",
               "yes/0b09edd3_nohash_0.wav\nno/0c40e715_nohash_0.wav\n")
    write_text(root / "testing_list.txt",
               "no/0a7c2a8d_nohash_0.wav\nbackward/ffffffff_nohash_0.wav\n")  # 2nd is missing
    write_text(root / "LICENSE", "CC-BY-4.0\n")
    return root


def test_speech_commands(speech_commands_copy, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    outs = prepare_speech_commands(tmp_path / "data", src_dir=speech_commands_copy)
    assert [p.name for p in outs] == ["speechcommands_train", "speechcommands_valid",
                                      "speechcommands_test", "speechcommands_noise"]
    train = tables_of(tmp_path / "data" / "speechcommands_train")
    assert train["utt2label"] == {
        "speechcommands_backward_0165e0e8_nohash_0": "backward",
        "speechcommands_yes_0a7c2a8d_nohash_0": "yes",
        "speechcommands_yes_0a7c2a8d_nohash_1": "yes",
    }
    valid = tables_of(tmp_path / "data" / "speechcommands_valid")
    assert valid["utt2label"] == {"speechcommands_no_0c40e715_nohash_0": "no",
                                  "speechcommands_yes_0b09edd3_nohash_0": "yes"}
    test = tables_of(tmp_path / "data" / "speechcommands_test")
    assert test["utt2label"] == {"speechcommands_no_0a7c2a8d_nohash_0": "no"}
    assert "skipped 1 missing" in caplog.text
    noise = tables_of(tmp_path / "data" / "speechcommands_noise")
    assert sorted(noise["wav.scp"]) == ["speechcommands_noise_running_tap",
                                        "speechcommands_noise_white_noise"]


def test_speech_commands_bad_lists(speech_commands_copy, tmp_path):
    (speech_commands_copy / "testing_list.txt").write_text("no/0a7c2a8d_nohash_0.wav\nno file\n")
    with pytest.raises(ValueError, match=r"testing_list\.txt:2"):
        prepare_speech_commands(tmp_path / "data", src_dir=speech_commands_copy)
    (speech_commands_copy / "testing_list.txt").write_text("yes/0b09edd3_nohash_0.wav\n")
    with pytest.raises(ValueError, match="in both"):
        prepare_speech_commands(tmp_path / "data", src_dir=speech_commands_copy)
    (speech_commands_copy / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"testing_list\.txt"):
        prepare_speech_commands(tmp_path / "data", src_dir=speech_commands_copy)


# ----------------------------------------------------------------------------- STARSS23
@pytest.fixture
def starss23_copy(tmp_path):
    root = tmp_path / "STARSS23"
    recordings = {"dev-train-sony/fold3_room21_mix001": "10,1,0,-50,10\n11,1,0,-48,10\n",
                  "dev-train-tau/fold3_room4_mix002": "3,12,1,170,-20,150\n",
                  "dev-test-sony/fold4_room23_mix001": "0,0,0,0,0\n"}
    for name, rows in recordings.items():
        for fmt in ("foa", "mic"):
            write_wav(root / f"{fmt}_dev" / f"{name}.wav", channels=4, fs=24000)
        write_text(root / "metadata_dev" / f"{name}.csv", rows)
    # metadata whose recording is missing: skipped and counted
    write_text(root / "metadata_dev" / "dev-test-tau/fold4_room2_mix009.csv", "1,2,0,10,10\n")
    return root


@pytest.mark.parametrize("fmt", ["foa", "mic"])
def test_starss23(starss23_copy, tmp_path, caplog, fmt):
    caplog.set_level(logging.INFO)
    outs = prepare_starss23(tmp_path / "data", src_dir=starss23_copy, fmt=fmt)
    assert [p.name for p in outs] == [f"starss23_{fmt}_train", f"starss23_{fmt}_test"]
    train = tables_of(tmp_path / "data" / f"starss23_{fmt}_train")
    assert sorted(train["wav.scp"]) == [f"starss23_{fmt}_fold3_room21_mix001",
                                        f"starss23_{fmt}_fold3_room4_mix002"]
    utt = f"starss23_{fmt}_fold3_room21_mix001"
    assert train["wav.scp"][utt] == str(
        starss23_copy / f"{fmt}_dev" / "dev-train-sony" / "fold3_room21_mix001.wav")
    assert train["utt2metadata"][utt] == str(
        starss23_copy / "metadata_dev" / "dev-train-sony" / "fold3_room21_mix001.csv")
    assert set(train["utt2num_samples"].values()) == {"2400"}
    assert set(train["utt2fs"].values()) == {"24000"}
    test = tables_of(tmp_path / "data" / f"starss23_{fmt}_test")
    assert list(test["wav.scp"]) == [f"starss23_{fmt}_fold4_room23_mix001"]
    assert "skipped 1 missing" in caplog.text


def test_starss23_bad_inputs(starss23_copy, tmp_path):
    with pytest.raises(ValueError, match="--format"):
        prepare_starss23(tmp_path / "data", src_dir=starss23_copy, fmt="binaural")
    csv_path = starss23_copy / "metadata_dev" / "dev-train-tau" / "fold3_room4_mix002.csv"
    csv_path.write_text("3,12,1,170,-20\n4,12,1,north,-20\n")
    with pytest.raises(ValueError, match=r"fold3_room4_mix002\.csv:2: bad azimuth 'north'"):
        prepare_starss23(tmp_path / "data", src_dir=starss23_copy)
    csv_path.write_text("3,12,1\n")
    with pytest.raises(ValueError, match=r"fold3_room4_mix002\.csv:1: expected 5 or 6 fields"):
        prepare_starss23(tmp_path / "data", src_dir=starss23_copy)
    csv_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"fold3_room4_mix002\.wav: no metadata file"):
        prepare_starss23(tmp_path / "data", src_dir=starss23_copy)
    assert not (tmp_path / "data").exists()


# ----------------------------------------------------------------------------- AudioSet
SEGMENTS_HEADER = ("# Segments csv created Sun Mar  5 10:54:31 2017\n"
                   "# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4\n"
                   "# YTID, start_seconds, end_seconds, positive_labels\n")
CLASS_LABELS = ('index,mid,display_name\n0,/m/09x0r,"Speech"\n'
                '1,/m/05zppz,"Male speech, man speaking"\n74,/m/0bt9lr,"Dog"\n')


def test_audioset_audio_folder_with_official_csvs(tmp_path, caplog):
    src = tmp_path / "audioset"
    write_wav(src / "a" / "Y--0w1YA1Hm4_30.000_40.000.wav")
    write_wav(src / "b" / "c" / "-1nilez17Dg.flac")
    write_wav(src / "unlisted_clip.wav")
    write_text(src / "balanced_train_segments.csv", SEGMENTS_HEADER + (
        '--0w1YA1Hm4, 30.000, 40.000, "/m/09x0r,/m/0bt9lr"\n'
        '-1nilez17Dg, 0.000, 10.000, "/m/05zppz"\n'
        'x7pqDsLd4mY, 10.000, 20.000, "/m/09x0r"\n'))
    write_text(src / "class_labels_indices.csv", CLASS_LABELS)
    outs = prepare_audioset(tmp_path / "data", src_dir=src, name="bal_train",
                            download_dir=tmp_path / "dl")
    assert [p.name for p in outs] == ["audioset_bal_train"]
    tables = tables_of(outs[0])
    assert tables["utt2label"] == {"audioset_Y--0w1YA1Hm4_30.000_40.000": "/m/09x0r /m/0bt9lr",
                                   "audioset_-1nilez17Dg": "/m/05zppz"}
    assert "1 of 3 clips have no labels" in caplog.text

    (src / "balanced_train_segments.csv").unlink()
    tables = tables_of(prepare_audioset(tmp_path / "data", src_dir=src,
                                        download_dir=tmp_path / "dl")[0])
    assert "utt2label" not in tables and len(tables["wav.scp"]) == 3


def test_audioset_bad_csv_line(tmp_path):
    src = tmp_path / "audioset"
    write_wav(src / "Y--0w1YA1Hm4_30.000_40.000.wav")
    write_text(src / "eval_segments.csv",
               SEGMENTS_HEADER + '--0w1YA1Hm4, 30.000, forty, "/m/09x0r"\n')
    with pytest.raises(ValueError, match=r"eval_segments\.csv:4: bad end_seconds 'forty'"):
        prepare_audioset(tmp_path / "data", src_dir=src, download_dir=tmp_path / "dl")


def make_shard(path: Path, clips: dict) -> Path:
    """A WebDataset shard: ``<key>.flac`` plus ``<key>.json`` for each clip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, meta in clips.items():
            audio = io.BytesIO()
            sf.write(audio, np.full(1600, 0.1), 16000, format="FLAC")
            for name, data in ((f"{key}.flac", audio.getvalue()),
                               (f"{key}.json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_audioset_webdataset_shards(tmp_path, monkeypatch):
    src = tmp_path / "hf"
    make_shard(src / "unbal_train000.tar", {"--0w1YA1Hm4": {"label": ["Speech", "Dog"]},
                                            "-1nilez17Dg": {"label": ["/m/05zppz"]}})
    make_shard(src / "unbal_train001.tar", {"x7pqDsLd4mY": {"labels": ["/m/09x0r"]}})
    write_text(src / "class_labels_indices.csv", CLASS_LABELS)
    outs = prepare_audioset(tmp_path / "data", src_dir=src, name="unbal_train",
                            download_dir=tmp_path / "dl")
    tables = tables_of(outs[0])
    assert tables["utt2label"] == {"audioset_--0w1YA1Hm4": "/m/09x0r /m/0bt9lr",
                                   "audioset_-1nilez17Dg": "/m/05zppz",
                                   "audioset_x7pqDsLd4mY": "/m/09x0r"}
    shards = tmp_path / "dl" / "audioset" / "shards"
    assert sorted(p.name for p in shards.iterdir()) == ["unbal_train000", "unbal_train001"]
    assert all(Path(p).is_relative_to(shards.resolve()) for p in tables["wav.scp"].values())

    def no_extraction(*args, **kwargs):
        raise AssertionError("extracted again")

    monkeypatch.setattr(tarfile.TarFile, "extractall", no_extraction)
    assert tables_of(prepare_audioset(tmp_path / "data", src_dir=src, name="unbal_train",
                                      download_dir=tmp_path / "dl")[0]) == tables

    (src / "class_labels_indices.csv").unlink()
    with pytest.raises(ValueError, match="--class_labels_csv"):
        prepare_audioset(tmp_path / "data", src_dir=src, download_dir=tmp_path / "dl")


# ----------------------------------------------------------------------------- downloads
def test_download_failure_names_the_url_and_the_option(tmp_path):
    with pytest.raises(DownloadError) as err:
        download_and_extract(REFUSED, tmp_path / "dl", "my_option", timeout=5)
    assert REFUSED in str(err.value) and "--my_option <local dir>" in str(err.value)
    assert not (tmp_path / "dl" / "corpus.zip").exists()


@pytest.mark.parametrize("corpus", sorted(PREPARERS))
def test_every_corpus_reports_a_failed_download(tmp_path, corpus):
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1:9.*--src_dir <local dir>"):
        PREPARERS[corpus](tmp_path / "data", download=True, download_dir=tmp_path / "dl",
                          urls=[REFUSED])
    assert not (tmp_path / "data").exists()


def test_default_urls():
    for urls in (audioset.URLS, wham.URLS, esc50.URLS, speech_commands.URLS,
                 starss23.default_urls("foa"), starss23.default_urls("mic")):
        assert urls and all(u.startswith(("http://", "https://")) for u in urls)
    assert starss23.default_urls("mic")[0].endswith("/7880637/files/mic_dev.zip")


def make_archive(path: Path, files: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            for name, data in files.items():
                z.writestr(name, data)
    else:
        with tarfile.open(path, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["corpus.zip", "corpus.tar.gz"])
def test_local_archive_is_extracted_once(tmp_path, monkeypatch, name):
    archive = make_archive(tmp_path / "remote" / name,
                           {"corpus/a.txt": b"a", "corpus/sub/b.txt": b"b"})
    dest = tmp_path / "dl"
    (dest / f".{name}.extracting" / "stale").mkdir(parents=True)  # an interrupted extraction
    assert download_and_extract(archive.as_uri(), dest, "src_dir") == dest
    assert (dest / "corpus" / "sub" / "b.txt").read_bytes() == b"b"
    assert sorted(p.name for p in dest.iterdir()) == [f".{name}.done", "corpus"]

    def no_network(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    download_and_extract(archive.as_uri(), dest, "src_dir")


def test_archives_sharing_a_top_folder_are_merged_and_plain_files_kept(tmp_path):
    dest = tmp_path / "dl"
    for i in range(2):
        shard = make_archive(tmp_path / f"shard{i}.tar.gz", {f"audio/clip{i}.flac": b"x"})
        download_and_extract(shard.as_uri(), dest, "src_dir")
    assert sorted(p.name for p in (dest / "audio").iterdir()) == ["clip0.flac", "clip1.flac"]
    write_text(tmp_path / "labels.csv", "index,mid,display_name\n")
    download_and_extract((tmp_path / "labels.csv").as_uri(), dest, "src_dir")
    assert (dest / "labels.csv").read_text() == "index,mid,display_name\n"


def test_corrupt_archive_is_deleted_for_a_fresh_download(tmp_path):
    write_text(tmp_path / "remote" / "corpus.zip", "not a zip")
    with pytest.raises(DownloadError, match="not a zip or tar archive"):
        download_and_extract((tmp_path / "remote" / "corpus.zip").as_uri(), tmp_path / "dl",
                             "src_dir")
    assert list((tmp_path / "dl").iterdir()) == []


@pytest.fixture
def range_server():
    """A loopback HTTP server for one payload that honours 'Range: bytes=N-'."""
    payload = bytes(range(256)) * 64
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Range"))
            start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") else 0
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(payload) - start))
            self.end_headers()
            self.wfile.write(payload[start:])

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/data.bin", payload, seen
    server.shutdown()
    server.server_close()


def test_interrupted_download_resumes(tmp_path, range_server):
    url, payload, seen = range_server
    target = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(payload[:1000])
    download(url, target, "src_dir", timeout=5)
    assert target.read_bytes() == payload and seen == ["bytes=1000-"]
    assert not (tmp_path / "data.bin.part").exists()


# ----------------------------------------------------------------------------- command line
def run_cli(*args, **kwargs):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run([sys.executable, "-m", "espnet2_gram.bin.prepare_corpus", *args],
                          cwd=REPO, capture_output=True, text=True, env=env, **kwargs)


def test_cli_user_errors_are_one_line(tmp_path):
    for args, expected in (
        (["esc50", "--src_dir", str(tmp_path / "nowhere")], "--src_dir"),
        (["wham", "--download", "true", "--download_dir", str(tmp_path), "--url", REFUSED],
         "--src_dir <local dir>"),
    ):
        proc = run_cli(*args, "--data_dir", str(tmp_path / "data"))
        assert proc.returncode == 1, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and expected in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_cli_passes_the_options_on(esc50_copy, starss23_copy, tmp_path):
    data = tmp_path / "data"
    prepare_main(["esc50", "--src_dir", str(esc50_copy), "--data_dir", str(data)])
    assert len(read_data_dir(data / "esc50_fold1")["wav.scp"]) == 2
    prepare_main(["starss23", "--src_dir", str(starss23_copy), "--data_dir", str(data),
                  "--format", "mic"])
    assert all("/mic_dev/" in p for p in read_data_dir(data / "starss23_mic_test")["wav.scp"].values())

    src = tmp_path / "clips"
    write_wav(src / "Y--0w1YA1Hm4_30.000_40.000.wav")
    segments = write_text(tmp_path / "csv" / "eval_segments.csv",
                          SEGMENTS_HEADER + '--0w1YA1Hm4, 30.000, 40.000, "/m/09x0r"\n')
    prepare_main(["audioset", "--src_dir", str(src), "--data_dir", str(data), "--name", "eval",
                  "--segments_csv", str(segments), "--download_dir", str(tmp_path / "dl")])
    assert read_data_dir(data / "audioset_eval")["utt2label"] == {
        "audioset_Y--0w1YA1Hm4_30.000_40.000": "/m/09x0r"}


@pytest.mark.skipif(not (REPO / "egs2/gram/utils/parse_options.sh").is_file(),
                    reason="parse_options.sh not there yet")
def test_data_sh_dispatches_to_the_preparer(esc50_copy, tmp_path):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["local/data.sh", "--corpus", "esc50", "--src_dir", str(esc50_copy),
         "--data_dir", str(tmp_path / "data"), "--download_dir", str(tmp_path / "dl"),
         "--fs", "16000"], cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(read_data_dir(tmp_path / "data" / "esc50")["wav.scp"]) == 3
    proc = subprocess.run(["local/data.sh", "--corpus", "nope"], cwd=REPO, capture_output=True,
                          text=True, env=env)
    assert proc.returncode != 0 and "prepare_nope.sh" in proc.stderr
