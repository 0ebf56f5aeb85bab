"""What a trained network takes as input, and the one call that turns a user's frames and sound into it.

A network is trained on square ``image_size`` frames with pixels in ``value_range`` and on
``duration`` seconds of mono audio at ``sample_rate``. Fed anything else it answers silently
wrong, or fails deep inside with a shape error, so an exported model records these settings
(``config.json``'s ``data``) and ``InputSpec.prepare`` converts frames of any size, layout and
dtype and a waveform of any rate, channel count, layout and dtype the way the dataset loaders
read files: bicubic resize to the square, channels averaged, resampled, a window centred on a
moment (tiled when the clip is shorter). ``dmt-wrap localize`` goes through the same calls, so
Python and the command line give the same maps.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .clips import audio_window, to_rate

# More channels than this on an axis and it is taken to be the samples (or pixels) axis.
MAX_CHANNELS = 8
IMAGE_CHANNELS = (1, 3, 4)
INTEGER_SCALES = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2.0 ** 31}

Frames = Union[np.ndarray, Tensor, Image.Image, Sequence[Union[np.ndarray, Tensor, Image.Image]]]
Waveform = Union[np.ndarray, Tensor]


class InputError(ValueError):
    """Frames or a waveform that cannot be converted to what the network expects; the message says why."""


class ShortAudioWarning(UserWarning):
    """The audio is shorter than the model's window: it is tiled, as the dataset loaders pad."""


