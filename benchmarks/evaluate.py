"""Evaluate a trained DualMeanTeacher checkpoint on Flickr-SoundNet or VGG-Sound Source.

    python benchmarks/evaluate.py --data flickr --root DIR --checkpoint model.pt --network ezvsl
    python benchmarks/evaluate.py --data vggss --root DIR --checkpoint model.pt --network lvs \
        --network-args '{"encoder_size": "resnet18"}' --device cuda --out vggss.json

Prints CIoU@0.5, AUC and the small-object metrics in % and writes them as JSON with
``--out``. The network is rebuilt from the baseline registry (``--network``, with the
same ``--network-args`` as in training; ``sample_rate`` comes from the data).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import baselines  # noqa: E402
from dmt_wrap.datasets.flickr import FlickrSoundNet  # noqa: E402
from dmt_wrap.datasets.media import FrameAudioDataset  # noqa: E402
from dmt_wrap.datasets.vggss import VGGSoundSource  # noqa: E402
from dmt_wrap.evaluation import evaluate_model  # noqa: E402
from dmt_wrap.wrapper import DualMeanTeacher  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("flickr", "vggss"), required=True)
    parser.add_argument("--root", required=True, help="dataset folder (frames/, audio/, ...)")
    parser.add_argument("--checkpoint", required=True, help="a DualMeanTeacher.save() file "
                        "or a training checkpoint (last.pt)")
    parser.add_argument("--network", required=True, choices=baselines.available(),
                        help="the baseline the checkpoint wraps")
    parser.add_argument("--network-args", default="{}", type=json.loads,
                        help="JSON keyword arguments of the network, as in training")
    parser.add_argument("--list", dest="list_file", default=None, help="Flickr: the test "
                        "id list (default: every id with an Annotations/ XML)")
    parser.add_argument("--annotations", default="vggss.json", help="VGG-SS: the JSON file")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--out", default=None, help="write the metrics here as JSON")
    return parser.parse_args(argv)


def build_dataset(args: argparse.Namespace) -> FrameAudioDataset:
    common = dict(image_size=args.image_size, sample_rate=args.sample_rate,
                  duration=args.duration)
    if args.data == "flickr":
        return FlickrSoundNet(args.root, args.list_file, masks=True, **common)
    return VGGSoundSource(args.root, args.annotations, **common)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    dataset = build_dataset(args)
    network_args = {"sample_rate": dataset.sample_rate, **args.network_args}
    model = DualMeanTeacher.load(args.checkpoint,
                                 lambda: baselines.build(args.network, **network_args),
                                 device=args.device)
    scores = evaluate_model(model.localize, dataset, batch_size=args.batch_size,
                            device=model.device, num_workers=args.num_workers)
    print(f"{args.data} ({len(dataset)} pairs), {args.network} from {args.checkpoint}:")
    for name, value in scores.items():
        print(f"  {name:>9s} {100 * value:6.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"data": args.data, "pairs": len(dataset),
                                              "network": args.network,
                                              "checkpoint": str(args.checkpoint),
                                              "metrics": scores}, indent=2))
    return scores


if __name__ == "__main__":
    main()
