"""Name -> constructor registry of the baseline AVSL networks (``dmt_wrap.registry``'s).

Each baseline module decorates its network class with ``@register("name")``;
``baselines/__init__.py`` imports every module, so importing anything from
``baselines`` fills the registry. Every constructor accepts at least
``encoder_size``, ``sample_rate``, ``visual_weights``, ``audio_weights`` and ``dim``.
The registry itself is ``dmt_wrap.registry``, so that ``DualMeanTeacher.from_pretrained``
rebuilds a baseline by name without ``dmt_wrap`` knowing the baselines.
"""
from __future__ import annotations

from dmt_wrap.registry import available, build, register

__all__ = ["available", "build", "register"]
