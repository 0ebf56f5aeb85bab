"""Data-parallel training over several processes: torchrun + DistributedDataParallel.

Launch any script that calls ``DualMeanTeacher.fit`` with ``torchrun``::

    torchrun --nproc_per_node=4 train.py                                  # one machine, 4 GPUs
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d \\
             --rdzv-endpoint=HOST:29500 train.py                          # two machines

``fit`` joins the process group the script already started, or starts one from torchrun's
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``):
``nccl`` when the model is on a GPU, ``gloo`` on CPU; that group stays up until the process
exits. Each process drives the GPU ``cuda:LOCAL_RANK``. What every rank does (docs/design.md,
'Scale and distributed training'):

* the data streams are sharded: each rank takes its slice of every global batch of the
  seeded permutation, so ``batch_size`` is per rank and the global batch is
  ``batch_size * world_size`` (the batch a single process would see with that size);
* both students are wrapped in DDP (gradients averaged across ranks) after the contract
  check and the calibration (which every rank runs on the same first global batch), and
  rank 0's weights and buffers are broadcast then, so all ranks start identical;
* after each step the students' buffers (BatchNorm statistics, queues) are broadcast from
  rank 0, as DDP itself would before the next forward, and every rank updates its
  teachers by EMA from the identical students: the teachers stay identical on every rank;
* loss terms, diagnostics and evaluation numbers are averaged across ranks; the pseudo
  loss is normalised by the number of pseudo-labels kept over all ranks, as in one
  process; only rank 0 writes checkpoints, logs and the progress bar (every rank reads
  the checkpoint to resume: across machines, ``checkpoint_dir`` must be on a shared
  filesystem).

Differences from one process with the global batch, by construction: BatchNorm sees each
rank's batch statistics (on GPUs, ``nn.SyncBatchNorm.convert_sync_batchnorm`` inside
``backbone_factory`` gives global ones), contrastive losses take their negatives within
the rank's batch (as the original methods do), and augmentation draws differ (each rank
seeds its own views).
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from .calibration import CalibratedNetwork
from .contract import NetworkOutput


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


def launched_world_size() -> int:
    """The number of processes torchrun started (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` under torchrun with GPUs.

    ``None`` picks CUDA when available, else CPU; a bare ``"cuda"`` gets the local rank's
    index so that the processes of one machine do not all land on GPU 0.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def join(device: torch.device) -> World:
    """Join the existing process group, or start one from torchrun's environment.

    A group started here stays up until the process exits (a second ``fit`` in the same
    script joins it: the default group cannot reliably be started twice under torchrun).
    Without a group and without torchrun, a one-process world.
    """
    if not (dist.is_available() and dist.is_initialized()):
        if launched_world_size() <= 1:
            return World()
        _start_group(device)
    world = World(dist.get_rank(), dist.get_world_size())
    if world.parallel and device.type == "cuda":
        # the current device is where pinned-memory threads and NCCL put their contexts:
        # left at GPU 0, every process would hold one there
        torch.cuda.set_device(device)
    return world


def _start_group(device: torch.device) -> None:
    """The default group from torchrun's environment: nccl on GPU, gloo on CPU; ended at exit."""
    if not dist.is_available():
        raise RuntimeError("launched with WORLD_SIZE > 1 but this torch build has no torch.distributed.")
    if device.type == "cuda":
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    atexit.register(_end_group)


def _end_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean(tensor: Tensor, world: World) -> Tensor:
    """The mean of ``tensor`` over ranks (a copy; ``tensor`` itself when alone)."""
    if not world.parallel:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total / world.size


def total(tensor: Tensor, world: World) -> Tensor:
    """The sum of ``tensor`` over ranks (a copy; ``tensor`` itself when alone)."""
    if not world.parallel:
        return tensor
    summed = tensor.clone()
    dist.all_reduce(summed)
    return summed


def broadcast_buffers(module: nn.Module, world: World) -> None:
    """Give every rank rank 0's buffers, one collective per dtype (not one per buffer)."""
    if not world.parallel:
        return
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for buffer in module.buffers():
        by_dtype.setdefault(buffer.dtype, []).append(buffer)
    with torch.no_grad():
        for buffers in by_dtype.values():
            flat = torch.cat([b.reshape(-1) for b in buffers])
            if flat.dtype == torch.bool:  # not every backend carries bool
                flat = flat.to(torch.uint8)
            dist.broadcast(flat, src=0)
            for buffer, value in zip(buffers, flat.split([b.numel() for b in buffers])):
                buffer.copy_(value.view_as(buffer))


class _TupleOutput(nn.Module):
    """A student returning ``(map, self_loss)``: DDP looks for output tensors through
    pytree, which sees into a tuple but not into the ``NetworkOutput`` dataclass.

    ``map_in_loss=False`` (no labels and no teachers: only the network's own loss trains)
    detaches the map, so that the calibration it went through is outside the graph like
    any other unused parameter; an output left in the graph but out of the loss breaks
    DDP's static graph from the second step on.
    """

    def __init__(self, student: CalibratedNetwork, map_in_loss: bool) -> None:
        super().__init__()
        self.student, self.map_in_loss = student, map_in_loss

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        output = self.student(images, audio)
        return (output.map if self.map_in_loss else output.map.detach()), output.self_loss


class DistributedStudent(nn.Module):
    """A student under DDP, called like the student itself (returns ``NetworkOutput``).

    ``static_graph=True``: the parameters the loss reaches are the same at every step of a
    run (the map and the network's own loss, every step), so DDP records on the first
    backward which ones never get a gradient (the calibration of a network trained without
    labels, heads used only in eval mode) and skips them from then on, without searching
    the autograd graph every step as ``find_unused_parameters`` would. A network whose
    parameter use changes from step to step breaks that assumption and DDP says so.
    ``broadcast_buffers=False``: the trainer broadcasts buffers after each step itself
    (before the EMA reads them), so DDP's own broadcast before each forward is redundant.
    """

    def __init__(self, student: CalibratedNetwork, device: torch.device, map_in_loss: bool = True) -> None:
        super().__init__()
        device_ids = [device.index] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(_TupleOutput(student, map_in_loss), device_ids=device_ids,
                                           broadcast_buffers=False, static_graph=True)

    def forward(self, images: Tensor, audio: Tensor) -> NetworkOutput:
        map_, self_loss = self.ddp(images, audio)
        return NetworkOutput(map_, self_loss)
