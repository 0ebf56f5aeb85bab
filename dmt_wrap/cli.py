"""``dmt-wrap``: localize, prepare, export, splits. Thin argument parsing; each command's logic is its own module.

Each command imports torch and the networks itself, so that ``--help`` answers at once. Every
refusal ends with one line naming the file or argument and the fix (exit status 2 for a usage
error, 1 for bad input), Ctrl-C with "interrupted"; tracebacks only with ``--debug``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from .outputs import ArgumentError, check_outputs

#: Defaults of the media limits (``dmt_wrap.video.MediaLimits``), repeated here so that --help needs no import.
MAX_PIXELS, MAX_FRAMES, MAX_SECONDS = 4096 * 4096, 3600, 900.0

LOCALIZE_EXAMPLE = """examples:
  dmt-wrap localize my_clip.mp4 --model exported/ezvsl --out my_clip_dmt.mp4 --npz maps.npz --sheet sheet.png
  dmt-wrap localize silent_film.mkv --audio soundtrack.wav --model exported/ezvsl
  dmt-wrap localize --image photo.jpg --audio bark.wav --model exported/ezvsl --out photo_dmt.png

Frames are sampled --fps times a second (the frame on screen at each moment, so variable
frame rates are fine); each map comes from the model's audio window centred on its frame
(shifted inside the clip at its ends; a clip shorter than the window is tiled, with a
warning). The map is drawn on the real frame, whatever its aspect ratio, on a fixed 0-1
scale with a colour bar; the overlay video keeps the original audio track.

Outputs are checked before any work: an output is never one of the inputs, an existing file
is replaced only with --overwrite, and missing output folders are created. A file beyond the
limits (--max-pixels, --max-frames, --max-seconds) is refused before it is decoded."""

PREPARE_EXAMPLE = """examples:
  dmt-wrap prepare downloads/ vggsound_prepared/ --ids vggsound.csv --duration 3 --workers 8
  dmt-wrap prepare downloads/ prepared/ --frame time:4.5

Writes frames/<id>.jpg, audio/<id>.wav (mono, --sample-rate, --duration seconds centred on the
frame), the list of prepared ids (--list) and manifest.json (settings, and per id: prepared,
missing, unreadable with the reason, no audio, too short). Re-running skips finished ids; other
settings are refused naming the one that differs. OUT is created; an existing OUT that is not a
prepared folder is refused."""

EXPORT_EXAMPLE = """examples:
  dmt-wrap export runs/cpu-ezvsl/jobs/ezvsl/ratio0.03/seed0/dmt exported/ezvsl
  dmt-wrap export model.pt exported/mine --network ezvsl --network-args '{"encoder_size": "tiny"}' \\
      --image-size 224 --sample-rate 16000 --duration 3

Writes model.safetensors (the networks inference uses, with their calibration), config.json
(network, DMTConfig, data, preset, metrics, versions) and SHA256SUMS. Load it in Python with
DualMeanTeacher.from_pretrained(folder). An existing OUT is replaced only with --overwrite, and
only when it is an earlier export; OUT is never the source."""

SPLITS_EXAMPLE = """examples:
  dmt-wrap splits vggsound_prepared/ --label-ratio 0.03 --seed 0 --test-ratio 0.1
  dmt-wrap splits flickr/ --ids train.txt --test test.txt --label-ratio 0.1 --seed 2 --out splits/flickr-10

Writes labeled.txt, unlabeled.txt, test.txt (one id per line), split.json and SHA256SUMS.
The same folder, ratio and seed give the same files on every machine; benchmarks/run.py
takes the folder with --split, the loaders take each file as their id list. Writing the same
split again leaves the folder unchanged; an edited split folder is refused."""

DEMO_EXAMPLE = """examples:
  dmt-wrap demo --model exported/ezvsl                      # then open http://127.0.0.1:7860
  dmt-wrap demo --model exported/ezvsl --port 8000 --max-upload-mb 50

