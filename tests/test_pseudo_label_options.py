"""The DMTConfig options of the pseudo-label path: loss normalisation, naive ensemble,
a separate unlabeled view, eval-mode recalibration of the teachers."""
import copy
import math

import pytest
import torch

from dmt_wrap import DMTConfig, DualMeanTeacher, ablation
from dmt_wrap.augment import MILD_AUGMENT, AugmentConfig
from dmt_wrap.filtering import PseudoLabels, make_pseudo_labels, silent_object_rates, silent_object_sums
from dmt_wrap.losses import mismatched_audio_loss
from dmt_wrap.trainer import Trainer
from tests.toy import SquaresDataset, ToyNet

FAST = DMTConfig(warmup_steps=4, steps=4, steps_per_epoch=4, batch_size=8, labeled_batch_size=4, lr=3e-3,
                 ema_decay=0.5, delta=0.5, tau=0.3)


def trained(cfg: DMTConfig, factory=ToyNet) -> DualMeanTeacher:
    model = DualMeanTeacher(factory, cfg)
    model.fit(SquaresDataset(8, seed=1), SquaresDataset(32, seed=2, with_mask=False), progress=False)
    return model


@pytest.mark.parametrize("dropout", [0.0, 0.5], ids=["deterministic", "dropout"])
def test_naive_ensemble_network_a_trains_exactly_as_the_naive_network(dropout):
    factory = lambda: ToyNet(dropout)  # noqa: E731
    naive = trained(ablation("naive", FAST), factory)
    ensemble = trained(ablation("naive_ensemble", FAST), factory)
    assert len(ensemble.students) == 2 and len(ensemble.teachers) == 0
    for name, value in naive.students[0].state_dict().items():
        assert torch.equal(value, ensemble.students[0].state_dict()[name]), name
    images, audio = torch.rand(3, 3, 16, 16), torch.randn(3, 32)
    assert torch.equal(ensemble.localize(images, audio, inference="a"), naive.localize(images, audio))
    both = ensemble.localize(images, audio)
    single_b = ensemble.localize(images, audio, inference="b")
    assert torch.allclose(both, (naive.localize(images, audio) + single_b) / 2, atol=1e-6)


def same_weights(one: DualMeanTeacher, k: int, other: DualMeanTeacher, j: int) -> bool:
    theirs = other.students[j].state_dict()
    return all(torch.equal(value, theirs[name]) for name, value in one.students[k].state_dict().items())


def test_swapped_pairs_exchange_the_networks_when_the_position_draws_nothing():
    """``swap_pairs`` moves every seed a network owns to the other position: a network that draws
    no global random numbers trains in position A on pair B's seeds exactly as it does in position
    B, so an A-B difference that survives the swap belongs to the seeds, not to the position."""
    ensemble = trained(ablation("naive_ensemble", FAST))
    swapped = trained(ablation("naive_ensemble", FAST).replace(swap_pairs=True))
    assert not same_weights(ensemble, 0, ensemble, 1)
    assert same_weights(swapped, 0, ensemble, 1) and same_weights(swapped, 1, ensemble, 0)
    naive_on_b = trained(ablation("naive", FAST).replace(swap_pairs=True))
    assert same_weights(naive_on_b, 0, ensemble, 1)


def test_swapped_pairs_keep_the_positions_draws_of_a_network_with_dropout():
    """With dropout the step's global random numbers go to A first: the swap moves the seeds but
    not those draws, so the exchanged networks start alike and then differ."""
    factory = lambda: ToyNet(0.5)  # noqa: E731
    ensemble = DualMeanTeacher(factory, ablation("naive_ensemble", FAST))
    swapped = DualMeanTeacher(factory, ablation("naive_ensemble", FAST).replace(swap_pairs=True))
    assert same_weights(swapped, 0, ensemble, 1) and same_weights(swapped, 1, ensemble, 0)
    for model in (ensemble, swapped):
        model.fit(SquaresDataset(8, seed=1), SquaresDataset(32, seed=2, with_mask=False), progress=False)
    assert not same_weights(swapped, 0, ensemble, 1)


def test_pair_a_calibrates_as_the_naive_network_when_the_network_draws_random_numbers():
    """Calibration probes the network in training mode; with dropout the draws must not depend
    on how many networks were built before it (DMT and the ensemble build two, naive one)."""
    calibrations = []
    for name in ("naive", "dmt", "naive_ensemble"):
        model = DualMeanTeacher(lambda: ToyNet(0.5), ablation(name, FAST))
        Trainer(model, SquaresDataset(8, seed=1), SquaresDataset(8, seed=2, with_mask=False),
                progress=False)._initialise()
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
    trainer = Trainer(model, SquaresDataset(8, seed=1), SquaresDataset(8, seed=2, with_mask=False), progress=False)
    trainer._initialise()
    labeled = {k: v for k, v in trainer._next("labeled_A", needs_mask=True).items()}
    unlabeled = trainer._next("unlabeled", needs_mask=False)
    keep = torch.tensor(keep)
    labels = torch.zeros(len(keep), 16, 16)
    labels[:, 4:12, 4:12] = 1.0
    pseudo = PseudoLabels(keep=keep, labels=labels * keep[:, None, None], consensus_iou=torch.ones(len(keep)))
    torch.manual_seed(0)
    return trainer._student_loss(0, labeled, unlabeled, pseudo, trainer._loss_norms(keep)).detach().tolist()


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


