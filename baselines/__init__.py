"""Seven self-supervised AVSL networks re-implemented to meet ``dmt_wrap``'s contract.

Importing the package registers every network; build one by name with
``baselines.build("ezvsl", encoder_size="tiny", ...)``.
"""
# imported for their @register side effect
from baselines import attention10k, ezvsl, fnac, lvs, slavc, sspl, ssltie  # noqa: F401
from baselines.registry import available, build, register

__all__ = ["available", "build", "register"]
