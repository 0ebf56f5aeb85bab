"""``dmt-wrap prepare``: a folder of raw videos to the layout the dataset loaders read.

For every id: ``frames/<id>.jpg`` (one frame, by an explicit rule) and ``audio/<id>.wav``
(mono, ``sample_rate`` Hz, ``duration`` s centred on that frame, shifted inside the clip at
its ends), the list file of the prepared ids, and ``manifest.json`` recording the rule, the
window and what happened to every id: prepared, missing, unreadable (with the reason), no
audio, too short. Re-running skips finished ids; files are written atomically.
"""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import soundfile as sf
from PIL import Image
from tqdm.auto import tqdm

from .atomic import atomic_path, write_text_atomic
from .outputs import OutputError, check_outputs
from .clips import window_start
from .datasets.media import DataError, safe_join
from .video import VIDEO_SUFFIXES, probe, read_audio, sample_frames

MANIFEST = "manifest.json"
STATUSES = ("prepared", "missing", "unreadable", "no_audio", "too_short")


@dataclass(frozen=True)
class PrepareSettings:
    """How each clip becomes a frame and an audio window (recorded in the manifest).

    ``frame``: ``"middle"`` (the frame on screen at half the video's declared length) or
    ``"time:SECONDS"`` (the frame on screen SECONDS after the video's start).
    ``pad_short``: keep clips whose audio is shorter than ``duration`` (the loaders tile
    them) instead of listing them as too short.
    """

    frame: str = "middle"
    sample_rate: int = 16000
    duration: float = 3.0
    pad_short: bool = False
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        self.frame_time(10.0)  # validates the rule
        if self.sample_rate <= 0 or not self.duration > 0:
            raise ValueError(f"--sample-rate {self.sample_rate} and --duration {self.duration} must be positive.")

    def frame_time(self, length: float) -> float:
        """Seconds after the video's start of the frame to keep, for a video of ``length`` seconds."""
        if self.frame == "middle":
            return length / 2
        kind, _, value = self.frame.partition(":")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if kind != "time" or not seconds >= 0:
            raise ValueError(f"--frame {self.frame!r}: use 'middle' or 'time:SECONDS' (e.g. time:4.5).")
        return seconds

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "audio_window": f"{self.duration:g} s centred on the frame, shifted inside the "
                                                "clip at its ends; mono, 16-bit WAV"}


def read_id_list(path: Path) -> list[tuple[str, str]]:
    """``(output id, video stem to look for)`` per line of a VGG-Sound style CSV or a plain id list.

    CSV rows ``youtube_id,start_seconds,label[,split]`` give the id ``<youtube_id>_<start:06d>``
    (VGG-Sound's file naming); plain lines give the id itself. Blank lines are skipped.
    """
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the id list ({exc}); pass a CSV of id,start,label rows or a text "
                        "file of one id per line.", path) from exc
    ids = []
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or not row[0].strip():
            continue
        if len(row) == 1:
            ids.append(row[0].strip())
            continue
        try:
            start = int(float(row[1]))
        except ValueError:
            if number == 1:
                continue  # a header row
            raise DataError(f"{path} line {number}: start {row[1]!r} is not a number; rows are "
                            "youtube_id,start_seconds,label.", path) from None
        ids.append(f"{row[0].strip()}_{start:06d}")
    return [(name, name) for name in dict.fromkeys(ids)]


def find_videos(folder: Path) -> dict[str, Path]:
    """Video files directly in ``folder`` by stem."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; pass the folder holding the downloaded videos.", folder)
    return {path.stem: path for path in sorted(folder.iterdir()) if path.suffix.lower() in VIDEO_SUFFIXES}


def check_id(name: str, source: str) -> None:
    """Refuse an id that cannot be one line of a list file or a plain file name (a newline, a control character)."""
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise DataError(f"{source}: the id {name!r} holds a line break or control character, which would split "
                        "it in the list file; rename the file (or fix the id list).", source)


def settings_difference(recorded: Any, settings: dict[str, Any]) -> str:
    """``"duration 3 (now 1)"``: the settings that differ between a manifest and this run."""
    if not isinstance(recorded, dict):
        return "settings unreadable"
    return ", ".join(f"{key} {recorded.get(key)!r} (now {value!r})" for key, value in settings.items()
                     if recorded.get(key) != value) or "settings"


def check_out_folder(out: Path, videos: Path, list_name: str, ids: Path | None) -> Path:
    """The list file's path inside ``out``, refusing an ``out`` this command did not write or that would hit an input."""
    list_path = safe_join(out, list_name, f"--list {list_name!r}")
    if "/" in list_name:
        raise DataError(f"--list {list_name!r}: give a file name; the list is written inside {out}.", out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"OUT {out} is a file; pass a folder to write the dataset into.")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise OutputError(f"OUT {out} exists and was not written by `dmt-wrap prepare` (no {MANIFEST}); choose a "
                          "new or empty folder.")
    check_outputs({"--list": list_path, "manifest": out / MANIFEST}, {"VIDEOS": videos, "--ids": ids}, overwrite=True)
    return list_path


def match_video(stem: str, videos: dict[str, Path]) -> Path | None:
    """``videos[stem]``, else the one video whose stem starts with ``stem_`` (``<id>_<start>_<end>`` names)."""
    if stem in videos:
        return videos[stem]
    candidates = [path for name, path in videos.items() if name.startswith(stem + "_")]
    return candidates[0] if len(candidates) == 1 else None


def finished(out: Path, name: str) -> bool:
    return (out / "frames" / f"{name}.jpg").is_file() and (out / "audio" / f"{name}.wav").is_file()


