"""``dmt-wrap``: localize, prepare, export, splits. Thin argument parsing; each command's logic is its own module."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from .checkpoint import CheckpointError
from .datasets.media import DataError

LOCALIZE_EXAMPLE = """examples:
  dmt-wrap localize my_clip.mp4 --model exported/ezvsl --out my_clip_dmt.mp4 --npz maps.npz --sheet sheet.png
  dmt-wrap localize silent_film.mkv --audio soundtrack.wav --model exported/ezvsl
  dmt-wrap localize --image photo.jpg --audio bark.wav --model exported/ezvsl --out photo_dmt.png

Frames are sampled --fps times a second (the frame on screen at each moment, so variable
frame rates are fine); each map comes from the model's audio window centred on its frame
(shifted inside the clip at its ends; a clip shorter than the window is tiled, with a
warning). The map is drawn on the real frame, whatever its aspect ratio, on a fixed 0-1
scale with a colour bar; the overlay video keeps the original audio track."""

PREPARE_EXAMPLE = """examples:
  dmt-wrap prepare downloads/ vggsound_prepared/ --ids vggsound.csv --duration 3 --workers 8
  dmt-wrap prepare downloads/ prepared/ --frame time:4.5

Writes frames/<id>.jpg, audio/<id>.wav (mono, --sample-rate, --duration seconds centred on the
frame), the list of prepared ids (--list) and manifest.json (settings, and per id: prepared,
missing, unreadable with the reason, no audio, too short). Re-running skips finished ids."""

EXPORT_EXAMPLE = """examples:
  dmt-wrap export runs/cpu-ezvsl/jobs/ezvsl/ratio0.03/seed0/dmt exported/ezvsl
  dmt-wrap export model.pt exported/mine --network ezvsl --network-args '{"encoder_size": "tiny"}' \\
      --image-size 224 --sample-rate 16000 --duration 3

Writes model.safetensors (the networks inference uses, with their calibration), config.json
(network, DMTConfig, data, preset, metrics, versions) and SHA256SUMS. Load it in Python with
DualMeanTeacher.from_pretrained(folder)."""

SPLITS_EXAMPLE = """examples:
  dmt-wrap splits vggsound_prepared/ --label-ratio 0.03 --seed 0 --test-ratio 0.1
  dmt-wrap splits flickr/ --ids train.txt --test test.txt --label-ratio 0.1 --seed 2 --out splits/flickr-10

Writes labeled.txt, unlabeled.txt, test.txt (one id per line), split.json and SHA256SUMS.
The same folder, ratio and seed give the same files on every machine; benchmarks/run.py
takes the folder with --split, the loaders take each file as their id list."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmt-wrap", description="Semi-supervised audio-visual source "
                                     "localization: use, prepare, export and split.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, epilog=example,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(subparser=sub)  # so that usage errors show the command's own usage
        return sub

    loc = command("localize", "maps of a trained model on your own video, or on an image with a sound",
                  LOCALIZE_EXAMPLE)
    loc.add_argument("video", nargs="?", type=Path, help="a video file (mp4, mkv, webm, avi, ...)")
    loc.add_argument("--model", type=Path, required=True, help="a folder written by dmt-wrap export")
    loc.add_argument("--image", type=Path, help="a still image instead of a video (needs --audio)")
    loc.add_argument("--audio", type=Path, help="audio to use instead of the video's own track (any audio or "
                                                "video file)")
    loc.add_argument("--out", type=Path, help="overlay video (.mp4/.mkv/.mov) or, with --image, PNG "
                                              "(default: <input>_dmt.mp4 / .png in the current folder)")
    loc.add_argument("--fps", type=float, default=4.0, help="frames sampled per second (default 4)")
    loc.add_argument("--npz", type=Path, help="also write the raw maps to this .npz")
    loc.add_argument("--sheet", type=Path, help="also write a contact sheet PNG (video only)")
    loc.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    loc.add_argument("--allow-truncated", action="store_true", help="use what decodes of a truncated video")
    loc.add_argument("--no-progress", action="store_true", help="no progress bar")

    prep = command("prepare", "turn a folder of raw videos into the frames/audio layout the loaders read",
                   PREPARE_EXAMPLE)
    prep.add_argument("videos", type=Path, help="folder of downloaded videos")
    prep.add_argument("out", type=Path, help="dataset folder to write")
    prep.add_argument("--ids", type=Path, help="VGG-Sound style CSV (id,start,label[,split]) or one id per line "
                                               "(default: every video, by file name)")
    prep.add_argument("--frame", default="middle", help="middle (default) or time:SECONDS")
    prep.add_argument("--sample-rate", type=int, default=16000, help="audio rate in Hz (default 16000)")
    prep.add_argument("--duration", type=float, default=3.0, help="audio window in seconds (default 3)")
    prep.add_argument("--pad-short", action="store_true", help="keep clips shorter than the window (the loaders "
                                                               "tile them) instead of listing them as too short")
    prep.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    prep.add_argument("--list", default="train.txt", help="name of the list file of prepared ids")
    prep.add_argument("--no-progress", action="store_true", help="no progress bar")

    exp = command("export", "a trained model to a portable folder (safetensors + config + checksums)",
                  EXPORT_EXAMPLE)
    exp.add_argument("source", type=Path, help="a benchmarks/run.py job folder, or a file DualMeanTeacher.save "
                                               "wrote")
    exp.add_argument("out", type=Path, help="folder to write")
    exp.add_argument("--network", help="registered network name (a saved file only; default: from the file)")
    exp.add_argument("--network-args", type=json.loads, default={}, help="JSON constructor arguments (saved file)")
    exp.add_argument("--image-size", type=int, help="input frame size the model was trained at (saved file)")
    exp.add_argument("--sample-rate", type=int, help="audio rate it was trained at (saved file)")
    exp.add_argument("--duration", type=float, help="audio window in seconds it was trained at (saved file)")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output folder")

    spl = command("splits", "deterministic labeled / unlabeled / test id files for a dataset folder",
                  SPLITS_EXAMPLE)
    spl.add_argument("root", type=Path, help="dataset folder (frames/, audio/)")
    spl.add_argument("--label-ratio", type=float, required=True, help="labeled part of the training ids, in (0, 1]")
    spl.add_argument("--seed", type=int, default=0)
    spl.add_argument("--ids", help="list of the ids to split (default: every id with a frame and audio)")
    group = spl.add_mutually_exclusive_group()
    group.add_argument("--test", help="list of the test ids (kept out of training)")
    group.add_argument("--test-ratio", type=float, default=0.0, help="part of the ids drawn as test set")
    spl.add_argument("--out", type=Path, help="split folder (default ROOT/splits/ratio<r>-seed<s>)")
    return parser


