"""Export a trained model's image and audio encoders as local weight files for a warm start.

    python benchmarks/export_encoders.py runs/selfsup-2000/jobs/ezvsl/ratio0.03/seed0/self_supervised/model.pt \
        --method ezvsl --out runs/warm/ezvsl
    python benchmarks/run.py --method attention10k --variants self_supervised \
        --network-args '{"visual_weights": "runs/warm/ezvsl/visual.pth", "audio_weights": "runs/warm/ezvsl/audio.pth"}'

The files hold the timm ResNet state dicts of the first teacher (or of the student when the
model has no teachers), the format every baseline's ``visual_weights=`` / ``audio_weights=``
reads; the receiving network must use the same ``encoder_size`` (and, for the visual
encoder, any ``output_stride``: dilation does not change the weights).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from torch import nn

from dmt_wrap_baselines.encoders import AudioEncoder, VisualEncoder
from dmt_wrap_benchmarks.comparison import backbone_factory
from dmt_wrap_benchmarks.presets import PRESETS
from dmt_wrap import DualMeanTeacher
from dmt_wrap.checkpoint import torch_save_atomic


def single_encoder(network: nn.Module, kind: type[nn.Module], source: str) -> nn.Module:
    """The one module of type ``kind`` in ``network`` (momentum copies excluded: the first found)."""
    found = [m for m in network.modules() if isinstance(m, kind)]
    if not found:
        raise SystemExit(f"{source} has no {kind.__name__}: only networks built on baselines.encoders "
                         "can be exported.")
    return found[0]


def export(checkpoint: Path, method: str, preset_name: str, network_args: dict, out: Path) -> dict[str, Path]:
    preset = replace(PRESETS[preset_name], network_overrides=network_args)
    model = DualMeanTeacher.load(checkpoint, backbone_factory(method, preset), device="cpu")
    network = (model.teachers[0].module if model.has_teachers else model.students[0]).net
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, kind in (("visual", VisualEncoder), ("audio", AudioEncoder)):
        encoder = single_encoder(network, kind, str(checkpoint))
        path = out / f"{name}.pth"
        torch_save_atomic({k: v.detach().clone() for k, v in encoder.backbone.state_dict().items()}, path)
        written[name] = path
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a model.pt written by run.py (or DualMeanTeacher.save)")
    parser.add_argument("--method", required=True, help="the method the checkpoint was trained as")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--network-args", type=json.loads, default={}, help="as given to run.py, if any")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for name, path in export(args.checkpoint, args.method, args.preset, args.network_args, args.out).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
