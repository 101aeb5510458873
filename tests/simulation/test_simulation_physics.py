"""Physics of the rendered impulse responses: FOA directions, binaural cues, RT60."""

import numpy as np
import pytest

from espnet2_gram.simulation.acoustics import (
    foa_intensity_direction,
    interaural_level_difference_db,
    interaural_time_difference,
    rt60_schroeder,
)
from espnet2_gram.simulation.geometry import angular_distance_deg, sph_to_cart
from espnet2_gram.simulation.mixing import convolve_multichannel
from espnet2_gram.simulation.rooms import (
    RenderConfig,
    RIRRenderer,
    RoomSampling,
    sample_room,
)
from helpers import anechoic

FS = 16000


@pytest.fixture(scope="module")
def foa_renderer():
    return RIRRenderer(RenderConfig(format="foa", fs=FS, method="ism", max_rir_seconds=0.05))


@pytest.fixture(scope="module")
def binaural_renderer():
    return RIRRenderer(RenderConfig(format="binaural", fs=FS, method="ism", max_rir_seconds=0.05))


@pytest.mark.parametrize("yaw", [0.0, 65.0, -150.0])
def test_foa_intensity_points_at_anechoic_source(foa_renderer, yaw):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(FS // 2).astype(np.float32)
    directions = [(0, 0), (90, 0), (-90, 0), (180, 0), (45, 30), (-135, -45), (120, 60),
                  (-20, -60), (170, 15)]
    for az, el in directions:
        rir = foa_renderer.render(anechoic(az, el, yaw))[0]
        scene = convolve_multichannel(noise, rir, len(noise))
        est_az, est_el = foa_intensity_direction(scene)
        err = angular_distance_deg(sph_to_cart(est_az, est_el), sph_to_cart(az, el))
        assert err < 5.0, (az, el, yaw, est_az, est_el)


def test_foa_is_sn3d_acn(foa_renderer):
    """W carries the omni pressure; X, Y, Z = W * (cos el cos az, cos el sin az, sin el)."""
    az, el = 30.0, 20.0
    rir = foa_renderer.render(anechoic(az, el, yaw=40.0))[0]
    peak = np.argmax(np.abs(rir[0]))
    w, y, z, x = rir[:, peak]
    expected = sph_to_cart(az, el)
    np.testing.assert_allclose([x / w, y / w, z / w], expected, atol=1e-3)



@pytest.mark.parametrize("yaw", [0.0, 70.0, -140.0])
def test_microphone_array_delays_follow_its_geometry(yaw):
    """The tetrahedral array's capsules sit at their positions, turned with the listener: each
    capsule's direct path arrives after its own distance to the source over c. The capsules are
    7 cm apart, so at 96 kHz the delays differ by up to about 20 samples."""
    fs, c = 96000, 343.0
    from espnet2_gram.formats import FORMATS

    renderer = RIRRenderer(RenderConfig(format="mic", fs=fs, method="ism", max_rir_seconds=0.03))
    offsets = np.asarray(FORMATS["mic"].receiver_offsets)
    for az, el in [(0, 0), (90, 0), (-120, 30), (160, -40)]:
        geom = anechoic(az, el, yaw, dist=2.0)
        rir = renderer.render(geom)[0]
        assert rir.shape[0] == 4
        peaks = np.array([np.argmax(np.abs(ch)) for ch in rir], dtype=float)
        source = sph_to_cart(az, el, 2.0)
        distances = np.linalg.norm(source - offsets, axis=1)
        expected = (distances - distances[0]) / c * fs
        np.testing.assert_allclose(peaks - peaks[0], expected, atol=1.01, err_msg=f"{az} {el}")
        assert np.ptp(expected) > 5 or (az, el) == (0, 0)

def test_binaural_left_source_is_earlier_and_louder_at_left_ear(binaural_renderer):
    rir = binaural_renderer.render(anechoic(90.0, 0.0, yaw=25.0))[0]
    itd = interaural_time_difference(rir, FS)
    assert 0.5e-3 <= itd <= 0.9e-3
    assert interaural_level_difference_db(rir) > 3.0
    onset = [np.argmax(np.abs(ch) > 0.5 * np.abs(ch).max()) for ch in rir]
    assert onset[0] < onset[1]
    mirrored = binaural_renderer.render(anechoic(-90.0, 0.0, yaw=25.0))[0]
    assert -0.9e-3 <= interaural_time_difference(mirrored, FS) <= -0.5e-3


def test_binaural_front_and_back_differ(binaural_renderer):
    front = binaural_renderer.render(anechoic(0.0, 0.0))[0]
    back = binaural_renderer.render(anechoic(180.0, 0.0))[0]
    # Both are on the median plane: no interaural difference ...
    assert abs(interaural_time_difference(front, FS)) < 1e-4
    assert abs(interaural_time_difference(back, FS)) < 1e-4
    # ... but the pinna colours them differently (2-7 kHz, left ear).
    spec = [20 * np.log10(np.abs(np.fft.rfft(r[0], 1024)) + 1e-9) for r in (front, back)]
    band = slice(int(2000 / FS * 1024), int(7000 / FS * 1024))
    assert np.sqrt(np.mean((spec[0][band] - spec[1][band]) ** 2)) > 2.0


@pytest.mark.parametrize("fmt", ["binaural", "foa"])
def test_rt60_of_generated_rirs_is_near_target(fmt):
    sampling = RoomSampling(rt60=(0.3, 1.0), num_noise_sources=(0, 0))
    renderer = RIRRenderer(RenderConfig(format=fmt, fs=FS, n_rays=1500, max_rir_seconds=1.0))
    targets = []
    for i in range(4):
        geom = sample_room(sampling, np.random.default_rng([7, i]))
        rir = renderer.render(geom, seed=i)[0]
        measured = rt60_schroeder(rir, FS)
        targets.append(geom.rt60)
        assert abs(measured / geom.rt60 - 1) <= 0.25, (geom.size, geom.rt60, measured)
    assert max(targets) - min(targets) > 0.2  # the rooms span the range


def test_rt60_schroeder_on_exponential_decay():
    """An ideal exponential decay with a 0.5 s RT60 is measured exactly."""
    t = np.arange(FS) / FS
    rng = np.random.default_rng(1)
    rir = rng.standard_normal(FS) * 10 ** (-3 * t / 0.5)
    assert rt60_schroeder(rir, FS) == pytest.approx(0.5, rel=0.03)
