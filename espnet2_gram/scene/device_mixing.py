"""Scene mixing on the training device (``--scene_conf mix_on_device=true``).

The data-loader workers then only draw the scene (pack, noise segment, SNR) and send its
ingredients; the convolutions and the SNR gain run batched on the GPU (or CPU) with
``torch.fft``, with the same definitions as :func:`espnet2_gram.simulation.mixing.mix_scene`.
"""

from typing import Dict

import torch

# Batch keys made by SceneSimulator(mix_on_device=True); scene_params = (snr_db, noise start,
# noise length), snr_db NaN when the scene has no noise.
INGREDIENTS = ("source_rir", "noise", "noise_rir", "scene_params")


def fft_convolve(x: torch.Tensor, rirs: torch.Tensor, length: int) -> torch.Tensor:
    """First ``length`` samples of x (B, T) convolved with rirs (B, L, C) -> (B, length, C)."""
    n = x.shape[1] + rirs.shape[1] - 1
    n = 1 << (n - 1).bit_length()
    spec = torch.fft.rfft(x.float(), n, dim=1)[:, :, None] * torch.fft.rfft(rirs.float(), n, dim=1)
    return torch.fft.irfft(spec, n, dim=1)[:, :length]


def mix_batch(source: torch.Tensor, source_rir: torch.Tensor, noise: torch.Tensor,
              noise_rir: torch.Tensor, scene_params: torch.Tensor) -> torch.Tensor:
    """Scenes (B, T, C) from dry sources (B, T), their RIRs (B, L, C), fitted noises (B, T),
    summed noise RIRs (B, L', C) and (snr_db, noise start, noise length) per scene."""
    length = source.shape[1]
    image = fft_convolve(source, source_rir, length)
    noise_image = fft_convolve(noise, noise_rir, length)
    snr_db, start, active = scene_params[:, 0], scene_params[:, 1], scene_params[:, 2]
    t = torch.arange(length, device=source.device)[None]
    segment = (t >= start[:, None]) & (t < (start + active)[:, None])
    p_source = image.double().square().sum(-1).mean(1)
    p_noise = (noise_image.double().square().sum(-1) * segment).sum(1) / active.clamp(min=1)
    has_noise = torch.isfinite(snr_db) & (p_noise > 0) & (p_source > 0)
    ratio = torch.where(has_noise, p_source / p_noise.clamp(min=1e-30), torch.zeros_like(p_source))
    gain = torch.sqrt(ratio * 10 ** (-torch.nan_to_num(snr_db.double()) / 10))
    return image + gain.float()[:, None, None] * noise_image


def mix_if_needed(speech: torch.Tensor, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    """``speech`` itself, or the scenes mixed from its ingredients when the batch has them."""
    if "source_rir" not in batch:
        return speech
    missing = [k for k in INGREDIENTS if k not in batch]
    if missing:
        raise ValueError(f"scene ingredients {missing} missing from the batch")
    source = speech[..., 0] if speech.dim() == 3 else speech
    return mix_batch(source, *(batch[k] for k in INGREDIENTS))
