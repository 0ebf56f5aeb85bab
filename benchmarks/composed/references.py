"""Reference maps that bound what a tier can show: no audio, audio-blind, and perfect.

* ``random``: uniform noise per pixel, seeded by the item's index (the chance level of
  every metric; a coarse grid upsampled would put its peak on the image border, a bias);
* ``centre_prior``: a centred Gaussian (sigma a quarter of the side), the same for all;
* ``objectness``: all visible objects' exact masks (an audio-blind object detector);
* ``oracle``: the ground-truth ``mask`` itself.

A binary map ties most pixels, and the protocol's median threshold keeps every pixel
tied with the median: a box under half the image would then come with the whole frame.
So the two mask maps are 1 inside and, outside, a Gaussian-smoothed copy of the mask
(below 1, decreasing with distance), which breaks the ties toward the mask without
changing which pixels rank first.
"""
from __future__ import annotations

import torch
from torch import Tensor

CENTRE_SIGMA = 0.25  # of the image side
FRINGE_SIGMA = 0.125  # of the image side: wide enough to order pixels far from the mask


def _gaussian_matrix(size: int, sigma: float, device: torch.device) -> Tensor:
    """``[size, size]`` row-normalised Gaussian weights: ``M @ x`` smooths along an axis,
    renormalised at the borders so that a mask touching the edge stays strong there."""
    positions = torch.arange(size, dtype=torch.float32, device=device)
    weights = torch.exp(-0.5 * ((positions[:, None] - positions[None, :]) / sigma) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def smooth(maps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian smoothing of ``[B, H, W]`` maps, ``sigma`` in pixels."""
    rows = _gaussian_matrix(maps.shape[-2], sigma, maps.device)
    cols = _gaussian_matrix(maps.shape[-1], sigma, maps.device)
    return rows @ maps.float() @ cols.T


def with_fringe(masks: Tensor) -> Tensor:
    """1 on the mask, a smoothed copy of it outside (see the module docstring)."""
    masks = masks.float()
    fringe = smooth(masks, FRINGE_SIGMA * masks.shape[-1]) * 0.999
    return torch.maximum(masks, fringe)


def centre_prior(batch_size: int, height: int, width: int,
                 device: torch.device | None = None) -> Tensor:
    """``[B, H, W]`` centred Gaussians with sigma ``CENTRE_SIGMA`` of each side."""
    ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height - 0.5
    xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width - 0.5
    prior = torch.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2) / CENTRE_SIGMA ** 2)
    return prior.expand(batch_size, height, width).clone()


def random_map(indices: Tensor, height: int, width: int) -> Tensor:
    """``[B, H, W]`` uniform noise; item ``indices`` ``[B]`` seed it, so a scene gets the
    same map at any batch size."""
    return torch.stack([torch.rand(height, width, generator=torch.Generator().manual_seed(int(i)))
                        for i in indices])


def reference_maps(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """``random``, ``centre_prior``, ``objectness`` and ``oracle`` maps ``[B, S, S]``.

    ``batch`` is a collated batch of composed items (it needs ``mask``, ``objectness``
    and ``index``); score the maps against ``batch["mask"]`` like a model's maps.
    """
    mask, objectness = batch["mask"], batch["objectness"]
    if mask.dim() != 3 or objectness.shape != mask.shape:
        raise ValueError(f"reference_maps needs a collated batch with mask and objectness "
                         f"[B, S, S]; got mask {tuple(mask.shape)} and objectness "
                         f"{tuple(objectness.shape)}.")
    batch_size, height, width = mask.shape
    return {"random": random_map(batch["index"], height, width).to(mask.device),
            "centre_prior": centre_prior(batch_size, height, width, mask.device),
            "objectness": with_fringe(objectness),
            "oracle": with_fringe(mask)}
