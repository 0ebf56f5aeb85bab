"""Evaluate a trained DualMeanTeacher checkpoint on Flickr-SoundNet or VGG-Sound Source.

    python benchmarks/evaluate.py --data flickr --root DIR --checkpoint model.pt --network ezvsl
    python benchmarks/evaluate.py --data vggss --root DIR --checkpoint model.pt --network lvs \
        --network-args '{"encoder_size": "resnet18"}' --device cuda --out vggss.json
    python benchmarks/evaluate.py --data flickr --root DIR --checkpoint model.pt --network ezvsl \
        --extended flickr_test_plus_silent.csv         # SLAVC's extended protocol

``--protocol`` follows one published evaluator (``dmt_wrap/metrics.py``'s ``PROTOCOLS``: ``lvs``,
``ssltie``, ``ezvsl``, ``fnac``, ``slavc``, ``sspl``; default ``benchmark``, the project's tables').
The model's ``localize`` returns maps at the image size, so with ground truth of that size (224 px
on both sets) a protocol changes the binarisation and the confidence, not the upsampling.

Prints CIoU@0.5, AUC and the small-object metrics in % and writes them as JSON with
``--out``; with ``--extended PAIRS_FILE`` (SLAVC's non-sounding pairs; see
``dmt_wrap/datasets/extended.py``) also AP and max-F1 of the map's confidence, and with
``--generate-pairs`` it first writes PAIRS_FILE from the test set (seeded, never
overwriting). The network is rebuilt from the baseline registry (``--network``, with the
same ``--network-args`` as in training; ``sample_rate`` comes from the data).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import dmt_wrap_baselines as baselines
from dmt_wrap.datasets.extended import ExtendedPairs, generate_pairs, write_pairs
from dmt_wrap.datasets.flickr import FlickrSoundNet
from dmt_wrap.datasets.media import ON_ERROR_POLICIES, FrameAudioDataset
from dmt_wrap.datasets.vggss import VGGSoundSource
from dmt_wrap.evaluation import evaluate_model
from dmt_wrap.metrics import DEFAULT_PROTOCOL, PROTOCOLS
from dmt_wrap.wrapper import DualMeanTeacher

LABELS = {"ciou50": "CIoU@0.5", "auc": "AUC", "pointing": "pointing", "area_iou": "area IoU",
          "pixel_ap": "pixel AP", "ext_ap": "AP", "ext_f1": "max-F1"}


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
    parser.add_argument("--extended", metavar="PAIRS_FILE", default=None,
                        help="SLAVC's extended protocol: a pairs file under --root (or absolute), "
                        "one 'frame_id audio_id' per line (different ids: a non-sounding pair) "
                        "or SLAVC's *_plus_silent.csv; adds AP and max-F1")
    parser.add_argument("--generate-pairs", action="store_true",
                        help="first write PAIRS_FILE from the test set: each id as itself, plus "
                        "each frame with another random clip's audio (refuses to overwrite)")
    parser.add_argument("--pairs-seed", type=int, default=0, help="seed of --generate-pairs")
    parser.add_argument("--on-error", choices=ON_ERROR_POLICIES, default="raise",
                        help="skip: drop (and count) bad entries, files and pair lines instead "
                        "of stopping")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default=DEFAULT_PROTOCOL,
                        help="the published evaluator to follow (upsampling, binarisation, confidence)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--out", default=None, help="write the metrics here as JSON")
    args = parser.parse_args(argv)
    if args.generate_pairs and not args.extended:
        parser.error("--generate-pairs writes the file named by --extended PAIRS_FILE; add it")
    return args


def build_dataset(args: argparse.Namespace) -> FrameAudioDataset:
    """The test set, or with ``--extended`` its pairs (written first with ``--generate-pairs``)."""
    common = dict(image_size=args.image_size, sample_rate=args.sample_rate,
                  duration=args.duration, on_error=args.on_error)
    if args.data == "flickr":
        test = FlickrSoundNet(args.root, args.list_file, masks=True, **common)
    else:
        test = VGGSoundSource(args.root, args.annotations, **common)
    if not args.extended:
        return test
    if args.generate_pairs:
        pairs_path = Path(args.root) / args.extended
        if pairs_path.exists():
            raise SystemExit(f"--generate-pairs: {pairs_path} exists; drop --generate-pairs to "
                             "use it, or name a new file.")
        write_pairs(pairs_path, generate_pairs(test.names, seed=args.pairs_seed))
        print(f"wrote {2 * len(test)} pairs to {pairs_path} (seed {args.pairs_seed})")
    return ExtendedPairs(test, args.extended)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    dataset = build_dataset(args)
    network_args = {"sample_rate": dataset.sample_rate, **args.network_args}
    model = DualMeanTeacher.load(args.checkpoint,
                                 lambda: baselines.build(args.network, **network_args),
                                 device=args.device)
    scores = evaluate_model(model.localize, dataset, batch_size=args.batch_size,
                            device=model.device, num_workers=args.num_workers, protocol=args.protocol)
    extended = isinstance(dataset, ExtendedPairs)
    sounding = sum(dataset.sounding) if extended else len(dataset)
    skipped = len(dataset.skipped) + (len(dataset.base.skipped) if extended else 0)
    kinds = f": {sounding} sounding, {len(dataset) - sounding} non-sounding" if extended else ""
    print(f"{args.data} ({len(dataset)} pairs{kinds}), {args.network} from {args.checkpoint}, "
          f"protocol {args.protocol}:")
    if skipped:
        print(f"  ({skipped} bad entries, files or lines skipped: --on-error skip)")
    for name, value in scores.items():
        print(f"  {LABELS.get(name, name):>9s} {100 * value:6.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"data": args.data, "pairs": len(dataset),
                                              "sounding_pairs": sounding,
                                              "extended": args.extended, "skipped": skipped,
                                              "network": args.network, "protocol": args.protocol,
                                              "checkpoint": str(args.checkpoint),
                                              "metrics": scores}, indent=2))
    return scores


if __name__ == "__main__":
    main()
