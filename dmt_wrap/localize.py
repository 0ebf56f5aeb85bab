"""``dmt-wrap localize``: what a trained model localizes in one's own video, or in an image with a sound.

For a video, frames are sampled ``fps`` times a second (the frame on screen at each moment,
so variable frame rates are fine); each gets the map for the model's audio window centred
on that moment. Frames are resized to the model's square input as the dataset loaders do,
and each map is resized back onto the real frame, so non-square and portrait frames get
their maps in the right place. Outputs are written atomically.
"""
from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from .atomic import atomic_path
from .clips import audio_window, to_rate
from .datasets.media import DataError
from .heatmap import contact_sheet, overlay, save_png
from .pretrained import read_config
from .video import AudioTrack, open_container, read_audio, sample_frames, write_video
from .wrapper import DualMeanTeacher

SHEET_FRAMES = 16


class ShortAudioWarning(UserWarning):
    """The audio is shorter than the model's window: it is tiled, as the dataset loaders pad."""


@dataclass
class Localizer:
    """A model and the input it expects: square ``image_size`` frames, ``duration`` s of ``sample_rate`` audio."""

    model: DualMeanTeacher
    image_size: int
    sample_rate: int
    duration: float

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, device: str | None = None) -> "Localizer":
        """The model exported to ``folder`` (``dmt-wrap export``), with its recorded input settings."""
        data = read_config(folder)["data"]
        model = DualMeanTeacher.from_pretrained(folder, device=device)
        return cls(model, int(data["image_size"]), int(data["sample_rate"]), float(data["duration"]))

    def model_wave(self, audio: AudioTrack, source: Path) -> torch.Tensor:
        """The whole track, mono at the model's rate; warns when it is shorter than one window."""
        wave = to_rate(audio.mono(), audio.rate, self.sample_rate)
        if wave.numel() < round(self.duration * self.sample_rate):
            warnings.warn(f"{source}: the audio lasts {audio.seconds:.2f} s, shorter than the model's "
                          f"{self.duration:g} s window; it is tiled (repeated from its start) as the dataset "
                          "loaders pad.", ShortAudioWarning, stacklevel=3)
        return wave

    def frame_tensor(self, frame: np.ndarray) -> torch.Tensor:
        """RGB uint8 ``[H, W, 3]`` -> ``[3, S, S]`` in [0, 1]: bicubic resize to a square, as the loaders read."""
        resized = TF.resize(Image.fromarray(frame), [self.image_size] * 2, interpolation=InterpolationMode.BICUBIC)
        return TF.to_dtype(TF.to_image(resized), torch.float32, scale=True).as_subclass(torch.Tensor)

    def maps(self, frames: list[np.ndarray], windows: list[torch.Tensor]) -> list[np.ndarray]:
        """One confidence map per frame, ``[H, W]`` float32 on that frame's own pixels."""
        images = torch.stack([self.frame_tensor(frame) for frame in frames])
        square = self.model.localize(images, torch.stack(windows)).float().cpu()
        return [F.interpolate(square[i][None, None], size=frame.shape[:2], mode="bilinear",
                              align_corners=False)[0, 0].clamp(0, 1).numpy()
                for i, frame in enumerate(frames)]


def compact_map(confidence: np.ndarray, image_size: int) -> np.ndarray:
    """A map resized so its long side is ``image_size``, keeping the frame's aspect ratio (for ``.npz``)."""
    height, width = confidence.shape
    scale = image_size / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(torch.from_numpy(confidence)[None, None], size=size, mode="bilinear",
                         align_corners=False)[0, 0].numpy()


