"""The DMTConfig options of the pseudo-label path: loss normalisation, naive ensemble, the
mismatched-audio loss, configs stored by older code."""
import math

import pytest
import torch
from torch.utils.data import default_collate

from dmt_wrap import DMTConfig, DualMeanTeacher, ablation
from dmt_wrap.augment import AugmentConfig
from dmt_wrap.filtering import PseudoLabels
from dmt_wrap.losses import mismatched_audio_loss
from dmt_wrap.step import StepContext
from dmt_wrap.trainer import Trainer
from tests.toy import SquaresDataset, TOY_LABELS, ToyNet

FAST = DMTConfig(warmup_steps=4, steps=4, steps_per_epoch=4, batch_size=8, labeled_batch_size=4, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)


def trained(cfg: DMTConfig, factory=ToyNet) -> DualMeanTeacher:
    model = DualMeanTeacher(factory, cfg)
    model.fit(SquaresDataset(8, seed=1), SquaresDataset(32, seed=2, with_mask=False), progress=False)
    return model


@pytest.mark.parametrize("dropout", [0.0, 0.5], ids=["deterministic", "dropout"])
def test_naive_ensemble_network_a_trains_exactly_as_the_naive_network(dropout):
    factory = lambda: ToyNet(dropout)  # noqa: E731
    naive = trained(ablation("naive", FAST), factory)
    ensemble = trained(ablation("naive_ensemble", FAST), factory)
    assert len(ensemble.students) == 2 and len(ensemble.teachers) == 0 and not ensemble.has_teachers
    for name, value in naive.students[0].state_dict().items():
        assert torch.equal(value, ensemble.students[0].state_dict()[name]), name
    images, audio = torch.rand(3, 3, 16, 16), torch.randn(3, 32)
    assert torch.equal(ensemble.localize(images, audio, inference="a"), naive.localize(images, audio))
    both = ensemble.localize(images, audio)
    single_b = ensemble.localize(images, audio, inference="b")
    assert torch.allclose(both, (naive.localize(images, audio) + single_b) / 2, atol=1e-6)


def test_pair_a_calibrates_as_the_naive_network_when_the_network_draws_random_numbers():
    """Calibration probes the network in training mode; with dropout the draws must not depend
    on how many networks were built before it (DMT and the ensemble build two, naive one)."""
    calibrations = []
    batch = default_collate([SquaresDataset(8, seed=1)[i] for i in range(4)])
    for name in ("naive", "dmt", "naive_ensemble"):
        model = DualMeanTeacher(lambda: ToyNet(0.5), ablation(name, FAST))
        model.calibrate(batch["image"], batch["audio"])
        calibrations.append([(float(s.scale.detach()), float(s.bias.detach())) for s in model.students])
    naive, dmt, ensemble = calibrations
    assert dmt[0] == naive[0] == ensemble[0]
    assert dmt[1] == ensemble[1] != naive[0]


def test_ensemble_is_refused_with_teachers():
    with pytest.raises(ValueError, match="ensemble"):
        DMTConfig(ensemble=True, teachers=2)


def loss_terms(norm: str, keep: list[bool]) -> list[float]:
    """Student A's loss terms on one stage-2 step with hand-made pseudo-labels."""
    cfg = FAST.replace(pseudo_loss_norm=norm, augment=AugmentConfig(strong_scale=(1.0, 1.0), strong_flip_p=0.0,
                                                                    colour_strength=0.0, grayscale_p=0.0,
                                                                    audio_gain_db=0.0, audio_noise_snr_db=None,
                                                                    audio_mask_fraction=0.0))
    model = DualMeanTeacher(ToyNet, cfg)
    labeled = default_collate([SquaresDataset(8, seed=1)[i] for i in range(4)])
    unlabeled = default_collate([SquaresDataset(8, seed=2, with_mask=False)[i] for i in range(8)])
    model.calibrate(labeled["image"], labeled["audio"])
    keep = torch.tensor(keep)
    labels = torch.zeros(len(keep), 16, 16)
    labels[:, 4:12, 4:12] = 1.0
    pseudo = PseudoLabels(keep=keep, labels=labels * keep[:, None, None], consensus_iou=torch.ones(len(keep)))
    kept_total = None if norm == "unlabeled" else keep.float().sum()
    torch.manual_seed(0)
    context = StepContext(step=cfg.warmup_steps, stage="unbiased")
    terms = model.student_loss(0, labeled, unlabeled, pseudo, kept_total, context, warmup_length=cfg.warmup_steps)
    return terms.detach().tolist()


def test_pseudo_loss_normalisation_weighs_kept_samples_as_configured():
    keep = [True, False, False, False, False, False, False, False]  # one of eight kept
    kept, unlabeled, mixed = (loss_terms(n, keep) for n in ("kept", "unlabeled", "mixed"))
    # the pseudo term of one kept sample: its own loss (kept), an eighth of it (unlabeled)
    assert unlabeled[1] == pytest.approx(kept[1] / 8, rel=1e-5)
    assert unlabeled[0] == pytest.approx(kept[0], rel=1e-6)  # the labeled term is a mean either way
    # mixed: both sums over 4 labeled + 1 kept samples
    assert mixed[0] == pytest.approx(kept[0] * 4 / 5, rel=1e-5)
    assert mixed[1] == pytest.approx(kept[1] / 5, rel=1e-5)
    # nothing kept: no pseudo term and no division by zero
    assert loss_terms("kept", [False] * 8)[1] == 0 and loss_terms("unlabeled", [False] * 8)[1] == 0


