"""Reading frames and audio clips for the real AVSL datasets, with errors that say what to fix.

Every failure to read a file is a ``DataError`` naming the file, what is wrong with it and
the fix, so that a 144k-clip run never trains on a silently wrong sample.
``FrameAudioDataset`` is the part both real loaders share: the item format and the
``on_error`` policy; the loaders only parse their own annotation formats.
"""
from __future__ import annotations

import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
ON_ERROR_POLICIES = ("raise", "skip")
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming writers leave the data size unset


class DataError(ValueError):
    """A dataset file or annotation entry is missing, unreadable or malformed.

    ``path`` is the offending file, so that a dataset under ``on_error="skip"`` can
    record what it skipped.
    """

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


def safe_join(root: Path, relative: str, what: str) -> Path:
    """``root / relative``, refusing a path that could leave ``root``.

    ``what`` names where ``relative`` came from (a list file line, a JSON entry) so that
    the error points at the entry to fix. Symlinks inside the root are allowed on purpose:
    frames and audio often live on another disk.
    """
    pure = PurePath(relative)
    if not relative.strip() or pure.is_absolute() or ".." in pure.parts or "\\" in relative:
        raise DataError(f"{what}: path {relative!r} is empty, absolute or contains '..'; "
                        f"entries must be plain names relative to the dataset root {root}.",
                        path=root)
    return root / relative


def find_audio(stem: Path) -> Path | None:
    """The first existing ``stem.wav`` / ``stem.flac`` / ``stem.ogg``, or None."""
    for ext in AUDIO_EXTENSIONS:
        candidate = stem.with_name(stem.name + ext)
        if candidate.is_file():
            return candidate
    return None


