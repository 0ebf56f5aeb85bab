"""Objects and their recordings, discovered from Debian's ``tuxpaint-stamps-default``.

A stamp is ``NAME.png`` (an RGBA photo cut-out) beside ``NAME.ogg`` (a recording of its
sound). ``NAME_desc*.ogg`` files are spoken descriptions, not the object's sound, and are
not used. Stamps whose recordings are byte-identical (the German umlaut letters share
theirs) are merged into one class, named after the first by path.

Every class is decoded once per process, lazily: the PNG cropped to its alpha bounding
box, the recording mixed to mono, resampled with ``torchaudio.functional.resample`` and
stripped of leading and trailing silence.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_STAMPS_DIR = "/usr/share/tuxpaint/stamps"
STAMPS_ENV = "DMT_WRAP_STAMPS"

# 24 classes with distinct, mostly >= 1 s recordings of clearly different sounds and
# photo cut-outs of moderate aspect ratio (so a box can cover 30-60% of the image).
DEFAULT_CLASSES = (
    "cow", "dog", "horse", "lion", "elephant", "sheep", "donkey", "gorilla", "dolphin",
    "whale", "frog", "saw", "rooster", "duck", "owl", "crow", "seagull", "cuckoo",
    "violin", "drumkit", "cymbal_crash", "kettle", "toilet", "firetruck",
)

# What makes a stamp usable beyond the defaults: big enough to be upscaled to a large
# object, not a thin outline, not an extreme aspect ratio, and a recording long enough to
# be split into a train and a test part.
MAX_IMAGE_SIDE = 256  # larger cut-outs are shrunk once at decode (objects never exceed 224 px)
MIN_IMAGE_SIDE = 64
MIN_ALPHA_COVERAGE = 0.15
MAX_ASPECT = 3.0
MIN_RECORDING_SECONDS = 0.5
ALPHA_THRESHOLD = 128  # alpha >= this (of 255) counts as the object
SILENCE_DB = -35.0  # frames quieter than this, relative to the loudest, count as silence
FRAME_SECONDS = 0.02


@dataclass(frozen=True)
class Stamp:
    """A discovered image + recording pair (paths only, nothing decoded)."""

    name: str
    png: Path
    ogg: Path


@dataclass(frozen=True)
class Source:
    """A decoded class: the object's cut-out and its recording.

    ``rgba`` is uint8 ``[h, w, 4]`` cropped to the alpha bounding box (longest side at
    most ``MAX_IMAGE_SIDE``); ``waveform`` is float32 mono at ``sample_rate``,
    silence-trimmed and peak-normalised; ``activity`` flags its non-silent frames, which
    ``split_point`` uses to divide it between the train and test splits.
    """

    name: str
    rgba: np.ndarray
    waveform: np.ndarray
    sample_rate: int
    activity: np.ndarray  # bool per frame of FRAME_SECONDS: not silent

    @cached_property
    def pyramid(self) -> tuple[Image.Image, ...]:
        """``rgba`` as premultiplied ("RGBa") Pillow images, sqrt(2) apart, down to 16 px.

        Made once per process, so that pasting resizes from a level at most sqrt(2) larger
        than the target (cheap) and skips the premultiplication Pillow would otherwise
        redo on every resize.
        """
        full = Image.fromarray(self.rgba, mode="RGBA").convert("RGBa")
        levels, factor = [full], 1 / math.sqrt(2)
        while min(full.size) * factor >= 16:
            size = (round(full.size[0] * factor), round(full.size[1] * factor))
            levels.append(full.resize(size, Image.Resampling.LANCZOS))
            factor /= math.sqrt(2)
        return tuple(levels)

    @cached_property
    def slopes(self) -> np.ndarray:
        """``np.diff(waveform)``: what linear interpolation needs, taken once per process."""
        slopes = np.diff(self.waveform)
        slopes.flags.writeable = False
        return slopes

    def resized(self, width: int, height: int) -> Image.Image:
        """The cut-out resized to ``width`` x ``height``, as straight (not premultiplied) RGBA."""
        level = next((image for image in reversed(self.pyramid)
                      if image.size[0] >= width and image.size[1] >= height), self.pyramid[0])
        return level.resize((width, height), Image.Resampling.BILINEAR).convert("RGBA")

    @property
    def aspect(self) -> float:
        """Width over height of the object's bounding box."""
        return self.rgba.shape[1] / self.rgba.shape[0]

    def split_point(self, test_fraction: float) -> int:
        """Sample index splitting the recording into train ``[0, p)`` and test ``[p, n)``.

        Placed by active (non-silent) frames rather than by time, so that the held-out
        test part is never just the recording's decaying tail or a pause.
        """
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
        frame = self.frame_length
        active_frames = np.flatnonzero(self.activity)
        position = int(round(len(active_frames) * (1.0 - test_fraction)))
        cut = active_frames[min(position, len(active_frames) - 1)]
        return int(min(max(cut * frame, frame), len(self.waveform) - frame))

    @property
    def frame_length(self) -> int:
        return max(1, int(round(FRAME_SECONDS * self.sample_rate)))


