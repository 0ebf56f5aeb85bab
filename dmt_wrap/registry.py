"""Name -> constructor registry of localization networks, so a saved model can be rebuilt by name.

Any package can register its networks (``@register("mynet")``); ``dmt_wrap`` itself knows
none of them. A package advertises its registering module under the entry-point group
``dmt_wrap.networks`` (setup.cfg: ``[options.entry_points] dmt_wrap.networks = mine = mypkg``)
and ``resolve`` imports it the first time one of its names is asked for.
"""
from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from torch import nn

ENTRY_POINT_GROUP = "dmt_wrap.networks"
NetworkFactory = TypeVar("NetworkFactory", bound=Callable[..., nn.Module])

_NETWORKS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[NetworkFactory], NetworkFactory]:
    """Class (or factory) decorator recording a network under ``name``."""
    def record(factory: NetworkFactory) -> NetworkFactory:
        if name in _NETWORKS and _NETWORKS[name] is not factory:
            raise ValueError(f"network name {name!r} is already registered to {_NETWORKS[name].__qualname__}")
        _NETWORKS[name] = factory
        return factory
    return record


def available() -> list[str]:
    """The registered network names, sorted."""
    return sorted(_NETWORKS)


def build(name: str, **kwargs) -> nn.Module:
    """Construct the network registered as ``name`` with the given keyword arguments."""
    return resolve(name)(**kwargs)


def name_of(net: nn.Module) -> str | None:
    """The registered name whose constructor is ``type(net)``, or None."""
    return next((name for name, factory in _NETWORKS.items() if factory is type(net)), None)


def load_plugins() -> None:
    """Import every module advertised under the ``dmt_wrap.networks`` entry-point group."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()


def resolve(name: str, load_entry_points: bool = True) -> Callable[..., nn.Module]:
    """The constructor registered as ``name``.

    When it is not registered yet and ``load_entry_points``, every module advertised under
    the ``dmt_wrap.networks`` entry-point group is imported first (each registers its
    networks as a side effect).
    """
    if name not in _NETWORKS and load_entry_points:
        load_plugins()
    if name not in _NETWORKS:
        names = ", ".join(available()) or "none"
        raise ValueError(f"network {name!r} is not registered (registered: {names}); import the package that "
                         "registers it or pass backbone_factory=.")
    return _NETWORKS[name]