def prepare_one(name: str, video: str, out: str, settings: PrepareSettings) -> dict[str, Any]:
    """Prepare one clip; a record ``{"id", "status", ...}`` (never raises for a bad video)."""
    record: dict[str, Any] = {"id": name, "video": Path(video).name}
    try:
        declared = probe(video)
        start, length = declared.start, declared.duration
        if not declared.has_audio:
            return {**record, "status": "no_audio", "reason": "the file has no audio track"}
        at = settings.frame_time(length)
        if at > length:
            return {**record, "status": "too_short", "reason": f"frame at {at:g} s lies beyond the clip's "
                                                              f"{length:.2f} s"}
        frames = list(sample_frames(video, times=[start + at]))
        if not frames:
            return {**record, "status": "unreadable", "reason": f"no frame decodes at {at:g} s (truncated?)"}
        audio = read_audio(video, rate=settings.sample_rate, mono=True)
    except DataError as error:
        return {**record, "status": "unreadable", "reason": str(error)}
    wave = audio.mono()
    length_samples = round(settings.duration * settings.sample_rate)
    if wave.size < length_samples and not settings.pad_short:
        return {**record, "status": "too_short", "reason": f"audio lasts {audio.seconds:.2f} s, the window is "
                                                          f"{settings.duration:g} s (--pad-short keeps it)"}
    first = window_start(wave.size, (start + at - audio.start) * settings.sample_rate, length_samples)
    clip = wave[first:first + length_samples]
    out_path = Path(out)
    with atomic_path(out_path / "audio" / f"{name}.wav") as tmp:
        sf.write(tmp, clip, settings.sample_rate, subtype="PCM_16", format="WAV")
    with atomic_path(out_path / "frames" / f"{name}.jpg") as tmp:
        Image.fromarray(frames[0][1]).save(tmp, format="JPEG", quality=settings.jpeg_quality)
    window = [round(first / settings.sample_rate, 4), round((first + clip.size) / settings.sample_rate, 4)]
    return {**record, "status": "prepared", "frame_time": round(at, 4), "audio_window": window}


def _pool(workers: int) -> ProcessPoolExecutor:
    # fork: the workers only run PyAV, NumPy and Pillow, and start instantly
    methods = multiprocessing.get_all_start_methods()
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork" if "fork" in methods
                                                                                 else "spawn"))


def load_manifest(out: Path, settings: PrepareSettings) -> dict[str, Any]:
    """The previous run's manifest, refusing one written with other settings."""
    path = out / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        raise DataError(f"{path} is not a readable manifest; remove it to prepare {out} again.", path) from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is not a manifest written by `dmt-wrap prepare`; remove it or use another folder.",
                        path)
    if manifest.get("settings") != settings.record():
        differ = settings_difference(manifest.get("settings"), settings.record())
        raise DataError(f"{path} was prepared with other settings: {differ}; use another output folder, or the same "
                        "settings to resume.", path)
    return manifest


def summary_line(counts: dict[str, int], listed: int, manifest_path: Path) -> str:
    return (f"prepared {counts['prepared']} of {listed} listed: {counts['missing']} missing, "
            f"{counts['unreadable']} unreadable, {counts['no_audio']} without audio, {counts['too_short']} too "
            f"short (manifest {manifest_path})")


def prepare(videos: str | os.PathLike, out: str | os.PathLike, ids: str | os.PathLike | None = None,
            settings: PrepareSettings | None = None, workers: int = 1, list_name: str = "train.txt",
            progress: bool = True) -> dict[str, Any]:
    """Prepare every listed id (default: every video in ``videos``, by its file name) under ``out``.

    Returns the manifest (also written to ``out/manifest.json``, with its one-line summary).
    """
    settings = settings or PrepareSettings()
    videos, out = Path(videos), Path(out)
    available = find_videos(videos)
    if not available:
        raise DataError(f"{videos} holds no video files ({', '.join(VIDEO_SUFFIXES)}); pass the folder holding the "
                        "downloaded videos.", videos)
    wanted = read_id_list(Path(ids)) if ids is not None else [(stem, stem) for stem in available]
    if not wanted:
        raise DataError(f"{ids}: lists no ids; pass a CSV of id,start,label rows or one id per line.", ids)
    for name, stem in wanted:
        check_id(name, str(available.get(stem, ids or videos)))
        safe_join(out, name, f"id {name!r}")
    list_path = check_out_folder(out, videos, list_name, Path(ids) if ids is not None else None)
    previous = {record["id"]: record for record in load_manifest(out, settings).get("records", [])}
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for name, stem in wanted:
        video = match_video(stem, available)
        if video is None:
            records[name] = {"id": name, "status": "missing", "reason": f"no video {stem}.* in {videos}"}
        elif finished(out, name) and previous.get(name, {}).get("status") == "prepared":
            records[name] = previous[name]
        else:
            todo.append((name, str(video)))
    bar = tqdm(total=len(todo), desc="prepare", unit="clip", disable=not progress)
    if workers > 1 and len(todo) > 1:
        with _pool(workers) as pool:
            futures = [pool.submit(prepare_one, name, video, str(out), settings) for name, video in todo]
            for future in futures:
                record = future.result()
                records[record["id"]] = record
                bar.update()
    else:
        for name, video in todo:
            records[name] = prepare_one(name, video, str(out), settings)
            bar.update()
    bar.close()
    ordered = [records[name] for name, _ in wanted]
    counts = {status: sum(r["status"] == status for r in ordered) for status in STATUSES}
    manifest = {"settings": settings.record(), "videos": str(videos), "ids": None if ids is None else str(ids),
                "list": list_name, "counts": {**counts, "listed": len(ordered)},
                "summary": summary_line(counts, len(ordered), out / MANIFEST), "records": ordered}
    prepared = "".join(f"{r['id']}\n" for r in ordered if r["status"] == "prepared")
    write_text_atomic(list_path, prepared)
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest
