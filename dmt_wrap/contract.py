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

The map must carry a gradient to the network's parameters: the supervised and pseudo-label
losses train the network through it. A map computed under ``torch.no_grad()``, ``.detach()``ed,
or built from ``argmax`` / thresholds trains nothing but the calibration, so the wrapper
refuses it on the first batch. A network meant to stay frozen says so with ``frozen = True``.

Everything else (feature sizes, encoders, temperatures, momentum encoders) is the
network's own business. Networks usually compute their self-supervised loss only in
training mode; teachers run in eval mode and need only the map.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

log = logging.getLogger("dmt_wrap")

CONTRACT = ("the contract: net(images [B, 3, H, W] float RGB in [0, 1], audio [B, T] float mono waveform) "
            "returns map [B, h, w] or (map, self_supervised_loss scalar or None)")


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


def declared_frozen(net: nn.Module) -> bool:
    """Whether ``net`` declares that its weights stay fixed (``frozen = True``): its map need not train it."""
    return bool(getattr(net, "frozen", False))


def _looks_swapped(first: object, second: object, batch_size: int) -> bool:
    """``(loss, map)`` instead of ``(map, loss)``: a scalar first and a ``[B, h, w]`` tensor second."""
    return (isinstance(first, Tensor) and first.numel() == 1 and isinstance(second, Tensor)
            and second.dim() == 3 and second.shape[0] == batch_size)


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
        if _looks_swapped(out[0], out[1], batch_size):
            raise ContractError(f"{net_name} returned (scalar, tensor of shape {tuple(out[1].shape)}): "
                                "looks like (loss, map): return (map, loss).")
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


def describe_inputs(net: nn.Module, images: Tensor, audio: Tensor) -> str:
    """What the wrapper passes a network, for messages: shapes, dtypes, value ranges, sample rate if known."""
    def value_range(x: Tensor) -> str:
        return f"in [{float(x.min()):.3g}, {float(x.max()):.3g}]" if x.numel() else "empty"

    rate = getattr(net, "sample_rate", None)
    waveforms = "mono waveforms" + (f" at {rate} Hz" if rate is not None else "")
    return (f"images {tuple(images.shape)} {images.dtype} {value_range(images)}, "
            f"audio {tuple(audio.shape)} {audio.dtype} {value_range(audio)} ({waveforms})")


def call_network(net: nn.Module, images: Tensor, audio: Tensor, net_name: str = "network") -> object:
    """``net(images, audio)``; an exception raised inside it comes back as a ``ContractError``
    saying what the wrapper passed and which contract applies, the original chained.

    Running out of memory is not a contract matter and propagates unchanged.
    """
    try:
        return net(images, audio)
    except (ContractError, MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as exc:
        raise ContractError(f"{net_name} raised {type(exc).__name__} on the wrapper's first batch: {exc}\n"
                            f"  the wrapper passed {describe_inputs(net, images, audio)}\n"
                            f"  {CONTRACT}\n"
                            f"  a network written for other inputs (a spectrogram, a fixed image size) or another "
                            f"output order needs an adapter module; docs/wrapping.md shows one.") from exc


_GRAD_CAUSES = ("usual causes: the map is computed under torch.no_grad() or .detach()ed in forward, or it is "
                "built from argmax or thresholds (not differentiable)")


def check_map_trains(output: NetworkOutput, net: nn.Module, net_name: str = "network") -> None:
    """Refuse a map through which the wrapper's losses cannot train the network.

    ``output`` must come from ``net``'s training-mode forward run with gradients enabled; this runs
    a backward through ``net`` (pass a throw-away copy: its ``.grad`` fields are overwritten). A
    graph walk would miss parameters hidden behind custom autograd functions (reentrant
    checkpointing); a real backward does not. A network without parameters passes: there is
    nothing to train. One declaring ``frozen = True`` passes with a warning that the wrapper's
    losses train only the calibration.
    """
    params = list(net.parameters())
    if not params:
        return
    trainable = [p for p in params if p.requires_grad]
    reached = 0
    if trainable and output.map.requires_grad:
        for p in trainable:
            p.grad = None
        output.map.float().sum().backward()
        reached = sum(p.grad is not None for p in trainable)
    if declared_frozen(net):
        if reached:
            log.warning("%s declares frozen = True, but a backward from its map reaches %d of its trainable "
                        "parameter tensors, which will train: call requires_grad_(False) on them to keep them "
                        "fixed.", net_name, reached)
        else:
            trains = "nothing (its map is a probability: no calibration)" if outputs_probabilities(net) else \
                "only the calibration (scale and bias)"
            log.warning("%s declares frozen = True: the supervised and pseudo-label losses train %s.",
                        net_name, trains)
        return
    hint = "A network meant to stay frozen says so with the attribute frozen = True."
    if not trainable:
        raise ContractError(f"none of {net_name}'s {len(params)} parameter tensors requires grad, so the "
                            f"wrapper's losses would train only the calibration. {hint} Otherwise call "
                            "requires_grad_(True) on the parts to train.")
    if not output.map.requires_grad:
        raise ContractError(f"{net_name}'s map does not require grad: the supervised and pseudo-label losses "
                            f"cannot reach the network and would train only the calibration; {_GRAD_CAUSES}. "
                            f"{hint}")
    if not reached:
        raise ContractError(f"a backward from {net_name}'s map reaches none of its {len(trainable)} trainable "
                            f"parameter tensors (it depends only on tensors that are not registered parameters); "
                            f"{_GRAD_CAUSES}. {hint}")
