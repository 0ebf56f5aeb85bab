"""Training configuration of the wrapper, and the named ablations (docs/design.md, 'Ablations')."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal, get_args

from .augment import MILD_AUGMENT, AugmentConfig
from .filtering import PseudoLabelConfig
from .losses import MAP_LOSSES

Inference = Literal["mean", "a", "b", "students"]
PseudoLossNorm = Literal["kept", "unlabeled", "mixed"]
Optimizer = Literal["adam", "adamw", "sgd"]
Precision = Literal["auto", "bf16", "fp32"]

#: Field metadata: which parts of training read a field. ``stage2``: stage 1 (the warm-up) never
#: reads it, so runs differing only there share their warm-up exactly (``fit(warmup_from=)``).
#: ``teachers``: only the teachers' path reads it, so a config without teachers trains the same
#: networks whatever its value. The one source of truth for ``STAGE2_FIELDS`` and ``TEACHER_FIELDS``.
STAGE2, TEACHERS = "stage2", "teachers"


def _field(default: Any, *reads: str) -> Any:
    """A field with the parts of training that read it; a class as ``default`` is a factory."""
    if isinstance(default, type):
        return field(default_factory=default, metadata={"reads": frozenset(reads)})
    return field(default=default, metadata={"reads": frozenset(reads)})


@dataclass(frozen=True)
class DMTConfig:
    """Everything the trainer needs; the paper leaves most of these open (docs/design.md).

    Schedule: ``warmup_steps`` of stage 1 (labeled data only) per network, then ``steps`` of
    stage 2; an epoch is ``steps_per_epoch`` steps (history rows, checkpoints), since the
    datasets may be generated on the fly and have no natural epoch.

    Method: ``teachers`` 2 = DMT, 1 = single mean teacher, 0 = no teacher (naive, self- or fully
    supervised, by the data and ``use_labels``; ``ensemble=True`` trains two independent
    networks and averages their maps). ``pseudo_labels`` turns the teachers' maps into labels
    (``dmt_wrap.filtering.PseudoLabelConfig``: ``delta``, ``tau``, IPL, label shape).
    ``lambda_u`` weighs the pseudo-label loss, ramped in linearly over ``rampup_steps`` (fresh
    teachers are at their weakest). ``pseudo_loss_norm`` divides the summed pseudo-label loss by
    the unlabeled batch size (``unlabeled``: FixMatch's convention, a kept sample weighs as much
    as any unlabeled one), the kept count (``kept``: one kept sample can then outweigh the
    labeled batch; paired runs showed it costs pointing, docs/results.md) or labeled + kept
    (``mixed``). ``lambda_c`` weighs the network's own self-supervised loss next to labels.
    ``mismatch_weight``: a loss that pushes each student's map towards 0 on its targets under
    another clip's audio (one more forward per student and step; one process only).

    Engineering: ``optimizer`` (``adam``, ``adamw``, ``sgd`` with ``momentum``) at ``lr``; a
    network may give its own parameter groups (``param_groups(lr)``). ``precision``: ``auto``
    is bf16 autocast on CUDA and fp32 elsewhere; ``bf16`` autocasts the networks' forwards on any
    device (calibration, filtering, losses and EMA stay fp32). ``channels_last`` puts images and
    networks in that memory format.
    """

    # schedule
    warmup_steps: int = 300
    steps: int = _field(600, STAGE2)
    steps_per_epoch: int = 100
    batch_size: int = 64
    labeled_batch_size: int = 16
    # optimisation
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    # method
    teachers: int = 2
    pseudo_labels: PseudoLabelConfig = _field(PseudoLabelConfig, STAGE2, TEACHERS)
    ema_decay: float = _field(0.99, STAGE2, TEACHERS)
    lambda_u: float = _field(1.0, STAGE2, TEACHERS)
    rampup_steps: int = _field(0, STAGE2, TEACHERS)
    pseudo_loss_norm: PseudoLossNorm = _field("unlabeled", STAGE2, TEACHERS)
    lambda_c: float = 0.1
    use_labels: bool = True
    map_loss: Literal["bce", "bce_dice"] = "bce"
    inference: Inference = _field("mean", STAGE2)
    ensemble: bool = False
    mismatch_weight: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # engineering
    seed: int = 0
    num_workers: int = 0
    precision: Precision = "auto"
    channels_last: bool = False

    def __post_init__(self) -> None:
        checks = {
            "teachers": self.teachers in (0, 1, 2),
            "pseudo_labels": isinstance(self.pseudo_labels, PseudoLabelConfig),
            "pseudo_loss_norm": self.pseudo_loss_norm in get_args(PseudoLossNorm),
            "map_loss": self.map_loss in MAP_LOSSES,
            "inference": self.inference in get_args(Inference),
            "ensemble": not self.ensemble or self.teachers == 0,
            "ema_decay": 0.0 <= self.ema_decay < 1.0,
            "steps": self.steps >= 0 and self.warmup_steps >= 0,
            "rampup_steps": self.rampup_steps >= 0,
            "steps_per_epoch": self.steps_per_epoch >= 1,
            "batch_size": self.batch_size >= 1 and self.labeled_batch_size >= 1,
            "optimizer": self.optimizer in get_args(Optimizer),
            "lr": self.lr > 0,
            "precision": self.precision in get_args(Precision),
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
        ``ensemble`` reduced to the number of networks they build: stage 1 trains the students on
        labels before any teacher acts, so DMT and a naive ensemble warm up the same two networks.
        Two configs with equal stage-1 settings train bit-identical networks to the warm-up's end."""
        settings = {k: v for k, v in self.to_dict().items() if k not in STAGE2_FIELDS | {"teachers", "ensemble"}}
        return {**settings, "num_networks": self.num_networks}

    def training_settings(self) -> dict[str, Any]:
        """The fields the trained networks depend on: all, less ``TEACHER_FIELDS`` when there are
        no teachers. Two configs with equal training settings train bit-identical networks."""
        unread = TEACHER_FIELDS if self.teachers == 0 else frozenset()
        return {k: v for k, v in self.to_dict().items() if k not in unread}

    def differences(self, other: "DMTConfig") -> list[str]:
        """The fields whose values differ, nested ones by dotted name (``pseudo_labels.tau``)."""
        return dotted_differences(self.to_dict(), other.to_dict())

    def replace(self, **changes: Any) -> "DMTConfig":
        """A copy with ``changes``; a dict given for a nested config (``pseudo_labels``, ``augment``)
        changes only the fields it names: ``cfg.replace(pseudo_labels={"delta": 0.6})``."""
        merged = {}
        for name, value in changes.items():
            current = getattr(self, name, None)
            if isinstance(value, dict) and is_dataclass(current):
                value = replace(current, **value)
            merged[name] = value
        return replace(self, **merged)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DMTConfig":
        """A stored config. Configs written before a field existed take the value the code had
        then (``LEGACY_VALUES``); the flat pseudo-label fields of older configs are read into
        ``pseudo_labels``; options since removed are accepted only at the value that left them
        without effect."""
        values = dict(values)
        values = {**{k: v for k, v in LEGACY_VALUES.items() if k not in values}, **values}
        pseudo = dict(values.pop("pseudo_labels", None) or {})
        for old, new in FLAT_PSEUDO_LABEL_FIELDS.items():
            if old in values:
                pseudo[new] = values.pop(old)
        if "amp" in values:
            values["precision"] = "auto" if values.pop("amp") else "fp32"
        for name, neutral in REMOVED_FIELDS.items():
            if name in values and values.pop(name) not in neutral:
                raise ValueError(f"this config sets {name!r}, an option dmt_wrap no longer has (paired runs showed "
                                 "no gain; docs/results-archive.md); train with an older dmt_wrap to reproduce it.")
        values["pseudo_labels"] = PseudoLabelConfig(**pseudo)
        if isinstance(values.get("augment"), dict):
            values["augment"] = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                 for k, v in values["augment"].items()})
        return cls(**values)


