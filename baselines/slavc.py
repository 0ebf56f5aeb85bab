"""SLAVC (Mo & Morgado, "A Closer Look at Weakly-Supervised Audio-Visual Source
Localization", NeurIPS 2022).

Two projection heads per modality over one visual and one audio encoder; every feature is
L2-normalised. Momentum copies of the encoders and heads (EMA, ``m = 0.999``) give the
targets: the online visual features are scored against the momentum audio features and the
momentum visual features against the online audio features. For one pairing, with head-k
similarities ``S^k_ij(p) = <v^k_i(p), a^k_j> / tau``,

    z_ij = log sum_p softmax_j(S^1_ij(p)) * softmax_p(S^2_ij(p))

(head 1 says which audio, head 2 where in the image), and the loss is the cross-entropy of
``z`` (rows: images, columns: audio) on the diagonal, summed over the two pairings
(online image / momentum audio and momentum image / online audio), as in the original code.
Dropout 0.9 on the visual features (and 0 on the audio features) is the original's
regulariser against overfitting the correspondence.

The map is the mean of the two heads' ``<v^k(p), a^k> / tau``. In training mode it comes
from the online branch (so that a supervised map loss can train the network); in eval mode
from the momentum branch when ``momentum_map_at_eval`` (the original's ``use_mom_eval``).

Inference extras for the extended (silence-aware) protocol: ``absolute_scores`` maps the
map onto ``[0, 1]`` with the fixed range ``[-1/tau, 1/tau]`` (not per image, so a silent or
off-screen clip keeps low scores) and ``confidence`` is the mean of the top 25% of those:
with ``size=(224, 224)`` over the map upsampled bicubically (``align_corners=True``) to that
size, as the released ``test.py`` computes it; without, over the native map's cells. Neither
enters training: the map a network trains on is the same either way.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from dmt_wrap_baselines.encoders import cross_modal_similarities, encoder_pair, matched_similarity_map
from dmt_wrap_baselines.recipes import COMPOSED_CPU_NETWORK, Recipe, register_recipes
from dmt_wrap_baselines.registry import register


class TwoHeadEmbedder(nn.Module):
    """Visual and audio encoders, each followed by two projection heads (normalised outputs)."""

    def __init__(self, encoder_size: str, sample_rate: int, visual_weights: str | None,
                 audio_weights: str | None, dim: int | None, output_stride: int,
                 visual_dropout: float, audio_dropout: float) -> None:
        super().__init__()
        self.visual_encoder, self.audio_encoder = encoder_pair(encoder_size, sample_rate, visual_weights,
                                                               audio_weights, output_stride)
        visual_channels = self.visual_encoder.out_channels
        audio_channels = self.audio_encoder.out_channels
        dim = dim or visual_channels
        self.visual_dropout = nn.Dropout(visual_dropout)
        self.audio_dropout = nn.Dropout(audio_dropout)
        self.visual_heads = nn.ModuleList(nn.Conv2d(visual_channels, dim, kernel_size=1)
                                          for _ in range(2))
        self.audio_heads = nn.ModuleList(nn.Linear(audio_channels, dim) for _ in range(2))

    def embed_visual(self, images: Tensor) -> tuple[Tensor, Tensor]:
        visual = self.visual_dropout(self.visual_encoder(images))
        return tuple(F.normalize(head(visual), dim=1) for head in self.visual_heads)

    def embed_audio(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        embedding = self.audio_dropout(self.audio_encoder(audio))
        return tuple(F.normalize(head(embedding), dim=1) for head in self.audio_heads)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * source`` over parameters only."""
    for target_param, source_param in zip(target.parameters(), source.parameters(), strict=True):
        target_param.mul_(momentum).add_(source_param, alpha=1.0 - momentum)


def localization_map(visual: tuple[Tensor, Tensor], audio: tuple[Tensor, Tensor],
                     tau: float) -> Tensor:
    """Mean over heads of ``<v^k(p), a^k> / tau`` for matched pairs: ``[B, h, w]``."""
    maps = [matched_similarity_map(v, a) for v, a in zip(visual, audio, strict=True)]
    return (maps[0] + maps[1]) / (2 * tau)


