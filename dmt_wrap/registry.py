"""Name -> constructor registry of localization networks, so a saved model can be rebuilt by name.

Any package can register its networks (``@register("mynet")``); ``dmt_wrap`` itself knows
none of them. A package advertises its registering module under the entry-point group
``dmt_wrap.networks`` (setup.cfg: ``[options.entry_points] dmt_wrap.networks = mine = mypkg``)
and ``resolve`` imports it the first time one of its names is asked for.
"""
from __future__ import annotations

import inspect
import warnings
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
            if _same_source(_NETWORKS[name], factory):
                return factory  # one file imported under two names (a folder on sys.path and its installed name)
            raise ValueError(f"network name {name!r} is already registered to {_NETWORKS[name].__qualname__}")
        _NETWORKS[name] = factory
        return factory
    return record


def _same_source(first: Callable[..., nn.Module], second: Callable[..., nn.Module]) -> bool:
    """Whether two constructors are the same definition in the same file."""
    try:
        return (first.__qualname__ == second.__qualname__
                and inspect.getsourcefile(first) == inspect.getsourcefile(second) is not None)
    except TypeError:
        return False


def available() -> list[str]:
    """The registered network names, sorted."""
    return sorted(_NETWORKS)


#: The attribute ``build`` stamps on a network: its registered name and constructor arguments, so
#: that ``DualMeanTeacher.save_pretrained`` records how to rebuild it.
REGISTRATION_ATTRIBUTE = "dmt_wrap_registration"


def build(name: str, **kwargs) -> nn.Module:
    """Construct the network registered as ``name`` with the given keyword arguments."""
    net = resolve(name)(**kwargs)
    setattr(net, REGISTRATION_ATTRIBUTE, {"name": name, "kwargs": dict(kwargs)})
    return net


def registration_of(net: nn.Module) -> dict | None:
    """``{"name", "kwargs"}`` of a network ``build`` made, or None (a network built another way)."""
    return getattr(net, REGISTRATION_ATTRIBUTE, None)


class PluginWarning(RuntimeWarning):
    """A package advertises networks under ``dmt_wrap.networks`` but its module cannot be imported."""


def load_plugins() -> dict[str, str]:
    """Import every module advertised under the ``dmt_wrap.networks`` entry-point group.

    One broken package must not break every load: a module that fails to import is skipped
    with a ``PluginWarning`` naming it. Returns ``{entry point: why it failed}`` of the skipped.
    """
    failed: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as exc:  # noqa: BLE001 (any error of a third-party import: skip that plugin)
            origin = f" (distribution {point.dist.name})" if getattr(point, "dist", None) else ""
            failed[point.name] = f"{point.name} = {point.value}{origin}: {type(exc).__name__}: {exc}"
            warnings.warn(f"network plugin {failed[point.name]}; its networks are skipped (reinstall or "
                          "uninstall that package).", PluginWarning, stacklevel=2)
    return failed


def resolve(name: str, load_entry_points: bool = True) -> Callable[..., nn.Module]:
    """The constructor registered as ``name``.

    When it is not registered yet and ``load_entry_points``, every module advertised under
    the ``dmt_wrap.networks`` entry-point group is imported first (each registers its
    networks as a side effect); a broken one is skipped with a warning, unless ``name`` is
    still missing, when the error names the plugins that failed (or the one named ``name``).
    """
    failed: dict[str, str] = {}
    if name not in _NETWORKS and load_entry_points:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginWarning)
            failed = load_plugins()
        if name in failed or name not in _NETWORKS:
            broken = failed.get(name) or "; ".join(failed.values())
            if broken:
                raise ValueError(f"network {name!r} is not registered: its plugin may be the one that failed to "
                                 f"import ({broken}); reinstall that package or pass backbone_factory=.")
        for reason in failed.values():
            warnings.warn(f"network plugin {reason}; its networks are skipped (reinstall or uninstall that "
                          "package).", PluginWarning, stacklevel=2)
    if name not in _NETWORKS:
        names = ", ".join(available()) or "none"
        raise ValueError(f"network {name!r} is not registered (registered: {names}); import the package that "
                         "registers it or pass backbone_factory=.")
    return _NETWORKS[name]
