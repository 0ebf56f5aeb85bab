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

    def __init__(self, net: nn.Module, probabilities: bool | None = None) -> None:
        super().__init__()
        self.net = net
        self.probabilities = outputs_probabilities(net) if probabilities is None else probabilities
        self.name = network_name(net)
        self.scale = nn.Parameter(torch.ones(()))
        self.bias = nn.Parameter(torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

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

    def forward(self, images: Tensor, audio: Tensor) -> NetworkOutput:
        output = self.raw(images, audio)
        raw_map = output.map.float()
        if self.probabilities:
            logits = torch.logit(raw_map.clamp(_PROBABILITY_EPS, 1 - _PROBABILITY_EPS))
        else:
            logits = raw_map * self.scale + self.bias
        return NetworkOutput(logits, output.self_loss)
