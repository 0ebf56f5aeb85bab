"""Attention10k (Senocak et al., "Learning to Localize Sound Source in Visual Scenes", CVPR 2018).

The audio embedding, mapped into the visual feature space, scores every location of the
visual feature map by cosine similarity; ``softmax_p(ReLU(cos))`` is the attention map
(a distribution over locations). The attention-pooled visual vector, mapped back into the
audio embedding space, must lie nearer the clip's own audio embedding than one negative
audio embedding (here the batch rolled by one): with distances ``d+`` and ``d-``, the loss
is the squared error between ``softmax([d+, d-])`` and ``[0, 1]``.

Facts kept from the original code: a VGG16 conv5_3 map (stride 16), a 2-layer audio MLP
(ReLU between) into the visual channel space, L2-normalised audio and visual features for
the cosine, pooling over the *unnormalised* visual features, ReLU then a 2-layer visual MLP
into the audio embedding space, Euclidean distances to the raw audio embeddings. The
original froze the image network and used fixed SoundNet features; here both encoders train
by default, and the audio embeddings enter the distances as targets under stop-gradient (the
audio encoder learns through the attention query): with trainable targets the loss has a
trivial minimum at ``d+ = d-`` (identical audio embeddings), which a fixed SoundNet could not
reach.

``attention_temperature`` divides ``ReLU(cos)`` before the softmax. At 1 (the original) the
scores lie in [0, 1], so the most attended location weighs at most e times the least: the
pooled vector stays close to the plain mean and the loss can be met without choosing where
the sound is. Below 1 the attention can select.

``freeze_visual`` / ``freeze_audio`` keep an encoder fixed (weights and BatchNorm
statistics), as the original kept its ImageNet VGG16 and its SoundNet features; use them
with ``visual_weights`` / ``audio_weights``. The loss scores *which* features are pooled, so
it needs features that are local to begin with: trained along from scratch, the encoders can
spread the whole scene into every location, and the loss (one negative: another clip's
audio, rarely of a class in the scene) is then met anywhere. Measured on the composed flickr
tier in the README ("Does each baseline learn alone?").
"""
from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import Tensor, nn

from dmt_wrap_baselines.encoders import encoder_pair, matched_similarity_map
from dmt_wrap_baselines.freezing import FreezableEncoders
from dmt_wrap_baselines.recipes import COMPOSED_CPU_NETWORK, Recipe, register_recipes
from dmt_wrap_baselines.registry import register

ScoreActivation = Literal["relu", "identity"]


def triplet_softmax_loss(pooled: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
    """Per-sample loss ``mean((softmax([d+, d-]) - [0, 1])^2)`` on Euclidean distances.

    ``pooled``, ``positive``, ``negative``: ``[B, C]``; returns ``[B]``.
    """
    distances = torch.stack([F.pairwise_distance(pooled, positive),
                             F.pairwise_distance(pooled, negative)], dim=1)
    target = torch.tensor([0.0, 1.0], device=pooled.device, dtype=distances.dtype)
    return (distances.softmax(dim=1) - target).square().mean(dim=1)


@register("attention10k")
class Attention10k(FreezableEncoders):
    """Attention10k; map ``[B, h, w]`` is the attention distribution (sums to 1 per image).

    ``dim`` is the hidden width of the audio-to-visual and visual-to-audio MLPs (``None``:
    the visual encoder's width, 512 for resnet18 as in the original's visual MLP).
    ``output_stride=16`` matches the original's stride-16 map (20x20 at 320 px).
    """

    def __init__(self, encoder_size: str = "resnet18", sample_rate: int = 16000,
                 visual_weights: str | None = None, audio_weights: str | None = None,
                 dim: int | None = None, output_stride: int = 16, attention_temperature: float = 1.0,
                 score_activation: ScoreActivation = "relu",
                 freeze_visual: bool = False, freeze_audio: bool = False) -> None:
        super().__init__()
        if attention_temperature <= 0:
            raise ValueError(f"attention_temperature={attention_temperature}: must be > 0 (1 is the original)")
        if score_activation not in get_args(ScoreActivation):
            raise ValueError(f"score_activation={score_activation!r}: expected 'relu' (the original) or 'identity'")
        self.attention_temperature = attention_temperature
        self.score_activation = score_activation
        self.visual_encoder, self.audio_encoder = encoder_pair(encoder_size, sample_rate, visual_weights,
                                                               audio_weights, output_stride)
        self.freeze_encoders(visual=freeze_visual, audio=freeze_audio)
        visual_channels = self.visual_encoder.out_channels
        audio_channels = self.audio_encoder.out_channels
        dim = dim or visual_channels
        self.audio_to_visual = nn.Sequential(nn.Linear(audio_channels, dim), nn.ReLU(),
                                             nn.Linear(dim, visual_channels))
        self.visual_to_audio = nn.Sequential(nn.ReLU(), nn.Linear(visual_channels, dim),
                                             nn.ReLU(), nn.Linear(dim, audio_channels))

    def attention(self, visual: Tensor, audio_query: Tensor) -> Tensor:
        """``softmax_p(ReLU(cos(v_p, q)) / T)`` for visual ``[B, C, h, w]``, query ``[B, C]`` (no ReLU
        with ``score_activation="identity"``)."""
        cosine = matched_similarity_map(F.normalize(visual, dim=1),
                                        F.normalize(audio_query, dim=1))
        h, w = cosine.shape[1:]
        scores = F.relu(cosine) if self.score_activation == "relu" else cosine
        weights = rearrange(scores / self.attention_temperature, "b h w -> b (h w)").softmax(dim=1)
        return rearrange(weights, "b (h w) -> b h w", h=h, w=w)

    def forward_per_sample(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        """The attention map and, in training mode, the per-sample loss ``[B]``.

        The one negative of sample ``i`` is the audio of sample ``i - 1`` (batch rolled by one).
        """
        visual = self.visual_encoder(images)
        audio_embedding = self.audio_encoder(audio)
        attention = self.attention(visual, self.audio_to_visual(audio_embedding))
        if not self.training:
            return attention, None
        pooled = self.visual_to_audio(einsum(visual, attention, "b c h w, b h w -> b c"))
        target = audio_embedding.detach()
        return attention, triplet_softmax_loss(pooled, target, target.roll(1, dims=0))

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        attention, losses = self.forward_per_sample(images, audio)
        return attention, None if losses is None else losses.mean()


register_recipes("attention10k", {
    "composed-cpu": Recipe(
        network={**COMPOSED_CPU_NETWORK, "attention_temperature": 0.1, "score_activation": "identity"},
        source="measured on the composed flickr tier (docs/baselines.md): with ReLU before the softmax 11 of "
               "12 semi-supervised networks ended with every cosine negative and no gradient"),
    "paper": Recipe(network={"output_stride": 16},
                    training={"optimizer": "sgd", "momentum": 0.9, "lr": 1e-4, "weight_decay": 1e-4,
                              "batch_size": 32},
                    source="the paper's stated settings (SGD, momentum 0.9, lr 1e-4, weight decay 1e-4, batch "
                           "32, as issue 30 reads them); no training code was released to check them against"),
})
