"""Name -> constructor registry of the baseline AVSL networks.

Each baseline module decorates its network class with ``@register("name")``;
``baselines/__init__.py`` imports every module, so importing anything from
``baselines`` fills the registry. Every constructor accepts at least
``encoder_size``, ``sample_rate``, ``visual_weights``, ``audio_weights`` and ``dim``.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

NetworkFactory = TypeVar("NetworkFactory", bound=Callable[..., nn.Module])

_NETWORKS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[NetworkFactory], NetworkFactory]:
    """Class (or factory) decorator recording a network under ``name``."""
    def record(factory: NetworkFactory) -> NetworkFactory:
        if name in _NETWORKS and _NETWORKS[name] is not factory:
            raise ValueError(f"baseline name {name!r} is already registered "
                             f"to {_NETWORKS[name].__qualname__}")
        _NETWORKS[name] = factory
        return factory
    return record


def available() -> list[str]:
    """The registered baseline names, sorted."""
    return sorted(_NETWORKS)


def build(name: str, **kwargs) -> nn.Module:
    """Construct the baseline registered as ``name`` with the given keyword arguments."""
    if name not in _NETWORKS:
        names = ", ".join(available()) or "none"
        raise ValueError(f"unknown baseline {name!r}; available: {names}")
    return _NETWORKS[name](**kwargs)
