"""SSPL (Song et al., "Self-Supervised Predictive Learning: A Negative-Free Method for Sound
Source Localization in Visual Scenes", CVPR 2022).

Map: cosine similarity between the audio embedding and every location of a visual feature
map (14x14 at 224 px: the visual encoder runs at output stride 16) that a predictive-coding
module (PCM) has refined with the audio. Loss: SimSiam on two views of each clip, positives
only (no other sample of the batch enters sample ``i``'s loss): each view's
audio-attention-pooled visual feature goes through a projector ``f`` and a predictor ``h``;
``L = -(cos(h(f(x1)), sg(f(x2))) + cos(h(f(x2)), sg(f(x1)))) / 2`` with stop-gradient ``sg``.

The second view is made inside the network, batched, with the library's augmentation ops
(``dmt_wrap.augment``): a random horizontal flip and a random resized crop (side 80-100% of
the image, one affine warp; the original used resize-to-110% + random crop + flip in its data
loader) of the images, and a random gain (+-6 dB) and white noise (30 dB SNR) on the
waveform (the original fed one audio clip to both views). View 1 is the input itself, so
the returned map stays aligned with the input images.

Facts kept from the original code: the attention weights are the per-image min-max normalised
cosine map and they pool the refined (unnormalised) features as a weighted *sum*; the audio
enters the PCM through its own normalised 128-d embedding and the cosine through a separate
``dim``-d projection; the SimSiam projector is 3 layers of 2048 with BatchNorm (last without
affine) and the predictor a 2048-512-2048 bottleneck; the PCM runs 4 refinement cycles.

Options that follow the original where the default does not (the ``"paper"`` recipe sets
them): ``audio_projection_layers=2`` makes the cosine's audio projection the original's
2-layer MLP (Linear, ReLU, Linear; hidden width ``dim``, the original's 512 at resnet18),
one Linear by default; ``per_view_passes=True`` runs the encoders and the PCM once per view,
as the original does, so each view's BatchNorm statistics are its own (by default both views
go through as one batch); ``head_lr_scale`` sets the SimSiam head's learning rate relative
to the rest (``param_groups``; the original: 5e-5 against 2e-5, i.e. 2.5).

``freeze_visual`` / ``freeze_audio`` keep an encoder fixed (weights and BatchNorm statistics):
the original's optimiser holds only the audio projection (its VGGish is frozen whole), the
PCM and the SimSiam head, never its ImageNet VGG16. Use them with ``visual_weights`` /
``audio_weights``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import einsum, rearrange, reduce
from torch import Tensor, nn

from dmt_wrap_baselines.encoders import AudioEncoder, VisualEncoder, matched_similarity_map, soft_min_max_normalise
from dmt_wrap_baselines.freezing import FreezableEncoders
from dmt_wrap_baselines.recipes import COMPOSED_CPU_NETWORK, Recipe, register_recipes
from dmt_wrap_baselines.registry import register
from dmt_wrap.augment import GeometricParams, augment_audio, sample_geometry, warp


class PredictiveCodingModule(nn.Module):
    """Refines a visual feature map with an audio embedding by predictive coding.

    A hierarchy of ``levels`` visual representations, each half the resolution of the one
    below (level 0 is the encoder's map), topped by the audio embedding. One cycle:

    * feedback (prediction): each level's representation predicts the next coarser one
      (3x3 conv + 2x2 max-pool); the coarsest predicts the audio embedding (1x1 conv +
      global average pool); the prediction is blended into the coarser representation
      with a learned per-channel rate ``b`` (level 0 is pulled back towards the encoder's
      map the same way, which keeps the refinement anchored to the image);
    * feedforward (error): the audio prediction error, broadcast over the coarsest grid,
      corrects the coarsest representation; each level's correction (updated minus
      predicted), upsampled and convolved (3x3), corrects the level below, with a learned
      per-channel rate ``a``.

    One initial pass (prediction from the encoder's map, then the error pass) is followed by
    ``cycles`` cycles, each with its own BatchNorm layers since statistics shift from cycle
    to cycle. A 1x1 conv maps the refined level-0 representation to ``out_channels``.
    This follows the structure of the original PCM (which had four levels at 14, 7, 3 and
    the audio); the levels here adapt to any input size (pooling with ``ceil_mode``).
    """

    def __init__(self, channels: int, audio_dim: int, out_channels: int, levels: int = 3,
                 cycles: int = 4) -> None:
        super().__init__()
        self.levels = levels
        self.cycles = cycles
        self.predict_coarser = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                          nn.MaxPool2d(2, ceil_mode=True))
            for _ in range(levels - 1))
        self.predict_audio = nn.Conv2d(channels, audio_dim, kernel_size=1)
        self.audio_error_to_visual = nn.Linear(audio_dim, channels, bias=False)
        self.error_to_finer = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                                            for _ in range(levels - 1))
        self.prediction_rates = nn.Parameter(torch.full((levels, channels, 1, 1), 0.5))
        self.error_rates = nn.Parameter(torch.ones(levels, channels, 1, 1))
        passes = cycles + 1
        self.prediction_norms = nn.ModuleList(
            nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(levels - 1))
            for _ in range(passes))
        self.error_norms = nn.ModuleList(
            nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(levels))
            for _ in range(passes))
        self.output = nn.Conv2d(channels, out_channels, kernel_size=1)

    def audio_prediction(self, coarsest: Tensor) -> Tensor:
        return reduce(F.gelu(self.predict_audio(coarsest)), "b c h w -> b c", "mean")

    def error_pass(self, updated: list[Tensor], predicted: list[Tensor], audio: Tensor,
                   norms: nn.ModuleList) -> list[Tensor]:
        """Correct every level bottom-up from the audio prediction error (coarsest first)."""
        top = self.levels - 1
        audio_error = self.audio_error_to_visual(audio - self.audio_prediction(updated[top]))
        rates = F.relu(self.error_rates)
        corrected = list(updated)
        corrected[top] = F.gelu(norms[top](
            updated[top] + rates[top] * rearrange(audio_error, "b c -> b c 1 1")))
        for level in range(top - 1, -1, -1):
            error = corrected[level + 1] - predicted[level + 1]
            error = F.interpolate(error, size=updated[level].shape[-2:], mode="bilinear",
                                  align_corners=False)
            corrected[level] = F.gelu(norms[level](
                updated[level] + rates[level] * self.error_to_finer[level](error)))
        return corrected

    def forward(self, visual: Tensor, audio: Tensor) -> Tensor:
        """visual ``[B, C, h, w]``, audio ``[B, audio_dim]`` -> refined map ``[B, out, h, w]``."""
        predicted = [visual]
        for level in range(1, self.levels):
            predicted.append(F.gelu(self.prediction_norms[0][level - 1](
                self.predict_coarser[level - 1](predicted[level - 1]))))
        updated = self.error_pass(predicted, predicted, audio, self.error_norms[0])
        blend = F.relu(self.prediction_rates)
        for cycle in range(1, self.cycles + 1):
            updated[0] = F.gelu((1 - blend[0]) * updated[0] + blend[0] * visual)
            for level in range(1, self.levels):
                predicted[level] = self.predict_coarser[level - 1](updated[level - 1])
                updated[level] = F.gelu(self.prediction_norms[cycle][level - 1](
                    (1 - blend[level]) * updated[level] + blend[level] * predicted[level]))
            updated = self.error_pass(updated, predicted, audio, self.error_norms[cycle])
        return self.output(updated[0])


class SimSiamHead(nn.Module):
    """SimSiam projector (3 x Linear-BN, ReLU between) and bottleneck predictor."""

    def __init__(self, in_dim: int, projection_dim: int = 2048,
                 predictor_hidden_dim: int = 512) -> None:
        super().__init__()
        self.projector = nn.Sequential(
            nn.Linear(in_dim, projection_dim, bias=False), nn.BatchNorm1d(projection_dim),
            nn.ReLU(),
            nn.Linear(projection_dim, projection_dim, bias=False),
            nn.BatchNorm1d(projection_dim), nn.ReLU(),
            nn.Linear(projection_dim, projection_dim, bias=False),
            nn.BatchNorm1d(projection_dim, affine=False))
        self.predictor = nn.Sequential(
            nn.Linear(projection_dim, predictor_hidden_dim, bias=False),
            nn.BatchNorm1d(predictor_hidden_dim), nn.ReLU(),
            nn.Linear(predictor_hidden_dim, projection_dim))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, in_dim]`` -> prediction ``p`` and projection ``z`` (detached: stop-gradient)."""
        projection = self.projector(features)
        return self.predictor(projection), projection.detach()


def simsiam_sample_losses(prediction_1: Tensor, target_1: Tensor, prediction_2: Tensor,
                          target_2: Tensor) -> Tensor:
    """Symmetrised negative cosine ``-(cos(p1, z2) + cos(p2, z1)) / 2`` per sample: ``[B]``."""
    return -(F.cosine_similarity(prediction_1, target_2, dim=1)
             + F.cosine_similarity(prediction_2, target_1, dim=1)) / 2


def draw_second_view(images: Tensor, audio: Tensor, crop_scale: tuple[float, float],
                     audio_gain_db: float, audio_noise_snr_db: float | None,
                     generator: torch.Generator) -> tuple[Tensor, Tensor, GeometricParams]:
    """Per clip: a random flip and resized crop of the image (one batched affine warp) and
    a random gain and white noise on the waveform, each drawn for that clip alone from
    ``generator``; also the geometry, to move anything aligned with the images along."""
    geometry = sample_geometry(images.shape[0], generator, crop_scale, flip_p=0.5)
    return warp(images, geometry), augment_audio(audio, generator, audio_gain_db, audio_noise_snr_db,
                                                 mask_fraction=0.0), geometry


def second_view(images: Tensor, audio: Tensor, crop_scale: tuple[float, float],
                audio_gain_db: float, audio_noise_snr_db: float | None) -> tuple[Tensor, Tensor]:
    """The training view of :func:`draw_second_view`, drawn from a generator seeded from
    torch's global RNG, so ``torch.manual_seed`` makes it reproducible."""
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,))))
    return draw_second_view(images, audio, crop_scale, audio_gain_db, audio_noise_snr_db, generator)[:2]


