"""Weak and strong augmentation, batched and per-sample, on the batch's device.

Geometric ops (scale/crop, translation, flip) are one affine warp per sample, applied
with the *same* parameters to the image and to every map that must stay aligned with it
(ground-truth masks, pseudo-labels). Photometric ops (brightness, contrast, saturation,
grayscale) touch the image only. Audio: gain, additive noise and time masking on the
waveform (spectrograms are the network's business).

Randomness comes from an explicit ``torch.Generator`` (CPU): the trainer seeds one per
step, so runs are reproducible and resumable. Only ``[B]``-sized parameters are drawn on
the CPU; the warps themselves run on the batch's device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF


@dataclass(frozen=True)
class GeometricParams:
    """Per-sample affine parameters: zoom (<1 crops in), centre shift, horizontal flip."""

    scale: Tensor   # [B]
    shift: Tensor   # [B, 2], in normalised coordinates
    flip: Tensor    # [B] bool

    def grid(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The ``F.grid_sample`` grid ``[B, H, W, 2]`` (output pixel -> input coordinates).

        Equal to ``F.affine_grid`` of the matrices ``[[±scale, 0, shift_x], [0, scale,
        shift_y]]`` (pixel centres, ``align_corners=False``). With no rotation or shear the
        grid is separable (x depends on the column only, y on the row), so it is built by
        broadcasting two ``[B, W]`` and ``[B, H]`` rows: a fraction of ``affine_grid``'s
        batched matrix product over every pixel.
        """
        sx = self.scale * torch.where(self.flip, -1.0, 1.0)
        columns = (torch.arange(width) * 2 + 1) / width - 1
        rows = (torch.arange(height) * 2 + 1) / height - 1
        x = (sx[:, None] * columns + self.shift[:, :1]).to(device, dtype, non_blocking=True)
        y = (self.scale[:, None] * rows + self.shift[:, 1:]).to(device, dtype, non_blocking=True)
        return torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)


def sample_geometry(batch: int, generator: torch.Generator, scale_range: tuple[float, float] = (1.0, 1.0),
                    flip_p: float = 0.5) -> GeometricParams:
    """Random crops (``scale`` = side fraction of the crop) inside the image, and flips."""
    lo, hi = scale_range
    scale = lo + (hi - lo) * torch.rand(batch, generator=generator)
    max_shift = (1 - scale)[:, None]
    shift = (torch.rand(batch, 2, generator=generator) * 2 - 1) * max_shift
    flip = torch.rand(batch, generator=generator) < flip_p
    return GeometricParams(scale, shift, flip)


def warp(x: Tensor, params: GeometricParams | Tensor, mode: str = "bilinear") -> Tensor:
    """Apply a per-sample affine to ``[B, C, H, W]`` or ``[B, H, W]`` tensors (border padding).

    ``params``: crop/shift/flip parameters, or any affine as ``[B, 2, 3]`` matrices in
    ``F.affine_grid``'s normalised coordinates (output point -> input point), e.g. with rotation.
    """
    squeeze = x.dim() == 3
    x4 = x.unsqueeze(1) if squeeze else x
    if isinstance(params, GeometricParams):
        grid = params.grid(x4.shape[-2], x4.shape[-1], x.device, x4.dtype)
    else:
        grid = F.affine_grid(params.to(x4.dtype), list(x4.shape), align_corners=False)
    out = F.grid_sample(x4, grid, mode=mode, padding_mode="border", align_corners=False)
    return out.squeeze(1) if squeeze else out


def mirror(x: Tensor, flip: Tensor) -> Tensor:
    """Flip ``[B, ...]`` tensors horizontally where ``flip`` (``[B]`` bool, on ``x``'s device) is set.

    Exactly what ``warp`` does for a pure flip, without resampling every pixel.
    """
    return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)


def photometric(images: Tensor, generator: torch.Generator, strength: float = 0.4,
                grayscale_p: float = 0.2) -> Tensor:
    """Per-sample brightness, contrast and saturation jitter, and random grayscale."""
    batch = images.shape[0]
    factors = 1 + strength * (torch.rand(batch, 3, generator=generator) * 2 - 1)
    gray_flag = torch.rand(batch, generator=generator) < grayscale_p
    factors = factors.to(images.device, non_blocking=True)[:, :, None, None, None]
    out = images * factors[:, 0]
    gray = TF.rgb_to_grayscale(out)
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * factors[:, 1] + mean
    gray = TF.rgb_to_grayscale(out)
    out = (out - gray) * factors[:, 2] + gray
    gray_flag = gray_flag.to(images.device, non_blocking=True)[:, None, None, None]  # a blocking copy would sync
    out = torch.where(gray_flag, TF.rgb_to_grayscale(out).expand_as(out), out)
    return out.clamp(0, 1)


