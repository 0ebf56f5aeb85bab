"""What the dual structure costs: one DMT stage-2 step against one bare training step.

The bare step is the network alone: a forward on the mixed batch (labeled + unlabeled), a
BCE map loss against the masks plus ``lambda_c`` times its own self-supervised loss, a
backward and an Adam step. The DMT step is ``Trainer.train_step("unbiased")`` around
``DualMeanTeacher.training_step``: weak view, two teachers' forwards, consensus filter and IPL, a
strong view and a forward per student, one backward of both students' losses, the finite-loss
guard, two optimiser steps and two EMA updates. Its arithmetic floor is
about 2.7x the bare step (docs/design.md, 'Scale and distributed training'); anything above
is overhead.

Both run in one process on the same batch, interleaved (bare, dmt, bare, dmt, ...) so that
machine noise hits both; warm-up iterations are excluded and the median over repeats is
reported. A second measure runs the DMT step end to end with the data pipeline (the
composed dataset through the trainer's streams and DataLoader workers).

    python benchmarks/perf.py --method ezvsl --preset cpu --threads 2
    python benchmarks/perf.py --method toy --preset cpu
    python benchmarks/perf.py --method ezvsl --preset paper --device cuda
"""
from __future__ import annotations

import argparse
import json
import importlib.util
import resource
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.contract import parse_output
from dmt_wrap.losses import map_loss
from dmt_wrap.trainer import Trainer, build_optimizer

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Preset:
    encoder_size: str
    image_size: int
    seconds: float
    sample_rate: int
    batch_size: int
    labeled_batch_size: int

    @property
    def mixed_batch(self) -> int:
        return self.batch_size + self.labeled_batch_size


PRESETS = {
    "cpu": Preset("tiny", 64, 1.0, 16_000, 64, 16),
    "paper": Preset("resnet18", 224, 3.0, 16_000, 128, 32),
    "dry": Preset("tiny", 32, 0.5, 16_000, 4, 2),  # benchmarks/gpu_check.sh --cpu-dry-run: the path, not a speed
}
TOY_AUDIO_SAMPLES = 32  # ToyNet's audio layer takes a fixed 32-sample vector


# ----------------------------------------------------------------------------- inputs
def network_factory(method: str, preset: Preset) -> tuple[Callable[[], nn.Module], int]:
    """The network constructor for ``method`` and the audio length it takes."""
    if method == "toy":
        return toy_network(), TOY_AUDIO_SAMPLES
    import dmt_wrap_baselines as baselines  # noqa: F401  (each module registers its networks)
    from dmt_wrap_baselines.registry import build
    samples = int(round(preset.seconds * preset.sample_rate))
    return partial(build, method, encoder_size=preset.encoder_size, sample_rate=preset.sample_rate), samples


