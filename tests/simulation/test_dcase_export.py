"""DCASE-format SELD export: metadata CSV I/O, simulated recordings, labels and physics."""

import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2_gram.simulation import dcase
from espnet2_gram.simulation.acoustics import foa_intensity_direction
from espnet2_gram.simulation.dcase import export_recordings, place_events
from espnet2_gram.downstream.localization.dcase_format import (DcaseRow, read_dcase_csv,
                                                               write_dcase_csv)
from espnet2_gram.simulation.geometry import angular_distance_deg, sph_to_cart
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling

DATA_FS = 16000
FS = 8000
HOP = FS // 10
CLASSES = ["beep", "chirp", "hiss"]


# ----------------------------------------------------------------------------- fixtures


def _burst(kind: str, seconds: float, rng) -> np.ndarray:
    t = np.arange(int(seconds * DATA_FS)) / DATA_FS
    if kind == "beep":
        x = np.sin(2 * np.pi * 700 * t)
    elif kind == "chirp":
        x = np.sin(2 * np.pi * (300 + 600 * t) * t)
    else:
        x = rng.standard_normal(len(t))
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return 0.3 * x * ramp


def _write_data_dir(root: Path, entries) -> Path:
    """entries: (utt, samples, label or None) -> data dir with wav.scp (+ utt2label)."""
    root.mkdir(parents=True)
    wav_lines, label_lines = [], []
    for utt, x, label in entries:
        path = root / f"{utt}.wav"
        sf.write(str(path), x.astype(np.float32), DATA_FS, subtype="PCM_16")
        wav_lines.append(f"{utt} {path}\n")
        if label is not None:
            label_lines.append(f"{utt} {label}\n")
    (root / "wav.scp").write_text("".join(wav_lines))
    if label_lines:
        (root / "utt2label").write_text("".join(label_lines))
    return root


@pytest.fixture
def data(tmp_path):
    """Events: 3 classes x 2 clips (burst of 0.5-1.1 s with 0.2 s of silence around);
    noise: 2 noise clips. Returns (events dir, noise dir)."""
    rng = np.random.default_rng(123)
    entries = []
    silence = np.zeros(int(0.2 * DATA_FS))
    for c, kind in enumerate(CLASSES):
        for k in range(2):
            burst = _burst(kind, 0.5 + 0.3 * k + 0.1 * c, rng)
            # A second label checks that only the first one is used.
            label = kind if k == 0 else f"{kind} extra_label"
            entries.append((f"{kind}{k}", np.concatenate([silence, burst, silence]), label))
    events = _write_data_dir(tmp_path / "events", entries)
    noises = [(f"noise{k}", 0.1 * rng.standard_normal(int((1.0 + k) * DATA_FS)), None)
              for k in range(2)]
    noise = _write_data_dir(tmp_path / "noise", noises)
    return events, noise


@pytest.fixture
def geoms(monkeypatch):
    """Cap the image-source order (speed; 0 = anechoic) and record every sampled room."""
    state = {"max_order": 2, "rooms": []}
    real = dcase.sample_room

    def sample_room(*args, **kwargs):
        geom = real(*args, **kwargs)
        geom.max_order = min(geom.max_order, state["max_order"])
        state["rooms"].append(geom)
        return geom

    monkeypatch.setattr(dcase, "sample_room", sample_room)
    return state


def _render(fmt="foa"):
    return RenderConfig(format=fmt, fs=FS, method="ism", max_rir_seconds=0.2)


def _sampling(**kwargs):
    base = dict(room_size_min=(4.0, 4.0, 2.8), room_size_max=(6.0, 5.0, 3.2), rt60=(0.2, 0.4),
                source_distance=(0.8, 1.8), num_noise_sources=(1, 2))
    base.update(kwargs)
    return RoomSampling(**base)


def _export(events, noise, out_root, num=2, **kwargs):
    options = dict(render=_render(), sampling=_sampling(), num_recordings=num,
                   duration_seconds=3.0, events_per_recording=(2, 4), max_polyphony=2,
                   seed=7, kaldi_dir=Path(out_root).parent / f"{Path(out_root).name}_kaldi")
    options.update(kwargs)
    return export_recordings(events, noise, out_root, "dev-train-sim", **options)


def _files(root: Path):
    return {p.relative_to(root): p for p in sorted(root.rglob("*")) if p.is_file()
            and p.suffix in (".wav", ".csv", ".txt")}


