"""EZ-VSL (Mo & Morgado, ECCV 2022): localization by multiple-instance contrastive learning.

Map: ``<v_i(p), a_i> / tau`` (tau 0.03) over the visual feature map (7x7 at 224 px,
``output_stride=32``). Loss: a pair (i, j) is scored by its best-matching location,
``s_ij = max_p <v_i(p), a_j> / tau``, and ``CE(s) + CE(s^T)`` pulls the diagonal up
(so only the argmax location of each pair carries that pair's gradient).

Inference extra, object-guided localization (OGL): given a local ImageNet ResNet
weights file (``object_prior_weights``), the eval-mode map becomes
``minmax(alpha * minmax(av) + (1 - alpha) * minmax(prior))`` with ``alpha=0.4`` and
``prior = mean_c |features|`` of that frozen ResNet. Off by default. Note that with OGL
an eval-mode map lies in [0, 1] while the training-mode map stays ``cosine / tau``, so
a calibration fitted on one does not transfer to the other: keep OGL for final
evaluation, not for DMT's teachers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dmt_wrap_baselines.encoders import (AudioVisualEmbedder, VisualEncoder, cross_modal_similarities,
                                matched_pairs, matched_similarity_map, soft_min_max_normalise)
from dmt_wrap_baselines.recipes import COMPOSED_CPU_NETWORK, Recipe, register_recipes
from dmt_wrap_baselines.registry import register


def mil_pair_logits(similarities: Tensor) -> Tensor:
    """``[B, B, h, w]`` -> ``[B, B]``: each pair scored by its best-matching location."""
    return similarities.flatten(2).amax(dim=2)


def mil_contrastive_loss(pair_logits: Tensor) -> Tensor:
    """EZ-VSL's symmetric loss: ``CE(s) + CE(s^T)``, positives on the diagonal."""
    targets = torch.arange(pair_logits.shape[0], device=pair_logits.device)
    return F.cross_entropy(pair_logits, targets) + F.cross_entropy(pair_logits.t(), targets)


class ObjectSaliencyPrior(nn.Module):
    """OGL's objectness map: ``mean_c |features|`` of a frozen (ImageNet) ResNet.

    Frozen means no gradients and always in eval mode (BatchNorm keeps its statistics).
    """

    def __init__(self, encoder_size: str, weights: str, output_stride: int = 32) -> None:
        super().__init__()
        self.encoder = VisualEncoder(encoder_size, weights, output_stride)
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> ObjectSaliencyPrior:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        saliency = self.encoder(images).abs().mean(dim=1, keepdim=True)
        return F.interpolate(saliency, size=size, mode="bilinear", align_corners=False)[:, 0]


def mix_with_object_prior(av_map: Tensor, prior: Tensor, alpha: float) -> Tensor:
    """OGL: ``minmax(alpha * minmax(av) + (1 - alpha) * minmax(prior))``."""
    mixed = alpha * soft_min_max_normalise(av_map) + (1 - alpha) * soft_min_max_normalise(prior)
    return soft_min_max_normalise(mixed)


@register("ezvsl")
class EZVSL(nn.Module):
    """EZ-VSL network: ``forward(images, audio) -> (map [B, h, w], loss or None)``."""

    def __init__(self, encoder_size: str = "resnet18", sample_rate: int = 16000,
                 visual_weights: str | None = None, audio_weights: str | None = None,
                 dim: int | None = None, output_stride: int = 32, temperature: float = 0.03,
                 visual_dropout: float = 0.0, object_prior_weights: str | None = None,
                 object_prior_alpha: float = 0.4) -> None:
        super().__init__()
        self.temperature = temperature
        self.embedder = AudioVisualEmbedder(encoder_size, sample_rate, visual_weights,
                                            audio_weights, dim, output_stride,
                                            visual_dropout=visual_dropout)
        self.object_prior = (ObjectSaliencyPrior(encoder_size, object_prior_weights, output_stride)
                             if object_prior_weights is not None else None)
        self.object_prior_alpha = object_prior_alpha

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        visual = self.embedder.embed_images(images)
        sound = self.embedder.embed_audio(audio)
        if not self.training:
            return self.inference_map(images, visual, sound), None
        similarities = cross_modal_similarities(visual, sound) / self.temperature
        return matched_pairs(similarities), self.self_supervised_loss(visual, sound, similarities)

    def self_supervised_loss(self, visual: Tensor, audio: Tensor, similarities: Tensor) -> Tensor:
        """The training loss from the embeddings and all-pairs similarities / tau."""
        return mil_contrastive_loss(mil_pair_logits(similarities))

    def inference_map(self, images: Tensor, visual: Tensor, audio: Tensor) -> Tensor:
        av_map = matched_similarity_map(visual, audio) / self.temperature
        if self.object_prior is None:
            return av_map
        prior = self.object_prior(images, av_map.shape[-2:])
        return mix_with_object_prior(av_map, prior, self.object_prior_alpha)


register_recipes("ezvsl", {
    "composed-cpu": Recipe(network=COMPOSED_CPU_NETWORK,
                           source="the composed benchmark at 64 px: an 8x8 map; nothing else changed"),
    "paper": Recipe(network={"output_stride": 32},
                    training={"optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "batch_size": 128},
                    source="stoneMo/EZ-VSL scripts/train_*.sh and utils.py: Adam, --init_lr 1e-4, "
                           "--batch_size 128, no weight decay; a 7x7 map at 224 px"),
})
