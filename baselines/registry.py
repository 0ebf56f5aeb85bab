"""Name -> constructor registry of the baseline AVSL networks (``dmt_wrap.registry``'s).

Each baseline module decorates its network class with ``@register("name")``;
``baselines/__init__.py`` imports every module, so importing anything from
``baselines`` fills the registry. Every constructor accepts at least
``encoder_size``, ``sample_rate``, ``visual_weights``, ``audio_weights`` and ``dim``.
The registry itself is ``dmt_wrap.registry``, so that ``DualMeanTeacher.from_pretrained``
rebuilds a baseline by name without ``dmt_wrap`` knowing the baselines.
"""
from __future__ import annotations

from dmt_wrap import registry
from dmt_wrap.registry import build, register

__all__ = ["available", "build", "register"]


def available() -> list[str]:
    """The names of the baselines this package registers (other packages' networks left out)."""
    package = __name__.rpartition(".")[0]
    return [name for name in registry.available()
            if registry.resolve(name, load_entry_points=False).__module__.startswith(package + ".")]