# ----------------------------------------------------------------------------- CSV


def test_csv_round_trip_5_and_6_columns(tmp_path):
    five = tmp_path / "five.csv"
    five.write_text("3,1,0,-30,10\n\n0,2,1,170.4,-20.6\n0,0,0, 180 ,90\n")
    rows = read_dcase_csv(five)
    assert rows == [(3, 1, 0, -30.0, 10.0, None), (0, 2, 1, 170.4, -20.6, None),
                    (0, 0, 0, 180.0, 90.0, None)]
    assert all(isinstance(r, DcaseRow) and r.distance is None for r in rows)
    out = tmp_path / "five_out.csv"
    write_dcase_csv(out, rows)
    # Sorted by frame, class, source; angles rounded (half away from zero); 5 columns kept.
    assert out.read_text() == "0,0,0,180,90\n0,2,1,170,-21\n3,1,0,-30,10\n"
    assert read_dcase_csv(out) == sorted((r[:3] + (round(r[3]), round(r[4]), None))
                                         for r in rows)

    six = tmp_path / "six.csv"
    six.write_text("1,4,2,-0.5,45.5,123.6\n1,4,0,90,0,80\n0,12,1,-179,-89,1000\n")
    rows = read_dcase_csv(six)
    assert rows[0] == (1, 4, 2, -0.5, 45.5, 123.6)
    out = tmp_path / "six_out.csv"
    write_dcase_csv(out, rows)
    assert out.read_text() == "0,12,1,-179,-89,1000\n1,4,0,90,0,80\n1,4,2,-1,46,124\n"
    again = tmp_path / "again.csv"
    write_dcase_csv(again, read_dcase_csv(out))
    assert again.read_bytes() == out.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves nothing behind


def test_csv_cartesian_7_columns_read_as_directions(tmp_path):
    # The DCASE baselines' prediction rows: frame, class, track, x, y, z, distance; vectors of
    # any length (ACCDOA outputs), direction only.
    path = tmp_path / "pred.csv"
    path.write_text("0,1,0,0.0,2.0,0.0,0\n3,0,1,0.5,0,0.5,150.5\n4,2,0,-1,-1e-300,0,0\n")
    rows = read_dcase_csv(path)
    assert [r[:3] for r in rows] == [(0, 1, 0), (3, 0, 1), (4, 2, 0)]
    np.testing.assert_allclose([r[3:] for r in rows], [(90, 0, 0), (0, 45, 150.5), (-180, 0, 0)],
                               rtol=0, atol=1e-12)


def test_csv_full_precision_and_cartesian_writing(tmp_path):
    rows = [(2, 0, 0, 12.345678901234567, -7.654321), (0, 1, 1, -179.99999, 89.5, 123.456)]
    exact, cart = tmp_path / "exact.csv", tmp_path / "cart.csv"
    write_dcase_csv(exact, rows[:1], exact=True)
    assert exact.read_text() == "2,0,0,12.345678901234567,-7.654321\n"
    assert read_dcase_csv(exact) == [DcaseRow(*rows[0])]  # bit-exact round trip
    write_dcase_csv(cart, rows[:1], cartesian=True)
    fields = cart.read_text().strip().split(",")
    assert len(fields) == 7 and fields[-1] == "0.0"  # no distance: 0, as the baseline writes
    back = read_dcase_csv(cart)[0]
    assert (back.azimuth, back.elevation) == pytest.approx(rows[0][3:], abs=1e-12)
    write_dcase_csv(cart, rows[1:], cartesian=True)
    back = read_dcase_csv(cart)[0]
    assert (back.azimuth, back.elevation, back.distance) == pytest.approx(rows[1][3:], abs=1e-9)


def test_csv_frames_beyond_the_recording(tmp_path):
    path = tmp_path / "pred.csv"
    path.write_text("0,1,0,10,20\n29,1,0,10,20\n30,1,0,10,20\n")
    assert len(read_dcase_csv(path, num_frames=31)) == 3
    with pytest.raises(ValueError, match=r"pred.csv:3: frame 30 is beyond the recording \(30"):
        read_dcase_csv(path, num_frames=30)


