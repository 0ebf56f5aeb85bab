"""dmt_wrap: Dual Mean-Teacher semi-supervised audio-visual source localization, for any network.

The public names are imported on first use, so that ``dmt-wrap --help`` and commands that do
not run a network start without importing torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ABLATIONS, DMTConfig, ablation
    from .contract import ContractError, NetworkOutput
    from .trainer import NonFiniteLossError
    from .wrapper import DualMeanTeacher

_HOMES = {"ABLATIONS": "config", "DMTConfig": "config", "ablation": "config", "ContractError": "contract",
          "NetworkOutput": "contract", "NonFiniteLossError": "trainer", "DualMeanTeacher": "wrapper"}
__all__ = sorted(_HOMES)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
