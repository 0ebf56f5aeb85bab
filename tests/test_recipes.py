"""Recipes carried by the baselines: the composed-cpu ones are what the cpu preset trains, the
paper ones the originals' settings; the presets pick them by name."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import dmt_wrap_baselines as baselines
from dmt_wrap_baselines.recipes import get_recipe, recipe_network_kwargs, recipe_training
from dmt_wrap_benchmarks.presets import CPU, PAPER, QUICK
from dmt_wrap_benchmarks.variants import VARIANTS
from dmt_wrap import DMTConfig

torch.set_num_threads(1)

#: What the cpu preset applied per method before recipes carried it (bit-identical configs).
COMPOSED_CPU = {
    "attention10k": {"output_stride": 8, "attention_temperature": 0.1, "score_activation": "identity"},
    "ezvsl": {"output_stride": 8},
    "fnac": {"output_stride": 8, "reg_warmup_steps": 400, "regulariser_weight": 1.0, "visual_dropout": 0.0},
    "lvs": {"output_stride": 8},
    "slavc": {"output_stride": 8, "momentum": 0.99},
    "ssltie": {"output_stride": 8},
    "sspl": {"output_stride": 8},
}


@pytest.mark.parametrize("name", baselines.available())
def test_every_baseline_carries_both_recipes_and_builds_from_them(name):
    assert {"composed-cpu", "paper"} <= set(baselines.recipe_names(name))
    assert recipe_network_kwargs(name, "composed-cpu") == COMPOSED_CPU[name]
    assert recipe_training(name, "composed-cpu") == {}  # the cpu preset trains with DMT's settings
    for recipe in ("composed-cpu", "paper"):
        net = baselines.build(name, recipe=recipe, train_size=4000, encoder_size="tiny", sample_rate=8000,
                              output_stride=8)
        assert isinstance(net, torch.nn.Module)
    fields = {f.name for f in dataclasses.fields(DMTConfig)}
    training = recipe_training(name, "paper")
    assert {"optimizer", "lr", "weight_decay", "batch_size"} <= set(training) <= fields
    assert DMTConfig().replace(**training).lr == training["lr"]


def test_build_with_the_cpu_recipe_gives_the_network_the_benchmark_trains():
    torch.manual_seed(0)
    mine = baselines.build("fnac", encoder_size="tiny", recipe="composed-cpu")
    torch.manual_seed(0)
    benchmark = baselines.registry.build("fnac", **{**CPU.network_kwargs("fnac"), "sample_rate": 16000})
    assert CPU.network_kwargs("fnac") == {"encoder_size": "tiny", "sample_rate": 16000, **COMPOSED_CPU["fnac"]}
    assert (mine.reg_warmup_steps, mine.regulariser_weight, mine.embedder.visual_dropout.p) == (400, 1.0, 0.0)
    assert mine.embedder.visual.output_stride == 8
    for (key, a), (_, b) in zip(mine.state_dict().items(), benchmark.state_dict().items(), strict=True):
        assert torch.equal(a, b), key
    # overrides win over the recipe, and no recipe means the constructor's defaults
    assert baselines.build("fnac", recipe="composed-cpu", encoder_size="tiny", reg_warmup_steps=7).reg_warmup_steps == 7
    assert baselines.build("fnac", encoder_size="tiny").reg_warmup_steps == 2810


@pytest.mark.parametrize("train_size, steps", [(10_000, 5 * 39), (144_000, 5 * 562)])
def test_fnac_paper_warmup_is_five_epochs_of_the_set_at_hand(train_size, steps):
    """The released scripts: --warmup 5 (epochs) at --batch_size 256 with drop_last."""
    assert recipe_network_kwargs("fnac", "paper", train_size=train_size)["reg_warmup_steps"] == steps
    with pytest.raises(ValueError, match="train_size"):
        recipe_network_kwargs("fnac", "paper")


def test_paper_recipes_hold_the_originals_training_settings():
    assert recipe_training("fnac", "paper") == {"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4,
                                                "batch_size": 256}
    assert recipe_training("ssltie", "paper") == {"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4,
                                                  "batch_size": 32}
    assert recipe_training("sspl", "paper") == {"optimizer": "adamw", "lr": 2e-5, "weight_decay": 1e-4,
                                                "batch_size": 256}
    assert recipe_training("attention10k", "paper")["optimizer"] == "sgd"
    assert recipe_network_kwargs("lvs", "paper") == {"output_stride": 16, "dilated": False, "audio_output_stride": 16}
    assert recipe_network_kwargs("ssltie", "paper")["transforms"] == "original"
    with pytest.raises(ValueError, match="no recipe"):
        get_recipe("ezvsl", "imagenet")


def test_presets_pick_recipes_and_only_the_paper_preset_changes_the_baselines_rows():
    assert (CPU.recipe, QUICK.recipe, PAPER.recipe) == ("composed-cpu", "composed-cpu", "paper")
    for name in baselines.available():
        for variant in VARIANTS.values():
            assert CPU.train_config(name, variant) is CPU.train
    own = PAPER.train_config("sspl", VARIANTS["self_supervised"])
    assert (own.optimizer, own.lr, own.batch_size) == ("adamw", 2e-5, 256)
    assert PAPER.train_config("sspl", VARIANTS["naive_ensemble"]).optimizer == "adamw"
    assert PAPER.train_config("sspl", VARIANTS["dmt"]) is PAPER.train
    assert PAPER.network_kwargs("fnac")["reg_warmup_steps"] == 5 * (PAPER.train_size // 256)