@pytest.mark.parametrize("text, bad_line, words", [
    ("0,1,0,10,20\n0,1,0,10\n", 2, "expected 5 or 6"),
    ("0,1,0,10,20,0,0,0\n", 1, r"expected 5 or 6 .* or 7 \(frame, class, source, x, y, z"),
    ("0,1,0,1,0,0,0\n0,1,0,10,20\n", 2, "5 fields where the previous lines have 7"),
    ("0,1,0,1,zero,0,0\n", 1, "bad y 'zero'"),
    ("0,1,0,1,0,nan,0\n", 1, "bad z 'nan'"),
    ("0,1,0,0,0,0.0,0\n", 1, "x, y, z = 0, 0, 0 has no direction"),
    ("0,1,0,1,0,0,-1\n", 1, "distance '-1' must be >= 0"),
    ("0,1,0,ten,20\n", 1, "bad azimuth 'ten'"),
    ("0,1,0,10,20\n\nx,1,0,10,20\n", 3, "bad frame"),
    ("0,1,0,10,20,30\n1,1,0,200,20,30\n", 2, "azimuth"),
    ("0,1,0,10,95\n", 1, "elevation"),
    ("0,-1,0,10,20\n", 1, "class index"),
    ("0,1,0,10,20\n1,1,0,10,20,100\n", 2, "fields where the previous lines have 5"),
    ("0,1,0,10,20,-5\n", 1, "distance"),
])
def test_csv_malformed_line_names_file_and_line(tmp_path, text, bad_line, words):
    path = tmp_path / "meta.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"meta.csv:{bad_line}: .*{words}"):
        read_dcase_csv(path)


def test_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_dcase_csv(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="with and without a distance"):
        write_dcase_csv(tmp_path / "x.csv", [(0, 0, 0, 1, 2, 3), (0, 0, 1, 1, 2)])
    with pytest.raises(ValueError, match="integers >= 0"):
        write_dcase_csv(tmp_path / "x.csv", [(-1, 0, 0, 1, 2)])
    assert not (tmp_path / "x.csv").exists()


def test_place_events_respects_tracks():
    rng = np.random.default_rng(0)
    for _ in range(50):
        counts = list(rng.integers(1, 15, size=int(rng.integers(1, 8))))
        polyphony = int(rng.integers(1, 4))
        placed = place_events(counts, 30, polyphony, rng)
        assert placed[0] is not None  # the first event always fits
        busy = np.zeros(30, dtype=int)
        per_track = defaultdict(list)
        for count, p in zip(counts, placed):
            if p is None:
                continue
            track, onset = p
            assert 0 <= track < polyphony and 0 <= onset and onset + count <= 30
            per_track[track].append((onset, onset + count))
            busy[onset:onset + count] += 1
        assert busy.max() <= polyphony
        for spans in per_track.values():
            spans.sort()
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


# ----------------------------------------------------------------------------- export


def test_export_foa_layout_labels_and_kaldi_dir(data, geoms, tmp_path):
    events, noise = data
    out = tmp_path / "dcase"
    summary = _export(events, noise, out)
    assert summary["written"] == 2 and summary["skipped"] == 0
    assert summary["unusable_audio"] == {} and summary["classes"] == CLASSES
    assert (out / "classes.txt").read_text() == "0 beep\n1 chirp\n2 hiss\n"
    assert len(geoms["rooms"]) == 2

    num_frames = 30
    total_events = 0
    for r, geom in enumerate(geoms["rooms"]):
        name = f"fold1_room{r:03d}_mix001"
        wav = out / "foa_dev" / "dev-train-sim" / f"{name}.wav"
        info = sf.info(str(wav))
        assert (info.channels, info.samplerate, info.frames) == (4, FS, 3 * FS)
        assert info.subtype == "PCM_16"
        audio, _ = sf.read(str(wav), dtype="float64")
        assert 0 < np.abs(audio).max() <= 0.99 + 1e-4

        rows = read_dcase_csv(out / "metadata_dev" / "dev-train-sim" / f"{name}.csv")
        assert rows and all(r.distance is not None for r in rows)
        assert rows == sorted(rows, key=lambda row: row[:3])
        per_frame = Counter(row.frame for row in rows)
        assert max(per_frame.values()) <= 2  # max_polyphony
        assert all(0 <= row.frame < num_frames for row in rows)
        assert all(0 <= row.class_index < len(CLASSES) for row in rows)
        targets = geom.directions()[: geom.num_targets]
        by_source = defaultdict(list)
        for row in rows:
            by_source[row.source].append(row)
        assert sorted(by_source) == list(range(len(by_source)))
        assert len(by_source) <= geom.num_targets
        total_events += len(by_source)
        positions = set()
        for source, srows in by_source.items():
            frames = [row.frame for row in srows]
            # One event per source index: a contiguous run of frames, one class, one position.
            assert frames == list(range(frames[0], frames[-1] + 1))
            assert len({row[1] for row in srows}) == 1
            assert len({row[3:] for row in srows}) == 1
            az, el, dist = srows[0][3:]
            match = [i for i, (a, e, d) in enumerate(targets)
                     if (round(a), round(e), round(100 * d)) == (az, el, dist)]
            assert len(match) == 1, (srows[0], targets)
            positions.add(match[0])
            # Events have 0.5-1.1 s bursts: 5 to 12 labelled frames.
            assert 5 <= len(frames) <= 12
        assert len(positions) == len(by_source)  # every event has its own source
    assert summary["events"] == total_events

    kaldi = tmp_path / "dcase_kaldi"
    for table in ("wav.scp", "utt2metadata", "utt2num_samples", "utt2format", "utt2fs"):
        lines = (kaldi / table).read_text().splitlines()
        assert len(lines) == 2, table
    wav_scp, meta = (dict(line.split(maxsplit=1) for line in (kaldi / name).read_text()
                          .splitlines()) for name in ("wav.scp", "utt2metadata"))
    for utt, path in wav_scp.items():
        assert Path(path).is_absolute() and Path(path).is_file()
        assert Path(meta[utt]).is_absolute() and Path(meta[utt]).stem == Path(path).stem
    assert set((kaldi / "utt2format").read_text().split()[1::2]) == {"foa"}
    assert set((kaldi / "utt2num_samples").read_text().split()[1::2]) == {str(3 * FS)}


def test_foa_direction_matches_labels_in_anechoic_room(data, geoms, tmp_path):
    """One event, no noise source, no reflection: the FOA intensity over the labelled frames
    points at the labelled azimuth / elevation, and the labels cover the burst."""
    events, noise = data
    geoms["max_order"] = 0
    out = tmp_path / "anechoic"
    sampling = _sampling(num_noise_sources=(0, 0), source_elevation=(-45.0, 60.0))
    # Hot events: every recording is scaled down to a peak of 0.99 (never clipped).
    summary = _export(events, noise, out, num=3, sampling=sampling, events_per_recording=(1, 1),
                      event_level_dbfs=(-3.0, 0.0))
    assert summary["events"] == 3 and summary["limited_peaks"] == 3
    for r in range(3):
        name = f"fold1_room{r:03d}_mix001"
        audio, _ = sf.read(str(out / "foa_dev" / "dev-train-sim" / f"{name}.wav"),
                           dtype="float64")
        rows = read_dcase_csv(out / "metadata_dev" / "dev-train-sim" / f"{name}.csv")
        first, last = rows[0].frame, rows[-1].frame
        assert 0.985 < np.abs(audio).max() <= 0.99 + 1e-4
        active = audio[first * HOP:(last + 1) * HOP].T
        az, el = foa_intensity_direction(active)
        error = angular_distance_deg(sph_to_cart(az, el), sph_to_cart(rows[0][3], rows[0][4]))
        assert error < 5.0, (az, el, rows[0])
        # The dry clip is silent outside its labelled span: so is the anechoic recording
        # (allowing the few samples of the propagation delay, under 10 ms here).
        energy = np.sum(np.square(audio), axis=1)
        inside = energy[first * HOP:(last + 1) * HOP].sum()
        assert energy[: first * HOP].sum() < 1e-3 * inside
        assert energy[(last + 1) * HOP + FS // 100:].sum() < 1e-3 * inside


def test_snr_against_summed_event_images(data, geoms, tmp_path):
    """Same scenes with and without noise: the difference is the spatial noise, whose power
    (summed over channels) is the drawn SNR below that of the summed event images."""
    events, _ = data
    rng = np.random.default_rng(5)
    noise = _write_data_dir(tmp_path / "long_noise",
                            [(f"n{k}", 0.1 * rng.standard_normal(4 * DATA_FS), None)
                             for k in range(2)])
    options = dict(sampling=_sampling(num_noise_sources=(2, 3)), snr_range=(12.0, 12.0))
    clean = _export(events, None, tmp_path / "clean", **options)
    noisy = _export(events, noise, tmp_path / "noisy", **options)
    assert clean["limited_peaks"] == noisy["limited_peaks"] == 0
    for r in range(2):
        rel = f"foa_dev/dev-train-sim/fold1_room{r:03d}_mix001.wav"
        x, _ = sf.read(str(tmp_path / "clean" / rel), dtype="float64")
        y, _ = sf.read(str(tmp_path / "noisy" / rel), dtype="float64")
        snr = 10 * np.log10(np.sum(x ** 2) / np.sum((y - x) ** 2))
        assert abs(snr - 12.0) < 0.1, snr
        # Joint scaling keeps the inter-channel balance: noise is present on every channel.
        assert np.all(np.sum((y - x) ** 2, axis=0) > 0)
        meta = f"metadata_dev/dev-train-sim/fold1_room{r:03d}_mix001.csv"
        assert (tmp_path / "clean" / meta).read_bytes() == (tmp_path / "noisy" / meta).read_bytes()


def test_deterministic_independent_and_resumable(data, geoms, tmp_path):
    events, noise = data
    a, b = tmp_path / "a", tmp_path / "b"
    _export(events, noise, a, num=2)
    _export(events, noise, b, num=3)  # recording r depends on (seed, r) only
    files_a = _files(a)
    assert len(files_a) == 5  # 2 wav + 2 csv + classes.txt
    for rel, path in files_a.items():
        assert path.read_bytes() == (b / rel).read_bytes(), rel

    old = 1_000_000_000
    for path in files_a.values():
        os.utime(path, ns=(old, old))
    victim = a / "metadata_dev" / "dev-train-sim" / "fold1_room001_mix001.csv"
    victim.unlink()
    summary = _export(events, noise, a, num=2)
    assert (summary["written"], summary["skipped"]) == (1, 1)
    rewritten = {rel for rel, path in _files(a).items() if path.stat().st_mtime_ns != old}
    assert rewritten == {victim.relative_to(a),
                         Path("foa_dev/dev-train-sim/fold1_room001_mix001.wav")}
    for rel, path in _files(a).items():
        assert path.read_bytes() == (b / rel).read_bytes(), rel
    assert len((tmp_path / "a_kaldi" / "wav.scp").read_text().splitlines()) == 2

    other = tmp_path / "c"
    _export(events, noise, other, num=1, seed=8)
    assert (other / "foa_dev/dev-train-sim/fold1_room000_mix001.wav").read_bytes() != \
        (a / "foa_dev/dev-train-sim/fold1_room000_mix001.wav").read_bytes()


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_polyphony=0), "--max_polyphony"),
    (dict(num_recordings=0), "--num_recordings"),
    (dict(duration_seconds=0.05), "--duration_seconds .* shorter than one frame"),
    (dict(events_per_recording=(3, 2)), "--events_per_recording"),
    (dict(events_per_recording=(0, 2)), "--events_per_recording"),
    (dict(snr_range=(10, 5)), "--snr_range"),
    (dict(frame_seconds=0.00001), "--frame_seconds"),
    (dict(label_threshold_db=10), "--label_threshold_db"),
    (dict(max_event_seconds=0.01), "--max_event_seconds"),
    (dict(split="a/b"), "--split"),
])
def test_bad_arguments(data, tmp_path, kwargs, message):
    events, noise = data
    split = kwargs.pop("split", "dev-train-sim")
    options = dict(render=_render(), sampling=_sampling(), num_recordings=1, duration_seconds=3.0)
    options.update(kwargs)
    with pytest.raises(ValueError, match=message):
        export_recordings(events, noise, tmp_path / "out", split, **options)
    assert not (tmp_path / "out").exists()


def test_bad_data_dirs(data, geoms, tmp_path):
    events, noise = data
    options = dict(render=_render(), sampling=_sampling(), num_recordings=1, duration_seconds=3.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "wav.scp").write_text("")
    (empty / "utt2label").write_text("")
    with pytest.raises(ValueError, match="--data_dir .*empty"):
        export_recordings(empty, noise, tmp_path / "o", "s", **options)
    with pytest.raises(ValueError, match="--noise_dir .*nowhere"):
        export_recordings(events, tmp_path / "nowhere", tmp_path / "o", "s", **options)
    (events / "utt2label").unlink()
    with pytest.raises(FileNotFoundError, match="--data_dir .*utt2label"):
        export_recordings(events, noise, tmp_path / "o", "s", **options)


