"""The two-stage training loop behind ``DualMeanTeacher.fit`` (docs/design.md, 'The method').

Stage 1 (warm-up): every network trains on labeled data only, supervised map loss plus
``lambda_c`` times its own self-supervised loss. Stage 2 (unbiased learning): teachers
(EMA copies) pseudo-label a weak view of the unlabeled batch; consensus filtering and IPL
pick the labels; each student trains on a strong view of labeled + unlabeled data; every
teacher follows its student by EMA after every step. The ablations are options of this
same loop (``DMTConfig.teachers``, ``noise_filter``, ``pseudo_label``, ``use_labels``).
Everything around the step (teachers' start and EMA, evaluation, history, checkpoints,
progress bar) is a callback (``dmt_wrap.callbacks``).

Reproducibility: the data order of each stream is a seeded endless permutation, and the
augmentation and network randomness of step ``s`` come from seeds derived from
``(seed, s)``. A checkpoint therefore needs only weights, optimizer states and the number
of samples each stream consumed to resume exactly.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from . import distributed
from .augment import Augmenter, mirror
from .callbacks import CHECKPOINT_NAME, Callback, Checkpoint, EMATeachers, Evaluation, History, ProgressBar
from .checkpoint import MODEL_KEYS, PAIR_NAMES, CheckpointError, load_checkpoint, require_keys
from .config import DMTConfig
from .distributed import DistributedStudent, World
from .filtering import (SILENT_SUMS, PseudoLabels, contrast_with_other_audio, label_quality, make_pseudo_labels,
                        silent_object_rates, silent_object_sums)
from .losses import map_loss, mismatched_audio_loss, per_sample_map_loss
from .metrics import upsample_maps
from .streams import BatchStream, derive_seed

if TYPE_CHECKING:  # annotations only: the wrapper imports this module
    from .wrapper import DualMeanTeacher

log = logging.getLogger("dmt_wrap")

LOSS_TERMS = ("supervised", "pseudo", "self_supervised", "mismatched_audio", "total")
#: what a batch brings to the device; ``silent_mask`` (visible objects that do not sound) on
#: unlabeled items only feeds the diagnostics, like ``mask`` there
BATCH_KEYS = ("image", "audio", "mask", "silent_mask")
KEPT_MEANS = ("pseudo_iou", "pseudo_precision")  # diagnostics averaged over kept samples only


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or inf; the step was stopped before any weight changed."""


class DataFormatError(ValueError):
    """A batch does not hold what the wrapper needs."""


def as_batch_dict(batch: Any, needs_mask: bool, role: str) -> dict[str, Tensor]:
    """Accept dict batches or ``(image, audio[, mask])`` tuples; check the keys."""
    if isinstance(batch, (tuple, list)):
        batch = dict(zip(("image", "audio", "mask"), batch))
    if not isinstance(batch, dict):
        raise DataFormatError(f"{role} items must be dicts with 'image', 'audio'"
                              f"{' and mask' if needs_mask else ''}; got {type(batch).__name__}.")
    required = ("image", "audio", "mask") if needs_mask else ("image", "audio")
    missing = [k for k in required if k not in batch]
    if missing:
        raise DataFormatError(f"{role} items lack {missing} (they hold {sorted(batch)}); expected 'image' "
                              "[3, H, W] in [0, 1], 'audio' [T] waveform" + (", 'mask' [H, W]." if needs_mask else "."))
    image, audio = batch["image"], batch["audio"]
    if image.dim() != 4 or image.shape[1] != 3:
        raise DataFormatError(f"{role} 'image' batch has shape {tuple(image.shape)}; expected [B, 3, H, W].")
    if audio.dim() != 2:
        raise DataFormatError(f"{role} 'audio' batch has shape {tuple(audio.shape)}; expected [B, T] waveforms.")
    if "mask" in batch and tuple(batch["mask"].shape) != (image.shape[0], *image.shape[2:]):
        raise DataFormatError(f"{role} 'mask' batch has shape {tuple(batch['mask'].shape)}; expected "
                              f"{(image.shape[0], *image.shape[2:])} to match the images.")
    return batch