def toy_network() -> type[nn.Module]:
    """The test suite's ``ToyNet`` (``tests/toy.py``, a file of the repository, not of the package)."""
    spec = importlib.util.spec_from_file_location("toy", ROOT / "tests" / "toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ToyNet


class RandomItems(Dataset):
    """Random images, waveforms and box masks, for when the composed dataset is absent."""

    def __init__(self, length: int, image_size: int, audio_samples: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(length, 3, image_size, image_size, generator=g)
        self.audio = torch.randn(length, audio_samples, generator=g) * 0.1
        self.masks = torch.zeros(length, image_size, image_size)
        quarter = image_size // 4
        self.masks[:, quarter:3 * quarter, quarter:3 * quarter] = 1.0

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"image": self.images[index], "audio": self.audio[index], "mask": self.masks[index]}


def pipeline_dataset(method: str, preset: Preset, audio_samples: int, length: int) -> tuple[Dataset, str]:
    """The composed dataset at the preset's size, or random tensors (and which one it is)."""
    if method == "toy":
        return RandomItems(length, preset.image_size, audio_samples), "random tensors (toy network)"
    try:
        from dmt_wrap_benchmarks.composed.dataset import ComposedScenes
    except ImportError as exc:
        return RandomItems(length, preset.image_size, audio_samples), f"random tensors (no composed dataset: {exc})"
    with warnings.catch_warnings():  # the fallback-classes warning: reported in the output instead
        warnings.simplefilter("ignore")
        data = ComposedScenes("flickr", length=length, image_size=preset.image_size,
                              sample_rate=preset.sample_rate, duration=preset.seconds)
    kind = "procedural fallback classes" if data.is_fallback else "stamp classes"
    return data, f"composed dataset, tier flickr, {kind}"


# ----------------------------------------------------------------------------- steps
def first_items(data: Dataset, count: int, device: torch.device) -> dict[str, Tensor]:
    items = [data[i] for i in range(count)]
    return {key: torch.stack([item[key] for item in items]).to(device) for key in ("image", "audio", "mask")}


class BareStep:
    """One plain training step of the network alone (the 1x of the ratio)."""

    def __init__(self, net: nn.Module, batch: dict[str, Tensor], cfg: DMTConfig, device: torch.device) -> None:
        self.net = net.to(device).train()
        if cfg.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.batch = batch
        self.optimizer = build_optimizer(self.net, cfg, device)
        self.cfg, self.device = cfg, device

    def __call__(self) -> None:
        images, audio, mask = self.batch["image"], self.batch["audio"], self.batch["mask"]
        if self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        autocast = self.cfg.precision == "bf16" or (self.cfg.precision == "auto" and self.device.type == "cuda")
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = parse_output(self.net(images, audio), images.shape[0])
        loss = map_loss(out.map.float(), mask, kind=self.cfg.map_loss)
        if out.self_loss is not None:
            loss = loss + self.cfg.lambda_c * out.self_loss.float()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def dmt_trainer(factory: Callable[[], nn.Module], cfg: DMTConfig, device: torch.device, labeled: Dataset,
                unlabeled: Dataset) -> Trainer:
    """A trainer in stage 2: calibrated on the first batch, teachers started."""
    model = DualMeanTeacher(factory, cfg, device=device)
    trainer = Trainer(model, labeled, unlabeled)
    trainer.setup()
    model.start_teachers()
    return trainer


def fixed_batches(data: Dataset, preset: Preset, device: torch.device) -> dict[str, dict[str, Tensor]]:
    """One batch per stream, already on the device as the bare step's is (``Trainer.train_step``'s
    ``batches``): the step is timed without the loader."""
    labeled = first_items(data, preset.labeled_batch_size, device)
    return {"labeled_A": labeled, "labeled_B": labeled, "unlabeled": first_items(data, preset.batch_size, device)}


def compile_students(trainer: Trainer) -> None:
    """``torch.compile`` every student in place (after the teachers were copied from them)."""
    for student in trainer.model.students:
        student.compile()


# ----------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], Any], steps: int, device: torch.device) -> float:
    """Mean seconds per call over ``steps`` calls."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def peak_memory_mb(step: Callable[[], Any], device: torch.device) -> float:
    """CUDA: peak allocated during one call. CPU: the process's peak RSS so far (monotonic)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        step()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def interleaved(bare: Callable[[], Any], dmt: Callable[[], Any], repeats: int, steps: int,
                device: torch.device) -> tuple[list[float], list[float]]:
    bare_times, dmt_times = [], []
    for _ in range(repeats):
        bare_times.append(timed(bare, steps, device))
        dmt_times.append(timed(dmt, steps, device))
    return bare_times, dmt_times


