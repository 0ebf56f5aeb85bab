"""The comparison's own model (``benchmarks.benchmark_model``): the swap-pairs control and the
silent-object statistics, which the library does not carry."""
import pytest
import torch

from dmt_wrap_benchmarks.benchmark_model import BenchmarkDMT, silent_object_rates, silent_object_sums
from dmt_wrap import DMTConfig, DualMeanTeacher, ablation
from tests.toy import TOY_LABELS, SquaresDataset, ToyNet

FAST = DMTConfig(warmup_steps=4, steps=4, steps_per_epoch=4, batch_size=8, labeled_batch_size=4, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)


def trained(cfg: DMTConfig, factory=ToyNet, swap_pairs: bool = False) -> DualMeanTeacher:
    model = BenchmarkDMT(factory, cfg, swap_pairs=swap_pairs)
    model.fit(SquaresDataset(8, seed=1), SquaresDataset(32, seed=2, with_mask=False), progress=False)
    return model


def same_weights(one: DualMeanTeacher, k: int, other: DualMeanTeacher, j: int) -> bool:
    theirs = other.students[j].state_dict()
    return all(torch.equal(value, theirs[name]) for name, value in one.students[k].state_dict().items())


def test_swapped_pairs_exchange_the_networks_when_the_position_draws_nothing():
    """``swap_pairs`` moves every seed a network owns to the other position: a network that draws
    no global random numbers trains in position A on pair B's seeds exactly as it does in position
    B, so an A-B difference that survives the swap belongs to the seeds, not to the position."""
    ensemble = trained(ablation("naive_ensemble", FAST))
    swapped = trained(ablation("naive_ensemble", FAST), swap_pairs=True)
    assert not same_weights(ensemble, 0, ensemble, 1)
    assert same_weights(swapped, 0, ensemble, 1) and same_weights(swapped, 1, ensemble, 0)
    naive_on_b = trained(ablation("naive", FAST), swap_pairs=True)
    assert same_weights(naive_on_b, 0, ensemble, 1)


def test_swapped_pairs_keep_the_positions_draws_of_a_network_with_dropout():
    """With dropout the step's global random numbers go to A first: the swap moves the seeds but
    not those draws, so the exchanged networks start alike and then differ."""
    factory = lambda: ToyNet(0.5)  # noqa: E731
    ensemble = DualMeanTeacher(factory, ablation("naive_ensemble", FAST))
    swapped = BenchmarkDMT(factory, ablation("naive_ensemble", FAST), swap_pairs=True)
    assert same_weights(swapped, 0, ensemble, 1) and same_weights(swapped, 1, ensemble, 0)
    for model in (ensemble, swapped):
        model.fit(SquaresDataset(8, seed=1), SquaresDataset(32, seed=2, with_mask=False), progress=False)
    assert not same_weights(swapped, 0, ensemble, 1)


def test_silent_object_split_of_keep_rate_precision_and_label_pixels():
    truth = torch.zeros(4, 4, 4)
    truth[:, :2, :2] = 1                      # the sounding object, top left, in every scene
    silent = torch.zeros(4, 4, 4)
    silent[:2, 2:, 2:] = 1                    # scenes 0 and 1 also show a silent object, bottom right
    labels = torch.zeros(4, 4, 4)
    labels[0, :2, :2] = 1                     # scene 0: on the sounding object (precision 1)
    labels[0, 3, 3] = 1                       #          plus one pixel on the silent one (precision 4/5)
    labels[2, :2, :] = 1                      # scene 2 (no silent object): half on the sounding object
    keep = torch.tensor([True, False, True, False])
    sums = {k: float(v) for k, v in silent_object_sums(labels, keep, truth, silent).items()}
    rates = silent_object_rates(sums)
    assert rates["keep_rate_with_silent"] == pytest.approx(0.5) and rates["keep_rate_without_silent"] == pytest.approx(0.5)
    assert rates["pseudo_precision_with_silent"] == pytest.approx(0.8)
    assert rates["pseudo_precision_without_silent"] == pytest.approx(0.5)
    assert rates["pseudo_on_silent"] == pytest.approx(1 / 13)


class WithSilentObject(SquaresDataset):
    """Unlabeled squares that also report a silent object's box (the opposite corner)."""

    def __getitem__(self, index):
        item = super().__getitem__(index)
        silent = torch.zeros(self.size, self.size)
        if index % 2:
            silent[-3:, -3:] = 1.0
        return {**item, "silent_mask": silent}


def test_training_history_splits_pseudo_label_quality_by_silent_object():
    model = BenchmarkDMT(ToyNet, FAST.replace(pseudo_labels={"delta": 0.3, "tau": 0.0}))
    history = model.fit(SquaresDataset(8, seed=1), WithSilentObject(32, seed=2), progress=False)
    last = history[-1]
    for name in ("keep_rate_with_silent", "keep_rate_without_silent", "pseudo_precision_with_silent",
                 "pseudo_precision_without_silent", "pseudo_on_silent"):
        assert 0.0 <= last[name] <= 1.0, name
    # half the scenes have a silent object: the overall keep rate lies between the two split ones
    low, high = sorted((last["keep_rate_with_silent"], last["keep_rate_without_silent"]))
    assert low - 1e-6 <= last["keep_rate"] <= high + 1e-6


def test_the_library_model_reports_no_silent_object_statistics():
    model = DualMeanTeacher(ToyNet, FAST.replace(pseudo_labels={"delta": 0.3, "tau": 0.0}))
    history = model.fit(SquaresDataset(8, seed=1), WithSilentObject(32, seed=2), progress=False)
    assert "keep_rate" in history[-1] and "keep_rate_with_silent" not in history[-1]
