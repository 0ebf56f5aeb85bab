"""``DualMeanTeacher``: two teacher-student pairs around any localization network.

The model owns the method (in the manner of mmdetection's ``SemiBaseDetector``): its
``training_step`` turns a labeled and an unlabeled batch into each network's loss terms and the
pseudo-label statistics; ``dmt_wrap.trainer`` is the generic loop around it (streams, optimisers,
DDP, the finite-loss guard, callbacks), and ``dmt_wrap.callbacks.EMATeachers`` moves the teachers.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from . import distributed
from .augment import Augmenter
from .calibration import CalibratedNetwork
from .callbacks import Callback, default_callbacks
from .checkpoint import MODEL_KEYS, PAIR_NAMES, CheckpointError, load_checkpoint, require_keys, save_atomic
from .config import DMTConfig
from .ema import make_teacher
from .filtering import PseudoLabels, label_quality, make_pseudo_labels
from .losses import map_loss, mismatched_audio_loss, per_sample_map_loss
from .metrics import upsample_maps
from .registry import registration_of
from .step import StepContext, StepOutput
from .streams import derive_seed
from .trainer import Trainer

BackboneFactory = Callable[[], nn.Module]
#: Diagnostics averaged over kept samples only: weighted by the keep rate until the loop has
#: averaged them over ranks and steps (``summarise_diagnostics``).
KEPT_MEANS = ("pseudo_iou", "pseudo_precision")


class DualMeanTeacher(nn.Module):
    """Semi-supervised AVSL around any network meeting the contract (``dmt_wrap.contract``).

    ``backbone_factory()`` is called once per teacher-student pair, under different seeds,
    so the pairs start from different weights. With ``teachers=1`` or ``0`` in the config
    (single mean teacher, naive / self- / fully supervised) only one network is built.
    Each teacher exists from the start as a copy of its student; it takes the student's
    weights when stage 2 begins (``start_teachers``) and follows it by EMA after every step.

    Usage::

        dmt = DualMeanTeacher(lambda: MyNet())
        dmt.fit(labeled, unlabeled)              # warm-up, then unbiased learning
        maps = dmt.localize(images, audio)       # [B, H, W] confidences in [0, 1]
    """

    def __init__(self, backbone_factory: BackboneFactory, config: DMTConfig | None = None,
                 device: str | torch.device | None = None, **overrides: Any) -> None:
        super().__init__()
        config = (config or DMTConfig()).replace(**overrides)
        self.config = config
        self.device = distributed.resolve_device(device)
        students = []
        for k in range(config.num_networks):
            torch.manual_seed(derive_seed(config.seed, "build", self.seed_index(k)))
            net = backbone_factory()
            if not isinstance(net, nn.Module):
                raise TypeError(f"backbone_factory() returned {type(net).__name__}; it must return an nn.Module "
                                "meeting the contract in dmt_wrap.contract.")
            students.append(CalibratedNetwork(net))
        self.students = nn.ModuleList(students).to(self.device)
        if config.channels_last:
            self.students.to(memory_format=torch.channels_last)
        teachers = [make_teacher(s, config.ema_decay) for s in self.students] if config.teachers > 0 else []
        self.teachers = nn.ModuleList(teachers)
        self.teachers_active = False
        self.augmenter = Augmenter(config.augment)
        self.input_spec: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- structure
    @property
    def network_name(self) -> str:
        return self.students[0].name

    @property
    def has_teachers(self) -> bool:
        """Whether the teachers pseudo-label and answer at inference (from stage 2 on)."""
        return self.teachers_active

    def seed_index(self, position: int) -> int:
        """Whose seeds (build, calibration probe, labeled-data order, augmentation draws) the
        network at ``position`` (0 = A, 1 = B) trains on: its own. A subclass may exchange them."""
        return position

    def labeled_stream(self, position: int) -> str:
        """The name of the labeled stream network ``position`` trains on (``"labeled_A"``, ...)."""
        return f"labeled_{PAIR_NAMES[self.seed_index(position)]}"

    @torch.no_grad()
    def start_teachers(self) -> None:
        """Stage 1 -> 2: each teacher takes its student's weights (the students go on from them)."""
        if not self.teachers:
            raise RuntimeError(f"this model has no teachers (teachers={self.config.teachers}).")
        for teacher, student in zip(self.teachers, self.students):
            teacher.set(student)
        self.teachers_active = True

    def update_teachers(self) -> None:
        for teacher, student in zip(self.teachers, self.students):
            teacher.update(student)

    def image_layout(self, images: Tensor) -> Tensor:
        """Images in the networks' memory format (channels_last when configured)."""
        return images.contiguous(memory_format=torch.channels_last) if self.config.channels_last else images

    def autocast(self) -> torch.autocast:
        """The networks' forward precision (``DMTConfig.precision``): bf16 autocast or none."""
        precision = self.config.precision
        enabled = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def inference_networks(self, inference: str | None = None) -> list[nn.Module]:
        """The networks whose maps are averaged at inference (``inference`` overrides the config's).

        With active teachers: the teachers (``"students"``: the students). Without: the network, or
        the two of a naive ensemble or of DMT before stage 2.
        """
        choice = inference or self.config.inference
        if self.has_teachers:
            nets = list(self.students) if choice == "students" else [t.module for t in self.teachers]
        elif len(self.students) > 1:
            nets = list(self.students)
        else:
            return [self.students[0]]
        selected = {"mean": nets, "students": nets, "a": nets[:1], "b": nets[1:]}.get(choice)
        if not selected:
            raise ValueError(f"inference={choice!r}: choose 'mean', 'students', 'a' or 'b' (this model has "
                             f"{len(nets)} network(s) to average).")
        return selected

    # ----------------------------------------------------------------- the method
    def calibrate(self, images: Tensor, audio: Tensor) -> None:
        """Check the contract and fit every network's calibration on a first batch (on the device),
        and record the input it was given (``input_spec``)."""
        for k, student in enumerate(self.students):
            # calibration runs the network in training mode, where dropout and in-network views draw
            # from the global RNG: seeded per network, network k calibrates the same whatever was
            # built before it (a naive network, DMT's pair A and a naive ensemble's A start identical)
            torch.manual_seed(derive_seed(self.config.seed, "calibrate", self.seed_index(k)))
            student.initialise_from(self.image_layout(images), audio,
                                    map_trains=self.config.use_labels or self.config.teachers > 0)
        self.input_spec = self._observed_input(images, audio)

    def _observed_input(self, images: Tensor, audio: Tensor) -> dict[str, Any]:
        height, width = images.shape[-2:]
        spec: dict[str, Any] = {"image_size": height if height == width else [height, width],
                                "samples": int(audio.shape[-1])}
        # the sample rate the network (or its audio front end, a submodule) declares, if any
        rates = (getattr(module, "sample_rate", None) for module in self.students[0].net.modules())
        rate = next((r for r in rates if isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0), None)
        if rate is not None:
            spec.update(sample_rate=int(rate), duration=audio.shape[-1] / rate)
        return spec

    def pseudo_weight(self, step: int, warmup_length: int) -> float:
        """``lambda_u`` at ``step``, ramped up linearly over the first ``rampup_steps`` of stage 2
        (which starts at ``warmup_length``): fresh teachers are at their weakest, and a ramp keeps
        their first, noisiest labels from overriding what the warm-up learned."""
        cfg = self.config
        if cfg.rampup_steps <= 0:
            return cfg.lambda_u
        return cfg.lambda_u * min(1.0, max(0.0, (step - warmup_length + 1) / cfg.rampup_steps))

    @torch.no_grad()
    def teacher_probs(self, images: Tensor, audio: Tensor) -> list[Tensor]:
        """Each teacher's confidence maps at the images' resolution."""
        probs = []
        with self.autocast():
            for teacher in self.teachers:
                prob = torch.sigmoid(teacher.module(self.image_layout(images), audio).map.float())
                probs.append(upsample_maps(prob, images.shape[-2:]))
        return probs

    def pseudo_label_diagnostics(self, pseudo: PseudoLabels, unlabeled: dict[str, Tensor]) -> dict[str, Tensor]:
        """The step's pseudo-label statistics as 0-d device tensors (no host sync): keep rate,
        consensus IoU and, where unlabeled items carry a ``mask``, the kept labels' IoU and pixel
        precision (weighted by the keep rate, so that ranks count by the samples they kept)."""
        keep_rate = pseudo.keep.float().mean()
        values = {"keep_rate": keep_rate, "consensus_iou": pseudo.consensus_iou.mean()}
        if "mask" in unlabeled:
            quality = label_quality(pseudo.labels, pseudo.keep, unlabeled["mask"])
            values.update({name: value * keep_rate for name, value in zip(KEPT_MEANS, quality)})
        return values

    def summarise_diagnostics(self, diagnostics: dict[str, float]) -> dict[str, float]:
        """The host values of ``pseudo_label_diagnostics`` (averaged over ranks) as reported:
        the keep-weighted ones divided by the keep rate (0 when nothing was kept)."""
        rate = diagnostics.get("keep_rate", 0.0)
        return {name: ((value / rate if rate > 0 else 0.0) if name in KEPT_MEANS else value)
                for name, value in diagnostics.items()}

    def students_view(self, k: int, labeled: dict[str, Tensor] | None, unlabeled: dict[str, Tensor] | None,
                      pseudo: PseudoLabels | None, context: StepContext) -> tuple[Tensor, Tensor, Tensor, int]:
        """Student ``k``'s strong view of its mixed batch: ``(images, audio, targets, number labeled)``."""
        parts = []
        if labeled is not None:
            target = labeled["mask"] if "mask" in labeled else torch.zeros_like(labeled["image"][:, 0])
            parts.append((labeled["image"], labeled["audio"], target))
        if unlabeled is not None:
            target = pseudo.labels if pseudo is not None else torch.zeros_like(unlabeled["image"][:, 0])
            parts.append((unlabeled["image"], unlabeled["audio"], target))
        n_lab = labeled["image"].shape[0] if labeled is not None else 0
        images, audio, target = (torch.cat(items) for items in zip(*parts))
        generator = torch.Generator().manual_seed(context.seed(self.config.seed, "aug", "strong", self.seed_index(k)))
        return (*self.augmenter.strong(images, audio, generator, target), n_lab)

    def student_loss(self, k: int, labeled: dict[str, Tensor] | None, unlabeled: dict[str, Tensor] | None,
                     pseudo: PseudoLabels | None, kept_total: Tensor | None, context: StepContext,
                     warmup_length: int) -> Tensor:
        """Student ``k``'s loss terms (``dmt_wrap.step.LOSS_TERMS``) on its strong view.

        ``kept_total``: the pseudo-labels kept over all ranks, for the ``kept`` and ``mixed``
        normalisations (``DMTConfig.pseudo_loss_norm``); ``None`` in the default one.
        """
        cfg = self.config
        network = context.networks[k] if context.networks is not None else self.students[k]
        uses_labels = labeled is not None
        images, audio, target, n_lab = self.students_view(k, labeled, unlabeled, pseudo, context)
        with self.autocast():
            output = network(self.image_layout(images), audio)
        zero = output.map.new_zeros(()).float()
        norm = self._pseudo_norm(pseudo, kept_total, n_lab, context) if pseudo is not None else None
        if not (n_lab and uses_labels):
            supervised = zero
        elif norm is not None and cfg.pseudo_loss_norm == "mixed":
            supervised = per_sample_map_loss(output.map[:n_lab], target[:n_lab], cfg.map_loss).sum() / norm
        else:
            supervised = map_loss(output.map[:n_lab], target[:n_lab], kind=cfg.map_loss)
        if pseudo is not None:
            losses = per_sample_map_loss(output.map[n_lab:], target[n_lab:], cfg.map_loss)
            pseudo_loss = (losses * pseudo.keep.to(losses.dtype)).sum() / norm
        else:
            pseudo_loss = zero
        if output.self_loss is None:
            if not uses_labels:
                raise ValueError(f"{self.students[k].name} returned no self-supervised loss in training mode, so it "
                                 "cannot be trained without labels; return (map, loss) from forward() in training mode.")
            self_loss = zero
        else:
            self_loss = output.self_loss.float()
        mismatch = zero
        if cfg.mismatch_weight > 0:
            with self.autocast():
                mismatched = network(self.image_layout(images), audio.roll(1, dims=0)).map
            mismatch = mismatched_audio_loss(mismatched, target)
        weight_self = cfg.lambda_c if uses_labels else 1.0
        total = (supervised + self.pseudo_weight(context.step, warmup_length) * pseudo_loss + weight_self * self_loss
                 + cfg.mismatch_weight * mismatch)
        return torch.stack([supervised, pseudo_loss, self_loss, mismatch, total])

    def _pseudo_norm(self, pseudo: PseudoLabels, kept_total: Tensor | None, n_lab: int,
                     context: StepContext) -> Tensor:
        """What this rank divides its summed pseudo (and, ``mixed``, supervised) loss by.

        ``unlabeled``: the unlabeled batch size. ``kept``: ``max(kept over all ranks, 1) / world
        size`` (DDP averages the ranks' gradients, so this equals one process). ``mixed``: labeled
        + kept samples of the global batch."""
        mode = self.config.pseudo_loss_norm
        if mode == "unlabeled":
            return pseudo.keep.new_tensor(float(pseudo.keep.shape[0]), dtype=torch.float)
        kept = kept_total + n_lab * context.world.size if mode == "mixed" and n_lab else kept_total
        return kept.clamp_min(1.0) / context.world.size

    def training_step(self, batches: Mapping[str, dict[str, Tensor]], context: StepContext) -> StepOutput:
        """One step of the method for every network: the teachers pseudo-label a weak view of the
        unlabeled batch (stage 2), consensus filtering and IPL pick the labels, and each student's
        loss terms are computed on its strong view of labeled + unlabeled data.

        ``batches`` maps ``"labeled_A"``, ``"labeled_B"`` (``labeled_stream``) and ``"unlabeled"``
        to batches on the device (dicts of ``image`` ``[B, 3, H, W]``, ``audio`` ``[B, T]`` and
        per-pixel maps ``[B, H, W]`` such as ``mask``); each is read when the method needs it, so a
        loop may draw them lazily. Nothing is backpropagated here: the loop does it.
        """
        cfg = self.config
        uses_labels = cfg.use_labels and any(self.labeled_stream(k) in batches for k in range(len(self.students)))
        warmup_length = cfg.effective_warmup(uses_labels)
        pseudo, kept_total, diagnostics, unlabeled = None, None, {}, None
        if context.stage == "unbiased" and "unlabeled" in batches:
            unlabeled = dict(batches["unlabeled"])
            if self.has_teachers:
                maps = [name for name in unlabeled if name not in ("image", "audio")]
                generator = torch.Generator().manual_seed(context.seed(cfg.seed, "aug", "weak"))
                weak = self.augmenter.weak(unlabeled["image"], generator, *(unlabeled[name] for name in maps))
                unlabeled = {**unlabeled, "image": weak[0], **dict(zip(maps, weak[1:]))}
                probs = self.teacher_probs(unlabeled["image"], unlabeled["audio"])
                pseudo = make_pseudo_labels(probs[0], probs[1] if len(probs) > 1 else None, cfg.pseudo_labels)
                if cfg.pseudo_loss_norm != "unlabeled":
                    kept_total = distributed.total(pseudo.keep.float().sum(), context.world)
                diagnostics = self.pseudo_label_diagnostics(pseudo, unlabeled)
        terms = []
        for k in range(len(self.students)):
            labeled = batches[self.labeled_stream(k)] if uses_labels else None
            (context.networks[k] if context.networks is not None else self.students[k]).train()
            terms.append(self.student_loss(k, labeled, unlabeled, pseudo, kept_total, context, warmup_length))
        return StepOutput(torch.stack(terms), diagnostics, pseudo, unlabeled)

    # ----------------------------------------------------------------- training
    def fit(self, labeled: Dataset | DataLoader | None, unlabeled: Dataset | DataLoader | None = None, *,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, progress: bool = True,
            eval_fn: Callable[["DualMeanTeacher"], dict[str, float]] | None = None,
            callbacks: Sequence[Callback] = (),
            warmup_from: str | os.PathLike | None = None) -> list[dict[str, Any]]:
        """Warm-up on ``labeled``, then unbiased learning with ``unlabeled``.

        Items (dicts; a tuple ``(image, audio[, mask])`` is accepted too):

        * labeled: ``image`` float ``[3, H, W]`` in [0, 1], ``audio`` float ``[T]`` waveform,
          ``mask`` float ``[H, W]`` in [0, 1] (ground truth, e.g. filled boxes);
        * unlabeled: ``image`` and ``audio``; a ``mask`` there is never trained on, only
          used to report pseudo-label quality.

        A ``DataLoader`` is accepted in place of a dataset: its dataset, batch size,
        collate_fn and workers are used, with the wrapper's own seeded endless sampler, so
        runs are reproducible and resume exactly. ``labeled`` may be ``None`` for the
        self-supervised ablation, ``unlabeled`` ``None`` for the fully supervised one.

        With ``checkpoint_dir`` a checkpoint (``last.pt``) is written atomically after
        every epoch; ``resume=True`` continues from it. ``eval_fn(self)`` is called after
        every epoch and its numbers join the history. Returns the history: one dict per
        epoch (losses, keep rate, consensus IoU, pseudo-label quality, eval numbers).

        ``callbacks`` (``dmt_wrap.callbacks.Callback``) run after the teachers' EMA, the
        evaluation and the history, and before the checkpoint and the progress bar, so they see
        each epoch's row complete and what they add to it is checkpointed.

        ``warmup_from``: skip stage 1 and start from another run's end-of-warm-up state (the
        ``warmup.pt`` its ``checkpoint_dir`` holds). The runs must differ only in stage-2
        settings (``dmt_wrap.config.STAGE2_FIELDS``), which makes the result bit-identical to
        training through; anything else is refused.

        Several GPUs or machines: launch the same script with ``torchrun``; ``batch_size`` and
        ``labeled_batch_size`` are then per process (``dmt_wrap.distributed``).
        """
        trainer = Trainer(self, labeled, unlabeled, checkpoint_dir=checkpoint_dir,
                          callbacks=default_callbacks(checkpoint_dir, progress, eval_fn, callbacks),
                          world=distributed.join(self.device), warmup_from=warmup_from)
        return trainer.run(resume=resume)

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    def localize(self, images: Tensor, audio: Tensor, inference: str | None = None) -> Tensor:
        """Confidence maps ``[B, H, W]`` in [0, 1] at the images' resolution.

        The mean of the two teachers' maps (``inference="a"``/``"b"`` for one teacher,
        ``"students"`` for the mean of the students', e.g. to tell EMA lag from training);
        before stage 2, or without teachers, the students' (one network, or the two of DMT or
        a naive ensemble). ``inference`` overrides ``config.inference`` for this call.
        """
        images = self.image_layout(images.to(self.device, non_blocking=True))
        audio = audio.to(self.device, non_blocking=True)
        nets = self.inference_networks(inference)
        was_training = [n.training for n in nets]
        total = None
        with self.autocast():
            for net in nets:
                net.eval()
                prob = torch.sigmoid(net(images, audio).map.float())
                total = prob if total is None else total + prob
        for net, mode in zip(nets, was_training):
            net.train(mode)
        return upsample_maps(total / len(nets), images.shape[-2:]).clamp(0, 1)

    # ----------------------------------------------------------------- persistence
    def model_state(self) -> dict[str, Any]:
        """Weights, config, input and history. The teachers' weights only once they are active (stage 2):
        before, they are the students' to be, so a warm-up state is the same whatever the variant."""
        return {
            "network": self.network_name,
            "config": self.config.to_dict(),
            "students": [s.state_dict() for s in self.students],
            "teachers": [t.state_dict() for t in self.teachers] if self.teachers_active else [],
            "input": dict(self.input_spec),
            "registration": registration_of(self.students[0].net),
            "history": copy.deepcopy(self.history),
        }

    def load_model_state(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore weights, refusing a checkpoint of another network or shape; teachers in the state
        make them active (stage 2), none leaves them inactive."""
        if state.get("network") != self.network_name:
            raise CheckpointError(f"{source} was written for network {state.get('network')!r}; this model wraps "
                                  f"{self.network_name!r}. Build the wrapper with the same backbone_factory.")
        students, teachers = state["students"], state["teachers"]
        if len(students) != len(self.students):
            raise CheckpointError(f"{source} holds {len(students)} network(s) but this config builds "
                                  f"{len(self.students)} (teachers={self.config.teachers}).")
        if teachers and len(teachers) != len(self.teachers):
            raise CheckpointError(f"{source} holds {len(teachers)} teacher(s) but this config builds "
                                  f"{len(self.teachers)} (teachers={self.config.teachers}).")
        try:
            for module, weights in zip(self.students, students):
                module.load_state_dict(weights)
            for module, weights in zip(self.teachers, teachers):
                module.load_state_dict(weights)
        except RuntimeError as exc:
            raise CheckpointError(f"{source} does not fit this {self.network_name} (another preset or size?): "
                                  f"{' '.join(line.strip() for line in str(exc).splitlines()[:2])} ...") from exc
        self.teachers_active = bool(teachers)
        self.input_spec = dict(state.get("input", {}))
        self.history = list(state.get("history", []))

    def save(self, path: str | os.PathLike) -> None:
        """Write the trained model (weights, config, history) atomically, for ``load``."""
        save_atomic(self.model_state(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, backbone_factory: BackboneFactory,
             device: str | torch.device | None = None) -> "DualMeanTeacher":
        """Rebuild a model saved by ``save`` or a training checkpoint (``weights_only``)."""
        state = load_checkpoint(path)
        state = state.get("model", state)  # a training checkpoint nests the model state
        require_keys(state, MODEL_KEYS, f"checkpoint {path}")
        model = cls(backbone_factory, DMTConfig.from_dict(state["config"]), device=device)
        model.load_model_state(state, source=f"checkpoint {path}")
        return model

    def save_pretrained(self, folder: str | os.PathLike, *, network: str | None = None,
                        network_kwargs: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                        metrics: dict[str, Any] | None = None, overwrite: bool = False) -> os.PathLike:
        """Write a portable folder (``model.safetensors`` + ``config.json`` + ``SHA256SUMS``) that
        ``from_pretrained`` reads. A network built by ``dmt_wrap.registry.build`` records its name
        and arguments itself; a user's own network is saved too and loads with its factory.
        ``data`` (``image_size``, ``sample_rate``, ``duration``) defaults to what ``fit`` saw."""
        from .pretrained import write_pretrained

        recorded = registration_of(self.students[0].net)
        if network is None and recorded is not None:
            network, network_kwargs = recorded["name"], recorded["kwargs"] if network_kwargs is None else network_kwargs
        data = {**{k: v for k, v in self.input_spec.items() if k != "samples"}, **(data or {})}
        missing = [key for key in ("image_size", "sample_rate", "duration") if key not in data]
        if missing:
            raise ValueError(f"save_pretrained needs the network's input: {missing} are unknown (fit records them "
                             "when the network has a sample_rate attribute); pass data={'image_size': ..., "
                             "'sample_rate': ..., 'duration': ...}.")
        return write_pretrained(self, folder, network=network, network_kwargs=network_kwargs or {}, data=data,
                                metrics=metrics, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, backbone_factory: BackboneFactory | None = None,
                        device: str | torch.device | None = None) -> "DualMeanTeacher":
        """Rebuild a model written by ``save_pretrained`` or ``dmt-wrap export``.

        Without ``backbone_factory`` the network is rebuilt by its registered name; with it,
        your own network. Checksums, format version, network and tensor shapes are checked;
        nothing is unpickled. Details: ``dmt_wrap.pretrained``.
        """
        from .pretrained import load_pretrained

        return load_pretrained(cls, folder, backbone_factory, device=device)

    def preprocess(self, frames: Any, waveform: Any, sample_rate: int,
                   centre: float | None = None) -> tuple[Tensor, Tensor]:
        """``(images, audio)`` for ``localize`` from frames and a waveform as you have them (any size, layout,
        uint8 or float; any rate, channels, int or float samples), converted to ``input_spec`` the way
        ``dmt-wrap localize`` does: ``dmt_wrap.inputs.InputSpec.prepare``."""
        from .inputs import InputSpec

        return InputSpec.from_data(self.input_spec).prepare(frames, waveform, sample_rate, centre=centre)