def run_localize(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from .localize import Localizer, localize_image, localize_video

    if (args.video is None) == (args.image is None):
        parser.error("localize: pass a VIDEO, or --image IMAGE with --audio AUDIO")
    if args.image is not None and args.audio is None:
        parser.error("localize --image needs --audio AUDIO (the sound to localize)")
    if args.image is not None and args.sheet is not None:
        parser.error("localize --sheet is for a video; with --image the overlay PNG is the picture")
    if not args.fps > 0:
        parser.error(f"--fps {args.fps}: must be positive")
    localizer = Localizer.from_folder(args.model, device=args.device)
    if args.image is not None:
        out = args.out or Path(f"{args.image.stem}_dmt.png")
        summary = localize_image(localizer, args.image, args.audio, out, npz=args.npz)
        print(f"wrote {summary['png']}" + (f" and {summary['npz']}" if args.npz else ""))
        return
    out = args.out or Path(f"{args.video.stem}_dmt.mp4")
    summary = localize_video(localizer, args.video, out, fps=args.fps, audio_file=args.audio, npz=args.npz,
                             sheet=args.sheet, progress=not args.no_progress, allow_truncated=args.allow_truncated)
    extras = "".join(f", {summary[key]}" for key in ("npz", "sheet") if key in summary)
    print(f"wrote {summary['video']} ({summary['frames']} frames at {args.fps:g} fps){extras}")


def run_prepare(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from .prepare import PrepareSettings, prepare

    if args.workers < 1:
        parser.error(f"--workers {args.workers}: must be at least 1")
    settings = PrepareSettings(frame=args.frame, sample_rate=args.sample_rate, duration=args.duration,
                               pad_short=args.pad_short)
    manifest = prepare(args.videos, args.out, args.ids, settings, workers=args.workers, list_name=args.list,
                       progress=not args.no_progress)
    print(manifest["summary"])


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from .export import export_job, export_saved

    if args.source.is_dir():
        folder = export_job(args.source, args.out, overwrite=args.overwrite)
    else:
        data = {"image_size": args.image_size, "sample_rate": args.sample_rate, "duration": args.duration}
        missing = [f"--{key.replace('_', '-')}" for key, value in data.items() if value is None]
        if missing:
            parser.error(f"export of a saved model file needs {' '.join(missing)} (the input it was trained on)")
        folder = export_saved(args.source, args.out, data=data, network=args.network,
                              network_kwargs=args.network_args, overwrite=args.overwrite)
    print(f"wrote {folder} (model.safetensors, config.json, SHA256SUMS)")


def run_splits(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from .datasets.split_files import read_split, write_split

    if not 0 < args.label_ratio <= 1 or not 0 <= args.test_ratio < 1:
        parser.error("--label-ratio must lie in (0, 1] and --test-ratio in [0, 1)")
    folder = write_split(args.root, args.label_ratio, args.seed, out=args.out, ids=args.ids, test=args.test,
                         test_ratio=args.test_ratio)
    counts = ", ".join(f"{len(names)} {part}" for part, names in read_split(folder).items())
    print(f"wrote {folder}: {counts}")


COMMANDS: dict[str, Callable[[argparse.Namespace, argparse.ArgumentParser], None]] = {
    "localize": run_localize, "prepare": run_prepare, "export": run_export, "splits": run_splits}


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input ends with ``dmt-wrap COMMAND: error: ...`` and exit status 1."""
    parser = _parser()
    args = parser.parse_args(argv)

    def show(message, category, *_args, **_kwargs) -> None:
        print(f"dmt-wrap {args.command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            COMMANDS[args.command](args, args.subparser)
        except (DataError, CheckpointError, FileExistsError, FileNotFoundError, ValueError) as error:
            print(f"dmt-wrap {args.command}: error: {error}", file=sys.stderr)
            return 1
    return 0