def end_to_end(trainer: Trainer, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per DMT step with the real streams (DataLoader, collate, transfer)."""
    for _ in range(warmup):
        trainer.train_step("unbiased")
    return timed(partial(trainer.train_step, "unbiased"), steps, device)


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="toy", help="'toy' or a baseline name (baselines.registry)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each kind first")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the end-to-end measure")
    parser.add_argument("--pipeline-steps", type=int, default=5, help="timed steps end to end (0: skip)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the students and the bare network")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="the networks' forward precision (DMTConfig.precision; auto: bf16 on CUDA only)")
    parser.add_argument("--json", type=Path, default=None, help="also write the measures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, preset = torch.device(args.device), PRESETS[args.preset]
    factory, audio_samples = network_factory(args.method, preset)
    cfg = DMTConfig(batch_size=preset.batch_size, labeled_batch_size=preset.labeled_batch_size,
                    warmup_steps=0, num_workers=args.workers, channels_last=True, precision=args.precision)
    random_data = RandomItems(max(preset.batch_size, 128), preset.image_size, audio_samples)

    bare = BareStep(factory(), first_items(random_data, preset.mixed_batch, device), cfg, device)
    trainer = dmt_trainer(factory, cfg, device, random_data, random_data)
    if args.compile:
        bare.net.compile()
        compile_students(trainer)
    dmt = partial(trainer.train_step, "unbiased", fixed_batches(random_data, preset, device))

    params = sum(p.numel() for p in bare.net.parameters())
    print(f"method {args.method} ({params / 1e6:.2f} M parameters), preset {args.preset} "
          f"({preset.encoder_size}, {preset.image_size} px, {preset.seconds:g} s audio, batch "
          f"{preset.batch_size}+{preset.labeled_batch_size}), device {device}, threads {torch.get_num_threads()}, "
          f"compile {args.compile}, torch {torch.__version__}")
    for _ in range(args.warmup):
        bare()
    bare_mb = peak_memory_mb(bare, device)
    for _ in range(args.warmup):
        dmt()
    dmt_mb = peak_memory_mb(dmt, device)

    bare_times, dmt_times = interleaved(bare, dmt, args.repeats, args.steps, device)
    bare_s, dmt_s = statistics.median(bare_times), statistics.median(dmt_times)
    print(f"bare step  {bare_s * 1e3:8.1f} ms  (median of {args.repeats} x {args.steps}; "
          f"spread {min(bare_times) * 1e3:.1f}-{max(bare_times) * 1e3:.1f})")
    print(f"DMT step   {dmt_s * 1e3:8.1f} ms  (spread {min(dmt_times) * 1e3:.1f}-{max(dmt_times) * 1e3:.1f})")
    print(f"ratio      {dmt_s / bare_s:8.2f} x  (arithmetic floor ~2.7x, goal <= 3.0x)")
    memory = "peak allocated" if device.type == "cuda" else "peak RSS of the process after"
    print(f"memory     {memory}: bare {bare_mb:.0f} MiB, DMT {dmt_mb:.0f} MiB")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "method": args.method, "preset": args.preset, "device": str(device), "precision": args.precision,
            "parameters_m": round(params / 1e6, 3), "bare_ms": round(bare_s * 1e3, 2), "dmt_ms": round(dmt_s * 1e3, 2),
            "ratio": round(dmt_s / bare_s, 3), "bare_mib": round(bare_mb), "dmt_mib": round(dmt_mb)}, indent=1))

    if args.pipeline_steps > 0:
        data, source = pipeline_dataset(args.method, preset, audio_samples, length=4 * preset.batch_size)
        pipeline = dmt_trainer(factory, cfg, device, data, data)
        seconds = end_to_end(pipeline, args.warmup, args.pipeline_steps, device)
        drawn = preset.batch_size + 2 * preset.labeled_batch_size  # unlabeled + one labeled batch per student
        print(f"end to end {seconds * 1e3:8.1f} ms/step, {drawn / seconds:.1f} samples/s "
              f"({drawn} drawn per step: {preset.batch_size} unlabeled + 2 x {preset.labeled_batch_size} labeled; "
              f"{args.workers} workers; data: {source})")


if __name__ == "__main__":
    main()