def stamps_dir_from(stamps_dir: str | os.PathLike | None) -> Path:
    """The stamps directory: the argument, else ``$DMT_WRAP_STAMPS``, else Debian's path."""
    if stamps_dir is not None:
        return Path(stamps_dir)
    return Path(os.environ.get(STAMPS_ENV, DEFAULT_STAMPS_DIR))


def _audio_digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@lru_cache(maxsize=8)
def discover_stamps(stamps_dir: Path) -> tuple[Stamp, ...]:
    """All image + recording pairs under ``stamps_dir``, one per distinct recording.

    Sorted by relative path; a stem that occurs in two folders with different recordings
    is named ``folder/stem``. Returns an empty tuple when the folder is missing.
    """
    if not stamps_dir.is_dir():
        return ()
    pairs = sorted((png.relative_to(stamps_dir), png) for png in stamps_dir.rglob("*.png")
                   if png.with_suffix(".ogg").is_file())
    by_digest: dict[str, list[Path]] = {}
    for _, png in pairs:
        by_digest.setdefault(_audio_digest(png.with_suffix(".ogg")), []).append(png)
    kept = [group[0] for group in by_digest.values()]
    stem_count: dict[str, int] = {}
    for png in kept:
        stem_count[png.stem] = stem_count.get(png.stem, 0) + 1
    stamps = []
    for group in by_digest.values():
        png = group[0]
        name = png.stem if stem_count[png.stem] == 1 else f"{png.parent.name}/{png.stem}"
        stamps.append(Stamp(name, png, png.with_suffix(".ogg")))
    return tuple(sorted(stamps, key=lambda s: s.png))


def stamps_fingerprint(stamps: Sequence[Stamp]) -> str:
    """A hash of the discovered files (path and size), to key stored evaluation sets."""
    lines = [f"{s.name}|{p}|{p.stat().st_size}" for s in stamps for p in (s.png, s.ogg)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _decode_image(stamp: Stamp) -> np.ndarray:
    try:
        with Image.open(stamp.png) as img:
            image = img.convert("RGBA")
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(f"{stamp.png}: the stamp image cannot be decoded ({error}); "
                         "reinstall tuxpaint-stamps-default or remove the stamp.") from error
    ys, xs = np.nonzero(np.asarray(image)[..., 3] >= ALPHA_THRESHOLD)
    if ys.size == 0:
        raise ValueError(f"{stamp.png}: the stamp image has no opaque pixel.")
    image = image.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image).copy()


