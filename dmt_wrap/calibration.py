"""Confidence calibration: any raw localization map becomes a trainable probability map.

Most AVSL networks emit a similarity map (cosine / temperature), not a probability. A
learnable scale and bias per network, then a sigmoid, lets BCE train the map without
touching the network's contrastive geometry: the self-supervised loss still sees the raw
map, only the supervised path goes through the calibration.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .contract import (NetworkOutput, call_network, check_finite_map, check_map_trains, network_name,
                       outputs_probabilities, parse_output)

_PROBABILITY_EPS = 1e-4


class CalibratedNetwork(nn.Module):
    """A contract network whose map is turned into confidence logits.

    ``forward`` returns a ``NetworkOutput`` whose ``map`` holds logits: ``sigmoid`` of it is
    the confidence in [0, 1]. Networks declaring ``outputs_probabilities`` get ``logit(p)``
    and no learnable calibration.
    """

    def __init__(self, net: nn.Module, probabilities: bool | None = None, eval_affine: bool = False) -> None:
        super().__init__()
        self.net = net
        self.probabilities = outputs_probabilities(net) if probabilities is None else probabilities
        self.name = network_name(net)
        self.scale = nn.Parameter(torch.ones(()))
        self.bias = nn.Parameter(torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        if eval_affine:  # set by ``fit_eval_affine``; identity until then
            self.register_buffer("eval_scale", torch.ones(()))
            self.register_buffer("eval_shift", torch.zeros(()))

    def raw(self, images: Tensor, audio: Tensor) -> NetworkOutput:
        """The wrapped network's output, checked against the contract."""
        return parse_output(self.net(images, audio), images.shape[0], self.name)

    def initialise_from(self, images: Tensor, audio: Tensor, map_trains: bool = True) -> None:
        """Data-dependent start: standardise the first batch's raw map.

        Raw maps range from cosines in [-1, 1] to cosine / 0.03; a scale of 1 would leave
        the sigmoid saturated or flat. Setting scale = 1 / std and bias = -mean / std on one
        batch starts every network with logits of unit spread, whatever its temperature.
        Also checks the contract, once, with a clear message: an exception inside the network
        says what the wrapper passed, a non-finite map is refused, and so is (when ``map_trains``:
        the map feeds a loss) a map through which no gradient reaches the network.
        """
        # A throw-away copy in training mode: the statistics the map will have in training,
        # without touching the real network's buffers (BatchNorm, momentum encoders, counters).
        # Its forward runs with gradients, as in training (same values, same random draws), so
        # that a backward through the copy can show whether the map trains the network.
        probe = copy.deepcopy(self.net).train()
        with torch.enable_grad():
            output = parse_output(call_network(probe, images, audio, self.name), images.shape[0], self.name)
        check_finite_map(output, self.name)
        if map_trains:
            check_map_trains(output, probe, self.name)
        if self.probabilities:
            return
        with torch.no_grad():
            raw_map = output.map.detach().float()
            std = raw_map.std().clamp_min(1e-6)
            self.scale.fill_(1.0 / float(std))
            self.bias.fill_(-float(raw_map.mean()) / float(std))
            self.initialised.fill_(True)

    @torch.no_grad()
    def fit_eval_affine(self, images: Tensor, audio: Tensor) -> tuple[float, float]:
        """Make the eval-mode logits of this batch match the train-mode ones in mean and spread.

        The calibration is trained on train-mode maps, but teachers threshold eval-mode maps;
        dropout, BatchNorm and momentum branches can make the two differ enough that no pixel
        ever reaches ``delta``. Stores ``eval_scale`` / ``eval_shift`` (applied in eval mode
        only) and returns them. Needs ``eval_affine=True`` at construction.
        """
        if not hasattr(self, "eval_scale"):
            raise RuntimeError(f"{self.name}: build CalibratedNetwork(..., eval_affine=True) to refit eval-mode maps.")
        was_training = self.training
        train_logits = copy.deepcopy(self).train()(images, audio).map.float()
        self.eval_scale.fill_(1.0)
        self.eval_shift.fill_(0.0)
        eval_logits = self.eval()(images, audio).map.float()
        self.train(was_training)
        scale = float(train_logits.std() / eval_logits.std().clamp_min(1e-6))
        shift = float(train_logits.mean()) - scale * float(eval_logits.mean())
        self.eval_scale.fill_(scale)
        self.eval_shift.fill_(shift)
        return scale, shift

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """The eval-mode affine is optional state, the identity until fitted. A checkpoint without it
        (``recalibrate_teachers`` off, e.g. a shared warm-up) loads as the identity; an identity one
        loads into a network built without it. A fitted one is never dropped: that stays an error."""
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        keys = (prefix + "eval_scale", prefix + "eval_shift")
        if hasattr(self, "eval_scale"):
            if any(key in missing_keys for key in keys):
                self.eval_scale.fill_(1.0)
                self.eval_shift.fill_(0.0)
                missing_keys[:] = [key for key in missing_keys if key not in keys]
        elif all(key in state_dict for key in keys) and float(state_dict[keys[0]]) == 1.0 \
                and float(state_dict[keys[1]]) == 0.0:
            unexpected_keys[:] = [key for key in unexpected_keys if key not in keys]

    def forward(self, images: Tensor, audio: Tensor) -> NetworkOutput:
        output = self.raw(images, audio)
        raw_map = output.map.float()
        if self.probabilities:
            logits = torch.logit(raw_map.clamp(_PROBABILITY_EPS, 1 - _PROBABILITY_EPS))
        else:
            logits = raw_map * self.scale + self.bias
        if not self.training and hasattr(self, "eval_scale"):
            logits = logits * self.eval_scale + self.eval_shift
        return NetworkOutput(logits, output.self_loss)
