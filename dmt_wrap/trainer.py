"""The training loop behind ``DualMeanTeacher.fit``: a generic loop around the model's
``training_step`` (docs/design.md, 'Where things live').

The loop owns what any semi-supervised trainer needs: seeded, resumable data streams, the
optimisers, DistributedDataParallel, the finite-loss guard, checkpoints' contents and the
callbacks (``dmt_wrap.callbacks``). What a step computes (teachers, pseudo-labels, losses) is
the model's business.

Reproducibility: the data order of each stream is a seeded endless permutation, and the
augmentation and network randomness of step ``s`` come from seeds derived from ``(seed, s)``.
A checkpoint therefore needs only weights, optimizer states and the number of samples each
stream consumed to resume exactly.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from . import distributed
from .checkpoint import CHECKPOINT_NAME, MODEL_KEYS, PAIR_NAMES, CheckpointError, load_checkpoint, require_keys
from .config import DMTConfig, dotted_differences
from .distributed import DistributedStudent, World
from .protocols import LoopCallback, SemiSupervisedModel
from .step import LOSS_TERMS, StepContext, StepOutput
from .streams import BatchStream, derive_seed

log = logging.getLogger("dmt_wrap")


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


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
    """What a step uses, on the device: image, audio and every per-pixel map ``[B, H, W]`` (the
    ground truth ``mask`` and any other aligned map); anything else a dataset carries stays."""
    size = (batch["image"].shape[0], *batch["image"].shape[2:])
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()
            if k in ("image", "audio") or (isinstance(v, Tensor) and tuple(v.shape) == size)}


def _dataset_of(data: Dataset | DataLoader | None) -> tuple[Dataset | None, dict[str, Any]]:
    if isinstance(data, DataLoader):
        return data.dataset, {"batch_size": data.batch_size, "num_workers": data.num_workers,
                              "collate_fn": data.collate_fn}
    return data, {}


def build_optimizer(network: nn.Module, cfg: DMTConfig, device: torch.device) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``network``'s parameters, in the groups the wrapped network gives
    (``param_groups(lr)``, e.g. a lower rate for a pretrained encoder) and the rest at ``cfg.lr``.
    Adam and AdamW use the fused kernel on CPU and CUDA (a few times faster, same update rule)."""
    inner = getattr(network, "net", network)
    groups: list[dict[str, Any]] = list(inner.param_groups(cfg.lr)) if hasattr(inner, "param_groups") else []
    grouped = {id(p) for group in groups for p in group["params"]}
    rest = [p for p in network.parameters() if id(p) not in grouped]
    params: Iterable[Any] = [*groups, {"params": rest}] if groups else rest
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    fused = True if device.type in ("cpu", "cuda") else None
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