def _dataset_of(data: Dataset | DataLoader | None) -> tuple[Dataset | None, dict[str, Any]]:
    if isinstance(data, DataLoader):
        return data.dataset, {"batch_size": data.batch_size, "num_workers": data.num_workers,
                              "collate_fn": data.collate_fn}
    return data, {}


def build_optimizer(params: Iterable[nn.Parameter], cfg: DMTConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam over ``params``; the fused kernel on CPU and CUDA (a few times faster than the
    default per-parameter loop, same update rule)."""
    fused = True if device.type in ("cpu", "cuda") else None
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


class Trainer:
    """Runs ``model``'s two stages; see the module docstring.

    ``world`` is this process's place in a data-parallel run (``dmt_wrap.distributed``);
    the default is a single process. ``checkpoint_dir``, ``progress`` and ``eval_fn`` set up
    the built-in callbacks; ``callbacks`` run after them (``dmt_wrap.callbacks``).

    ``run`` is the whole schedule. To drive steps yourself (e.g. to time them): ``setup()``
    once, then ``train_step(stage)``; ``model.start_teachers()`` before the first stage-2 step.
    """

    def __init__(self, model: DualMeanTeacher, labeled: Dataset | DataLoader | None,
                 unlabeled: Dataset | DataLoader | None, checkpoint_dir: str | os.PathLike | None = None,
                 progress: bool = True, eval_fn: Callable[[DualMeanTeacher], dict[str, float]] | None = None,
                 world: World | None = None, callbacks: Sequence[Callback] = (),
                 warmup_from: str | os.PathLike | None = None) -> None:
        cfg = model.config
        self.model, self.cfg = model, cfg
        self.device = model.device
        self.world = world or World()
        # what the step calls: the students themselves, or their DDP wrappers (``_distribute``)
        self.students: list[nn.Module] = list(model.students)
        self.labeled, self.labeled_opts = _dataset_of(labeled)
        self.unlabeled, self.unlabeled_opts = _dataset_of(unlabeled)
        self._check_data()
        self.checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
        self.warmup_from = Path(warmup_from) if warmup_from is not None else None
        self.callbacks = builtin_callbacks(checkpoint_dir, progress, eval_fn) + list(callbacks)
        self.augmenter = Augmenter(cfg.augment)
        self.unlabeled_augmenter = Augmenter(cfg.unlabeled_augment) if cfg.unlabeled_augment else None
        self.optimizers = [build_optimizer(s.parameters(), cfg, self.device) for s in model.students]
        self.autocast_enabled = cfg.amp and self.device.type == "cuda"
        self.step = 0
        self.streams: dict[str, BatchStream] = {}
        self._given: Mapping[str, dict[str, Tensor]] = {}  # batches passed to ``train_step``

    # ----------------------------------------------------------------- data
    def _check_data(self) -> None:
        cfg = self.cfg
        if cfg.use_labels and self.labeled is None:
            raise ValueError("labeled data is required (use_labels=True); pass labeled=None only for the "
                             "self-supervised ablation (use_labels=False).")
        if cfg.teachers > 0 and self.unlabeled is None:
            raise ValueError(f"teachers={cfg.teachers} needs unlabeled data to pseudo-label; pass unlabeled= "
                             "or use teachers=0 (naive / fully supervised).")
        if not cfg.use_labels and self.unlabeled is None:
            raise ValueError("self-supervised training (use_labels=False) needs unlabeled data: pass unlabeled=.")
        if cfg.mismatch_weight > 0 and self.world.parallel:
            raise ValueError("mismatch_weight > 0 runs each student twice per step, which DistributedDataParallel's "
                             "static graph does not allow; train it in one process, or set mismatch_weight=0.")
        for name, data in (("labeled", self.labeled), ("unlabeled", self.unlabeled)):
            if data is not None and len(data) == 0:  # type: ignore[arg-type]
                raise ValueError(f"the {name} dataset is empty.")

    def _batch_size(self, labeled: bool) -> int:
        """Per-rank batch size of the labeled or unlabeled stream (a DataLoader's own, or the config's)."""
        opts = self.labeled_opts if labeled else self.unlabeled_opts
        return opts.get("batch_size") or (self.cfg.labeled_batch_size if labeled else self.cfg.batch_size)

    def _stream(self, name: str, consumed: int = 0) -> BatchStream:
        labeled = name.startswith("labeled")
        dataset, opts = (self.labeled, self.labeled_opts) if labeled else (self.unlabeled, self.unlabeled_opts)
        batch = self._batch_size(labeled)
        workers = opts.get("num_workers", self.cfg.num_workers)
        return BatchStream(dataset, batch, derive_seed(self.cfg.seed, "data", name), consumed=consumed,
                           num_workers=workers, pin_memory=self.device.type == "cuda",
                           collate_fn=opts.get("collate_fn"), rank=self.world.rank, world_size=self.world.size)

    def _next(self, name: str, needs_mask: bool) -> dict[str, Tensor]:
        if name in self._given:
            batch = self._given[name]
        else:
            if name not in self.streams:
                self.streams[name] = self._stream(name)
            batch = self.streams[name].next()
        batch = as_batch_dict(batch, needs_mask, name.rstrip("AB").rstrip("_"))
        # only what the step uses crosses to the device (datasets may carry more, e.g. instance masks)
        return {k: batch[k].to(self.device, non_blocking=True) for k in BATCH_KEYS if k in batch}

    def _images(self, images: Tensor) -> Tensor:
        return self.model.image_layout(images)

    # ----------------------------------------------------------------- steps
    def _seed(self, kind: str, *parts: Any) -> int:
        """The seed of this step's ``kind`` of randomness; each rank of a parallel run draws its own."""
        rank = ("rank", self.world.rank) if self.world.parallel else ()
        return derive_seed(self.cfg.seed, kind, self.step, *parts, *rank)

    def _generator(self, *parts: Any) -> torch.Generator:
        return torch.Generator().manual_seed(self._seed("aug", *parts))

    def _uses_labels(self) -> bool:
        return self.cfg.use_labels and self.labeled is not None

    @property
    def warmup_length(self) -> int:
        """Stage 1's updates in this run (none without labels)."""
        return self.cfg.effective_warmup(self._uses_labels())

    @property
    def total_steps(self) -> int:
        """The schedule's length: warm-up (with labels only) plus stage 2."""
        return self.cfg.total_steps(self._uses_labels())

    def stage_at(self, step: int) -> str:
        """``"warmup"`` or ``"unbiased"``: the stage step ``step`` (counted from 0) belongs to."""
        return "warmup" if step < self.warmup_length else "unbiased"

    def _pseudo_weight(self) -> float:
        """``lambda_u``, ramped up linearly over the first ``rampup_steps`` of stage 2.

        Freshly started teachers are at their weakest; a ramp keeps their first, noisiest
        pseudo-labels from overriding what the warm-up learned (a plain Python float: no sync).
        """
        cfg = self.cfg
        if cfg.rampup_steps <= 0:
            return cfg.lambda_u
        into_stage2 = self.step - self.warmup_length + 1
        return cfg.lambda_u * min(1.0, max(0.0, into_stage2 / cfg.rampup_steps))

    def _students_view(self, k: int, labeled: dict[str, Tensor] | None, unlabeled: dict[str, Tensor] | None,
                       pseudo: PseudoLabels | None) -> tuple[Tensor, Tensor, Tensor, int]:
        """Student ``k``'s augmented mixed batch ``(images, audio, targets, number labeled)``.

        One strong view over the whole batch, or, with ``unlabeled_augment``, the labeled part
        in ``augment``'s view and the unlabeled part in its own.
        """
        parts = []
        if labeled is not None:
            target = labeled["mask"] if "mask" in labeled else torch.zeros_like(labeled["image"][:, 0])
            parts.append((labeled["image"], labeled["audio"], target))
        if unlabeled is not None:
            target = pseudo.labels if pseudo is not None else torch.zeros_like(unlabeled["image"][:, 0])
            parts.append((unlabeled["image"], unlabeled["audio"], target))
        n_lab = labeled["image"].shape[0] if labeled is not None else 0
        seed_index = self.cfg.seed_index(k)
        if self.unlabeled_augmenter is None or len(parts) < 2:
            images, audio, target = (torch.cat(items) for items in zip(*parts))
            return (*self.augmenter.strong(images, audio, self._generator("strong", seed_index), target), n_lab)
        unlabeled_view = self._generator("strong_unlabeled", seed_index)
        views = [self.augmenter.strong(*parts[0][:2], self._generator("strong", seed_index), parts[0][2]),
                 self.unlabeled_augmenter.strong(*parts[1][:2], unlabeled_view, parts[1][2])]
        images, audio, target = (torch.cat(items) for items in zip(*views))
        return images, audio, target, n_lab

    def _student_loss(self, k: int, labeled: dict[str, Tensor] | None, unlabeled: dict[str, Tensor] | None,
                      pseudo: PseudoLabels | None, norms: tuple[Tensor, Tensor] | None) -> Tensor:
        """One student's loss terms ``[supervised, pseudo, self, total]`` on its mixed batch.

        ``norms``: what the summed supervised and pseudo losses are divided by
        (``_loss_norms``); ``None`` without pseudo-labels (the supervised term is a plain mean).
        """
        cfg, student = self.cfg, self.students[k]
        images, audio, target, n_lab = self._students_view(k, labeled, unlabeled, pseudo)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_enabled):
            output = student(self._images(images), audio)
        zero = output.map.new_zeros(()).float()
        if not (n_lab and self._uses_labels()):
            supervised = zero
        elif norms is not None and cfg.pseudo_loss_norm == "mixed":
            supervised = per_sample_map_loss(output.map[:n_lab], target[:n_lab], cfg.map_loss).sum() / norms[0]
        else:
            supervised = map_loss(output.map[:n_lab], target[:n_lab], kind=cfg.map_loss)
        if pseudo is not None:
            losses = per_sample_map_loss(output.map[n_lab:], target[n_lab:], cfg.map_loss)
            pseudo_loss = (losses * pseudo.keep.to(losses.dtype)).sum() / norms[1]
        else:
            pseudo_loss = zero
        if output.self_loss is None:
            if not self._uses_labels():
                name = self.model.students[k].name
                raise ValueError(f"{name} returned no self-supervised loss in training mode, so it cannot "
                                 "be trained without labels; return (map, loss) from forward() in training mode.")
            self_loss = zero
        else:
            self_loss = output.self_loss.float()
        mismatch = zero
        if cfg.mismatch_weight > 0:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_enabled):
                mismatched = student(self._images(images), audio.roll(1, dims=0)).map
            mismatch = mismatched_audio_loss(mismatched, target)
        weight_self = 1.0 if not self._uses_labels() else cfg.lambda_c
        total = (supervised + self._pseudo_weight() * pseudo_loss + weight_self * self_loss
                 + cfg.mismatch_weight * mismatch)
        return torch.stack([supervised, pseudo_loss, self_loss, mismatch, total])

    @torch.no_grad()
    def _teacher_probs(self, images: Tensor, audio: Tensor) -> list[Tensor]:
        """Each teacher's confidence maps at the images' resolution (``audio_contrast``: against the
        maps under the next clip's audio, ``contrast_with_other_audio``). With
        ``separate_teacher_views`` each teacher sees its own flip draw of ``images`` and its map is
        flipped back, so that every map lies in ``images``' frame."""
        probs = []
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_enabled):
            for k, teacher in enumerate(self.model.teachers):
                flip = None
                if self.cfg.separate_teacher_views:
                    generator = self._generator("teacher_view", self.cfg.seed_index(k))
                    flip = self.augmenter.weak_flips(images.shape[0], generator).to(images.device, non_blocking=True)
                layout = self._images(images if flip is None else mirror(images, flip))
                prob = torch.sigmoid(teacher.module(layout, audio).map.float())
                if self.cfg.audio_contrast:
                    other = torch.sigmoid(teacher.module(layout, audio.roll(1, dims=0)).map.float())
                    prob = contrast_with_other_audio(prob, other)
                prob = upsample_maps(prob, images.shape[-2:])
                probs.append(prob if flip is None else mirror(prob, flip))
        return probs

    def train_step(self, stage: str, batches: Mapping[str, dict[str, Tensor]] | None = None) -> dict[str, float]:
        """One update of every student in ``stage`` (``"warmup"`` or ``"unbiased"``), then the
        ``on_step_end`` hooks (the EMA teachers follow there). Returns the step's loss terms and
        diagnostics, averaged over networks and ranks.

        ``batches`` maps stream names (``"labeled_A"``, ``"labeled_B"``, ``"unlabeled"``) to
        batches used instead of drawing from those streams, e.g. one fixed batch already on the
        device to time the step without the data pipeline; the streams are left untouched.
        """
        if stage not in ("warmup", "unbiased"):
            raise ValueError(f"stage must be 'warmup' or 'unbiased', got {stage!r}.")
        self._given = batches or {}
        try:
            values = self._train_step(stage)
        finally:
            self._given = {}
        self.step += 1
        for callback in self.callbacks:
            callback.on_step_end(self, values)
        return values

    def _train_step(self, stage: str) -> dict[str, float]:
        cfg = self.cfg
        torch.manual_seed(self._seed("net"))
        pseudo, norms, diagnostics = None, None, {}
        unlabeled = None
        if stage == "unbiased" and self.unlabeled is not None:
            unlabeled = self._next("unlabeled", needs_mask=False)
            if self.model.has_teachers:
                truth = unlabeled.get("mask")
                maps = tuple(unlabeled[k] for k in ("mask", "silent_mask") if k in unlabeled)
                weak = self.augmenter.weak(unlabeled["image"], self._generator("weak"), *maps)
                unlabeled = {**unlabeled, "image": weak[0]}
                probs = self._teacher_probs(unlabeled["image"], unlabeled["audio"])
                pseudo = make_pseudo_labels(probs[0], probs[1] if len(probs) > 1 else None, cfg.pseudo_labels)
                norms = self._loss_norms(pseudo.keep)
                diagnostics["keep_rate"] = pseudo.keep.float().mean()
                diagnostics["consensus_iou"] = pseudo.consensus_iou.mean()
                if truth is not None:
                    # means over kept samples: weighted by the kept share until averaged over ranks
                    # (``_kept_means``), so that every rank counts by the samples it kept
                    quality = label_quality(pseudo.labels, pseudo.keep, weak[1])
                    diagnostics.update({name: value * diagnostics["keep_rate"]
                                        for name, value in zip(KEPT_MEANS, quality)})
                    if len(weak) > 2:
                        diagnostics.update(silent_object_sums(pseudo.labels, pseudo.keep, weak[1], weak[2]))
        terms = []
        for k, student in enumerate(self.students):
            labeled = self._next(f"labeled_{PAIR_NAMES[cfg.seed_index(k)]}", needs_mask=cfg.use_labels) \
                if self._uses_labels() else None
            student.train()
            loss_terms = self._student_loss(k, labeled, unlabeled, pseudo, norms)
            self.optimizers[k].zero_grad(set_to_none=True)
            loss_terms[-1].backward()
            terms.append(loss_terms.detach())
        host_terms, host_diagnostics = self._to_host(torch.stack(terms), diagnostics)
        if SILENT_SUMS[0] in host_diagnostics:
            host_diagnostics.update(silent_object_rates({n: host_diagnostics.pop(n) for n in SILENT_SUMS}))
        self._guard_finite(host_terms)
        for optimizer in self.optimizers:
            optimizer.step()
        for student in self.model.students:
            distributed.broadcast_buffers(student, self.world)
        logged = {name: float(host_terms[:, i].mean()) for i, name in enumerate(LOSS_TERMS)}
        return {**logged, **self._kept_means(host_diagnostics)}

    @staticmethod
    def _kept_means(diagnostics: dict[str, float]) -> dict[str, float]:
        """Divide the keep-weighted diagnostics by the keep rate (0 when nothing was kept)."""
        rate = diagnostics.get("keep_rate", 0.0)
        return {name: ((value / rate if rate > 0 else 0.0) if name in KEPT_MEANS else value)
                for name, value in diagnostics.items()}

    def _loss_norms(self, keep: Tensor) -> tuple[Tensor, Tensor]:
        """What each rank divides its summed supervised and pseudo losses by (``pseudo_loss_norm``).

        ``kept``: the pseudo loss is the mean over every kept sample of the global batch,
        ``max(kept over all ranks, 1) / world size`` per rank (DDP averages the ranks'
        gradients, so this equals one process; a per-rank mean would weigh a rank that kept
        few samples as much as one that kept many). ``unlabeled``: the unlabeled batch size.
        ``mixed``: labeled + kept samples of the global batch, for both terms. The supervised
        norm is used by ``mixed`` only (otherwise the labeled term is a plain mean).
        """
        mode, n_unlabeled = self.cfg.pseudo_loss_norm, float(keep.shape[0])
        if mode == "unlabeled":
            unlabeled = keep.new_tensor(n_unlabeled, dtype=torch.float)
            return unlabeled, unlabeled
        kept = keep.float().sum()
        if mode == "mixed" and self._uses_labels():
            kept = kept + self._batch_size(labeled=True)
        norm = distributed.total(kept, self.world).clamp_min(1.0) / self.world.size
        return norm, norm

    def _to_host(self, terms: Tensor, diagnostics: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Loss terms ``[network, term]`` and diagnostics, averaged over ranks, on the host.

        The step's one host sync: one all-reduce and one copy of a few numbers, which the
        finite-loss guard, the history and the progress bar all read. Averaging also carries
        a NaN from any rank to every rank, so that all of them stop together (a rank stopping
        alone would leave the others waiting in their next collective).
        """
        flat = torch.cat([terms.flatten(), *(value.float().reshape(1) for value in diagnostics.values())])
        host = distributed.mean(flat, self.world).cpu()
        return host[:terms.numel()].view_as(terms), dict(zip(diagnostics, host[terms.numel():].tolist()))

    def _guard_finite(self, host_terms: Tensor) -> None:
        """Stop the step before the optimizers and the EMA see a NaN (``host_terms`` from ``_to_host``)."""
        finite = torch.isfinite(host_terms)
        if bool(finite.all()):
            return
        bad = [f"{LOSS_TERMS[i]} of network {PAIR_NAMES[k]}" for k, i in (~finite).nonzero().tolist()]
        raise NonFiniteLossError(f"step {self.step}: non-finite loss term(s): {', '.join(bad)} "
                                 f"(values {host_terms.tolist()}). The step was stopped before the optimizers and the "
                                 "EMA teachers saw it; the last checkpoint is intact. Lower the learning rate or "
                                 "check the inputs and the network's self-supervised loss.")

    # ----------------------------------------------------------------- run
    def _initialise(self) -> None:
        """Check the contract and calibrate every network on a first batch."""
        dataset = self.labeled if self._uses_labels() else (self.unlabeled or self.labeled)
        opts = self.labeled_opts if dataset is self.labeled else self.unlabeled_opts
        per_rank = self.cfg.labeled_batch_size if dataset is self.labeled else self.cfg.batch_size
        batch = self._first_batch(dataset, opts, per_rank)
        images = self._images(batch["image"].to(self.device))
        audio = batch["audio"].to(self.device)
        for k, student in enumerate(self.model.students):
            self._seed_network_probe("calibrate", k)
            student.initialise_from(images, audio)

    def _seed_network_probe(self, kind: str, k: int) -> None:
        """Seed the global RNG before network ``k``'s training-mode probe forward.

        Calibration runs the network in training mode, where dropout and in-network random views
        draw from the global RNG. Seeding per network makes network ``k`` calibrate the same
        whatever else was built before it: a naive network, DMT's pair A and a naive ensemble's
        network A start identical, as the controls require (the same seed on every rank).
        """
        torch.manual_seed(derive_seed(self.cfg.seed, kind, self.cfg.seed_index(k)))

    def _first_batch(self, dataset: Dataset, opts: dict[str, Any], per_rank: int) -> dict[str, Tensor]:
        """The dataset's first global batch, the same on every rank, without touching any stream."""
        size = min(len(dataset), per_rank * self.world.size)
        collate = opts.get("collate_fn", default_collate)
        return as_batch_dict(collate([dataset[i] for i in range(size)]), needs_mask=False, role="first")

    def refit_eval_calibration(self) -> None:
        """Refit each network's eval-mode calibration on the first unlabeled batch (weak view);
        ``EMATeachers`` calls it just before the teachers are copied from the students when
        ``recalibrate_teachers`` is set."""
        batch = self._first_batch(self.unlabeled, self.unlabeled_opts, self.cfg.batch_size)
        images = batch["image"].to(self.device)
        images = self.augmenter.weak(images, torch.Generator().manual_seed(self._seed("recalibrate")))[0]
        audio = batch["audio"].to(self.device)
        for k, student in enumerate(self.model.students):
            self._seed_network_probe("recalibrate_network", k)
            scale, shift = student.fit_eval_affine(self._images(images), audio)
            if self.world.is_main:
                log.info("network %s: eval-mode calibration refitted (scale %.3f, shift %.3f)", PAIR_NAMES[k],
                         scale, shift)

    def _distribute(self) -> None:
        """Wrap the students in DDP, once their weights are final on every rank.

        Called after the calibration or the restore: DDP broadcasts rank 0's parameters when
        it wraps, and the buffers are broadcast here (DDP leaves them to the trainer), which
        makes every rank start from the same state even when ``backbone_factory`` is not
        deterministic.
        """
        if self.world.parallel:
            map_in_loss = self._uses_labels() or self.cfg.teachers > 0
            self.students = [DistributedStudent(s, self.device, map_in_loss) for s in self.model.students]
            for student in self.model.students:
                distributed.broadcast_buffers(student, self.world)

    def checkpoint_state(self) -> dict[str, Any]:
        """What ``last.pt`` holds: the model, the optimizers, the step and each stream's position."""
        return {"model": self.model.model_state(), "optimizers": [o.state_dict() for o in self.optimizers],
                "step": self.step, "streams": {n: s.consumed for n, s in self.streams.items()}}

    def _restore(self, path: Path, warmup_only: bool = False) -> None:
        """Continue from a training checkpoint: ``last.pt`` of this very run, or, with
        ``warmup_only``, the end-of-warm-up state of a run whose stage-1 settings equal ours."""
        state = load_checkpoint(path, map_location=self.device)
        require_keys(state, ("model", "optimizers", "step", "streams"), f"checkpoint {path}",
                     "; resume needs a training checkpoint (checkpoint_dir/last.pt), not a saved model")
        require_keys(state["model"], MODEL_KEYS, f"checkpoint {path} model")
        saved = DMTConfig.from_dict(state["model"]["config"])
        if warmup_only:
            self._check_warmup_state(path, saved, int(state["step"]))
        elif saved != self.cfg:
            diff = [k for k, v in saved.to_dict().items() if self.cfg.to_dict()[k] != v]
            raise CheckpointError(f"checkpoint {path} was written with another config (differs in {diff}); "
                                  "resume with the same settings or use a new checkpoint_dir.")
        self.model.load_model_state(state["model"], source=f"checkpoint {path}")
        for optimizer, saved_state in zip(self.optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved_state)
        self.step = int(state["step"])
        self.streams = {name: self._stream(name, int(consumed)) for name, consumed in state["streams"].items()}
        if self.world.is_main:
            log.info("resumed from %s at step %d", path, self.step)

    def _check_warmup_state(self, path: Path, saved: DMTConfig, step: int) -> None:
        """Refuse a warm-up state that another stage 1 produced, or that is not at its end."""
        mine, theirs = self.cfg.stage1_settings(), saved.stage1_settings()
        diff = [k for k in mine if mine[k] != theirs.get(k)]
        if diff:
            raise CheckpointError(f"warm-up checkpoint {path} comes from a run with another stage 1 (differs in "
                                  f"{diff}); only stage-2 settings may differ (dmt_wrap.config.STAGE2_FIELDS).")
        if step != self.warmup_length:
            raise CheckpointError(f"warm-up checkpoint {path} is at step {step}, not at the end of the warm-up "
                                  f"({self.warmup_length}); pass the warmup.pt a run writes in its checkpoint_dir.")

    def setup(self, resume: bool = False) -> None:
        """Ready the networks for the first step: restore ``checkpoint_dir/last.pt`` when
        ``resume`` and it exists, else start from ``warmup_from`` when given (stage 1 skipped:
        another run's end-of-warm-up state), else check the contract and calibrate; then, in a
        parallel run, wrap the students in DDP."""
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self._restore(self.checkpoint_path)
        elif self.warmup_from is not None:
            self._restore(self.warmup_from, warmup_only=True)
        else:
            self._initialise()
        self._distribute()

    def run(self, resume: bool = False) -> list[dict[str, Any]]:
        """The whole schedule (see ``dmt_wrap.callbacks`` for when each hook runs); the history."""
        self.setup(resume)
        self._call("on_fit_start")
        stage_now, total = None, self.total_steps
        epoch_start, sums, count = time.perf_counter(), {}, 0
        while self.step < total:
            stage = self.stage_at(self.step)
            if stage != stage_now:
                self._call("on_stage_start", stage)
                stage_now = stage
            values = self.train_step(stage)
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            if self.step % self.cfg.steps_per_epoch == 0 or self.step == total:
                self._end_epoch(stage, sums, count, time.perf_counter() - epoch_start)
                epoch_start, sums, count = time.perf_counter(), {}, 0
        self._call("on_fit_end")
        return self.model.history

    def _end_epoch(self, stage: str, sums: dict[str, float], count: int, seconds: float) -> None:
        """The epoch's history row (the same on every rank), handed to the ``on_epoch_end`` hooks."""
        row: dict[str, Any] = {"epoch": len(self.model.history) + 1, "step": self.step, "stage": stage,
                               "seconds": round(seconds, 3)}
        row.update({name: value / count for name, value in sums.items()})
        self._call("on_epoch_end", row)

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)


def builtin_callbacks(checkpoint_dir: str | os.PathLike | None, progress: bool,
                      eval_fn: Callable[[DualMeanTeacher], dict[str, float]] | None) -> list[Callback]:
    """The callbacks every run has, in the order their hooks must run (``dmt_wrap.callbacks``)."""
    callbacks: list[Callback] = [EMATeachers()]
    if eval_fn is not None:
        callbacks.append(Evaluation(eval_fn))
    callbacks.append(History())
    if checkpoint_dir:
        callbacks.append(Checkpoint(checkpoint_dir))
    if progress:
        callbacks.append(ProgressBar())
    return callbacks
