"""Data checks run before ESPnet's trainer: triplet parsing, mismatching utterance ids, unseen
labels, out-of-range directions, directly and through the doa_train / cls_train entry points."""

import re

import pytest

from espnet2_gram.bin import cls_train, doa_train  # ESPnet's tasks: imported once (slow)
from espnet2_gram.utils.datacheck import (check_labels_known, check_task_data, data_triplets,
                                          option_value)
from espnet2_gram.utils.datadir import DataDirError

TRAIN = "--train_data_path_and_name_and_type"
VALID = "--valid_data_path_and_name_and_type"


def write(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def feats_scp(path, utts):
    return write(path, [f"{u} {path.parent / 'feats.ark'}:{10 + 7 * i}"
                        for i, u in enumerate(utts)])


def test_data_triplets_both_spellings_in_order():
    argv = ["--config", "c.yaml", TRAIN, "a.scp,speech,sound", f"{TRAIN}=b.txt,label,text",
            f"{VALID}=c.scp,speech,kaldi_ark", "--output_dir", "exp",
            "--data_path_and_name_and_type", "d,e,f"]
    assert data_triplets(argv) == {
        TRAIN: [("a.scp", "speech", "sound"), ("b.txt", "label", "text")],
        VALID: [("c.scp", "speech", "kaldi_ark")],
        "--data_path_and_name_and_type": [("d", "e", "f")],
    }
    assert data_triplets(["--config", "x"]) == {}


@pytest.mark.parametrize("argv", [[TRAIN, "a.scp,speech"], [f"{VALID}=a,b,c,d"], [TRAIN]])
def test_data_triplets_bad_triplet(argv):
    with pytest.raises(ValueError, match="expected path,name,type"):
        data_triplets(argv)


def test_option_value_last_one_wins():
    argv = ["--token_list", "a.txt", "--x", "1", "--token_list=b.txt"]
    assert option_value(argv, "--token_list") == "b.txt"
    assert option_value(["--token_list", "c.txt"], "--token_list") == "c.txt"
    assert option_value(["--token_list"], "--token_list") is None
    assert option_value(["--token_list_extra=z"], "--token_list") is None


def test_check_task_data_lists_the_first_mismatching_ids(tmp_path):
    scp = feats_scp(tmp_path / "feats.scp", ["u1", "u2", "u3", "u4"])
    doa = write(tmp_path / "utt2doa", ["u1 10 0", "u3 -20 5", "u9 30 0"])
    with pytest.raises(DataDirError) as err:
        check_task_data([TRAIN, f"{scp},speech,kaldi_ark", TRAIN, f"{doa},doa,text_float"])
    msg = str(err.value)
    assert msg.startswith(f"{TRAIN}: utterance ids disagree")
    assert f"{doa} (doa) lacks ['u2', 'u4'] (present in {scp} (speech))" in msg
    assert f"{doa} (doa) has ['u9'] (absent from {scp} (speech))" in msg
    # only the wrong split fails: the same files pass as a consistent valid set
    doa_ok = write(tmp_path / "utt2doa_ok", ["u4 0 0", "u2 1 1", "u3 2 2", "u1 3 3"])
    check_task_data([VALID, f"{scp},speech,kaldi_ark", f"{VALID}={doa_ok},doa,text_float"])


def test_check_task_data_lists_at_most_five_ids(tmp_path):
    scp = feats_scp(tmp_path / "feats.scp", [f"u{i:02d}" for i in range(12)])
    label = write(tmp_path / "utt2label", ["u00 dog"])
    with pytest.raises(DataDirError, match=r"lacks \['u01', 'u02', 'u03', 'u04', 'u05'\] "):
        check_task_data([TRAIN, f"{scp},speech,kaldi_ark", TRAIN, f"{label},label,text"])


def test_check_task_data_missing_file_and_content_checks(tmp_path):
    scp = feats_scp(tmp_path / "feats.scp", ["u1"])
    gone = tmp_path / "nowhere" / "utt2label"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{gone},label: no such file")):
        check_task_data([TRAIN, f"{scp},speech,kaldi_ark", TRAIN, f"{gone},label,text"])
    seen = []
    label = write(tmp_path / "utt2label", ["u1 dog"])
    check_task_data([TRAIN, f"{scp},speech,kaldi_ark", TRAIN, f"{label},label,text"],
                    {"label": seen.append, "doa": lambda p: pytest.fail("no doa file")})
    assert seen == [label]


def test_check_labels_known_names_label_and_utterance(tmp_path):
    labels = write(tmp_path / "utt2label", ["a dog", "b cat dog", "c bird", "d dog fox"])
    check_labels_known(write(tmp_path / "ok", ["a dog", "b cat dog"]), ["cat", "dog", "<unk>"])
    with pytest.raises(DataDirError) as err:
        check_labels_known(labels, ["cat", "dog", "<unk>"])
    assert str(err.value) == (f"{labels}: 2 label(s) not seen in training (not in the token"
                              " list): 'bird' (c), 'fox' (d)")


# --------------------------------------------------------------------------- entry points


def doa_split(tmp_path, name, utts, doa_lines):
    d = tmp_path / name
    d.mkdir()
    scp = feats_scp(d / "feats.scp", utts)
    doa = write(d / "utt2doa", doa_lines)
    return [f"{scp},speech,kaldi_ark", f"{doa},doa,text_float"]


def doa_argv(tmp_path, train, valid):
    argv = ["--output_dir", str(tmp_path / "exp"), "--ngpu", "0", "--input_size", "8"]
    for option, triplets in ((TRAIN, train), (VALID, valid)):
        for triplet in triplets:
            argv += [option, triplet]
    return argv


def test_doa_train_refuses_an_out_of_range_azimuth(tmp_path):
    train = doa_split(tmp_path, "tr", ["u1", "u2", "u3"],
                      ["u1 10 0", "u2 -180 90", "u3 200 0"])
    valid = doa_split(tmp_path, "dv", ["v1"], ["v1 0 0 1.5"])
    where = re.escape(f"{tmp_path / 'tr' / 'utt2doa'}:3: azimuth '200'")
    with pytest.raises(ValueError, match=where):
        doa_train.main(doa_argv(tmp_path, train, valid))
    assert not (tmp_path / "exp").exists()  # failed before ESPnet started


def test_doa_train_refuses_mismatched_keys(tmp_path):
    train = doa_split(tmp_path, "tr", ["u1", "u2"], ["u1 10 0", "u2 20 0"])
    valid = doa_split(tmp_path, "dv", ["v1", "v2"], ["v1 0 0", "v3 0 0"])
    with pytest.raises(DataDirError, match=rf"{VALID}: .*lacks \['v2'\].*has \['v3'\]"):
        doa_train.main(doa_argv(tmp_path, train, valid))
    assert not (tmp_path / "exp").exists()


def test_cls_train_refuses_a_valid_label_unseen_in_training(tmp_path):
    tokens = write(tmp_path / "tokens.txt", ["cat", "dog", "<unk>"])
    train_scp = feats_scp(tmp_path / "tr.scp", ["t1", "t2"])
    train_lab = write(tmp_path / "tr_label", ["t1 cat", "t2 dog"])
    valid_scp = feats_scp(tmp_path / "dv.scp", ["v1", "v2"])
    valid_lab = write(tmp_path / "dv_label", ["v1 dog", "v2 horse"])
    argv = ["--output_dir", str(tmp_path / "exp"), "--ngpu", "0", "--token_list", str(tokens),
            TRAIN, f"{train_scp},speech,kaldi_ark", TRAIN, f"{train_lab},label,text",
            f"{VALID}={valid_scp},speech,kaldi_ark", f"{VALID}={valid_lab},label,text"]
    unseen = re.escape(f"{valid_lab}: 1 label(s) not seen in training")
    with pytest.raises(DataDirError, match=unseen + r".*'horse' \(v2\)"):
        cls_train.main(argv)  # the training labels passed: only 'horse' is named
    assert not (tmp_path / "exp").exists()