def read_image(path: Path | str, size: int) -> Tensor:
    """An RGB frame as a float tensor ``[3, size, size]`` in ``[0, 1]``.

    Plain bicubic resize to a square, as the original AVSL test pipelines do.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decodes now, so a truncated file fails here rather than later
            if img.mode.startswith("I;16"):  # 16-bit: PIL's convert("RGB") would clip it at 255
                img = Image.fromarray((np.asarray(img, dtype=np.float32) / 257.0).round().astype(np.uint8))
            rgb = img.convert("RGB")
    except FileNotFoundError as err:
        raise DataError(f"{path}: image file is missing; restore it or remove its entry "
                        "from the list/annotation file.", path) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: image is empty, corrupt or truncated ({err}); re-extract "
                        "the frame or remove its entry from the list/annotation file.",
                        path) from err
    resized = TF.resize(rgb, [size, size], interpolation=InterpolationMode.BICUBIC)
    return TF.to_dtype(TF.to_image(resized), torch.float32, scale=True).as_subclass(Tensor)


def _check_wav_complete(path: Path) -> None:
    """Refuse a WAV whose data chunk is shorter than its header says.

    libsndfile silently reads what is there, so a half-downloaded WAV would otherwise
    give a short clip that gets tiled into a plausible but wrong sample.
    """
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # RF64 / W64 / not a WAV: leave the check to libsndfile
        file_size = path.stat().st_size
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                available = file_size - handle.tell()
                if chunk_size not in _WAV_UNKNOWN_SIZES and available < chunk_size:
                    raise DataError(f"{path}: WAV file is truncated (header declares "
                                    f"{chunk_size} data bytes, {available} present); "
                                    "re-extract the audio or remove its entry.", path)
                return
            handle.seek(chunk_size + (chunk_size & 1), 1)


_OGG_MAX_PAGE = 27 + 255 + 255 * 255


def _check_ogg_complete(path: Path) -> None:
    """Refuse an Ogg file whose last page is cut short or is not an end-of-stream page.

    libsndfile decodes a truncated Ogg Vorbis file up to the cut without complaint, so a
    half-downloaded clip would otherwise be tiled into a plausible but wrong sample.
    """
    with open(path, "rb") as handle:
        if handle.read(4) != b"OggS":
            return  # not an Ogg container: leave the check to libsndfile
        size = path.stat().st_size
        handle.seek(max(0, size - _OGG_MAX_PAGE))
        tail = handle.read()
    start = tail.rfind(b"OggS")
    header = tail[start:start + 27]
    complete = len(header) == 27
    if complete:
        segments = tail[start + 27:start + 27 + header[26]]
        complete = len(segments) == header[26] and start + 27 + len(segments) + sum(segments) == len(tail)
    if not complete or not header[5] & 0x04:
        raise DataError(f"{path}: Ogg file is truncated (its last page is "
                        f"{'cut short' if not complete else 'not the end of the stream'}); "
                        "re-extract the audio or remove its entry.", path)


def _load_mono(path: Path) -> tuple[np.ndarray, int]:
    if not path.is_file():
        raise DataError(f"{path}: audio file is missing; restore it or remove its entry "
                        "from the list/annotation file.", path)
    if path.suffix.lower() == ".wav":
        _check_wav_complete(path)
    elif path.suffix.lower() in (".ogg", ".oga"):
        _check_ogg_complete(path)
    try:
        with sf.SoundFile(path) as audio_file:
            declared = audio_file.frames
            data = audio_file.read(dtype="float32", always_2d=True)
            rate = audio_file.samplerate
    except (sf.SoundFileError, RuntimeError) as err:
        raise DataError(f"{path}: audio is empty, corrupt or in an unsupported format "
                        f"({err}); re-extract it as WAV/FLAC/OGG or remove its entry.",
                        path) from err
    if data.shape[0] == 0:
        raise DataError(f"{path}: audio clip has no samples; re-extract it or remove its "
                        "entry.", path)
    if data.shape[0] < declared:
        raise DataError(f"{path}: audio is truncated ({data.shape[0]} of {declared} "
                        "samples decoded); re-extract it or remove its entry.", path)
    if not np.isfinite(data).all():
        raise DataError(f"{path}: audio holds NaN or inf samples; re-extract it or remove "
                        "its entry.", path)
    return data.mean(axis=1), rate


def read_audio_clip(path: Path | str, sample_rate: int, duration: float,
                    allow_silent: bool = False) -> Tensor:
    """A mono clip of ``round(duration * sample_rate)`` samples around the file's centre.

    Channels are averaged, the clip is resampled to ``sample_rate`` and centre-cropped;
    a clip shorter than ``duration`` is tiled (repeated from its start), as the original
    loaders do. A digitally silent clip (all samples zero) usually means a failed
    extraction and is refused unless ``allow_silent``.
    """
    path = Path(path)
    mono, rate = _load_mono(path)
    if not allow_silent and not mono.any():
        raise DataError(f"{path}: audio clip is digitally silent (all samples are zero); "
                        "re-extract it, remove its entry, or pass allow_silent=True to "
                        "keep silent clips.", path)
    wave = torch.from_numpy(np.ascontiguousarray(mono))
    if rate != sample_rate:
        wave = AF.resample(wave, orig_freq=rate, new_freq=sample_rate)
    length = round(duration * sample_rate)
    if wave.numel() < length:
        wave = wave.repeat(math.ceil(length / wave.numel()))
        return wave[:length].contiguous()
    start = (wave.numel() - length) // 2
    return wave[start:start + length].contiguous()


Boxes = tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class PairEntry:
    """One frame / audio pair and its boxes (None when the split has no annotations)."""

    name: str
    frame: Path
    audio: Path
    boxes: Boxes | None


def read_lines(path: Path, what: str, expected: str) -> list[str]:
    """The lines of a text list file; a ``DataError`` naming it and its expected form if unreadable."""
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the {what} ({err}); pass a text file {expected}.",
                        path) from err


class FrameAudioDataset(Dataset, ABC):
    """Frame + audio pairs with the shared item format and bad-input policy.

    Items are dicts: ``image`` float ``[3, S, S]`` in [0, 1], ``audio`` float ``[T]`` mono
    at ``sample_rate`` (``T = round(duration * sample_rate)``), ``mask`` float ``[S, S]``
    (when the dataset has boxes) and ``index`` (the position of the returned item).

    ``on_error="raise"`` turns any bad entry or file into a ``DataError``.
    ``on_error="skip"`` drops entries with bad annotations or missing files at
    construction, and, for a frame or clip that fails to decode in ``__getitem__``, returns
    the next readable item (wrapping around) instead; each skip is recorded once in
    ``skipped`` as ``(path, reason)``. Decoding failures found inside DataLoader worker
    processes are recorded in the workers' copies, not in the main process.
    """

    def __init__(self, root: str | Path, *, image_size: int, sample_rate: int,
                 duration: float, on_error: str, allow_silent: bool) -> None:
        if on_error not in ON_ERROR_POLICIES:
            raise ValueError(f"on_error={on_error!r}; expected one of {ON_ERROR_POLICIES}.")
        for name, value in (("image_size", image_size), ("sample_rate", sample_rate),
                            ("duration", duration)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name}={value!r}; it must be positive and finite.")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"dataset root {self.root} is not a directory; pass the folder "
                            "holding frames/ and audio/.", self.root)
        self.image_size = int(image_size)
        self.sample_rate = int(sample_rate)
        self.duration = float(duration)
        self.on_error = on_error
        self.allow_silent = allow_silent
        self.skipped: list[tuple[str, str]] = []
        self.entries: list[PairEntry] = []
        self.coverage = ""

    @abstractmethod
    def boxes_to_mask(self, boxes: Boxes) -> Tensor:
        """The ground truth ``G`` ``[S, S]`` for an entry's boxes (dataset-specific)."""

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def reject(self, error: DataError) -> None:
        """Raise ``error`` under ``on_error="raise"``; record it under ``"skip"``."""
        if self.on_error == "raise":
            raise error
        record = (error.path or str(self.root), str(error))
        if record not in self.skipped:
            self.skipped.append(record)

    def read_id_list(self, list_file: str | Path) -> list[tuple[str, str]]:
        """The ids of a text file (one per line, blank lines ignored), each with its file and
        line number, in order. ``list_file`` is relative to the root or absolute; an id that
        could leave the root is rejected."""
        list_path = self.root / list_file
        lines = read_lines(list_path, "id list", "with one id per line")
        names: list[tuple[str, str]] = []
        for number, line in enumerate(lines, start=1):
            name, where = line.strip(), f"{list_path} line {number}"
            if not name:
                continue
            try:
                safe_join(self.root, name, where)
            except DataError as error:
                self.reject(error)
                continue
            names.append((name, where))
        return names

    def add_entry(self, name: str, where: str, boxes: Boxes | None) -> None:
        """Check that ``name``'s frame and audio exist, then keep it (or reject it)."""
        try:
            frame = safe_join(self.root / "frames", name + ".jpg", where)
            audio = find_audio(safe_join(self.root / "audio", name, where))
            if not frame.is_file():
                raise DataError(f"{where}: frame {frame} is missing; restore it or remove "
                                "the entry.", frame)
            if audio is None:
                stem = self.root / "audio" / name
                raise DataError(f"{where}: no audio file {stem}{{{','.join(AUDIO_EXTENSIONS)}}}"
                                "; restore it or remove the entry.", stem)
        except DataError as error:
            self.reject(error)
            return
        self.entries.append(PairEntry(name, frame, audio, boxes))

    def report_coverage(self, listed: int, source: Path | str) -> str:
        """Print (and keep as ``coverage``) "N evaluated / N listed / N missing" for ``source``.

        Every command reading a prepared set shows it, so that numbers from an incomplete
        copy of a dataset are never compared with complete ones silently.
        """
        self.coverage = f"{source}: {len(self)} evaluated / {listed} listed / {listed - len(self)} missing"
        print(self.coverage)
        return self.coverage

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self, position: int) -> dict[str, Tensor | int]:
        entry = self.entries[position]
        item: dict[str, Tensor | int] = {
            "image": read_image(entry.frame, self.image_size),
            "audio": read_audio_clip(entry.audio, self.sample_rate, self.duration,
                                     self.allow_silent),
            "index": position,
        }
        if entry.boxes is not None:
            item["mask"] = self.boxes_to_mask(entry.boxes)
        return item

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items.")
        index %= len(self)
        for offset in range(len(self)):
            try:
                return self._load((index + offset) % len(self))
            except DataError as error:
                self.reject(error)
        raise DataError(f"{self.root}: no item of this dataset could be read; see "
                        "`skipped` for the reasons.", self.root)


