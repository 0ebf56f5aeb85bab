"""FNAC (Sun et al., CVPR 2023): EZ-VSL plus false-negative-aware regularisers.

Same map and MIL contrastive loss as EZ-VSL (and the same optional OGL at inference),
visual dropout 0.9 as in the released code, and three L1 regularisers (weight 100
each) that align the row-softmaxed cross-modal pair logits ``s_ij`` with intra-modal
similarities, so that semantically similar "negatives" are not pushed apart:

* FNS-audio: ``|softmax(a a^T / tau) - softmax(s)|``;
* FNS-visual: ``|softmax(vbar vbar^T / tau) - softmax(s)|`` (``vbar``: mean-pooled map);
* TNE (foreground): ``|softmax(a a^T / tau) - softmax(f f^T / tau)|`` where ``f`` is
  the visual map averaged with the binary foreground mask ``minmax(map) > 0.6``.

They switch on after ``reg_warmup_steps`` training-mode forwards. The released scripts
warm up for 5 epochs (``--warmup 5``) at batch 256 with ``drop_last``: 5 x (N // 256)
updates of the training set at hand, 5 x 562 = 2,810 on the 144k sets (the default) and
5 x 39 = 195 on the 10k ones; the ``"paper"`` recipe (``baselines.recipes``) computes it
from the training set's size. The network counts its own training forwards in a buffer, so
the schedule survives checkpoints; before that the terms are still computed (they are
cheap, B x B) but gated to zero by a tensor, so the switch costs no host sync.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dmt_wrap_baselines.encoders import matched_pairs, soft_min_max_normalise
from dmt_wrap_baselines.ezvsl import EZVSL, mil_contrastive_loss, mil_pair_logits
from dmt_wrap_baselines.recipes import COMPOSED_CPU_NETWORK, Recipe, register_recipes
from dmt_wrap_baselines.registry import register


def _row_softmax_l1(first_logits: Tensor, second_logits: Tensor) -> Tensor:
    return F.l1_loss(first_logits.softmax(dim=1), second_logits.softmax(dim=1))


def fnac_regularisers(visual: Tensor, audio: Tensor, similarities: Tensor,
                      temperature: float, foreground_threshold: float = 0.6
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """The three FNAC terms (FNS-audio, FNS-visual, TNE), unweighted.

    ``visual [B, D, h, w]`` and ``audio [B, D]`` are L2-normalised embeddings;
    ``similarities [B, B, h, w]`` are all-pairs ``<v_i(p), a_j> / temperature``.
    """
    pair_logits = mil_pair_logits(similarities)
    audio_logits = audio @ audio.t() / temperature
    pooled = visual.mean(dim=(2, 3))
    visual_logits = pooled @ pooled.t() / temperature
    av_map = soft_min_max_normalise(matched_pairs(similarities), eps=1e-5)
    foreground = (av_map > foreground_threshold).unsqueeze(1)
    foreground_features = (visual * foreground).mean(dim=(2, 3))
    foreground_logits = foreground_features @ foreground_features.t() / temperature
    return (_row_softmax_l1(audio_logits, pair_logits),
            _row_softmax_l1(visual_logits, pair_logits),
            _row_softmax_l1(audio_logits, foreground_logits))


@register("fnac")
class FNAC(EZVSL):
    """FNAC network: ``forward(images, audio) -> (map [B, h, w], loss or None)``."""

    def __init__(self, encoder_size: str = "resnet18", sample_rate: int = 16000,
                 visual_weights: str | None = None, audio_weights: str | None = None,
                 dim: int | None = None, output_stride: int = 32, temperature: float = 0.03,
                 visual_dropout: float = 0.9, regulariser_weight: float = 100.0,
                 reg_warmup_steps: int = 2810, foreground_threshold: float = 0.6,
                 object_prior_weights: str | None = None, object_prior_alpha: float = 0.4) -> None:
        super().__init__(encoder_size, sample_rate, visual_weights, audio_weights, dim,
                         output_stride, temperature, visual_dropout, object_prior_weights,
                         object_prior_alpha)
        self.regulariser_weight = regulariser_weight
        self.reg_warmup_steps = reg_warmup_steps
        self.foreground_threshold = foreground_threshold
        self.register_buffer("training_forwards", torch.zeros((), dtype=torch.long))

    def regularisers_active(self) -> Tensor:
        """Whether the next training forward adds the regularisers (a 0-dim bool tensor).

        A tensor, not a Python bool, so that the training step needs no host sync.
        """
        return self.training_forwards >= self.reg_warmup_steps

    def self_supervised_loss(self, visual: Tensor, audio: Tensor, similarities: Tensor) -> Tensor:
        gate = self.regularisers_active().to(similarities.dtype)
        self.training_forwards += 1
        terms = fnac_regularisers(visual, audio, similarities, self.temperature,
                                  self.foreground_threshold)
        return (mil_contrastive_loss(mil_pair_logits(similarities))
                + gate * self.regulariser_weight * sum(terms))


register_recipes("fnac", {
    "composed-cpu": Recipe(
        network={**COMPOSED_CPU_NETWORK, "reg_warmup_steps": 400, "regulariser_weight": 1.0, "visual_dropout": 0.0},
        source="measured on the composed flickr tier (docs/baselines.md): weight 100 swamps the contrastive "
               "loss there, dropout 0.9 keeps the supervised loss at chance through 600 updates; the "
               "regularisers start 400 updates in"),
    "paper": Recipe(network={"output_stride": 32, "visual_dropout": 0.9, "regulariser_weight": 100.0},
                    training={"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 256},
                    warmup_epochs={"reg_warmup_steps": 5},
                    source="OpenNLPLab/FNAC_AVL train_flickr.sh / train_vggss.sh: Adam, --init_lr 1e-4, "
                           "--weight_decay 1e-4, --batch_size 256, --warmup 5 (epochs), loss weights 100, "
                           "--dropout_img 0.9"),
})