def dotted_differences(mine: dict[str, Any], theirs: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose values differ between two settings dicts, nested dicts by dotted name."""
    names = []
    for key in [*mine, *(k for k in theirs if k not in mine)]:
        a, b = mine.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += dotted_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key}")
    return names


STAGE2_FIELDS = frozenset(f.name for f in fields(DMTConfig) if STAGE2 in f.metadata.get("reads", ()))
TEACHER_FIELDS = frozenset(f.name for f in fields(DMTConfig) if TEACHERS in f.metadata.get("reads", ()))

#: Fields whose default changed after they were introduced, at the value older configs trained with.
LEGACY_VALUES: dict[str, Any] = {"pseudo_loss_norm": "kept"}
#: Older configs' flat names of the pseudo-label settings, and where they live now.
FLAT_PSEUDO_LABEL_FIELDS = {"delta": "delta", "tau": "tau", "noise_filter": "noise_filter",
                            "pseudo_label": "combine", "pseudo_label_shape": "shape", "delta_mode": "delta_mode",
                            "max_label_area": "max_area"}
#: Options removed after paired runs rejected them (docs/results-archive.md) or moved to the benchmark
#: (``swap_pairs``), with the values at which a stored config trained without them.
REMOVED_FIELDS: dict[str, tuple[Any, ...]] = {
    "separate_teacher_views": (False,), "audio_contrast": (False,), "recalibrate_teachers": (False,),
    "unlabeled_augment": (None,), "swap_pairs": (False,),
}


#: The ablations of docs/design.md, 'Ablations', as config changes. "fully_supervised" and
#: "self_supervised" also change the data (all labeled / none). "self_supervised" is the
#: method alone, so it also trains with the originals' mild augmentation.
ABLATIONS: dict[str, dict[str, Any]] = {
    "dmt": {},
    "single_teacher": {"teachers": 1},
    "no_filter": {"pseudo_labels": {"noise_filter": False}},
    "no_ipl_union": {"pseudo_labels": {"combine": "union"}},
    "no_ipl_first": {"pseudo_labels": {"combine": "first"}},
    "naive": {"teachers": 0},
    "naive_ensemble": {"teachers": 0, "ensemble": True},
    "self_supervised": {"teachers": 0, "use_labels": False, "warmup_steps": 0, "augment": MILD_AUGMENT},
    "fully_supervised": {"teachers": 0},
}


def ablation(name: str, base: DMTConfig | None = None, **overrides: Any) -> DMTConfig:
    """The config of a named ablation, on top of ``base`` (default ``DMTConfig()``)."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose from {sorted(ABLATIONS)}.")
    return (base or DMTConfig()).replace(**ABLATIONS[name]).replace(**overrides)