def test_unlabeled_view_only_changes_the_unlabeled_part():
    strong = AugmentConfig(strong_scale=(1.0, 1.0), strong_flip_p=0.0, colour_strength=0.8, grayscale_p=0.0,
                           audio_gain_db=6.0, audio_noise_snr_db=10.0, audio_mask_fraction=0.0)
    plain = AugmentConfig(strong_scale=(1.0, 1.0), strong_flip_p=0.0, colour_strength=0.0, grayscale_p=0.0,
                          audio_gain_db=0.0, audio_noise_snr_db=None, audio_mask_fraction=0.0)
    model = DualMeanTeacher(ToyNet, FAST.replace(augment=plain, unlabeled_augment=strong))
    trainer = Trainer(model, SquaresDataset(8, seed=1), SquaresDataset(8, seed=2, with_mask=False), progress=False)
    labeled = trainer._next("labeled_A", needs_mask=True)
    unlabeled = trainer._next("unlabeled", needs_mask=False)
    images, audio, target, n_lab = trainer._students_view(0, labeled, unlabeled, None)
    assert n_lab == 4
    assert torch.allclose(images[:4], labeled["image"], atol=1e-5) and torch.equal(audio[:4], labeled["audio"])
    assert not torch.allclose(images[4:], unlabeled["image"]) and not torch.allclose(audio[4:], unlabeled["audio"])
    assert torch.equal(target[:4], labeled["mask"])


def test_recalibration_matches_eval_mode_maps_to_train_mode_and_survives_the_ema():
    cfg = FAST.replace(recalibrate_teachers=True, augment=MILD_AUGMENT)
    model = trained(cfg)
    for student, teacher in zip(model.students, model.teachers):
        assert float(student.eval_scale) != 1.0 or float(student.eval_shift) != 0.0
        # teacher and student carry the same eval-mode calibration, so the EMA keeps it
        assert torch.equal(teacher.module.eval_scale, student.eval_scale)
    # the fitted affine map makes eval-mode logits match train-mode ones on the fitted batch
    net = model.students[0]
    data = SquaresDataset(8, seed=2, with_mask=False)
    images = torch.stack([data[i]["image"] for i in range(8)])
    audio = torch.stack([data[i]["audio"] for i in range(8)])
    net.fit_eval_affine(images, audio)
    with torch.no_grad():
        train_logits = copy.deepcopy(net).train()(images, audio).map
        eval_logits = net.eval()(images, audio).map
    assert float(eval_logits.mean()) == pytest.approx(float(train_logits.mean()), abs=1e-4)
    assert float(eval_logits.std()) == pytest.approx(float(train_logits.std()), rel=1e-4)
    # a saved model with the extra buffers loads back into a model built from its config
    state = model.model_state()
    again = DualMeanTeacher(ToyNet, cfg)
    again.load_model_state(state)
    assert torch.equal(again.teachers[1].module.eval_shift, model.teachers[1].module.eval_shift)


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
    model = DualMeanTeacher(ToyNet, FAST.replace(delta=0.3, tau=0.0))
    history = model.fit(SquaresDataset(8, seed=1), WithSilentObject(32, seed=2), progress=False)
    last = history[-1]
    for name in ("keep_rate_with_silent", "keep_rate_without_silent", "pseudo_precision_with_silent",
                 "pseudo_precision_without_silent", "pseudo_on_silent"):
        assert 0.0 <= last[name] <= 1.0, name
    # half the scenes have a silent object: the overall keep rate lies between the two split ones
    low, high = sorted((last["keep_rate_with_silent"], last["keep_rate_without_silent"]))
    assert low - 1e-6 <= last["keep_rate"] <= high + 1e-6


def test_a_config_stored_before_pseudo_loss_norm_existed_reads_as_the_old_behaviour():
    stored = DMTConfig(pseudo_loss_norm="kept").to_dict()
    del stored["pseudo_loss_norm"]  # as written by the code before the field existed
    assert DMTConfig().pseudo_loss_norm == "unlabeled"
    assert DMTConfig.from_dict(stored).pseudo_loss_norm == "kept"
    assert DMTConfig.from_dict(DMTConfig().to_dict()) == DMTConfig()