def check_box(box: Sequence[object], high: float, where: str, path: Path,
              tolerance: float = 0.0) -> tuple[float, float, float, float]:
    """A box ``[x0, y0, x1, y1]`` as floats, inside ``[0, high]`` with ``x0 <= x1, y0 <= y1``.

    Coordinates up to ``tolerance`` outside the image are clipped (rounding in
    published annotations); anything further out is an error naming ``where``.
    """
    numeric = (isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    if len(box) != 4 or not all(numeric) or not all(math.isfinite(v) for v in box):
        raise DataError(f"{where}: box {box!r} is not four finite numbers "
                        "[x0, y0, x1, y1]; fix the annotation.", path)
    x0, y0, x1, y1 = (float(v) for v in box)
    if min(x0, y0, x1, y1) < -tolerance or max(x0, y0, x1, y1) > high + tolerance:
        raise DataError(f"{where}: box {list(box)} lies outside the image [0, {high}]; fix "
                        "the annotation or remove the entry.", path)
    if x0 > x1 or y0 > y1:
        raise DataError(f"{where}: box {list(box)} has x0 > x1 or y0 > y1; boxes are "
                        "[x0, y0, x1, y1].", path)
    x0, y0, x1, y1 = (min(max(v, 0.0), high) for v in (x0, y0, x1, y1))
    return x0, y0, x1, y1
