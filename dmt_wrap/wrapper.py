"""``DualMeanTeacher``: two teacher-student pairs around any localization network."""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from . import distributed
from .calibration import CalibratedNetwork
from .callbacks import Callback
from .checkpoint import MODEL_KEYS, CheckpointError, load_checkpoint, require_keys, save_atomic
from .config import DMTConfig
from .ema import make_teacher
from .metrics import upsample_maps
from .streams import derive_seed
from .trainer import Trainer

BackboneFactory = Callable[[], nn.Module]


class DualMeanTeacher(nn.Module):
    """Semi-supervised AVSL around any network meeting the contract (``dmt_wrap.contract``).

    ``backbone_factory()`` is called once per teacher-student pair, under different seeds,
    so the pairs start from different weights. With ``teachers=1`` or ``0`` in the config
    (single mean teacher, naive / self- / fully supervised) only one network is built.

    Usage::

        dmt = DualMeanTeacher(lambda: MyNet())
        dmt.fit(labeled, unlabeled)              # warm-up, then unbiased learning
        maps = dmt.localize(images, audio)       # [B, H, W] confidences in [0, 1]
    """

    def __init__(self, backbone_factory: BackboneFactory, config: DMTConfig | None = None,
                 device: str | torch.device | None = None, **overrides: Any) -> None:
        super().__init__()
        config = (config or DMTConfig()).replace(**overrides) if overrides else (config or DMTConfig())
        self.config = config
        self.device = distributed.resolve_device(device)
        students = []
        for k in range(config.num_networks):
            torch.manual_seed(derive_seed(config.seed, "build", config.seed_index(k)))
            net = backbone_factory()
            if not isinstance(net, nn.Module):
                raise TypeError(f"backbone_factory() returned {type(net).__name__}; it must return an nn.Module "
                                "meeting the contract in dmt_wrap.contract.")
            students.append(CalibratedNetwork(net, eval_affine=config.recalibrate_teachers))
        self.students = nn.ModuleList(students).to(self.device)
        if config.channels_last and self.device.type == "cuda":
            self.students.to(memory_format=torch.channels_last)
        self.teachers = nn.ModuleList()
        self.history: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- structure
    @property
    def network_name(self) -> str:
        return self.students[0].name

    @property
    def has_teachers(self) -> bool:
        return len(self.teachers) > 0

    def start_teachers(self) -> None:
        """Stage 1 -> 2: each teacher becomes a copy of its network (students go on from it)."""
        self.teachers = nn.ModuleList(make_teacher(s, self.config.ema_decay) for s in self.students)

    def update_teachers(self) -> None:
        for teacher, student in zip(self.teachers, self.students):
            teacher.update(student)

    def image_layout(self, images: Tensor) -> Tensor:
        """Images in the networks' memory format (channels_last on CUDA when configured)."""
        if self.config.channels_last and self.device.type == "cuda":
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def inference_networks(self, inference: str | None = None) -> list[nn.Module]:
        """The networks whose maps are averaged at inference (``inference`` overrides the config's).

        With teachers: the teachers (``"students"``: the students). Without: the network, or the
        two of a naive ensemble or of DMT before stage 2 (the same two networks after the same
        warm-up: they answer alike, so the two may share it, ``DMTConfig.stage1_settings``).
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

        ``callbacks`` (``dmt_wrap.callbacks.Callback``) run after the built-in ones (EMA
        teachers, evaluation, history, checkpoint, progress bar), so they see each epoch's
        row complete; e.g. ``callbacks=[TensorBoardLogger("runs/tb")]``.

        ``warmup_from``: skip stage 1 and start from another run's end-of-warm-up state (the
        ``warmup.pt`` its ``checkpoint_dir`` holds). The runs must differ only in stage-2
        settings (``dmt_wrap.config.STAGE2_FIELDS``: delta, tau, lambda_u, ema_decay, ...), which
        makes the result bit-identical to training through; anything else is refused. A sweep
        of stage-2 settings then pays for one warm-up. ``resume`` takes precedence once this
        run has its own ``last.pt``.

        Several GPUs or machines: launch the same script with ``torchrun`` (for instance
        ``torchrun --nproc_per_node=4 train.py``). ``fit`` joins the process group the script
        started, or starts one from torchrun's environment (kept until the process exits);
        ``batch_size`` and ``labeled_batch_size`` are then per process, every process
        trains on its shard of each global batch under DistributedDataParallel, the teachers
        stay identical everywhere, and only rank 0 writes checkpoints, logs and the
        progress bar. Details and the differences from one process: ``dmt_wrap.distributed``.
        """
        trainer = Trainer(self, labeled, unlabeled, checkpoint_dir=checkpoint_dir, progress=progress,
                          eval_fn=eval_fn, world=distributed.join(self.device), callbacks=callbacks,
                          warmup_from=warmup_from)
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
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                  enabled=self.config.amp and self.device.type == "cuda")
        nets = self.inference_networks(inference)
        was_training = [n.training for n in nets]
        total = None
        with autocast:
            for net in nets:
                net.eval()
                prob = torch.sigmoid(net(images, audio).map.float())
                total = prob if total is None else total + prob
        for net, mode in zip(nets, was_training):
            net.train(mode)
        return upsample_maps(total / len(nets), images.shape[-2:]).clamp(0, 1)

    # ----------------------------------------------------------------- persistence
    def model_state(self) -> dict[str, Any]:
        return {
            "network": self.network_name,
            "config": self.config.to_dict(),
            "students": [s.state_dict() for s in self.students],
            "teachers": [t.state_dict() for t in self.teachers],
            "history": copy.deepcopy(self.history),
        }

    def load_model_state(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore weights, refusing a checkpoint of another network or shape."""
        if state.get("network") != self.network_name:
            raise CheckpointError(f"{source} was written for network {state.get('network')!r}; this model wraps "
                                  f"{self.network_name!r}. Build the wrapper with the same backbone_factory.")
        students, teachers = state["students"], state["teachers"]
        if len(students) != len(self.students):
            raise CheckpointError(f"{source} holds {len(students)} network(s) but this config builds "
                                  f"{len(self.students)} (teachers={self.config.teachers}).")
        try:
            for module, weights in zip(self.students, students):
                module.load_state_dict(weights)
            if teachers:
                self.start_teachers()
                for module, weights in zip(self.teachers, teachers):
                    module.load_state_dict(weights)
            else:
                self.teachers = nn.ModuleList()
        except RuntimeError as exc:
            raise CheckpointError(f"{source} does not fit this {self.network_name} (another preset or size?): "
                                  f"{' '.join(line.strip() for line in str(exc).splitlines()[:2])} ...") from exc
        self.history = list(state.get("history", []))

    def save(self, path: str | os.PathLike) -> None:
        """Write the trained model (weights, config, history) atomically."""
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

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, backbone_factory: BackboneFactory | None = None,
                        device: str | torch.device | None = None) -> "DualMeanTeacher":
        """Rebuild a model exported by ``dmt-wrap export`` (``model.safetensors`` + ``config.json``).

        Without ``backbone_factory`` the network is rebuilt by its registered name; with it,
        your own network. Checksums, format version, network and tensor shapes are checked;
        nothing is unpickled. Details: ``dmt_wrap.pretrained``.
        """
        from .pretrained import load_pretrained

        return load_pretrained(cls, folder, backbone_factory, device=device)