def test_a_warmup_without_recalibration_starts_a_recalibrating_stage2_and_back():
    """recalibrate_teachers is a stage-2 setting: a warm-up shared through ``warmup_from`` may come
    from a run with it on or off; the unfitted eval-mode affine is the identity either way."""
    from dmt_wrap.calibration import CalibratedNetwork

    torch.manual_seed(0)
    plain, recalibrating = CalibratedNetwork(ToyNet()), CalibratedNetwork(ToyNet(), eval_affine=True)
    recalibrating.eval_scale.fill_(2.0)
    recalibrating.load_state_dict(plain.state_dict())  # no eval affine in the checkpoint: identity
    assert float(recalibrating.eval_scale) == 1.0 and float(recalibrating.eval_shift) == 0.0
    assert torch.equal(recalibrating.scale, plain.scale)
    plain.load_state_dict(recalibrating.state_dict())  # an identity eval affine: nothing lost
    recalibrating.eval_shift.fill_(0.5)
    with pytest.raises(RuntimeError, match="eval_shift"):  # a fitted one is never dropped
        plain.load_state_dict(recalibrating.state_dict())


class ObjectnessAndSound(torch.nn.Module):
    """Probability maps: the image's red channel lit whatever the audio (an objectness detector that
    also fires on silent objects), its green channel only as much as the audio's first value says."""

    outputs_probabilities = True

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # the contract's optimiser needs a parameter

    def forward(self, images, audio):
        sounding = images[:, 1] * audio[:, :1, None].clamp(0, 1)
        return (0.05 + 0.9 * torch.maximum(images[:, 0], sounding)).clamp(0, 1), None


def test_audio_contrast_drops_what_a_teacher_lights_whatever_the_audio():
    images = torch.zeros(2, 3, 8, 8)
    images[:, 0, :4, :4] = 1.0                # a silent object, top left: lit by the red channel
    images[:, 1, 4:, 4:] = 1.0                # the sounding object, bottom right
    audio = torch.zeros(2, 32)
    audio[0, 0] = 1.0                         # clip 0 sounds; clip 1 is silence
    data = [{"image": images[i], "audio": audio[i], "mask": images[i, 1]} for i in range(2)]
    labels = {}
    for contrast in (False, True):
        model = DualMeanTeacher(ObjectnessAndSound, FAST.replace(audio_contrast=contrast, batch_size=2,
                                                                  labeled_batch_size=2))
        model.start_teachers()
        trainer = Trainer(model, data, data, progress=False)
        probs = trainer._teacher_probs(images, audio)
        labels[contrast] = make_pseudo_labels(probs[0], probs[1], model.config.pseudo_labels).labels
    # plain maps: the silent object is half of clip 0's label
    assert labels[False][0, :4, :4].all() and labels[False][0, 4:, 4:].all()
    # contrasted with clip 1's audio (silence): only the sounding object stays
    assert labels[True][0, 4:, 4:].all() and not labels[True][0, :4, :4].any()
    # clip 1 under clip 0's audio lights its green square too: nothing of clip 1 stays
    assert not labels[True][1].any()


class LeftLeaning(ObjectnessAndSound):
    """ObjectnessAndSound plus a pull towards the left edge: a network that is not mirror-symmetric."""

    def forward(self, images, audio):
        probs, _ = super().forward(images, audio)
        ramp = torch.linspace(0.3, 0.0, images.shape[-1])
        return (probs + ramp).clamp(0, 1), None


@pytest.mark.parametrize("net", [ObjectnessAndSound, LeftLeaning], ids=["symmetric", "left-leaning"])
def test_separate_teacher_views_flip_each_teachers_map_back_into_the_shared_frame(net):
    """A teacher that sees the mirror image (``weak_flip_p`` 1) answers in the shared frame once its
    map is flipped back: a mirror-symmetric network answers exactly as with the shared view; one that
    leans left leans right, which the flipped-back map shows."""
    images = torch.zeros(2, 3, 8, 8)
    images[:, 0, :4, :3] = 1.0                # an object on the left
    audio = torch.ones(2, 32)
    data = [{"image": images[i], "audio": audio[i], "mask": images[i, 0]} for i in range(2)]
    probs = {}
    for separate in (False, True):
        cfg = FAST.replace(separate_teacher_views=separate, batch_size=2, labeled_batch_size=2,
                           augment=AugmentConfig(weak_flip_p=1.0))
        model = DualMeanTeacher(net, cfg)
        model.start_teachers()
        probs[separate] = Trainer(model, data, data, progress=False)._teacher_probs(images, audio)
    shared, own = probs[False][0], probs[True][0]
    assert torch.equal(own, probs[True][1])
    if net is ObjectnessAndSound:
        assert torch.equal(own, shared)
    else:  # the empty rows show the lean mirrored; the object stays where it is, on the left
        assert not torch.allclose(own, shared)
        assert torch.allclose(own[:, 4:], shared[:, 4:].flip(-1), atol=1e-6)
        assert own[:, :4, :3].min() > own[:, :4, 3:].max()


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
        Trainer(model, SquaresDataset(8, seed=1), SquaresDataset(8, seed=2), progress=False, world=World(rank=0, size=2))
    with pytest.raises(ValueError, match="mismatch_weight"):
        DMTConfig(mismatch_weight=-1.0)
