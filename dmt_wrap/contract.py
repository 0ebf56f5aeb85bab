"""The contract a localization network must meet to be wrapped by DualMeanTeacher.

Keep it tiny: this is what "wrap your model in three lines" rests on.

A network is any ``torch.nn.Module`` called as ``net(images, audio)`` with

* ``images``: float tensor ``[B, 3, H, W]``, RGB in ``[0, 1]`` (normalise inside the
  network if your encoder wants ImageNet statistics);
* ``audio``: float tensor ``[B, T]``, mono waveform at the dataset's sample rate
  (compute spectrograms inside the network, on its device);

and returning either

* a localization map ``[B, h, w]`` (any ``h, w``), or
* a tuple ``(map, self_supervised_loss)`` where the loss is a scalar tensor or ``None``.

The map may be a raw similarity (cosine, cosine / temperature, ...): the wrapper turns it
into a confidence with a learnable scale and bias. A network whose map already is a
probability in ``[0, 1]`` says so with a class or instance attribute
``outputs_probabilities = True``.

Everything else (feature sizes, encoders, temperatures, momentum encoders) is the
network's own business. Networks usually compute their self-supervised loss only in
training mode; teachers run in eval mode and need only the map.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


class ContractError(TypeError):
    """A wrapped network returned something the contract does not allow."""


@dataclass
class NetworkOutput:
    """What a network returned, normalised: its map and its optional own loss."""

    map: Tensor
    self_loss: Tensor | None


def network_name(net: nn.Module) -> str:
    return type(net).__name__


def outputs_probabilities(net: nn.Module) -> bool:
    """Whether ``net`` declares that its map already is a probability in [0, 1]."""
    return bool(getattr(net, "outputs_probabilities", False))


def parse_output(out: object, batch_size: int, net_name: str = "network") -> NetworkOutput:
    """Normalise and check one forward's output against the contract.

    Raises ``ContractError`` naming what came back and what was expected.
    Shape and type checks are free; value checks (NaN) are done by ``check_finite_map``
    so that the training step can choose when to pay for a host sync.
    """
    expected = ("expected a map tensor [B, h, w] or a tuple (map [B, h, w], "
                "self_supervised_loss scalar tensor or None)")
    loss = None
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise ContractError(f"{net_name} returned a {type(out).__name__} of length "
                                f"{len(out)}; {expected}.")
        out, loss = out
    if not isinstance(out, Tensor):
        raise ContractError(f"{net_name} returned a map of type {type(out).__name__}; {expected}.")
    if out.dim() != 3:
        raise ContractError(f"{net_name} returned a map of shape {tuple(out.shape)} "
                            f"(rank {out.dim()}); {expected}.")
    if out.shape[0] != batch_size:
        raise ContractError(f"{net_name} returned a map for {out.shape[0]} samples but was "
                            f"given {batch_size}; {expected}.")
    if not out.is_floating_point():
        raise ContractError(f"{net_name} returned a map of dtype {out.dtype}; a floating "
                            "point map is expected.")
    if loss is not None:
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ContractError(f"{net_name} returned a self-supervised loss of {shape}; "
                                "a scalar tensor (or None) is expected.")
        loss = loss.reshape(())
    return NetworkOutput(out, loss)


def check_finite_map(output: NetworkOutput, net_name: str = "network") -> None:
    """Refuse a map holding NaN or inf (one host sync: call it on the first batch)."""
    if not bool(torch.isfinite(output.map).all()):
        raise ContractError(f"{net_name} returned a map containing NaN or inf values; "
                            "a finite map is expected (check its normalisation and inputs).")
