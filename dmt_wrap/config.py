"""Training configuration of the wrapper, and the named ablations (docs/design.md, 'Ablations')."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, get_args

from .augment import MILD_AUGMENT, AugmentConfig
from .filtering import CombineRule, DeltaMode, LabelShape, PseudoLabelConfig
from .losses import MAP_LOSSES

Inference = Literal["mean", "a", "b", "students"]
PseudoLossNorm = Literal["kept", "unlabeled", "mixed"]


#: Fields whose default changed after they were introduced, at the value older code used
#: (configs stored before the field existed trained that way).
LEGACY_VALUES: dict[str, Any] = {"pseudo_loss_norm": "kept"}

#: Fields stage 1 (the warm-up) never reads: runs that differ only in these share their
#: warm-up exactly, so a sweep of stage-2 settings can start every run from one warm-up
#: checkpoint (``DualMeanTeacher.fit(..., warmup_from=)``).
STAGE2_FIELDS = frozenset({
    "steps", "noise_filter", "pseudo_label", "pseudo_label_shape", "max_label_area", "delta", "delta_mode",
    "tau", "ema_decay", "lambda_u", "rampup_steps", "pseudo_loss_norm", "inference", "recalibrate_teachers",
    "unlabeled_augment", "audio_contrast", "separate_teacher_views",
})

#: Fields only the teachers' path reads (their EMA, their pseudo-labels and those labels' loss
#: weight): a config without teachers trains bit-identical networks whatever their values.
TEACHER_FIELDS = frozenset({
    "noise_filter", "pseudo_label", "pseudo_label_shape", "max_label_area", "delta", "delta_mode", "tau",
    "ema_decay", "lambda_u", "rampup_steps", "pseudo_loss_norm", "audio_contrast", "separate_teacher_views",
})


@dataclass(frozen=True)
class DMTConfig:
    """Everything the trainer needs; the paper leaves most of these open (see README).

    Schedule. ``warmup_steps`` of stage 1 (labeled data only) per network, then ``steps``
    of stage 2. An epoch is ``steps_per_epoch`` steps: the unit of history rows and
    checkpoints (the datasets may be generated on the fly and have no natural epoch).

    Method. ``teachers``: 2 = DMT, 1 = single mean teacher, 0 = no teacher (naive
    semi-supervised, self-supervised only, or fully supervised, depending on the data and
    ``use_labels``). ``delta`` thresholds the calibrated teacher confidence; ``tau`` is the
    consensus IoU a sample needs to be kept; ``delta_mode="relative"`` applies ``delta`` to
    each map rescaled to span [0, 1] (for networks whose calibrated maps stay under an
    absolute ``delta``: keep rate 0); ``pseudo_label`` combines the two teachers'
    masks; ``pseudo_label_shape="box"`` fills each pseudo-label's bounding box (for data
    whose ground truth is boxes; ``component_box`` the box of the connected piece holding the
    teachers' peak); ``max_label_area`` drops labels covering more of the image than that.
    ``rampup_steps`` ramps ``lambda_u`` up linearly at the start of stage 2.

    ``pseudo_loss_norm`` says what the summed pseudo-label loss is divided by: ``unlabeled``
    (the default) the unlabeled batch size (FixMatch's convention: a kept sample weighs as much
    as any other unlabeled one), ``kept`` the number of kept samples (the pseudo term then
    weighs as much as the labeled term whatever the keep rate, so one kept sample weighs as
    much as the whole labeled batch; the default until paired runs over three methods and
    three seeds showed it cost pointing on every one, docs/results.md), ``mixed`` one mean over
    the mixed batch (labeled + kept: every sample weighs the same, the labeled term included).

    ``unlabeled_augment``: when set, the unlabeled part of each student's mixed batch gets this
    view instead of ``augment`` (e.g. the strong view on unlabeled samples only, so that the
    students do not see the teachers' own view). ``recalibrate_teachers``: when stage 2 starts,
    refit each teacher's calibration bias on its eval-mode maps of the first unlabeled batch, so
    that ``delta`` applies to the maps the teachers threshold (dropout, momentum branches and
    BatchNorm make eval-mode maps differ from the train-mode ones the calibration was fitted on).
    ``audio_contrast``: the teachers' confidence becomes ``P(image, own audio) * (1 - P(image, another
    clip's audio))`` before filtering (``filtering.contrast_with_other_audio``; the other clip is the
    next one of the unlabeled batch, so it needs an unlabeled batch of at least two): what a teacher
    lights whatever the audio (a silent object it takes for a source) does not become a pseudo-label.
    It costs one more forward per teacher and step.
    ``separate_teacher_views``: each teacher sees its own weak-view flip draw of the unlabeled batch
    (over the shared weak view the students' targets live in) and its map is flipped back before
    filtering: where a network is not mirror-symmetric the teachers then disagree, and the consensus
    filter reads that as doubt (teacher diversity, without changing what the students see).
    ``mismatch_weight``: weight of a loss that teaches each network to use the audio: every sample
    with a target (labels, kept pseudo-labels) goes through the student once more with the next
    clip's audio of its batch, and the map there is pushed towards 0 on the target's pixels
    (``losses.mismatched_audio_loss``). It applies in both stages and to every variant that
    trains on labels, so naive training gets it too. One more forward and backward per student
    and step; not available under torchrun.
    ``ensemble``: with ``teachers=0``, train two independent networks (pair A's and B's seeds
    and data orders) and average their maps at inference: the naive-ensemble control.
    ``swap_pairs``: network A takes pair B's seeds (initial weights, calibration probe, labeled-data
    order, augmentation draws) and network B takes A's, while each keeps its position (A steps first
    and draws the step's global random numbers first; A is what ``inference="a"``, the logs and a
    one-network run call A). With one network, it trains on pair B's seeds. A control that tells
    what a network owes to its seeds from what it owes to its position.
    """

    # schedule
    warmup_steps: int = 300
    steps: int = 600
    steps_per_epoch: int = 100
    batch_size: int = 64
    labeled_batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    # method
    teachers: int = 2
    noise_filter: bool = True
    pseudo_label: CombineRule = "intersection"
    pseudo_label_shape: LabelShape = "mask"
    max_label_area: float = 1.0
    delta: float = 0.5
    delta_mode: DeltaMode = "absolute"
    tau: float = 0.5
    ema_decay: float = 0.99
    lambda_u: float = 1.0
    rampup_steps: int = 0
    pseudo_loss_norm: PseudoLossNorm = "unlabeled"
    lambda_c: float = 0.1
    use_labels: bool = True
    map_loss: Literal["bce", "bce_dice"] = "bce"
    inference: Inference = "mean"
    ensemble: bool = False
    swap_pairs: bool = False
    recalibrate_teachers: bool = False
    audio_contrast: bool = False
    separate_teacher_views: bool = False
    mismatch_weight: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    unlabeled_augment: AugmentConfig | None = None
    # engineering
    seed: int = 0
    num_workers: int = 0
    amp: bool = True
    channels_last: bool = False

    def __post_init__(self) -> None:
        checks = {
            "teachers": self.teachers in (0, 1, 2),
            "pseudo_label": self.pseudo_label in get_args(CombineRule),
            "pseudo_label_shape": self.pseudo_label_shape in get_args(LabelShape),
            "max_label_area": 0.0 < self.max_label_area <= 1.0,
            "pseudo_loss_norm": self.pseudo_loss_norm in get_args(PseudoLossNorm),
            "map_loss": self.map_loss in MAP_LOSSES,
            "inference": self.inference in get_args(Inference),
            "ensemble": not self.ensemble or self.teachers == 0,
            "delta": 0.0 < self.delta < 1.0,
            "delta_mode": self.delta_mode in get_args(DeltaMode),
            "tau": 0.0 <= self.tau <= 1.0,
            "ema_decay": 0.0 <= self.ema_decay < 1.0,
            "steps": self.steps >= 0 and self.warmup_steps >= 0,
            "rampup_steps": self.rampup_steps >= 0,
            "steps_per_epoch": self.steps_per_epoch >= 1,
            "batch_size": self.batch_size >= 1 and self.labeled_batch_size >= 1,
            "lr": self.lr > 0,
            "mismatch_weight": self.mismatch_weight >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid DMTConfig value(s) for {bad}: {self.summary(bad)}")
        if self.inference == "b" and self.num_networks < 2:
            raise ValueError("inference='b' needs two networks (teachers=2, or ensemble=True).")

    def summary(self, names: list[str] | None = None) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                         if names is None or f.name in names)

    @property
    def num_networks(self) -> int:
        return 2 if self.teachers == 2 or self.ensemble else 1

    @property
    def pseudo_labels(self) -> PseudoLabelConfig:
        """The pseudo-label rule these settings describe."""
        return PseudoLabelConfig(delta=self.delta, tau=self.tau, noise_filter=self.noise_filter,
                                 combine=self.pseudo_label, shape=self.pseudo_label_shape,
                                 delta_mode=self.delta_mode, max_area=self.max_label_area)

    def seed_index(self, position: int) -> int:
        """Whose seeds the network at ``position`` (0 = A, 1 = B) trains on (``swap_pairs``)."""
        return 1 - position if self.swap_pairs else position

    def effective_warmup(self, uses_labels: bool) -> int:
        """Stage 1's length: ``warmup_steps`` when training with labels; without labels
        (self-supervised) there is nothing to warm up on, so stage 2 starts at once."""
        return self.warmup_steps if uses_labels else 0

    def total_steps(self, uses_labels: bool) -> int:
        """Updates per network over both stages (the schedule's length)."""
        return self.effective_warmup(uses_labels) + self.steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stage1_settings(self) -> dict[str, Any]:
        """The fields the warm-up depends on: all but ``STAGE2_FIELDS``, with ``teachers`` and
        ``ensemble`` reduced to the number of networks they build (``num_networks``): stage 1 trains
        the students on labels before any teacher exists, so DMT and a naive ensemble warm up the
        same two networks, a single mean teacher and naive the same one. Two configs with equal
        stage-1 settings train bit-identical networks up to the end of the warm-up."""
        settings = {k: v for k, v in self.to_dict().items() if k not in STAGE2_FIELDS | {"teachers", "ensemble"}}
        return {**settings, "num_networks": self.num_networks}

    def training_settings(self) -> dict[str, Any]:
        """The fields the trained networks depend on: all of them, less ``TEACHER_FIELDS`` when
        there are no teachers (a naive ensemble trained at ``lambda_u`` 1 is the one trained at
        0.25). Two configs with equal training settings train bit-identical networks."""
        unread = TEACHER_FIELDS if self.teachers == 0 else frozenset()
        return {k: v for k, v in self.to_dict().items() if k not in unread}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DMTConfig":
        """A stored config; a field it lacks takes the value the code had before that field
        existed (``LEGACY_VALUES``, else today's default), so that it describes how the stored
        model was trained."""
        values = {**{k: v for k, v in LEGACY_VALUES.items() if k not in values}, **values}
        for name in ("augment", "unlabeled_augment"):
            if isinstance(values.get(name), dict):
                values[name] = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                for k, v in values[name].items()})
        return cls(**values)

    def replace(self, **changes: Any) -> "DMTConfig":
        return replace(self, **changes)


#: The ablations of docs/design.md, 'Ablations', as config changes. "fully_supervised" and
#: "self_supervised" also change the data (all labeled / none). "self_supervised" is the
#: method alone, so it also trains with the originals' mild augmentation.
ABLATIONS: dict[str, dict[str, Any]] = {
    "dmt": {},
    "single_teacher": {"teachers": 1},
    "no_filter": {"noise_filter": False},
    "no_ipl_union": {"pseudo_label": "union"},
    "no_ipl_first": {"pseudo_label": "first"},
    "naive": {"teachers": 0},
    "naive_ensemble": {"teachers": 0, "ensemble": True},
    "self_supervised": {"teachers": 0, "use_labels": False, "warmup_steps": 0,
                        "augment": MILD_AUGMENT},
    "fully_supervised": {"teachers": 0},
}


def ablation(name: str, base: DMTConfig | None = None, **overrides: Any) -> DMTConfig:
    """The config of a named ablation, on top of ``base`` (default ``DMTConfig()``)."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose from {sorted(ABLATIONS)}.")
    return (base or DMTConfig()).replace(**{**ABLATIONS[name], **overrides})
