"""Shared test set-up: one torch thread per test process, and the fixtures several files use."""
from dataclasses import replace

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def tiny_preset(monkeypatch, tmp_path):
    """The quick preset at 32 px and a few steps, its data cache in the test's folder: ``run.py --quick``
    trains and scores every variant in seconds."""
    from dmt_wrap_benchmarks import presets

    monkeypatch.setenv("DMT_WRAP_CACHE", str(tmp_path / "cache"))
    tiny = replace(presets.QUICK, image_size=32, duration=0.25, train_size=200, unlabeled_size=64, test_size=8,
                   curve_size=4, train=presets.QUICK.train.replace(warmup_steps=2, steps=2, steps_per_epoch=2,
                                                                   batch_size=4, labeled_batch_size=2,
                                                                   num_workers=0))
    monkeypatch.setitem(presets.PRESETS, "quick", tiny)
    return tiny
