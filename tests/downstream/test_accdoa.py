"""ACCDOA targets and decoding, multi-ACCDOA track unification and the ADPIT loss."""

import numpy as np
import pytest
import torch

from espnet2_gram.downstream.localization.accdoa import (adpit_loss, decode_multi_accdoa,
                                                         decode_single_accdoa, events_to_tracks)
from helpers import single_accdoa_target
from espnet2_gram.simulation.geometry import cart_to_sph, sph_to_cart

X, Y, Z = np.eye(3)


def _az(event):
    return float(cart_to_sph(np.array(event[1:]))[0])


def test_events_to_tracks_fills_in_order_and_drops_extras():
    frames = {
        0: [(1, *X), (0, *(2 * Y)), (1, *Z)],
        2: [(2, *X), (2, *Y), (2, *Z), (2, *(-X))],
    }
    tracks, dropped = events_to_tracks(frames, num_frames=3, num_classes=3)
    assert tracks.shape == (3, 3, 3, 4) and dropped == 1
    assert tracks[0, 0, 1].tolist() == [1, 1, 0, 0]
    assert tracks[0, 1, 1].tolist() == [1, 0, 0, 1]
    assert tracks[0, 0, 0].tolist() == [1, 0, 1, 0]  # normalised
    assert tracks[0, 2].sum() == 0 and tracks[1].sum() == 0
    assert tracks[2, :, 2, 0].tolist() == [1, 1, 1]
    target = single_accdoa_target(tracks)
    assert target.shape == (3, 3, 3)
    assert target[0, 1].tolist() == [1, 0, 0] and target[0, 2].tolist() == [0, 0, 0]


def test_events_to_tracks_errors():
    with pytest.raises(ValueError, match="frame 5 outside 0..2"):
        events_to_tracks({5: [(0, *X)]}, 3, 2)
    with pytest.raises(ValueError, match="class index 2 outside 0..1"):
        events_to_tracks({0: [(2, *X)]}, 3, 2)


def test_decode_single_accdoa():
    out = np.zeros((2, 2, 3))
    out[0, 1] = [0, 0.8, 0]  # active, left
    out[1, 0] = [0.3, 0, 0]  # below threshold
    events = decode_single_accdoa(out, threshold=0.5)
    assert list(events) == [0]
    assert events[0][0][0] == 1 and events[0][0][1:] == pytest.approx((0, 1, 0))
    assert decode_single_accdoa(out.reshape(2, 6)) == events


def test_decode_multi_merges_close_tracks():
    out = np.zeros((4, 3, 2, 3))
    out[0, 0, 0], out[0, 1, 0] = sph_to_cart(0, 0), sph_to_cart(10, 0)  # close: merged
    out[1, 0, 0], out[1, 2, 0] = sph_to_cart(0, 0), sph_to_cart(90, 0)  # far: kept
    out[2, :, 1] = sph_to_cart([0, 10, 90], [0, 0, 0])  # one close pair: merged + the third
    out[3, :, 1] = sph_to_cart([0, 10, 20], [0, 0, 0])  # two close pairs: one mean direction
    out[3, 0, 0] = 0.4 * X  # inactive
    events = decode_multi_accdoa(out, threshold=0.5, unify_deg=15)
    assert [e[0] for e in events[0]] == [0] and _az(events[0][0]) == pytest.approx(5)
    assert sorted(_az(e) for e in events[1]) == pytest.approx([0, 90])
    assert sorted(_az(e) for e in events[2]) == pytest.approx([5, 90])
    assert [e[0] for e in events[3]] == [1] and _az(events[3][0]) == pytest.approx(10)
    assert all(np.linalg.norm(e[1:]) == pytest.approx(1) for f in events.values() for e in f)


def _tracks(slots):
    """(1, 1, 3, K, 4) tracks from per-class lists of 3 vectors or None (inactive)."""
    t = torch.zeros(1, 1, 3, len(slots), 4)
    for k, vectors in enumerate(slots):
        for i, v in enumerate(vectors):
            if v is not None:
                t[0, 0, i, k] = torch.tensor([1.0, *v])
    return t


def _output(per_class):
    """(1, 1, 3, K, 3) output from per-class lists of 3 vectors."""
    return torch.tensor(np.array(per_class), dtype=torch.float32).permute(1, 0, 2)[None, None]


def test_adpit_zero_for_valid_assignments():
    tracks = _tracks([[X, Y, None], [None] * 3, [Z, None, None], [X, Y, Z]])
    zero = np.zeros(3)
    for first, third in (([X, Y, X], [Z, X, Y]), ([Y, X, Y], [Y, Z, X])):
        out = _output([first, [zero] * 3, [Z, Z, Z], third])
        assert adpit_loss(out, tracks).item() == pytest.approx(0.0, abs=1e-7)


def test_adpit_hand_computed_and_permutation_invariant():
    # One event X, zero output: target (X, X, X) -> MSE = 3 / 9.
    assert adpit_loss(_output([[np.zeros(3)] * 3]), _tracks([[X, None, None]])).item() == (
        pytest.approx(1 / 3))
    # Three events X, Y, Z and output (X, X, X): every permutation costs (0 + 2 + 2) / 9.
    assert adpit_loss(_output([[X, X, X]]), _tracks([[X, Y, Z]])).item() == pytest.approx(4 / 9)
    # Same event in another slot: same loss.
    assert adpit_loss(_output([[X, Y, X]]), _tracks([[None, X, None]])).item() == (
        pytest.approx(2 / 9))
    torch.manual_seed(0)
    tracks = _tracks([[X, Y, None], [Z, None, None], [X, Y, Z]]).repeat(2, 4, 1, 1, 1)
    out = torch.randn(2, 4, 3, 3, 3, requires_grad=True)
    loss = adpit_loss(out, tracks)
    swapped = adpit_loss(out[:, :, [2, 0, 1]], tracks)
    assert loss.item() == pytest.approx(swapped.item())
    loss.backward()
    assert torch.isfinite(out.grad).all()


def test_adpit_shape_errors():
    with pytest.raises(ValueError, match=r"tracks must be \(1, 1, 3, 2, 4\)"):
        adpit_loss(torch.zeros(1, 1, 3, 2, 3), torch.zeros(1, 1, 3, 3, 4))
    with pytest.raises(ValueError, match=r"output must be \(B, T, 3, K, 3\)"):
        adpit_loss(torch.zeros(1, 3, 2, 3), torch.zeros(1, 3, 2, 4))