A local web page (Gradio, pip install 'dmt_wrap[demo]'): upload a clip, or an image and a
sound; see the overlay video with its sound and the contact sheet, download the maps (.npz).
It listens on 127.0.0.1 only unless --host says otherwise, refuses uploads over
--max-upload-mb, runs one job at a time (the others wait in a queue) with a progress bar,
and applies localize's checks and limits. Nothing is sent anywhere (analytics off, no share
link)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmt-wrap", description="Semi-supervised audio-visual source "
                                     "localization: use, prepare, export and split.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")

    def command(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, epilog=example, parents=[common],
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
    loc.add_argument("--out", type=Path, help="overlay video (.mp4/.mkv/.mov) or, with --image, .png "
                                              "(default: <input>_dmt.mp4 / .png in the current folder; missing "
                                              "folders are created)")
    loc.add_argument("--fps", type=float, default=4.0, help="frames sampled per second, at most the clip's own "
                                                            "rate (default 4)")
    loc.add_argument("--npz", type=Path, help="also write the raw maps to this .npz")
    loc.add_argument("--sheet", type=Path, help="also write a contact sheet .png (video only)")
    loc.add_argument("--overwrite", action="store_true", help="replace existing output files (never an input)")
    loc.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    loc.add_argument("--allow-truncated", action="store_true",
                     help="use what decodes of a video whose frames stop before its declared length (a cut MKV "
                          "or MP4 that still has its index; an MP4 cut before its index cannot be read at all)")
    loc.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                     help=f"largest image or video frame, in pixels (default {MAX_PIXELS} = 4096x4096)")
    loc.add_argument("--max-frames", type=int, default=MAX_FRAMES,
                     help=f"most frames sampled from one video (default {MAX_FRAMES})")
    loc.add_argument("--max-seconds", type=float, default=MAX_SECONDS,
                     help=f"longest video, and most audio decoded, in seconds (default {MAX_SECONDS:g})")
    loc.add_argument("--no-progress", action="store_true", help="no progress bar")

    prep = command("prepare", "turn a folder of raw videos into the frames/audio layout the loaders read",
                   PREPARE_EXAMPLE)
    prep.add_argument("videos", type=Path, help="folder of downloaded videos")
    prep.add_argument("out", type=Path, help="dataset folder to write (created when missing)")
    prep.add_argument("--ids", type=Path, help="VGG-Sound style CSV (id,start,label[,split]) or one id per line "
                                               "(default: every video, by file name)")
    prep.add_argument("--frame", default="middle", help="middle (default) or time:SECONDS")
    prep.add_argument("--sample-rate", type=int, default=16000, help="audio rate in Hz (default 16000)")
    prep.add_argument("--duration", type=float, default=3.0, help="audio window in seconds (default 3)")
    prep.add_argument("--pad-short", action="store_true", help="keep clips shorter than the window (the loaders "
                                                               "tile them) instead of listing them as too short")
    prep.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    prep.add_argument("--list", default="train.txt", help="name of the list file of prepared ids, inside OUT")
    prep.add_argument("--no-progress", action="store_true", help="no progress bar")

    exp = command("export", "a trained model to a portable folder (safetensors + config + checksums)",
                  EXPORT_EXAMPLE)
    exp.add_argument("source", type=Path, help="a benchmarks/run.py job folder, or a file DualMeanTeacher.save "
                                               "wrote")
    exp.add_argument("out", type=Path, help="folder to write (its parents are created when missing)")
    exp.add_argument("--network", help="registered network name (a saved file only; default: from the file)")
    exp.add_argument("--network-args", type=json.loads, default={}, help="JSON constructor arguments (saved file)")
    exp.add_argument("--image-size", type=int, help="input frame size the model was trained at (saved file)")
    exp.add_argument("--sample-rate", type=int, help="audio rate it was trained at (saved file)")
    exp.add_argument("--duration", type=float, help="audio window in seconds it was trained at (saved file)")
    exp.add_argument("--overwrite", action="store_true", help="replace an earlier export at OUT (nothing else)")

    demo = command("demo", "a local web page: upload a clip (or an image and a sound), see and download its maps",
                   DEMO_EXAMPLE)
    demo.add_argument("--model", type=Path, required=True, help="a folder written by dmt-wrap export")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                         "only; 0.0.0.0 opens it to the network)")
    demo.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    demo.add_argument("--fps", type=float, default=4.0, help="frames sampled per second of a clip (default 4)")
    demo.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload in MB (default 200)")
    demo.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")

    spl = command("splits", "deterministic labeled / unlabeled / test id files for a dataset folder",
                  SPLITS_EXAMPLE)
    spl.add_argument("root", type=Path, help="dataset folder (frames/, audio/)")
    spl.add_argument("--label-ratio", type=float, required=True, help="labeled part of the training ids, in (0, 1]")
    spl.add_argument("--seed", type=int, default=0)
    spl.add_argument("--ids", help="list of the ids to split (default: every id with a frame and audio)")
    group = spl.add_mutually_exclusive_group()
    group.add_argument("--test", help="list of the test ids (kept out of training)")
    group.add_argument("--test-ratio", type=float, default=0.0, help="part of the ids drawn as test set")
    spl.add_argument("--out", type=Path, help="split folder (default ROOT/splits/ratio<r>-seed<s>; created when "
                                              "missing)")
    return parser