def save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """``np.savez_compressed`` atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic_path(path) as temp:
        Path(temp).write_bytes(buffer.getvalue())
    return path


def localize_video(localizer: Localizer, video: str | os.PathLike, out: str | os.PathLike, *, fps: float = 4.0,
                   audio_file: str | os.PathLike | None = None, npz: str | os.PathLike | None = None,
                   sheet: str | os.PathLike | None = None, batch_size: int = 16, progress: bool = True,
                   allow_truncated: bool = False) -> dict[str, Any]:
    """Write an overlay video (heat map over each sampled frame, colour bar, the original audio track).

    Optionally the maps (``npz``: ``maps`` ``[N, h, w]`` with the frame's aspect ratio and
    long side ``image_size``, ``times``, ``frame_size``) and a contact sheet PNG (``sheet``).
    Returns a summary: frames, times, output paths.
    """
    video = Path(video)
    with open_container(video) as container:
        if not container.streams.video:
            raise DataError(f"{video}: has no video stream (audio only?); for a still picture use --image IMAGE "
                            "--audio AUDIO.", video)
        estimate = container.duration / 1e6 * fps if container.duration else None
    audio_source = Path(audio_file) if audio_file is not None else video
    audio = read_audio(audio_source)
    wave = localizer.model_wave(audio, audio_source)
    times: list[float] = []
    compact: list[np.ndarray] = []
    thumbs: list[np.ndarray] = []
    frame_size: tuple[int, ...] = ()

    def overlays() -> Iterator[np.ndarray]:
        bar = tqdm(total=round(estimate) if estimate else None, desc=f"localize {video.name}", unit="frame",
                   disable=not progress)
        batch: list[tuple[float, np.ndarray]] = []
        for item in sample_frames(video, fps=fps, allow_truncated=allow_truncated):
            batch.append(item)
            if len(batch) == batch_size:
                yield from run(batch)
                bar.update(len(batch))
                batch = []
        if batch:
            yield from run(batch)
            bar.update(len(batch))
        bar.close()

    def run(batch: list[tuple[float, np.ndarray]]) -> Iterator[np.ndarray]:
        nonlocal frame_size
        windows = [audio_window(wave, time - audio.start, localizer.sample_rate, localizer.duration)
                   for time, _ in batch]
        for (time, frame), confidence in zip(batch, localizer.maps([f for _, f in batch], windows)):
            frame_size = frame.shape[:2]
            drawn = overlay(frame, confidence)
            times.append(time)
            compact.append(compact_map(confidence, localizer.image_size))
            thumb = Image.fromarray(drawn)
            thumb.thumbnail((240, 240))
            thumbs.append(np.asarray(thumb))
            yield drawn

    written = write_video(out, overlays(), fps=fps, audio=audio)
    summary: dict[str, Any] = {"video": str(written), "frames": len(times), "times": times,
                               "frame_size": list(frame_size)}
    if npz is not None:
        summary["npz"] = str(save_npz(npz, maps=np.stack(compact), times=np.asarray(times),
                                      frame_size=np.asarray(frame_size), image_size=localizer.image_size,
                                      sample_rate=localizer.sample_rate, duration=localizer.duration))
    if sheet is not None:
        picks = np.unique(np.linspace(0, len(thumbs) - 1, min(SHEET_FRAMES, len(thumbs))).round().astype(int))
        summary["sheet"] = str(contact_sheet([thumbs[i] for i in picks], [f"t = {times[i]:.2f} s" for i in picks],
                                             sheet))
    return summary


def read_picture(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGB uint8 ``[H, W, 3]``; a ``DataError`` naming it when unreadable."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file does not exist; check the path.", path) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: image is empty, corrupt or truncated ({exc}); pass a JPEG or PNG.", path) from exc


def localize_image(localizer: Localizer, image: str | os.PathLike, audio_file: str | os.PathLike,
                   out: str | os.PathLike, npz: str | os.PathLike | None = None) -> dict[str, Any]:
    """Overlay PNG (and optionally ``npz`` with ``map`` ``[H, W]``) for an image and the centre of an audio file."""
    frame = read_picture(image)
    audio = read_audio(audio_file)
    wave = localizer.model_wave(audio, Path(audio_file))
    window = audio_window(wave, wave.numel() / localizer.sample_rate / 2, localizer.sample_rate, localizer.duration)
    confidence = localizer.maps([frame], [window])[0]
    summary: dict[str, Any] = {"png": str(save_png(overlay(frame, confidence), out)),
                               "frame_size": list(frame.shape[:2])}
    if npz is not None:
        summary["npz"] = str(save_npz(npz, map=confidence, image_size=localizer.image_size,
                                      sample_rate=localizer.sample_rate, duration=localizer.duration))
    return summary