@dataclass(frozen=True)
class InputSpec:
    """The input a network was trained on: ``image_size`` square frames with pixels in ``value_range``,
    ``duration`` seconds of mono audio at ``sample_rate`` Hz."""

    image_size: int
    sample_rate: int
    duration: float
    value_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        low, high = self.value_range
        if self.image_size < 1 or self.sample_rate < 1 or not self.duration > 0 or not low < high:
            raise InputError(f"{self}: image_size and sample_rate must be positive integers, duration positive "
                             "seconds and value_range (low, high) with low < high.")

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> "InputSpec":
        """The spec from an export's ``data`` settings (``image_size``, ``sample_rate``, ``duration``
        and, when recorded, ``value_range``; other keys are the dataset's and are ignored)."""
        missing = [key for key in ("image_size", "sample_rate", "duration") if key not in data]
        if missing:
            raise InputError(f"the input settings lack {missing}; a model's input spec needs image_size, "
                             "sample_rate and duration (re-export it with them, or set them in model.input_spec).")
        size = data["image_size"]
        if isinstance(size, (list, tuple)):  # [height, width] as fit records it
            if len(size) != 2 or size[0] != size[1]:
                raise InputError(f"image_size {list(size)}: the networks here take square frames; record one side.")
            size = size[0]
        value_range = tuple(float(v) for v in data.get("value_range", (0.0, 1.0)))
        if len(value_range) != 2:
            raise InputError(f"value_range {data['value_range']!r}: give two numbers (low, high).")
        return cls(int(size), int(data["sample_rate"]), float(data["duration"]), (value_range[0], value_range[1]))

    def to_data(self) -> dict[str, Any]:
        """The spec as JSON-ready data settings (the inverse of ``from_data``)."""
        return {"image_size": self.image_size, "sample_rate": self.sample_rate, "duration": self.duration,
                "value_range": list(self.value_range)}

    @property
    def samples(self) -> int:
        """Samples in one audio window."""
        return round(self.duration * self.sample_rate)

    # ----------------------------------------------------------------- frames
    def images(self, frames: Frames) -> Tensor:
        """``[B, 3, S, S]`` float32 in ``value_range`` from one frame or a batch.

        A frame is a NumPy array, a tensor or a PIL image: ``[H, W, C]`` or ``[C, H, W]`` with
        C = 3 (RGB), 1 (grey) or 4 (RGBA: alpha dropped), or ``[H, W]`` grey; a batch adds a
        leading dimension, or is a list (sizes may differ). When both ends could be channels
        (``[3, H, 3]``), a tensor is read as ``[C, H, W]`` and an array as ``[H, W, C]``. uint8
        pixels span 0-255, float pixels must lie in [0, 1]. Each frame is resized to the square
        with bicubic interpolation, as the dataset loaders read files (uint8 through PIL,
        exactly as they do; float with antialiasing in torch).
        """
        batch = [self._frame(frame, index) for index, frame in enumerate(_as_frame_list(frames))]
        images = torch.stack(batch)
        low, high = self.value_range
        return images if (low, high) == (0.0, 1.0) else low + (high - low) * images

    def _frame(self, frame: Any, index: int) -> Tensor:
        where = f"frame {index}"
        if isinstance(frame, Image.Image):
            frame = np.asarray(frame.convert("RGB"))
        is_tensor = isinstance(frame, Tensor)
        array = frame.detach().cpu().numpy() if is_tensor else np.asarray(frame)
        rgb = _to_hwc(array, channels_first=is_tensor, where=where)
        size = [self.image_size] * 2
        if rgb.dtype == np.uint8:
            resized = TF.resize(Image.fromarray(np.ascontiguousarray(rgb)), size,
                                interpolation=InterpolationMode.BICUBIC)
            return TF.to_dtype(TF.to_image(resized), torch.float32, scale=True).as_subclass(Tensor)
        if not np.issubdtype(rgb.dtype, np.floating):
            raise InputError(f"{where} has pixels of dtype {rgb.dtype}; pass uint8 (0-255) or float in [0, 1].")
        if not np.isfinite(rgb).all():
            raise InputError(f"{where} holds NaN or inf pixels.")
        low, high = float(rgb.min()), float(rgb.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"{where} has float pixels in [{low:g}, {high:g}]; float frames must lie in [0, 1] "
                             "(divide 0-255 values by 255, or pass uint8).")
        chw = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))
        resized = F.interpolate(chw[None], size=size, mode="bicubic", align_corners=False, antialias=True)
        return resized[0].clamp(0.0, 1.0)

    # ----------------------------------------------------------------- sound
    def mono(self, waveform: Waveform, sample_rate: int, what: str = "the audio") -> Tensor:
        """One clip's whole waveform as a mono float32 ``[n]`` tensor at the spec's rate.

        ``waveform`` is ``[T]``, ``[C, T]`` or ``[T, C]`` (the axis of at most 8 is the
        channels'); int16 / int32 / uint8 samples are scaled to [-1, 1], floats kept. Channels
        are averaged before resampling, as the loaders do. Warns (``ShortAudioWarning``) when the
        clip is shorter than one window, naming ``what``.
        """
        return self._waves(waveform, sample_rate, None, what)[0]

    def audio(self, waveform: Waveform, sample_rate: int, count: int | None = None,
              centre: float | None = None, what: str = "the audio") -> Tensor:
        """``[B, samples]`` windows: mono, at the spec's rate, ``duration`` long, centred on ``centre`` s.

        ``count=None``: one clip, laid out as ``mono`` takes it (B = 1). ``count=B``: a batch
        of B clips ``[B, T]`` or ``[B, C, T]`` / ``[B, T, C]``, or one clip ``[T]`` shared by
        all. ``centre`` defaults to each clip's middle; near the ends the window shifts inside
        the clip, and a clip shorter than it is tiled (with a warning), as the loaders pad.
        """
        waves = self._waves(waveform, sample_rate, count, what)
        if count is not None and len(waves) == 1 and count > 1:
            waves = waves * count
        return torch.stack([audio_window(wave, wave.numel() / self.sample_rate / 2 if centre is None else centre,
                                         self.sample_rate, self.duration) for wave in waves])

    def _waves(self, waveform: Waveform, sample_rate: int, count: int | None, what: str) -> list[Tensor]:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1:
            raise InputError(f"sample_rate={sample_rate!r}: give the waveform's rate in Hz as a positive integer.")
        is_tensor = isinstance(waveform, Tensor)
        if not is_tensor and not isinstance(waveform, np.ndarray):
            raise InputError(f"{what}: a waveform is a NumPy array or a tensor, not {type(waveform).__name__}.")
        array = waveform.detach().cpu().numpy() if is_tensor else waveform
        clips = _clips(_to_float(array, what), count, what)
        waves = []
        for clip in clips:
            if clip.shape[1] == 0:
                raise InputError(f"{what} holds no samples; pass a non-empty waveform.")
            wave = to_rate(clip.mean(axis=0) if clip.shape[0] > 1 else clip[0], int(sample_rate), self.sample_rate)
            if wave.numel() < self.samples:
                warnings.warn(f"{what} lasts {clip.shape[1] / sample_rate:.2f} s, shorter than the model's "
                              f"{self.duration:g} s window; it is tiled (repeated from its start) as the dataset "
                              "loaders pad.", ShortAudioWarning, stacklevel=3)
            waves.append(wave)
        return waves

    # ----------------------------------------------------------------- both
    def prepare(self, frames: Frames, waveform: Waveform, sample_rate: int, centre: float | None = None,
                what: str = "the audio") -> tuple[Tensor, Tensor]:
        """``(images [B, 3, S, S], audio [B, samples])`` ready for ``DualMeanTeacher.localize``.

        One frame goes with one clip (``[T]``, ``[C, T]``, ``[T, C]``); a batch of B frames with
        B clips (``[B, T]``, ``[B, C, T]``, ``[B, T, C]``) or one clip shared by all. Each
        window is centred on ``centre`` seconds into its clip (default: the clip's middle).
        ``images`` and ``audio`` describe the layouts accepted; ``what`` names the sound in messages.
        """
        images = self.images(frames)
        count = images.shape[0] if _is_batch(frames) else None
        audio = self.audio(waveform, sample_rate, count=count, centre=centre, what=what)
        return images, audio