def augment_audio(audio: Tensor, generator: torch.Generator, gain_db: float = 6.0,
                  noise_snr_db: float | None = 20.0, mask_fraction: float = 0.1) -> Tensor:
    """Per-sample random gain, white noise at ``noise_snr_db`` (None: none) and one zeroed time span.

    The noise is drawn on the audio's device, from a generator seeded by ``generator``: a
    waveform batch is millions of samples, too many to draw on the CPU and copy over.
    """
    batch, length = audio.shape
    device = audio.device
    gain = 10 ** ((torch.rand(batch, generator=generator) * 2 - 1) * gain_db / 20)
    noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    span = int(mask_fraction * length)
    start = (torch.rand(batch, generator=generator) * max(length - span, 1)).long()
    gain, start = (t.to(device, non_blocking=True) for t in (gain, start))
    out = audio * gain[:, None]
    if noise_snr_db is not None:
        noise = torch.randn(batch, length, device=device, dtype=audio.dtype,
                            generator=torch.Generator(device).manual_seed(noise_seed))
        power = audio.pow(2).mean(1, keepdim=True).clamp_min(1e-8)
        out = torch.addcmul(out, noise, power.sqrt() * 10 ** (-noise_snr_db / 20))
    if span == 0:
        return out
    pos = torch.arange(length, device=device)[None]
    masked = (pos >= start[:, None]) & (pos < start[:, None] + span)
    return out.masked_fill(masked, 0.0)


@dataclass(frozen=True)
class AugmentConfig:
    """Weak view for the teachers, strong view for the students (docs/design.md, 'The method')."""

    weak_flip_p: float = 0.5
    strong_scale: tuple[float, float] = (0.6, 1.0)
    strong_flip_p: float = 0.5
    colour_strength: float = 0.4
    grayscale_p: float = 0.2
    audio_gain_db: float = 6.0
    audio_noise_snr_db: float | None = 20.0  # None: no noise
    audio_mask_fraction: float = 0.1

    def __post_init__(self) -> None:
        # An infinite SNR is no noise: one spelling for it, so that configs stored with
        # ``inf`` (before ``None`` meant "no noise") compare equal to today's.
        if self.audio_noise_snr_db == float("inf"):
            object.__setattr__(self, "audio_noise_snr_db", None)


#: The self-supervised originals' own recipe (EZ-VSL, LVS, SLAVC, ...): a mild random crop
#: and a flip, no colour or audio perturbation. Small networks trained from scratch learn
#: far slower under the strong view: on the composed flickr tier EZ-VSL's contrastive loss
#: stayed at chance (2 ln B) for 600+ updates with it and left chance after ~200 with this,
#: and a fully supervised tiny EZ-VSL reached CIoU@0.5 0.73 in 600 updates with it against
#: 0.35 with the strong view (README, "The benchmark").
MILD_AUGMENT = AugmentConfig(strong_scale=(0.8, 1.0), colour_strength=0.0, grayscale_p=0.0,
                             audio_gain_db=0.0, audio_noise_snr_db=None, audio_mask_fraction=0.0)


class Augmenter:
    """Weak and strong views of a batch; aligned maps follow every geometric op."""

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def weak_flips(self, batch: int, generator: torch.Generator) -> Tensor:
        """Which of ``batch`` samples the weak view flips (``[batch]`` bool, on the CPU)."""
        return sample_geometry(batch, generator, (1.0, 1.0), self.config.weak_flip_p).flip

    def weak(self, images: Tensor, generator: torch.Generator, *maps: Tensor) -> tuple[Tensor, ...]:
        """Horizontal flip only; returns the image and each aligned map."""
        flip = self.weak_flips(images.shape[0], generator).to(images.device, non_blocking=True)
        return tuple(mirror(x, flip) for x in (images, *maps))

    def strong(self, images: Tensor, audio: Tensor, generator: torch.Generator,
               *maps: Tensor) -> tuple[Tensor, ...]:
        """Crop + flip (images and maps), colour jitter (images), audio perturbation.

        Returns ``(images, audio, *maps)``.
        """
        cfg = self.config
        params = sample_geometry(images.shape[0], generator, cfg.strong_scale, cfg.strong_flip_p)
        images = photometric(warp(images, params), generator, cfg.colour_strength, cfg.grayscale_p)
        audio = augment_audio(audio, generator, cfg.audio_gain_db, cfg.audio_noise_snr_db, cfg.audio_mask_fraction)
        return (images, audio, *(warp(m, params, "nearest") for m in maps))
