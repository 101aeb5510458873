"""FSD50K preparer on a tiny copy in the published layout: the three data dirs, multi-label
lines, the dev val split, bad inputs, the refused download, the command line and
local/data.sh."""

import logging
import os
import shutil
import subprocess
import sys

import pytest

from espnet2_gram.bin.prepare_corpus import main as prepare_main
from espnet2_gram.corpora.download import DownloadError
from espnet2_gram.corpora.fsd50k import prepare_fsd50k
from espnet2_gram.utils.datadir import read_data_dir

from test_corpora_real import REPO, run_cli, tables_of, write_text, write_wav

VOCABULARY = ("0,Electric_guitar,/m/02sgy\n1,Guitar,/m/0342h\n2,Music,/m/04rlf\n"
              "3,Bark,/m/05tny_\n4,Dog,/m/0bt9lr\n")
DEV_HEADER = "fname,labels,mids,split\n"
DEV = DEV_HEADER + (
    '64760,"Electric_guitar,Guitar,Music","/m/02sgy,/m/0342h,/m/04rlf",train\n'
    '16399,"Bark,Dog","/m/05tny_,/m/0bt9lr",train\n'
    '21312,Music,/m/04rlf,val\n'
    '99999,Dog,/m/0bt9lr,train\n')  # listed, but its audio is missing
EVAL = 'fname,labels,mids\n37199,"Dog,Bark","/m/0bt9lr,/m/05tny_"\n'


@pytest.fixture
def fsd50k_copy(tmp_path):
    root = tmp_path / "src" / "FSD50K"
    for fname in ("64760", "16399", "21312"):
        write_wav(root / "FSD50K.dev_audio" / f"{fname}.wav", fs=44100)
    write_wav(root / "FSD50K.eval_audio" / "37199.wav", fs=44100)
    truth = root / "FSD50K.ground_truth"
    write_text(truth / "vocabulary.csv", VOCABULARY)
    write_text(truth / "dev.csv", DEV)
    write_text(truth / "eval.csv", EVAL)
    return root


def test_fsd50k(fsd50k_copy, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    outs = prepare_fsd50k(tmp_path / "data", src_dir=fsd50k_copy.parent)
    assert [p.name for p in outs] == ["fsd50k_train", "fsd50k_valid", "fsd50k_eval"]
    train = tables_of(tmp_path / "data" / "fsd50k_train")
    assert sorted(train) == ["utt2fs", "utt2label", "utt2num_samples", "wav.scp"]
    assert train["utt2label"] == {"fsd50k_dev_16399": "Bark Dog",
                                  "fsd50k_dev_64760": "Electric_guitar Guitar Music"}
    assert train["wav.scp"]["fsd50k_dev_64760"] == str(
        fsd50k_copy / "FSD50K.dev_audio" / "64760.wav")
    assert set(train["utt2num_samples"].values()) == {"4410"}
    assert set(train["utt2fs"].values()) == {"44100"}
    valid = tables_of(tmp_path / "data" / "fsd50k_valid")
    assert valid["utt2label"] == {"fsd50k_dev_21312": "Music"}
    evl = tables_of(tmp_path / "data" / "fsd50k_eval")
    assert evl["utt2label"] == {"fsd50k_eval_37199": "Dog Bark"}
    assert evl["wav.scp"]["fsd50k_eval_37199"] == str(
        fsd50k_copy / "FSD50K.eval_audio" / "37199.wav")
    assert "skipped 1 missing" in caplog.text and "99999.wav" in caplog.text
    # the corpus folder itself is accepted too
    prepare_fsd50k(tmp_path / "data2", src_dir=fsd50k_copy)
    assert read_data_dir(tmp_path / "data2" / "fsd50k_train") == train


def test_fsd50k_bad_ground_truth(fsd50k_copy, tmp_path):
    truth = fsd50k_copy / "FSD50K.ground_truth"
    (truth / "dev.csv").write_text(DEV.replace('"Bark,Dog"', '"Bark,Cat"'))
    with pytest.raises(ValueError, match=r"dev\.csv:3: label 'Cat' is not in .*vocabulary\.csv"):
        prepare_fsd50k(tmp_path / "data", src_dir=fsd50k_copy)
    (truth / "dev.csv").write_text(DEV.replace(",val\n", ",test\n"))
    with pytest.raises(ValueError, match=r"dev\.csv:4: expected split train or val, got 'test'"):
        prepare_fsd50k(tmp_path / "data", src_dir=fsd50k_copy)
    (truth / "dev.csv").write_text(DEV_HEADER + "12a,Music,/m/04rlf,train\n")
    with pytest.raises(ValueError, match=r"dev\.csv:2: expected a numeric fname"):
        prepare_fsd50k(tmp_path / "data", src_dir=fsd50k_copy)
    (truth / "dev.csv").write_text(DEV)
    (truth / "vocabulary.csv").write_text(VOCABULARY + "5,Electric guitar,/m/02sgy\n")
    with pytest.raises(ValueError, match=r"vocabulary\.csv:6: expected a label without spaces"):
        prepare_fsd50k(tmp_path / "data", src_dir=fsd50k_copy)
    (truth / "vocabulary.csv").write_text(VOCABULARY)
    (truth / "eval.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"FSD50K\.ground_truth/eval\.csv: no such file"):
        prepare_fsd50k(tmp_path / "data", src_dir=fsd50k_copy)
    assert not (tmp_path / "data").exists()
    shutil.rmtree(truth)
    with pytest.raises(FileNotFoundError, match=r"no FSD50K\.ground_truth"):
        prepare_fsd50k(tmp_path / "data", src_dir=fsd50k_copy)


def test_fsd50k_missing_audio_folder(fsd50k_copy, tmp_path):
    shutil.rmtree(fsd50k_copy / "FSD50K.eval_audio")
    with pytest.raises(FileNotFoundError, match=r"FSD50K\.eval_audio: no such directory"):
        prepare_fsd50k(tmp_path / "data", src_dir=fsd50k_copy)


def test_fsd50k_has_no_download(tmp_path):
    with pytest.raises(DownloadError, match=r"split zips.*records/4060432.*--src_dir"):
        prepare_fsd50k(tmp_path / "data", download=True, download_dir=tmp_path / "dl")
    with pytest.raises(ValueError, match="--src_dir"):
        prepare_fsd50k(tmp_path / "data")
    assert list(tmp_path.iterdir()) == []
    proc = run_cli("fsd50k", "--download", "true", "--data_dir", str(tmp_path / "data"))
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert proc.returncode == 1 and len(errors) == 1 and "--src_dir" in errors[0], proc.stderr


def test_fsd50k_command_line(fsd50k_copy, tmp_path):
    prepare_main(["fsd50k", "--src_dir", str(fsd50k_copy), "--data_dir", str(tmp_path / "data")])
    assert len(read_data_dir(tmp_path / "data" / "fsd50k_train")["wav.scp"]) == 2


@pytest.mark.skipif(not (REPO / "egs2/gram/utils/parse_options.sh").is_file(),
                    reason="parse_options.sh not there yet")
def test_data_sh_dispatches_to_fsd50k(fsd50k_copy, tmp_path):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["local/data.sh", "--corpus", "fsd50k", "--src_dir", str(fsd50k_copy),
         "--data_dir", str(tmp_path / "data"), "--download_dir", str(tmp_path / "dl")],
        cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert read_data_dir(tmp_path / "data" / "fsd50k_eval")["utt2label"] == {
        "fsd50k_eval_37199": "Dog Bark"}
