"""LVS (Chen et al., CVPR 2021, "Localizing Visual Sounds the Hard Way").

Map: the cosine ``A = <v(p), a>`` between L2-normalised visual features and audio
embedding (the original compares ResNet18 layer4 with the max-pooled audio features
directly; ``dim`` adds linear projections instead). The original's layer4 runs at stride 1
without dilation, for 14x14 at 224 px: ``output_stride=16, dilated=False`` (the ``"paper"``
recipe); the default ``dilated=True`` reaches stride 16 by timm's dilation instead. Its audio
ResNet runs layer4 so too: ``audio_output_stride=16`` with ``dilated=False`` (also the
``"paper"`` recipe; the default 32 keeps layer4's stride 2 before the max pool).

Loss: a soft tri-map on the matched map, ``m_p = sigmoid((A - 0.65) / 0.03)`` (positive
region) and ``m_n = 1 - sigmoid((A - 0.4) / 0.03)`` (hard-negative background of the
same image); logits ``[Pos_i, EasyNeg_ij (j != i), HardNeg_i] / 0.07`` with
``Pos_i = <m_p, A_ii> / |m_p|``, ``EasyNeg_ij`` the same positive-region average of
the mismatched map ``A_ij`` (its own tri-map), ``HardNeg_i = <m_n, A_ii> / |m_n|``;
cross-entropy to index 0. The released code keeps the diagonal among the easy negatives,
multiplied by ``1 - 100 = -99`` (its ``mask``), so that it drops out of the softmax; here
``j != i`` is taken literally. The two agree unless ``Pos_ii`` is negative (in practice:
every cosine of that map negative), where ``-99 Pos_ii`` is a large logit, not a vanishing one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dmt_wrap_baselines.encoders import (AudioVisualEmbedder, cross_modal_similarities, matched_pairs,
                                matched_similarity_map)
from dmt_wrap_baselines.recipes import COMPOSED_CPU_NETWORK, Recipe, register_recipes
from dmt_wrap_baselines.registry import register


def lvs_trimap(cosine_map: Tensor, positive_threshold: float = 0.65,
               negative_threshold: float = 0.4, sharpness: float = 0.03) -> tuple[Tensor, Tensor]:
    """Soft positive and negative masks ``(m_p, m_n)`` of a cosine map (any shape)."""
    positive = torch.sigmoid((cosine_map - positive_threshold) / sharpness)
    negative = 1 - torch.sigmoid((cosine_map - negative_threshold) / sharpness)
    return positive, negative


def _masked_mean(values: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean over the last two (spatial) dims."""
    return (values * weights).sum(dim=(-2, -1)) / weights.sum(dim=(-2, -1))


def lvs_logits(cosine_similarities: Tensor, positive_threshold: float = 0.65,
               negative_threshold: float = 0.4, sharpness: float = 0.03,
               temperature: float = 0.07) -> Tensor:
    """``[B, B, h, w]`` all-pairs cosine maps -> ``[B, B + 1]`` logits, positive at index 0."""
    batch = cosine_similarities.shape[0]
    matched = matched_pairs(cosine_similarities)
    positive, negative = lvs_trimap(matched, positive_threshold, negative_threshold, sharpness)
    all_positive, _ = lvs_trimap(cosine_similarities, positive_threshold, negative_threshold,
                                 sharpness)
    pair_scores = _masked_mean(cosine_similarities, all_positive)  # [B, B]
    off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=pair_scores.device)
    easy_negatives = pair_scores[off_diagonal].view(batch, batch - 1)
    logits = torch.cat([_masked_mean(matched, positive).unsqueeze(1), easy_negatives,
                        _masked_mean(matched, negative).unsqueeze(1)], dim=1)
    return logits / temperature


def lvs_loss(cosine_similarities: Tensor, positive_threshold: float = 0.65,
             negative_threshold: float = 0.4, sharpness: float = 0.03,
             temperature: float = 0.07) -> Tensor:
    """LVS's cross-entropy: every sample's positive-region score against its negatives."""
    logits = lvs_logits(cosine_similarities, positive_threshold, negative_threshold,
                        sharpness, temperature)
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long,
                                               device=logits.device))


@register("lvs")
class LVS(nn.Module):
    """LVS network: ``forward(images, audio) -> (cosine map [B, h, w], loss or None)``."""

    def __init__(self, encoder_size: str = "resnet18", sample_rate: int = 16000,
                 visual_weights: str | None = None, audio_weights: str | None = None,
                 dim: int | None = None, output_stride: int = 16,
                 positive_threshold: float = 0.65, negative_threshold: float = 0.4,
                 trimap_sharpness: float = 0.03, temperature: float = 0.07,
                 dilated: bool = True, audio_output_stride: int = 32) -> None:
        super().__init__()
        self.embedder = AudioVisualEmbedder(encoder_size, sample_rate, visual_weights,
                                            audio_weights, dim, output_stride,
                                            projection=dim is not None, dilated=dilated,
                                            audio_output_stride=audio_output_stride)
        self.positive_threshold = positive_threshold
        self.negative_threshold = negative_threshold
        self.trimap_sharpness = trimap_sharpness
        self.temperature = temperature

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        visual = self.embedder.embed_images(images)
        sound = self.embedder.embed_audio(audio)
        if not self.training:
            return matched_similarity_map(visual, sound), None
        similarities = cross_modal_similarities(visual, sound)
        return matched_pairs(similarities), self.loss(similarities)

    def loss(self, cosine_similarities: Tensor) -> Tensor:
        """LVS loss of all-pairs cosine maps ``[B, B, h, w]`` with this network's settings."""
        return lvs_loss(cosine_similarities, self.positive_threshold, self.negative_threshold,
                        self.trimap_sharpness, self.temperature)


register_recipes("lvs", {
    "composed-cpu": Recipe(network=COMPOSED_CPU_NETWORK,
                           source="the composed benchmark at 64 px: an 8x8 map (dilated); nothing else changed"),
    "paper": Recipe(network={"output_stride": 16, "dilated": False, "audio_output_stride": 16},
                    training={"optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "batch_size": 128},
                    source="hche11/Localizing-Visual-Sounds-the-Hard-Way models/base_models.py: layer4 at "
                           "stride 1, undilated, in the visual and the audio ResNet. The repository releases no training script: the training "
                           "settings are the paper preset's former shared ones, not read from LVS's code"),
})