class StepBatches(Mapping[str, dict[str, Tensor]]):
    """A step's batches, each drawn from its stream when the model first reads it.

    Drawing lazily keeps the draws in the order the method makes them, interleaved with the
    networks' forwards (a stream's first draw starts its DataLoader, which takes a number from
    the global RNG that the networks' dropout also draws from)."""

    def __init__(self, names: Sequence[str], draw: Callable[[str], dict[str, Tensor]]) -> None:
        self._names, self._draw, self._drawn = list(names), draw, {}

    def __getitem__(self, name: str) -> dict[str, Tensor]:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._drawn:
            self._drawn[name] = self._draw(name)
        return self._drawn[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Trainer:
    """Runs ``model``'s schedule; see the module docstring.

    ``callbacks`` run in list order (``dmt_wrap.callbacks.default_callbacks`` assembles the
    built-ins around the user's); ``world`` is this process's place in a data-parallel run.
    ``run`` is the whole schedule; ``setup()`` then ``train_step(stage)`` drives it by hand.
    """

    def __init__(self, model: SemiSupervisedModel, labeled: Dataset | DataLoader | None,
                 unlabeled: Dataset | DataLoader | None, checkpoint_dir: str | os.PathLike | None = None,
                 callbacks: Sequence[LoopCallback] = (), world: World | None = None,
                 warmup_from: str | os.PathLike | None = None) -> None:
        cfg = model.config
        self.model, self.cfg = model, cfg
        self.device = model.device
        self.world = world or World()
        # what the step calls: the students themselves, or their DDP wrappers (``_distribute``)
        self.networks: list[nn.Module] | None = None
        self.labeled, self.labeled_opts = _dataset_of(labeled)
        self.unlabeled, self.unlabeled_opts = _dataset_of(unlabeled)
        self._check_data()
        self.checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
        self.warmup_from = Path(warmup_from) if warmup_from is not None else None
        self.callbacks = list(callbacks)
        self.optimizers = [build_optimizer(s, cfg, self.device) for s in model.students]
        self.step = 0
        self.streams: dict[str, BatchStream] = {}

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

    def _draw(self, name: str) -> dict[str, Tensor]:
        if name not in self.streams:
            self.streams[name] = self._stream(name)
        labeled = name.startswith("labeled")
        batch = as_batch_dict(self.streams[name].next(), labeled and self.cfg.use_labels,
                              "labeled" if labeled else "unlabeled")
        return to_device(batch, self.device)

    def stream_names(self, stage: str) -> list[str]:
        """The streams a step of ``stage`` may draw from."""
        names = [self.model.labeled_stream(k) for k in range(len(self.model.students))] if self.uses_labels else []
        return names + (["unlabeled"] if stage == "unbiased" and self.unlabeled is not None else [])

    # ----------------------------------------------------------------- schedule
    @property
    def uses_labels(self) -> bool:
        return self.cfg.use_labels and self.labeled is not None

    @property
    def warmup_length(self) -> int:
        """Stage 1's updates in this run (none without labels)."""
        return self.cfg.effective_warmup(self.uses_labels)

    @property
    def total_steps(self) -> int:
        """The schedule's length: warm-up (with labels only) plus stage 2."""
        return self.cfg.total_steps(self.uses_labels)

    def stage_at(self, step: int) -> str:
        """``"warmup"`` or ``"unbiased"``: the stage step ``step`` (counted from 0) belongs to."""
        return "warmup" if step < self.warmup_length else "unbiased"

    # ----------------------------------------------------------------- steps
    def context(self, stage: str) -> StepContext:
        """The context of the next step (its index, stage, this rank, the networks to call)."""
        return StepContext(step=self.step, stage=stage, world=self.world, networks=self.networks)

    def train_step(self, stage: str, batches: Mapping[str, dict[str, Tensor]] | None = None) -> dict[str, float]:
        """One update of every network in ``stage`` (``"warmup"`` or ``"unbiased"``), then the
        ``on_step_end`` hooks. Returns the step's loss terms and diagnostics, averaged over networks
        and ranks. ``batches`` (on the device) replace the streams' for this step."""
        context = self.context(stage)
        torch.manual_seed(context.seed(self.cfg.seed, "net"))
        batches = batches if batches is not None else StepBatches(self.stream_names(stage), self._draw)
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        output = self.model.training_step(batches, context)
        output.losses[:, -1].sum().backward()
        values = self._finish_step(output)
        self.step += 1
        self.call("on_step_end", values)
        return values

    def _finish_step(self, output: StepOutput) -> dict[str, float]:
        """Bring the step's numbers to the host (one sync), stop on a non-finite loss, then step
        the optimisers and share the students' buffers across ranks."""
        host_terms, host_diagnostics = self._to_host(output.losses.detach(), output.diagnostics)
        self._guard_finite(host_terms)
        for optimizer in self.optimizers:
            optimizer.step()
        for student in self.model.students:
            distributed.broadcast_buffers(student, self.world)
        logged = {name: float(host_terms[:, i].mean()) for i, name in enumerate(LOSS_TERMS)}
        return {**logged, **self.model.summarise_diagnostics(host_diagnostics)}

    def _to_host(self, terms: Tensor, diagnostics: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Loss terms ``[network, term]`` and diagnostics, averaged over ranks, on the host.

        The step's one host sync: one all-reduce and one copy of a few numbers, which the
        finite-loss guard, the history and the progress bar all read. Averaging also carries
        a NaN from any rank to every rank, so that all of them stop together.
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

    # ----------------------------------------------------------------- set-up and resume
    def first_batch(self, labeled: bool) -> dict[str, Tensor]:
        """The labeled or unlabeled dataset's first global batch, the same on every rank, without
        touching any stream."""
        dataset, opts = (self.labeled, self.labeled_opts) if labeled else (self.unlabeled, self.unlabeled_opts)
        per_rank = self.cfg.labeled_batch_size if labeled else self.cfg.batch_size
        size = min(len(dataset), per_rank * self.world.size)  # type: ignore[arg-type]
        collate = opts.get("collate_fn", default_collate)
        return as_batch_dict(collate([dataset[i] for i in range(size)]), needs_mask=False, role="first")

    def _calibrate(self) -> None:
        """Check the contract and calibrate every network on the first batch of its training data."""
        batch = self.first_batch(labeled=self.uses_labels or self.unlabeled is None)
        self.model.calibrate(batch["image"].to(self.device), batch["audio"].to(self.device))

    def _distribute(self) -> None:
        """Wrap the students in DDP, once their weights are final on every rank.

        Called after the calibration or the restore: DDP broadcasts rank 0's parameters when
        it wraps, and the buffers are broadcast here, which makes every rank start from the
        same state even when ``backbone_factory`` is not deterministic.
        """
        if self.world.parallel:
            map_in_loss = self.uses_labels or self.cfg.teachers > 0
            self.networks = [DistributedStudent(s, self.device, map_in_loss) for s in self.model.students]
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
            diff = saved.differences(self.cfg)
            raise CheckpointError(f"checkpoint {path} was written with another config (differs in {diff}); "
                                  "resume with the same settings or use a new checkpoint_dir.")
        self.model.load_model_state(state["model"], source=f"checkpoint {path}")
        for optimizer, saved_state in zip(self.optimizers, state["optimizers"]):
            try:
                optimizer.load_state_dict(saved_state)
            except ValueError as error:  # torch's words for other parameter groups than the saved ones
                raise CheckpointError(
                    f"checkpoint {path}: its optimizer state does not fit this network's parameter groups "
                    f"({error}); the network's param_groups changed since it was written: resume with the "
                    "code that wrote it, or train into a new checkpoint_dir.") from error
        self.step = int(state["step"])
        self.streams = {name: self._stream(name, int(consumed)) for name, consumed in state["streams"].items()}
        if self.world.is_main:
            log.info("resumed from %s at step %d", path, self.step)

    def _check_warmup_state(self, path: Path, saved: DMTConfig, step: int) -> None:
        """Refuse a warm-up state that another stage 1 produced, or that is not at its end."""
        diff = dotted_differences(self.cfg.stage1_settings(), saved.stage1_settings())
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
            self._calibrate()
        self._distribute()

    # ----------------------------------------------------------------- the loop
    def run(self, resume: bool = False) -> list[dict[str, Any]]:
        """The whole schedule (see ``dmt_wrap.callbacks`` for when each hook runs); the history."""
        self.setup(resume)
        self.call("on_fit_start")
        stage_now, total = None, self.total_steps
        epoch_start, sums, count = time.perf_counter(), {}, 0
        while self.step < total:
            stage = self.stage_at(self.step)
            if stage != stage_now:
                self.call("on_stage_start", stage)
                stage_now = stage
            values = self.train_step(stage)
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            if self.step % self.cfg.steps_per_epoch == 0 or self.step == total:
                self._end_epoch(stage, sums, count, time.perf_counter() - epoch_start)
                epoch_start, sums, count = time.perf_counter(), {}, 0
        self.call("on_fit_end")
        return self.model.history

    def _end_epoch(self, stage: str, sums: dict[str, float], count: int, seconds: float) -> None:
        """The epoch's history row (the same on every rank), handed to the ``on_epoch_end`` hooks."""
        row: dict[str, Any] = {"epoch": len(self.model.history) + 1, "step": self.step, "stage": stage,
                               "seconds": round(seconds, 3)}
        row.update({name: value / count for name, value in sums.items()})
        self.call("on_epoch_end", row)

    def call(self, hook: str, *args: Any) -> None:
        """Run ``hook`` on every callback, in list order: the one dispatch path of every hook."""
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)
