"""SSL-TIE (Liu et al., ACM MM 2022): LVS plus transformation equivariance.

Each training forward draws one random geometric transform T per sample (horizontal
flip with probability 0.5 and a square resized crop whose side is a uniform fraction
of the image's; optionally a rotation: the released code rotates up to 45 degrees,
``max_rotation_degrees=45`` reproduces that, off by default), applied batched with
affine grids. The loss is

    0.5 * (LVS(x) + LVS(T(x))) + equivariance_weight * MSE(T(map(x)), map(T(x)))

with the same audio for both views (weight 1.0 as in the released code). Both maps
carry gradients. The two views go through the visual encoder as one batch. The map
is LVS's cosine map (14x14 at 224 px, ``output_stride=16``). Photometric invariance
(colour jitter, audio augmentation) belongs to the data pipeline, not here.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.encoders import cross_modal_similarities, matched_pairs
from baselines.lvs import LVS
from baselines.registry import register
from dmt_wrap.augment import warp


def random_view_transforms(batch: int, device: torch.device, flip_probability: float = 0.5,
                           crop_side: tuple[float, float] = (0.5, 1.0),
                           max_rotation_degrees: float = 0.0) -> Tensor:
    """Per-sample affine matrices ``[B, 2, 3]`` in ``affine_grid``'s normalised coordinates.

    Output point ``(x, y)`` samples the input at ``R S F (x, y) + c``: flip F, crop side
    S, rotation R, crop centre c drawn so that an unrotated crop stays inside the image.
    Normalised coordinates make one matrix mean the same transform at any resolution,
    so it applies to an image and to its low-resolution map alike.
    """
    side = torch.empty(batch, device=device).uniform_(*crop_side)
    flip = torch.where(torch.rand(batch, device=device) < flip_probability, -1.0, 1.0)
    angle = torch.empty(batch, device=device).uniform_(-1, 1) * math.radians(max_rotation_degrees)
    centre = (torch.rand(batch, 2, device=device) * 2 - 1) * (1 - side).unsqueeze(1)
    cos, sin = side * torch.cos(angle), side * torch.sin(angle)
    return torch.stack([torch.stack([cos * flip, -sin, centre[:, 0]], dim=1),
                        torch.stack([sin * flip, cos, centre[:, 1]], dim=1)], dim=1)


def equivariance_loss(map_of_original: Tensor, map_of_transformed: Tensor,
                      transforms: Tensor) -> Tensor:
    """``MSE(T(map(x)), map(T(x)))`` for maps ``[B, h, w]`` and transforms ``[B, 2, 3]``."""
    transformed_map = warp(map_of_original, transforms)
    return F.mse_loss(transformed_map, map_of_transformed)


@register("ssltie")
class SSLTIE(LVS):
    """SSL-TIE network: ``forward(images, audio) -> (cosine map [B, h, w], loss or None)``."""

    def __init__(self, encoder_size: str = "resnet18", sample_rate: int = 16000,
                 visual_weights: str | None = None, audio_weights: str | None = None,
                 dim: int | None = None, output_stride: int = 16,
                 positive_threshold: float = 0.65, negative_threshold: float = 0.4,
                 trimap_sharpness: float = 0.03, temperature: float = 0.07,
                 equivariance_weight: float = 1.0, flip_probability: float = 0.5,
                 crop_side: tuple[float, float] = (0.5, 1.0),
                 max_rotation_degrees: float = 0.0) -> None:
        super().__init__(encoder_size, sample_rate, visual_weights, audio_weights, dim,
                         output_stride, positive_threshold, negative_threshold,
                         trimap_sharpness, temperature)
        self.equivariance_weight = equivariance_weight
        self.flip_probability = flip_probability
        self.crop_side = crop_side
        self.max_rotation_degrees = max_rotation_degrees

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.training:
            return super().forward(images, audio)
        transforms = random_view_transforms(images.shape[0], images.device,
                                            self.flip_probability, self.crop_side,
                                            self.max_rotation_degrees)
        views = torch.cat([images, warp(images, transforms)])
        visual, visual_transformed = self.embedder.embed_images(views).chunk(2)
        sound = self.embedder.embed_audio(audio)
        similarities = cross_modal_similarities(visual, sound)
        similarities_transformed = cross_modal_similarities(visual_transformed, sound)
        av_map = matched_pairs(similarities)
        loss = (0.5 * (self.loss(similarities) + self.loss(similarities_transformed))
                + self.equivariance_weight * equivariance_loss(
                    av_map, matched_pairs(similarities_transformed), transforms))
        return av_map, loss