@register("sspl")
class SSPL(FreezableEncoders):
    """SSPL with a predictive-coding module; map ``[B, h, w]`` is a cosine similarity."""

    def __init__(self, encoder_size: str = "resnet18", sample_rate: int = 16000,
                 visual_weights: str | None = None, audio_weights: str | None = None,
                 dim: int | None = None, output_stride: int = 16, pcm_audio_dim: int = 128,
                 pcm_levels: int = 3, pcm_cycles: int = 4, projection_dim: int = 2048,
                 predictor_hidden_dim: int = 512,
                 crop_scale: tuple[float, float] = (0.8, 1.0), audio_gain_db: float = 6.0,
                 audio_noise_snr_db: float = 30.0, freeze_visual: bool = False,
                 freeze_audio: bool = False, audio_projection_layers: int = 1,
                 per_view_passes: bool = False, head_lr_scale: float = 1.0) -> None:
        super().__init__()
        if audio_projection_layers not in (1, 2):
            raise ValueError(f"audio_projection_layers={audio_projection_layers}: 1 (a Linear) or 2 (the "
                             "original's Linear-ReLU-Linear)")
        if head_lr_scale <= 0:
            raise ValueError(f"head_lr_scale={head_lr_scale}: must be > 0 (1: the base learning rate)")
        self.per_view_passes = per_view_passes
        self.head_lr_scale = head_lr_scale
        self.crop_scale = crop_scale
        self.audio_gain_db = audio_gain_db
        self.audio_noise_snr_db = audio_noise_snr_db
        self.visual_encoder = VisualEncoder(encoder_size, weights=visual_weights,
                                            output_stride=output_stride)
        self.audio_encoder = AudioEncoder(encoder_size, sample_rate=sample_rate,
                                          weights=audio_weights)
        self.freeze_encoders(visual=freeze_visual, audio=freeze_audio)
        audio_channels = self.audio_encoder.out_channels
        dim = dim or self.visual_encoder.out_channels
        self.audio_to_pcm = nn.Linear(audio_channels, pcm_audio_dim)
        self.audio_to_visual = (nn.Linear(audio_channels, dim) if audio_projection_layers == 1 else
                                nn.Sequential(nn.Linear(audio_channels, dim), nn.ReLU(),
                                              nn.Linear(dim, dim)))
        self.pcm = PredictiveCodingModule(self.visual_encoder.out_channels, pcm_audio_dim, dim,
                                          levels=pcm_levels, cycles=pcm_cycles)
        self.head = SimSiamHead(dim, projection_dim, predictor_hidden_dim)

    def refined_features_and_map(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """PCM-refined visual features ``[B, dim, h, w]`` and the cosine map ``[B, h, w]``."""
        audio_embedding = self.audio_encoder(audio)
        pcm_audio = F.normalize(self.audio_to_pcm(audio_embedding), dim=1)
        features = self.pcm(self.visual_encoder(images), pcm_audio)
        cosine = matched_similarity_map(F.normalize(features, dim=1),
                                        F.normalize(self.audio_to_visual(audio_embedding), dim=1))
        return features, cosine

    def forward_per_sample(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        """The map of the input view and, in training mode, the per-sample loss ``[B]``."""
        if not self.training:
            return self.refined_features_and_map(images, audio)[1], None
        second_images, second_audio = second_view(images, audio, self.crop_scale,
                                                  self.audio_gain_db, self.audio_noise_snr_db)
        if self.per_view_passes:
            views = [self.refined_features_and_map(images, audio),
                     self.refined_features_and_map(second_images, second_audio)]
            features, cosine = (torch.cat(parts) for parts in zip(*views))
        else:
            features, cosine = self.refined_features_and_map(torch.cat([images, second_images]),
                                                             torch.cat([audio, second_audio]))
        pooled = einsum(features, soft_min_max_normalise(cosine), "b c h w, b h w -> b c")
        first, second = pooled.chunk(2)
        prediction_1, target_1 = self.head(first)
        prediction_2, target_2 = self.head(second)
        losses = simsiam_sample_losses(prediction_1, target_1, prediction_2, target_2)
        return cosine[: images.shape[0]], losses

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        similarity, losses = self.forward_per_sample(images, audio)
        return similarity, None if losses is None else losses.mean()

    def param_groups(self, lr: float) -> list[dict]:
        """The PCM's two rate tensors without weight decay and the SimSiam head at
        ``head_lr_scale * lr``, as the original's ``create_optimizer``; everything else at ``lr``
        with the optimiser's weight decay (not listed). At no weight decay and ``head_lr_scale=1``
        the optimiser steps as one ungrouped optimiser would."""
        groups = [{"params": [self.pcm.prediction_rates, self.pcm.error_rates], "weight_decay": 0.0}]
        if self.head_lr_scale != 1.0:
            groups.append({"params": [p for p in self.head.parameters() if p.requires_grad],
                           "lr": lr * self.head_lr_scale})
        return groups


register_recipes("sspl", {
    "composed-cpu": Recipe(network=COMPOSED_CPU_NETWORK,
                           source="the composed benchmark at 64 px: an 8x8 map; nothing else changed"),
    "paper": Recipe(network={"output_stride": 16, "audio_projection_layers": 2, "per_view_passes": True,
                             "head_lr_scale": 2.5, "crop_scale": (1 / 1.1, 1 / 1.1), "audio_gain_db": 0.0,
                             "audio_noise_snr_db": None},
                    training={"optimizer": "adamw", "lr": 2e-5, "weight_decay": 1e-4, "batch_size": 256},
                    source="zjsong/SSPL sspl_w_pcm/arguments_train.py and main.py create_optimizer: AdamW, "
                           "lr 2e-5 (PCM, audio projection) and 5e-5 (SimSiam head), weight decay 1e-4 "
                           "except on the PCM's two rate tensors, 2 GPUs x 128; a 224 crop of the frame resized "
                           "to 110%, one audio clip for both views. Its encoders are pretrained and frozen: "
                           "give visual_weights/audio_weights and freeze_visual/freeze_audio for that"),
})