def test_unusable_audio_skipped_and_options_guard(data, geoms, tmp_path):
    events, noise = data
    # Silent clips and missing files (8 of 14 utterances) are skipped and counted.
    sf.write(str(events / "quiet.wav"), np.zeros(DATA_FS, dtype=np.float32), DATA_FS)
    with open(events / "wav.scp", "a") as f:
        f.writelines(f"quiet{k} {events / 'quiet.wav'}\ngone{k} {events / 'gone.wav'}\n"
                     for k in range(4))
    with open(events / "utt2label", "a") as f:
        f.writelines(f"quiet{k} beep\ngone{k} beep\n" for k in range(4))
    out = tmp_path / "out"
    options = dict(num=2, events_per_recording=(6, 6), max_polyphony=3, max_event_seconds=0.5)
    summary = _export(events, noise, out, **options)
    assert set(summary["unusable_audio"]) == {"silent", "unreadable"}
    assert summary["written"] == 2 and summary["events"] + summary["dropped_events"] == 12
    for csv_path in (out / "metadata_dev" / "dev-train-sim").glob("*.csv"):
        rows = read_dcase_csv(csv_path)
        assert max(Counter(row.frame for row in rows).values()) <= 3
        # Clips cropped to 0.5 s: at most 5 labelled frames per event.
        assert max(Counter(row.source for row in rows).values()) <= 5
    options["max_polyphony"] = 2
    with pytest.raises(ValueError, match="other options .*max_polyphony"):
        _export(events, noise, out, **options)


# ----------------------------------------------------------------------------- command line


def test_command_line_yaml_and_overrides(data, geoms, tmp_path, capsys):
    from espnet2_gram.bin import export_dcase
    from espnet2_gram.utils.cli import run

    events, noise = data
    config = tmp_path / "export.yaml"
    config.write_text(
        "sampling:\n  room_size_min: [4.0, 4.0, 2.8]\n  room_size_max: [6.0, 5.0, 3.2]\n"
        "  rt60: [0.2, 0.3]\n  source_distance: [0.8, 1.5]\n  num_noise_sources: [1, 1]\n"
        f"render:\n  format: binaural\n  fs: {FS}\n  method: ism\n  max_rir_seconds: 0.2\n"
        "dcase:\n  num_recordings: 5\n  duration_seconds: 2.0\n  events_per_recording: [1, 2]\n"
    )
    out = tmp_path / "cli"
    argv = ["--data_dir", str(events), "--noise_dir", str(noise), "--out_root", str(out),
            "--split", "dev-test-sim", "--kaldi_dir", str(tmp_path / "kaldi"),
            "--config", str(config), "--num_recordings", "1", "--duration_seconds", "2.5"]
    export_dcase.main(argv)
    wavs = sorted((out / "binaural_dev" / "dev-test-sim").glob("*.wav"))
    assert [w.name for w in wavs] == ["fold1_room000_mix001.wav"]  # CLI overrides YAML
    info = sf.info(str(wavs[0]))
    assert (info.channels, info.samplerate, info.frames) == (2, FS, int(2.5 * FS))
    assert (tmp_path / "kaldi" / "utt2format").read_text().split()[1] == "binaural"

    # The FOA version of the same scenes shares the metadata (identical CSVs).
    csv_path = out / "metadata_dev" / "dev-test-sim" / "fold1_room000_mix001.csv"
    before = csv_path.read_bytes()
    export_dcase.main(argv + ["--format", "foa", "--kaldi_dir", str(tmp_path / "kaldi_foa")])
    assert sf.info(str(out / "foa_dev" / "dev-test-sim" / "fold1_room000_mix001.wav")).channels == 4
    assert csv_path.read_bytes() == before

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run(export_dcase.main, argv[:-4] + ["--max_polyphony", "0"])
    assert exit_info.value.code == 1
    assert "ERROR: --max_polyphony" in capsys.readouterr().err
    config.write_text("dcase:\n  max_polyphonyy: 2\n")
    with pytest.raises(SystemExit):
        run(export_dcase.main, argv)
    assert "max_polyphonyy" in capsys.readouterr().err


def test_command_line_import_is_light():
    code = ("import sys, espnet2_gram.bin.export_dcase; "
            "bad = [m for m in ('torch', 'espnet2', 'pyroomacoustics') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
