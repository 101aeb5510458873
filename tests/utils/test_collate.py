"""PadCollate: ESPnet's batching contract (float pad 0, int pad -1, *_lengths), checked by hand
and against ESPnet's own CommonCollateFn."""

import numpy as np
import pytest
import torch

from espnet2_gram.utils.collate import PadCollate


def items():
    """Three utterances with a 1-D float signal, an int label sequence, SELD-like tracks
    (T, 3, K, 4) and a fixed-size (3,) vector."""
    rng = np.random.default_rng(0)
    out = []
    for uid, t, n in (("u1", 4, 2), ("u2", 2, 3), ("u3", 5, 1)):
        out.append((uid, {
            "speech": rng.standard_normal(t).astype(np.float32),
            "label": np.arange(1, n + 1, dtype=np.int64),
            "tracks": rng.standard_normal((t, 3, 2, 4)).astype(np.float32),
            "doa": np.array([10.0 * len(uid), -5.0, 1.5], dtype=np.float32),
        }))
    return out


def test_padding_values_and_lengths_by_hand():
    uids, batch = PadCollate()([
        ("a", {"x": np.array([1.0, 2.0, 3.0], dtype=np.float32),
               "y": np.array([7, 8], dtype=np.int64)}),
        ("b", {"x": np.array([4.0], dtype=np.float32),
               "y": np.array([9, 10, 11], dtype=np.int64)}),
    ])
    assert uids == ["a", "b"]
    assert sorted(batch) == ["x", "x_lengths", "y", "y_lengths"]
    assert batch["x"].dtype == torch.float32 and batch["y"].dtype == torch.int64
    assert batch["x"].tolist() == [[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]]
    assert batch["y"].tolist() == [[7, 8, -1], [9, 10, 11]]
    assert batch["x_lengths"].tolist() == [3, 1] and batch["y_lengths"].tolist() == [2, 3]
    assert batch["x_lengths"].dtype == torch.long


def test_custom_pad_values_and_unsigned_ints_pad_like_floats():
    collate = PadCollate(float_pad_value=-9.0, int_pad_value=-7)
    _, batch = collate([
        ("a", {"f": np.ones(1, np.float64), "i": np.ones(1, np.int32)}),
        ("b", {"f": np.ones(2, np.float64), "i": np.ones(2, np.int32)}),
    ])
    assert batch["f"].tolist() == [[1.0, -9.0], [1.0, 1.0]]
    assert batch["i"].tolist() == [[1, -7], [1, 1]] and batch["i"].dtype == torch.int32
    # unsigned arrays cannot hold -1: padded with the float value (0.0), as ESPnet does
    _, batch = PadCollate()([("a", {"u": np.full(1, 5, np.uint8)}),
                             ("b", {"u": np.full(2, 5, np.uint8)})])
    assert batch["u"].dtype == torch.uint8 and batch["u"].tolist() == [[5, 0], [5, 5]]


def test_multi_dim_arrays_are_padded_on_the_first_axis_only():
    data = items()
    uids, batch = PadCollate()(data)
    assert uids == ["u1", "u2", "u3"]
    tracks = batch["tracks"]
    assert tracks.shape == (3, 5, 3, 2, 4)
    assert batch["tracks_lengths"].tolist() == [4, 2, 5]
    for i, (_, d) in enumerate(data):
        t = d["tracks"].shape[0]
        np.testing.assert_array_equal(tracks[i, :t].numpy(), d["tracks"])
        assert torch.all(tracks[i, t:] == 0.0)
    # fixed-size vectors stack unchanged, their "length" is their size
    assert batch["doa"].shape == (3, 3)
    np.testing.assert_array_equal(batch["doa"][1].numpy(), [20.0, -5.0, 1.5])
    assert batch["doa_lengths"].tolist() == [3, 3, 3]
    assert batch["label"].tolist() == [[1, 2, -1], [1, 2, 3], [1, -1, -1]]


def test_trailing_shape_mismatch_names_both_utterances():
    data = [("first", {"tracks": np.zeros((2, 3, 4, 4), np.float32)}),
            ("second", {"tracks": np.zeros((3, 3, 5, 4), np.float32)})]
    with pytest.raises(ValueError, match=r"tracks of second has shape \(3, 3, 5, 4\).*"
                                         r"first has \(2, 3, 4, 4\)"):
        PadCollate()(data)


def test_matches_espnet_common_collate_fn():
    from espnet2.train.collate_fn import CommonCollateFn

    data = items()
    for uid, d in data:
        d["mask"] = np.ones(len(uid) + int(uid[-1]), dtype=np.uint8)
    ours_uids, ours = PadCollate(float_pad_value=0.0, int_pad_value=-1)(data)
    ref_uids, ref = CommonCollateFn(float_pad_value=0.0, int_pad_value=-1)(data)
    assert ours_uids == ref_uids
    assert sorted(ours) == sorted(ref)
    for key in ref:
        assert ours[key].dtype == ref[key].dtype, key
        torch.testing.assert_close(ours[key], ref[key], rtol=0, atol=0)