def test_a_config_stored_before_pseudo_loss_norm_existed_reads_as_the_old_behaviour():
    stored = DMTConfig(pseudo_loss_norm="kept").to_dict()
    del stored["pseudo_loss_norm"]  # as written by the code before the field existed
    assert DMTConfig().pseudo_loss_norm == "unlabeled"
    assert DMTConfig.from_dict(stored).pseudo_loss_norm == "kept"
    assert DMTConfig.from_dict(DMTConfig().to_dict()) == DMTConfig()


def test_a_config_stored_with_flat_pseudo_label_fields_reads_into_the_nested_config():
    flat = {k: v for k, v in DMTConfig().to_dict().items() if k not in ("pseudo_labels", "precision")}
    flat.update(delta=0.6, tau=0.7, pseudo_label="union", pseudo_label_shape="box", max_label_area=0.5, amp=True,
                separate_teacher_views=False, audio_contrast=False, recalibrate_teachers=False, swap_pairs=False)
    cfg = DMTConfig.from_dict(flat)
    assert (cfg.pseudo_labels.delta, cfg.pseudo_labels.tau, cfg.pseudo_labels.combine) == (0.6, 0.7, "union")
    assert (cfg.pseudo_labels.shape, cfg.pseudo_labels.max_area, cfg.precision) == ("box", 0.5, "auto")
    with pytest.raises(ValueError, match="audio_contrast.*no longer"):
        DMTConfig.from_dict({**flat, "audio_contrast": True})


def test_a_nested_change_keeps_the_other_nested_fields():
    cfg = FAST.replace(pseudo_labels={"delta": 0.7})
    assert cfg.pseudo_labels.delta == 0.7 and cfg.pseudo_labels.tau == FAST.pseudo_labels.tau
    assert ablation("no_filter", FAST).pseudo_labels.noise_filter is False
    assert ablation("no_filter", FAST).pseudo_labels.tau == FAST.pseudo_labels.tau


def test_mismatched_audio_loss_counts_only_the_target_pixels_of_samples_with_a_target():
    target = torch.zeros(3, 4, 4)
    target[0, :2, :2] = 1                     # sample 0: a 2x2 target
    target[1, :, :] = 1                       # sample 1: the whole image
    logits = torch.full((3, 4, 4), -20.0)     # nothing lit with the other audio ...
    logits[0, :2, :2] = 0.0                   # ... except sample 0's target, at probability 0.5
    logits[2] = 5.0                           # sample 2 has no target: never counted
    loss = mismatched_audio_loss(logits, target)
    assert float(loss) == pytest.approx(math.log(2) / 2, rel=1e-4)  # (ln 2 + ~0) over two samples
    assert float(mismatched_audio_loss(logits, torch.zeros(3, 4, 4))) == 0.0


class AudioGatedNet(torch.nn.Module):
    """Visual features weighted by an (unnormalised) audio embedding, so the audio can switch the map."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.audio = torch.nn.Linear(32, 8)

    def forward(self, images, audio):
        return torch.einsum("bchw,bc->bhw", self.visual(images), self.audio(audio)), None


def test_mismatch_weight_lowers_the_map_under_another_clips_audio():
    def on_target(weight: float) -> tuple[float, float]:
        cfg = ablation("naive", FAST.replace(mismatch_weight=weight, warmup_steps=60, lr=1e-2))
        model = DualMeanTeacher(AudioGatedNet, cfg)
        history = model.fit(SquaresDataset(16, seed=1), None, progress=False)
        assert (history[-1]["mismatched_audio"] > 0) == (weight > 0)
        data = SquaresDataset(16, seed=3)
        images = torch.stack([data[i]["image"] for i in range(16)])
        audio = torch.stack([data[i]["audio"] for i in range(16)])
        mask = torch.stack([data[i]["mask"] for i in range(16)]) > 0
        own, other = model.localize(images, audio), model.localize(images, audio.roll(1, dims=0))
        return float(own[mask].mean()), float(other[mask].mean())
    plain, weighted = on_target(0.0), on_target(1.0)
    assert plain[1] > 0.9                      # without it the map ignores which clip plays
    assert weighted[1] < plain[1] - 0.3        # with it, another clip's audio no longer lights the target


def test_mismatch_weight_is_refused_under_torchrun_with_the_fix():
    from dmt_wrap.distributed import World

    model = DualMeanTeacher(ToyNet, FAST.replace(mismatch_weight=1.0))
    with pytest.raises(ValueError, match="mismatch_weight=0"):
        Trainer(model, SquaresDataset(8, seed=1), SquaresDataset(8, seed=2), world=World(rank=0, size=2))
    with pytest.raises(ValueError, match="mismatch_weight"):
        DMTConfig(mismatch_weight=-1.0)
