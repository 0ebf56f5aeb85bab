"""Seven self-supervised AVSL networks re-implemented to meet ``dmt_wrap``'s contract.

Importing the package registers every network and its named recipes; build one by name with
``baselines.build("ezvsl", encoder_size="tiny", ...)``, or with a recipe's arguments,
``baselines.build("fnac", recipe="composed-cpu", encoder_size="tiny")`` (``baselines.recipes``).
"""
# imported for their @register / register_recipes side effects
from dmt_wrap_baselines import attention10k, ezvsl, fnac, lvs, slavc, sspl, ssltie  # noqa: F401
from dmt_wrap_baselines.recipes import build, recipe_names, recipe_network_kwargs, recipe_training
from dmt_wrap_baselines.registry import available, register

__all__ = ["available", "build", "recipe_names", "recipe_network_kwargs", "recipe_training", "register"]
