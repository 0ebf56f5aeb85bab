"""SSL-TIE (Liu et al., ACM MM 2022): LVS plus transformation equivariance.

Each training forward draws a random geometric transform T from one of two families
(``transforms``), applied batched with affine grids:

* ``"per_sample"`` (the default, the composed benchmark's): per sample, a horizontal flip
  with probability 0.5 and a square zoom-*in* crop whose side is a uniform fraction
  (``crop_side``) of the image's, placed anywhere inside it, border padding; optionally a
  uniform rotation within ``max_rotation_degrees`` (0 by default);
* ``"original"`` (the released code's ``TfEquivarianceLoss``): one scale and one flip per
  batch: with probability 0.5 a zoom-*out* by 0.5 about the centre (zero padding: the
  ImageNet mean colour for images, 0 for maps), and a horizontal flip with probability 0.5
  after it; per sample an integer rotation about the centre within ``max_rotation_degrees``
  (30 in the released training scripts). One deviation remains: the original then resizes
  the zoomed-out view (and its map) to half the resolution, so its network sees a 112 px
  view; here the view keeps the input's resolution.

The loss is

    0.5 * (LVS(x) + LVS(T(x))) + equivariance_weight * MSE(T(map(x)), map(T(x)))

with the same audio for both views (weight 1.0 as in the released code). Both maps
carry gradients. The two views go through the visual encoder as one batch. The map
is LVS's cosine map (14x14 at 224 px, ``output_stride=16``). Photometric invariance
(colour jitter, audio augmentation) belongs to the data pipeline, not here.
"""
from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from dmt_wrap_baselines.encoders import IMAGENET_MEAN, cross_modal_similarities, matched_pairs
from dmt_wrap_baselines.lvs import LVS
from dmt_wrap_baselines.recipes import COMPOSED_CPU_NETWORK, Recipe, register_recipes
from dmt_wrap_baselines.registry import register
from dmt_wrap.augment import warp

TransformFamily = Literal["per_sample", "original"]


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


def original_view_transforms(batch: int, device: torch.device, max_rotation_degrees: int = 30,
                             zoom_out_probability: float = 0.5, zoom_out_scale: float = 0.5,
                             flip_probability: float = 0.5) -> Tensor:
    """SSL-TIE's released transform family as ``[B, 2, 3]`` ``affine_grid`` matrices.

    The forward map is ``Flip(s R(a) x)`` about the image centre, with one scale ``s`` (1, or
    ``zoom_out_scale`` with ``zoom_out_probability``) and one flip for the whole batch and a
    per-sample integer angle ``a`` uniform in ``[-max_rotation_degrees, max_rotation_degrees]``;
    the matrix is its inverse (output point -> input point), ``R(-a) F / s``.
    """
    side = torch.where(torch.rand((), device=device) < zoom_out_probability,
                       1.0 / zoom_out_scale, 1.0)
    flip = torch.where(torch.rand((), device=device) < flip_probability, -1.0, 1.0)
    degrees = torch.randint(-int(max_rotation_degrees), int(max_rotation_degrees) + 1, (batch,),
                            device=device).float()
    angle = degrees * (math.pi / 180)
    cos, sin = side * torch.cos(angle), side * torch.sin(angle)
    zero = torch.zeros_like(cos)
    return torch.stack([torch.stack([cos * flip, sin, zero], dim=1),
                        torch.stack([-sin * flip, cos, zero], dim=1)], dim=1)


def warp_zero_padded(x: Tensor, transforms: Tensor, fill: Tensor | float = 0.0) -> Tensor:
    """``x`` ``[B, C, H, W]`` or ``[B, H, W]`` warped by ``[B, 2, 3]`` matrices, ``fill`` outside.

    ``fill`` is per channel (``[C]``) or a scalar: the original pads normalised images with 0,
    which is the ImageNet mean colour of images in [0, 1].
    """
    squeeze = x.dim() == 3
    x4 = x.unsqueeze(1) if squeeze else x
    fill = torch.as_tensor(fill, dtype=x4.dtype, device=x4.device).reshape(1, -1, 1, 1)
    grid = F.affine_grid(transforms.to(x4.dtype), list(x4.shape), align_corners=False)
    out = F.grid_sample(x4 - fill, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False) + fill
    return out.squeeze(1) if squeeze else out


def equivariance_loss(map_of_original: Tensor, map_of_transformed: Tensor,
                      transforms: Tensor, zero_padded: bool = False) -> Tensor:
    """``MSE(T(map(x)), map(T(x)))`` for maps ``[B, h, w]`` and transforms ``[B, 2, 3]``.

    ``T`` pads with the border (``per_sample``) or with zeros (``zero_padded``: ``original``).
    """
    transformed_map = (warp_zero_padded(map_of_original, transforms) if zero_padded
                       else warp(map_of_original, transforms))
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
                 max_rotation_degrees: float = 0.0, transforms: TransformFamily = "per_sample",
                 dilated: bool = True) -> None:
        super().__init__(encoder_size, sample_rate, visual_weights, audio_weights, dim,
                         output_stride, positive_threshold, negative_threshold,
                         trimap_sharpness, temperature, dilated)
        if transforms not in get_args(TransformFamily):
            raise ValueError(f"transforms={transforms!r}: expected 'per_sample' (the default) or 'original' "
                             "(the released code's family)")
        if transforms == "original" and max_rotation_degrees != int(max_rotation_degrees):
            raise ValueError(f"max_rotation_degrees={max_rotation_degrees}: the original family draws integer "
                             "angles; give a whole number of degrees (30 in the released scripts)")
        self.transforms = transforms
        self.equivariance_weight = equivariance_weight
        self.flip_probability = flip_probability
        self.crop_side = crop_side
        self.max_rotation_degrees = max_rotation_degrees

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.training:
            return super().forward(images, audio)
        original = self.transforms == "original"
        if original:
            transforms = original_view_transforms(images.shape[0], images.device,
                                                  int(self.max_rotation_degrees),
                                                  flip_probability=self.flip_probability)
            mean = torch.tensor(IMAGENET_MEAN, device=images.device)
            transformed_images = warp_zero_padded(images, transforms, fill=mean)
        else:
            transforms = random_view_transforms(images.shape[0], images.device,
                                                self.flip_probability, self.crop_side,
                                                self.max_rotation_degrees)
            transformed_images = warp(images, transforms)
        views = torch.cat([images, transformed_images])
        visual, visual_transformed = self.embedder.embed_images(views).chunk(2)
        sound = self.embedder.embed_audio(audio)
        similarities = cross_modal_similarities(visual, sound)
        similarities_transformed = cross_modal_similarities(visual_transformed, sound)
        av_map = matched_pairs(similarities)
        loss = (0.5 * (self.loss(similarities) + self.loss(similarities_transformed))
                + self.equivariance_weight * equivariance_loss(
                    av_map, matched_pairs(similarities_transformed), transforms, zero_padded=original))
        return av_map, loss


register_recipes("ssltie", {
    "composed-cpu": Recipe(network=COMPOSED_CPU_NETWORK,
                           source="the composed benchmark at 64 px: an 8x8 map; the per-sample transform family"),
    "paper": Recipe(network={"output_stride": 16, "dilated": False, "transforms": "original",
                             "max_rotation_degrees": 30},
                    training={"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 32},
                    source="jinxiang-liu/SSL-TIE scripts/train_*.sh and opts.py: --batch_size 32, Adam, "
                           "--learning_rate 1e-4, --weight_decay 1e-4, --max_rotation_angle 30; "
                           "networks/base_models.py runs layer4 at stride 1, undilated"),
})