def frame_map(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Maps ``[S, S]`` or ``[B, S, S]`` resized (bilinear) onto a frame of ``size`` = (height, width), in [0, 1]:
    the inverse of the square resize, so a map lands where its frame's pixels are."""
    batch = maps.float().cpu()
    single = batch.dim() == 2
    batch = batch[None] if single else batch
    resized = F.interpolate(batch[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    resized = resized.clamp(0, 1)
    return resized[0] if single else resized


def _is_batch(frames: Frames) -> bool:
    if isinstance(frames, (list, tuple)):
        return True
    if isinstance(frames, Image.Image):
        return False
    return np.ndim(frames) == 4


def _as_frame_list(frames: Frames) -> list[Any]:
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise InputError("no frames given; pass one frame or a non-empty batch.")
        return list(frames)
    if isinstance(frames, Image.Image):
        return [frames]
    if not isinstance(frames, (np.ndarray, Tensor)):
        raise InputError(f"frames: pass a NumPy array, a tensor, a PIL image or a list of them, not "
                         f"{type(frames).__name__}.")
    if frames.ndim == 4:
        if frames.shape[0] == 0:
            raise InputError("no frames given: the batch is empty.")
        return list(frames)
    return [frames]


def _to_hwc(array: np.ndarray, channels_first: bool, where: str) -> np.ndarray:
    """``[H, W, 3]`` of the same dtype from ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` (C in 1, 3, 4)."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise InputError(f"{where} has shape {list(array.shape)}; a frame is [H, W, 3], [3, H, W] or [H, W] "
                         "(a batch adds a leading B).")
    first, last = array.shape[0] in IMAGE_CHANNELS, array.shape[2] in IMAGE_CHANNELS
    if first and (channels_first or not last):
        array = array.transpose(1, 2, 0)
    elif not last:
        raise InputError(f"{where} has shape {list(array.shape)}: neither end has 1, 3 or 4 channels; pass "
                         "[H, W, 3] or [3, H, W] RGB.")
    if min(array.shape[:2]) == 0:
        raise InputError(f"{where} has shape {list(array.shape)}: it holds no pixels.")
    channels = array.shape[2]
    if channels == 1:
        return np.repeat(array, 3, axis=2)
    return array[:, :, :3] if channels == 4 else array


def _to_float(array: np.ndarray, what: str) -> np.ndarray:
    """Samples as float32: int16 / int32 scaled to [-1, 1), uint8 centred on 128, floats as they are."""
    dtype = array.dtype
    if dtype in INTEGER_SCALES:
        return (array.astype(np.float32) / INTEGER_SCALES[dtype]).astype(np.float32)
    if dtype == np.uint8:
        return ((array.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if not np.issubdtype(dtype, np.floating):
        raise InputError(f"{what} has samples of dtype {dtype}; pass float, int16, int32 or uint8 samples.")
    if not np.isfinite(array).all():
        raise InputError(f"{what} holds NaN or inf samples.")
    return array.astype(np.float32, copy=False)


def _channels_first(clip: np.ndarray, what: str) -> np.ndarray:
    """``[C, T]`` from ``[C, T]`` or ``[T, C]``: the axis of at most ``MAX_CHANNELS`` is the channels'."""
    if clip.shape[0] <= MAX_CHANNELS < clip.shape[1]:
        return clip
    if clip.shape[1] <= MAX_CHANNELS < clip.shape[0]:
        return clip.T
    raise InputError(f"{what} has shape {list(clip.shape)}: cannot tell channels from samples (one axis must "
                     f"have at most {MAX_CHANNELS} channels, the other more samples); pass [C, T].")


def _clips(array: np.ndarray, count: int | None, what: str) -> list[np.ndarray]:
    """The clips of a waveform as ``[C, T]`` arrays: one, or ``count`` of a batch."""
    shape = list(array.shape)
    if array.ndim == 1:
        return [array[None]]
    if count is None and array.ndim == 2:
        return [_channels_first(array, what)]
    if count is None and array.ndim == 3 and shape[0] == 1:
        return [_channels_first(array[0], what)]
    if count is not None and array.ndim in (2, 3) and shape[0] == count:
        return [clip[None] if array.ndim == 2 else _channels_first(clip, what) for clip in array]
    expected = ("[T], [C, T] or [T, C] for one frame" if count is None else
                f"[{count}, T] or [{count}, C, T] (one clip per frame), or one clip [T] for all {count} frames")
    raise InputError(f"{what} has shape {shape}; pass {expected}.")
