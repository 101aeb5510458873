"""Frame pooling of the probes, on hand-computed cases (padding never counts)."""

import pytest
import torch

from espnet2_gram.downstream.heads import FramePooling, ProbeEncoder


def frames():
    x = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]],    # third frame is padding
                      [[0.0, 0.0], [2.0, 2.0], [4.0, 10.0]]])
    return x, torch.tensor([2, 3])


def test_mean_and_mean_std_ignore_padding():
    x, lengths = frames()
    mean = FramePooling(2, "mean")(x, lengths)
    assert torch.allclose(mean, torch.tensor([[2.0, 4.0], [2.0, 4.0]]))
    both = FramePooling(2, "mean_std")(x, lengths)
    # population std: item 0 frames (1, 3) and (2, 6); item 1 (0, 2, 4) and (0, 2, 10)
    want_std = torch.tensor([[1.0, 2.0], [(8 / 3) ** 0.5, (56 / 3) ** 0.5]])
    assert torch.allclose(both, torch.cat([mean, want_std], dim=-1), atol=1e-6)
    assert FramePooling(2, "mean_std").output_size() == 4


def test_attention_weights_sum_to_one_over_valid_frames():
    x, lengths = frames()
    pool = FramePooling(2, "attention")
    with torch.no_grad():
        pool.score.weight.zero_()
        pool.score.bias.zero_()      # equal scores: the mean of the valid frames
        assert torch.allclose(pool(x, lengths), FramePooling(2, "mean")(x, lengths))
        pool.score.weight.copy_(torch.tensor([[0.0, 50.0]]))   # picks the loudest 2nd value
        out = pool(x, lengths)
    assert torch.allclose(out[0], x[0, 1], atol=1e-4)           # padding (100) never chosen
    assert torch.allclose(out[1], x[1, 2], atol=1e-4)


def test_probe_encoder_sizes_its_mlp_from_the_pooling():
    enc = ProbeEncoder(2, hidden_sizes=[8], pooling="mean_std")
    assert enc.mlp.blocks[0].in_features == 4
    out, olens, _ = enc(*frames())
    assert out.shape == (2, 1, 8) and olens.tolist() == [1, 1]
    with pytest.raises(ValueError, match="pooling='max'"):
        FramePooling(2, "max")