def localized_correspondence_logits(visual: tuple[Tensor, Tensor],
                                    audio: tuple[Tensor, Tensor], tau: float) -> Tensor:
    """``z_ij = log sum_p softmax_j(S^1_ij(p)) softmax_p(S^2_ij(p))``: ``[B_img, B_aud]``.

    Computed in log space (``logsumexp`` of log-softmaxes): the same value, but with
    ``tau = 0.03`` the product of two peaked softmaxes can underflow to ``log(0)``.
    """
    which = cross_modal_similarities(visual[0], audio[0]) / tau
    where = cross_modal_similarities(visual[1], audio[1]) / tau
    which = rearrange(which, "i j h w -> i j (h w)").log_softmax(dim=1)
    where = rearrange(where, "i j h w -> i j (h w)").log_softmax(dim=2)
    return (which + where).logsumexp(dim=2)


@register("slavc")
class SLAVC(nn.Module):
    """SLAVC with momentum encoders; map ``[B, h, w]`` is a similarity / ``tau``.

    ``dim=None``: the visual encoder's width (512 for resnet18, as the original);
    ``output_stride=32``: the original's 7x7 map at 224 px.
    """

    def __init__(self, encoder_size: str = "resnet18", sample_rate: int = 16000,
                 visual_weights: str | None = None, audio_weights: str | None = None,
                 dim: int | None = None, output_stride: int = 32, tau: float = 0.03,
                 momentum: float = 0.999, visual_dropout: float = 0.9,
                 audio_dropout: float = 0.0, momentum_map_at_eval: bool = True) -> None:
        super().__init__()
        self.tau = tau
        self.momentum = momentum
        self.momentum_map_at_eval = momentum_map_at_eval
        self.online = TwoHeadEmbedder(encoder_size, sample_rate, visual_weights, audio_weights,
                                      dim, output_stride, visual_dropout, audio_dropout)
        self.momentum_branch = copy.deepcopy(self.online).requires_grad_(False)

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.training:
            return self.localize(images, audio), None
        visual = self.online.embed_visual(images)
        audio_features = self.online.embed_audio(audio)
        ema_update(self.momentum_branch, self.online, self.momentum)
        with torch.no_grad():
            visual_target = self.momentum_branch.embed_visual(images)
            audio_target = self.momentum_branch.embed_audio(audio)
        labels = torch.arange(images.shape[0], device=images.device)
        loss = (F.cross_entropy(localized_correspondence_logits(visual, audio_target, self.tau),
                                labels)
                + F.cross_entropy(localized_correspondence_logits(visual_target, audio_features,
                                                                  self.tau), labels))
        return localization_map(visual, audio_features, self.tau), loss

    def localize(self, images: Tensor, audio: Tensor) -> Tensor:
        """The map alone, without a momentum update (momentum branch in eval if configured)."""
        branch = (self.momentum_branch if self.momentum_map_at_eval and not self.training
                  else self.online)
        return localization_map(branch.embed_visual(images), branch.embed_audio(audio), self.tau)

    def absolute_scores(self, similarity_map: Tensor) -> Tensor:
        """Map ``[-1/tau, 1/tau]`` onto ``[0, 1]`` with one fixed range for every image."""
        return (similarity_map * self.tau + 1.0) / 2.0

    def confidence(self, images: Tensor, audio: Tensor,
                   size: tuple[int, int] | None = None) -> Tensor:
        """Mean of the top 25% absolute scores of each map: ``[B]`` (is anything sounding?).

        ``size``: first upsample the scores there (bicubic, ``align_corners=True``); the
        original's is ``(224, 224)``. ``None``: the native map's cells.
        """
        scores = self.absolute_scores(self.localize(images, audio))
        if size is not None:
            scores = F.interpolate(scores[:, None], size=size, mode="bicubic", align_corners=True)[:, 0]
        scores = rearrange(scores, "b h w -> b (h w)")
        top = scores.topk(max(1, scores.shape[1] // 4), dim=1).values
        return top.mean(dim=1)


register_recipes("slavc", {
    "composed-cpu": Recipe(network={**COMPOSED_CPU_NETWORK, "momentum": 0.99},
                           source="measured on the composed flickr tier (docs/baselines.md): at 0.999 the "
                                  "momentum branch averages over ~1,000 of a few thousand updates"),
    "paper": Recipe(network={"output_stride": 32, "momentum": 0.999, "visual_dropout": 0.9, "audio_dropout": 0.0},
                    training={"optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "batch_size": 128},
                    source="stoneMo/SLAVC scripts/train_vggsound144k.sh: Adam, --init_lr 1e-4, --batch_size 128, "
                           "weight decay 0 (train.py's default), --m_img/--m_aud 0.999, --dropout_img 0.9"),
})
