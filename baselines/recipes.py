"""Named recipes that travel with the baseline networks, as timm keeps ``default_cfgs`` beside its models.

A recipe is what a method needs besides its code to be trained one stated way: the network's
constructor arguments and the training settings (``DMTConfig`` field overrides: optimiser,
learning rate, weight decay, batch size). Each baseline module registers its own recipes; every
baseline has at least two:

* ``"composed-cpu"``: what makes the method learn on the composed benchmark at CPU scale (tiny
  encoders at 64 px, an 8x8 map, the per-method changes measured in ``docs/baselines.md``). Its
  training settings are empty: the cpu preset trains every method with DMT's settings.
* ``"paper"``: the original's, read from the authors' released code where there is one
  (network arguments such as LVS's undilated stride, the optimiser, learning rates per parameter
  group, weight decay, batch size). Warm-ups the original counts in epochs are given in epochs
  (``warmup_epochs``) and become updates of the training set at hand:
  ``epochs * (train_size // batch_size)``, the released loaders dropping the last partial batch.

``build("fnac", recipe="composed-cpu", encoder_size="tiny")`` builds the network the cpu preset
trains; ``recipe_training("sspl", "paper")`` gives the settings to train it with.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from dmt_wrap_baselines.registry import build as build_registered

#: What the composed cpu benchmark gives every method besides its own changes: an 8x8 map at 64 px.
COMPOSED_CPU_NETWORK: dict[str, Any] = {"output_stride": 8}


@dataclass(frozen=True)
class Recipe:
    """One named way to build and train a method.

    ``network``: constructor arguments. ``training``: ``DMTConfig`` field overrides.
    ``warmup_epochs``: constructor arguments counted in updates that the original counts in
    epochs (argument name -> epochs); they need the training set's size and
    ``training["batch_size"]``. ``source``: where the values come from, and what differs.
    """

    network: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    warmup_epochs: Mapping[str, float] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        clash = set(self.warmup_epochs) & set(self.network)
        if clash:
            raise ValueError(f"{sorted(clash)} given both in updates (network) and in epochs (warmup_epochs)")
        if self.warmup_epochs and "batch_size" not in self.training:
            raise ValueError("warmup_epochs needs training['batch_size'] to count updates per epoch")


_RECIPES: dict[str, dict[str, Recipe]] = {}


def register_recipes(network: str, recipes: Mapping[str, Recipe]) -> None:
    """Record ``network``'s named recipes (called by each baseline module)."""
    if network in _RECIPES:
        raise ValueError(f"recipes of {network!r} are already registered")
    _RECIPES[network] = dict(recipes)


def recipe_names(network: str) -> list[str]:
    """The recipe names ``network`` carries, sorted."""
    return sorted(_recipes_of(network))


def get_recipe(network: str, recipe: str) -> Recipe:
    """``network``'s recipe named ``recipe``."""
    recipes = _recipes_of(network)
    if recipe not in recipes:
        raise ValueError(f"network {network!r} has no recipe {recipe!r}; it has {sorted(recipes)}")
    return recipes[recipe]


def _recipes_of(network: str) -> dict[str, Recipe]:
    if network not in _RECIPES:
        raise ValueError(f"network {network!r} carries no recipes (networks with recipes: {sorted(_RECIPES)})")
    return _RECIPES[network]


def recipe_network_kwargs(network: str, recipe: str, train_size: int | None = None) -> dict[str, Any]:
    """The recipe's constructor arguments, epoch-counted warm-ups converted for ``train_size`` samples."""
    chosen = get_recipe(network, recipe)
    kwargs = dict(chosen.network)
    if chosen.warmup_epochs:
        if train_size is None:
            raise ValueError(f"recipe {recipe!r} of {network!r} counts {sorted(chosen.warmup_epochs)} in epochs of "
                             "the training set: give train_size (its number of samples)")
        steps_per_epoch = train_size // chosen.training["batch_size"]
        kwargs.update({name: round(epochs * steps_per_epoch) for name, epochs in chosen.warmup_epochs.items()})
    return kwargs


def recipe_training(network: str, recipe: str) -> dict[str, Any]:
    """The recipe's training settings as ``DMTConfig`` field overrides (empty: DMT's own settings)."""
    return dict(get_recipe(network, recipe).training)


def build(name: str, recipe: str | None = None, *, train_size: int | None = None, **overrides: Any) -> nn.Module:
    """Build the network registered as ``name``: its recipe's arguments (if ``recipe``), then ``overrides``.

    Without ``recipe`` the constructor's defaults apply, as ``baselines.registry.build``.
    ``train_size``: the training set's size, for recipes that count a warm-up in epochs.
    """
    kwargs = recipe_network_kwargs(name, recipe, train_size) if recipe is not None else {}
    return build_registered(name, **{**kwargs, **overrides})