def frame_activity(waveform: np.ndarray, frame: int) -> np.ndarray:
    """Per-frame flag: the frame's RMS is within ``SILENCE_DB`` of the loudest frame."""
    count = max(1, len(waveform) // frame)
    frames = np.resize(waveform, count * frame).reshape(count, frame)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    return rms > rms.max() * 10 ** (SILENCE_DB / 20) if rms.max() > 0 else np.zeros(count, bool)


def _decode_recording(stamp: Stamp, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        data, rate = sf.read(str(stamp.ogg), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, ValueError) as error:  # sf.LibsndfileError is a RuntimeError
        raise ValueError(f"{stamp.ogg}: the recording cannot be decoded ({error}); "
                         "reinstall tuxpaint-stamps-default or remove the stamp.") from error
    if data.shape[0] == 0:
        raise ValueError(f"{stamp.ogg}: the recording is empty.")
    mono = torch.from_numpy(data.mean(axis=1))
    if rate != sample_rate:
        mono = AF.resample(mono, rate, sample_rate)
    wave = mono.numpy().astype(np.float32)
    frame = max(1, int(round(FRAME_SECONDS * sample_rate)))
    active = frame_activity(wave, frame)
    if not active.any():
        raise ValueError(f"{stamp.ogg}: the recording is silent.")
    first, last = np.flatnonzero(active)[[0, -1]]
    wave = wave[first * frame:(last + 1) * frame]
    wave = wave / max(float(np.abs(wave).max()), 1e-8)
    return wave.astype(np.float32), frame_activity(wave, frame)


def decode_stamp(stamp: Stamp, sample_rate: int) -> Source:
    """Decode one stamp into a ``Source`` (not cached; see ``SourceBank``)."""
    waveform, activity = _decode_recording(stamp, sample_rate)
    return Source(stamp.name, _decode_image(stamp), waveform, sample_rate, activity)


def is_usable(source: Source) -> bool:
    """Whether a decoded stamp meets the size, shape and duration criteria above."""
    height, width = source.rgba.shape[:2]
    coverage = float((source.rgba[..., 3] >= ALPHA_THRESHOLD).mean())
    return (min(height, width) >= MIN_IMAGE_SIDE and coverage >= MIN_ALPHA_COVERAGE
            and 1 / MAX_ASPECT <= source.aspect <= MAX_ASPECT
            and len(source.waveform) >= MIN_RECORDING_SECONDS * source.sample_rate)


@lru_cache(maxsize=512)
def _cached_source(stamp: Stamp, sample_rate: int) -> Source:
    return decode_stamp(stamp, sample_rate)


def select_stamp_classes(stamps_dir: Path, classes: int | Sequence[str] | None,
                         sample_rate: int) -> list[Source]:
    """The class set, decoded: the defaults, the first ``n`` usable ones, or named ones.

    ``None`` gives ``DEFAULT_CLASSES`` (topped up from other usable stamps, with a
    warning, if this package version lacks some); an int gives the first ``n`` of the
    ranked pool (the defaults first, then other usable stamps by path); a sequence of
    names gives exactly those.
    """
    stamps = discover_stamps(stamps_dir)
    by_name = {stamp.name: stamp for stamp in stamps}
    if classes is not None and not isinstance(classes, int):
        missing = [name for name in classes if name not in by_name]
        if missing:
            raise ValueError(f"classes {missing} are not stamps with a recording under "
                             f"{stamps_dir}; "
                             f"available: {sorted(by_name)}.")
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes lists a name twice: {list(classes)}.")
        return [_cached_source(by_name[name], sample_rate) for name in classes]
    wanted = len(DEFAULT_CLASSES) if classes is None else classes
    if wanted < 2:
        raise ValueError(f"classes must be at least 2, got {classes}.")
    pool = [by_name[name] for name in DEFAULT_CLASSES if name in by_name]
    pool += [stamp for stamp in stamps if stamp.name not in DEFAULT_CLASSES]
    chosen: list[Source] = []
    for stamp in pool:
        if len(chosen) == wanted:
            break
        try:
            source = _cached_source(stamp, sample_rate)
        except ValueError as error:  # a silent or empty stamp: not a class
            logger.info("skipping stamp %s: %s", stamp.name, error)
            continue
        if stamp.name in DEFAULT_CLASSES or is_usable(source):
            chosen.append(source)
    if len(chosen) < wanted:
        raise ValueError(f"classes={classes}: only {len(chosen)} usable stamps were found; "
                         "ask for fewer classes.")
    absent = [name for name in DEFAULT_CLASSES[:wanted] if name not in by_name]
    if absent:
        logger.warning("default composed classes %s are not in this tuxpaint-stamps "
                       "version; used other stamps instead.", absent)
    return chosen