def _limits(args: argparse.Namespace, parser: argparse.ArgumentParser):
    from .video import MediaLimits

    for flag in ("max_pixels", "max_frames", "max_seconds"):
        if not getattr(args, flag) > 0:
            parser.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be positive")
    return MediaLimits(args.max_pixels, args.max_frames, args.max_seconds)


def _device(name: str | None) -> str | None:
    """``--device`` checked before the model loads: a clear line instead of a CUDA traceback."""
    if name is None:
        return None
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ArgumentError(f"--device {name!r}: not a device; pass cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"--device {name}: no CUDA GPU is visible here; pass --device cpu.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ArgumentError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) are visible; pass another "
                            "index.")
    return name


def run_localize(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if (args.video is None) == (args.image is None):
        parser.error("localize: pass a VIDEO, or --image IMAGE with --audio AUDIO")
    if args.image is not None and args.audio is None:
        parser.error("localize --image needs --audio AUDIO (the sound to localize)")
    if args.image is not None and args.sheet is not None:
        parser.error("localize --sheet is for a video; with --image the overlay PNG is the picture")
    if not 0 < args.fps < float("inf"):
        parser.error(f"--fps {args.fps}: must be a positive number of frames per second")
    limits = _limits(args, parser)
    source = args.image if args.image is not None else args.video
    out = args.out or Path(f"{source.stem}_dmt.{'png' if args.image is not None else 'mp4'}")
    model_files = {f"--model {args.model}/{name}": args.model / name
                   for name in ("model.safetensors", "config.json", "SHA256SUMS")}
    inputs = {"VIDEO": args.video, "--image": args.image, "--audio": args.audio, **model_files}
    from .localize import PICTURE_SUFFIXES, Localizer, localize_image, localize_video
    from .video import OUTPUT_SUFFIXES

    check_outputs({"--out": out, "--npz": args.npz, "--sheet": args.sheet}, inputs, args.overwrite,
                  suffixes={"--out": PICTURE_SUFFIXES if args.image is not None else OUTPUT_SUFFIXES,
                            "--npz": (".npz",), "--sheet": PICTURE_SUFFIXES})
    device = _device(args.device)

    localizer = Localizer.from_folder(args.model, device=device)
    if args.image is not None:
        summary = localize_image(localizer, args.image, args.audio, out, npz=args.npz, overwrite=args.overwrite,
                                 limits=limits)
        print(f"wrote {summary['png']}" + (f" and {summary['npz']}" if args.npz else ""))
        return
    summary = localize_video(localizer, args.video, out, fps=args.fps, audio_file=args.audio, npz=args.npz,
                             sheet=args.sheet, progress=not args.no_progress, allow_truncated=args.allow_truncated,
                             overwrite=args.overwrite, limits=limits)
    extras = "".join(f", {summary[key]}" for key in ("npz", "sheet") if key in summary)
    print(f"wrote {summary['video']} ({summary['frames']} frames at {args.fps:g} fps){extras}")


def run_prepare(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: must be at least 1")
    from .prepare import PrepareSettings, prepare

    try:
        settings = PrepareSettings(frame=args.frame, sample_rate=args.sample_rate, duration=args.duration,
                                   pad_short=args.pad_short)
    except ValueError as error:
        parser.error(str(error))
    manifest = prepare(args.videos, args.out, args.ids, settings, workers=args.workers, list_name=args.list,
                       progress=not args.no_progress)
    print(manifest["summary"])


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    source, out = args.source, args.out
    if not os.path.lexists(source):
        raise ArgumentError(f"{source} does not exist; pass a file DualMeanTeacher.save wrote, or a folder holding "
                            "one as model.pt (e.g. a finished benchmarks/run.py job folder).")
    resolved_source, resolved_out = source.resolve(), out.resolve()
    if resolved_out == resolved_source or resolved_source.is_relative_to(resolved_out):
        raise ArgumentError(f"OUT {out} would replace the source {source}; choose another output folder.")
    data = {"image_size": args.image_size, "sample_rate": args.sample_rate, "duration": args.duration}
    if os.path.lexists(out) and not args.overwrite:
        raise ArgumentError(f"{out} already exists; pass --overwrite to replace that earlier export, or "
                            "choose another output folder.")
    from .pretrained import check_destination

    try:
        check_destination(out, args.overwrite)
    except FileExistsError as error:
        raise ArgumentError(f"{error}".replace("pass overwrite=True", "pass --overwrite")) from None
    from .export import export_saved

    try:
        folder = export_saved(source, out, data=data, network=args.network, network_kwargs=args.network_args,
                              overwrite=args.overwrite)
    except ValueError as error:
        if "save_pretrained needs the network's input" not in str(error):
            raise
        parser.error(f"{source} records no input size: pass --image-size, --sample-rate and --duration "
                     "(the input it was trained on)")
    print(f"wrote {folder} (model.safetensors, config.json, SHA256SUMS)")


def run_splits(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not 0 < args.label_ratio <= 1:
        parser.error(f"--label-ratio {args.label_ratio:g}: must lie in (0, 1]")
    if not 0 <= args.test_ratio < 1:
        parser.error(f"--test-ratio {args.test_ratio:g}: must lie in [0, 1)")
    from .datasets.split_files import read_split, split_folder, write_split

    folder = split_folder(args.root, args.label_ratio, args.seed, args.out)
    existed = folder.exists()
    folder = write_split(args.root, args.label_ratio, args.seed, out=folder, ids=args.ids, test=args.test,
                         test_ratio=args.test_ratio)
    counts = ", ".join(f"{len(names)} {part}" for part, names in read_split(folder).items())
    print(f"{'unchanged' if existed else 'wrote'} {folder}: {counts}")


def run_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not 0 < args.fps < float("inf"):
        parser.error(f"--fps {args.fps}: must be a positive number of frames per second")
    if not 0 < args.max_upload_mb < float("inf"):
        parser.error(f"--max-upload-mb {args.max_upload_mb}: must be a positive number of megabytes")
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: must lie in 1-65535")
    from .demo import import_gradio, serve

    try:
        import_gradio()  # Gradio is an optional extra: only this command imports it
    except ModuleNotFoundError as error:
        raise ArgumentError(str(error)) from None
    serve(args.model, host=args.host, port=args.port, fps=args.fps, max_upload_mb=args.max_upload_mb,
          device=_device(args.device))


COMMANDS: dict[str, Callable[[argparse.Namespace, argparse.ArgumentParser], None]] = {
    "localize": run_localize, "prepare": run_prepare, "export": run_export, "splits": run_splits, "demo": run_demo}


def one_line(error: BaseException) -> str:
    """An exception as one line: its message, or its type and file when it has none (timm's bare errors)."""
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in text:
        text = f"{error.filename}: {error.strerror or text or type(error).__name__}"
    return text or type(error).__name__


def guarded(prog: str, run: Callable[[], int | None], debug: bool) -> int:
    """Run ``run``; a refusal becomes one line on stderr and an exit status, Ctrl-C "interrupted".

    Exit status 2 for a usage error (``ArgumentError``), 1 for bad input or any other error,
    130 for Ctrl-C. Partial outputs are temporary files that their writers remove on the way
    out, so nothing half-written is left. ``debug`` re-raises with the traceback.
    """
    try:
        return run() or 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted; no partial output was left behind", file=sys.stderr)
        return 130
    except ArgumentError as error:
        if debug:
            raise
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        if debug:
            raise
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 (the one-line contract: a bug still gets one line)
        if debug:
            raise
        print(f"{prog}: error: unexpected {type(error).__name__}: {one_line(error)}; rerun with --debug for the "
              "traceback and report it", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input ends with ``dmt-wrap COMMAND: error: ...`` (exit 1; usage errors 2)."""
    parser = _parser()
    args = parser.parse_args(argv)
    prog = f"dmt-wrap {args.command}"

    def show(message, category, *_args, **_kwargs) -> None:
        print(f"{prog}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    def run() -> None:
        with warnings.catch_warnings():
            warnings.showwarning = show
            COMMANDS[args.command](args, args.subparser)

    return guarded(prog, run, getattr(args, "debug", False))
