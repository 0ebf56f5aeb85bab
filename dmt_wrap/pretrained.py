"""Portable trained models: a folder with ``model.safetensors``, ``config.json`` and ``SHA256SUMS``.

The folder holds what inference needs and nothing that must be unpickled: the networks
whose maps ``localize`` averages (both teachers, or the students when there are none), each
with its calibration, as named tensors; the network's registered name and constructor
arguments, the ``DMTConfig``, the data settings, the metrics reached and the library
versions as JSON. Loading checks the checksums, the format version, the network and every
tensor name and shape before a single weight is copied.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from . import registry
from .atomic import atomic_folder
from .checkpoint import CheckpointError
from .checksums import verify_sums, write_sums
from .config import DMTConfig

FORMAT = "dmt_wrap.pretrained"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PREFIX = "networks"


class ExportableModel(Protocol):
    """What export and loading need of a model (``DualMeanTeacher`` is one); a protocol, so that
    this module does not import the wrapper that imports it."""

    config: DMTConfig
    students: nn.ModuleList
    teachers: nn.ModuleList

    @property
    def has_teachers(self) -> bool: ...

    @property
    def network_name(self) -> str: ...

    def start_teachers(self) -> None: ...


def inference_modules(model: ExportableModel) -> tuple[str, list[nn.Module]]:
    """``("teachers", modules)`` or ``("students", modules)``: the calibrated networks inference uses.

    Both teachers are kept even under ``inference="a"``, so the exported model can still
    switch; without teachers (before stage 2, naive, fully supervised) the students.
    """
    if model.has_teachers and model.config.inference != "students":
        return "teachers", [teacher.module for teacher in model.teachers]
    return "students", list(model.students)


def inference_tensors(model: ExportableModel) -> tuple[str, dict[str, torch.Tensor]]:
    """The inference networks' state as ``networks.<i>.<name>`` CPU tensors (own storage each)."""
    source, modules = inference_modules(model)
    tensors = {f"{PREFIX}.{index}.{name}": value.detach().to("cpu").contiguous().clone()
               for index, module in enumerate(modules) for name, value in module.state_dict().items()}
    return source, tensors


def write_pretrained(model: ExportableModel, folder: str | os.PathLike, *, network: str | None,
                     network_kwargs: dict[str, Any], data: dict[str, Any], preset: str | None = None,
                     metrics: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``model`` as a portable folder; it appears complete or not at all.

    ``network`` is the registered name ``from_pretrained`` rebuilds with ``network_kwargs``
    (``None`` for an unregistered network of your own: loading it then needs ``backbone_factory``);
    ``data`` must hold ``image_size``, ``sample_rate`` and ``duration`` (what the network
    expects as input); ``metrics`` e.g. ``{"scores": {...}, "test_set": "..."}``.
    Everything is written into a temporary sibling folder that is renamed at the end.
    """
    folder = Path(folder)
    missing = [key for key in ("image_size", "sample_rate", "duration") if key not in data]
    if missing:
        raise ValueError(f"data lacks {missing}: the exported model must record the input its network expects.")
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; choose another output folder or pass overwrite=True "
                              "(--overwrite).")
    source, tensors = inference_tensors(model)
    config = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "network": {"name": network, "class": model.network_name, "kwargs": network_kwargs},
        "weights": {"source": source, "networks": len(model.students), "inference": model.config.inference},
        "train": model.config.to_dict(), "data": data, "preset": preset, "metrics": metrics or {},
        "versions": {"dmt_wrap": _version(), "torch": torch.__version__},
    }
    with atomic_folder(folder, durable=True) as staging:
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
        write_sums(staging, (WEIGHTS_FILE, CONFIG_FILE))
    return folder


def verify_checksums(folder: Path) -> None:
    """Refuse a folder whose files do not match ``SHA256SUMS`` (or lack it)."""
    verify_sums(folder, (WEIGHTS_FILE, CONFIG_FILE), CheckpointError, "copy the whole exported folder again or "
                "re-export it with `dmt-wrap export`")


def read_config(folder: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """``config.json`` of an exported folder, after checking checksums, format and version."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass the folder written by `dmt-wrap export`.")
    if verify:
        verify_checksums(folder)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE} cannot be read ({exc}); re-export the model.") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not a dmt_wrap export (format "
                              f"{config.get('format') if isinstance(config, dict) else None!r}, expected {FORMAT!r}).")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{folder} has format_version {version!r}, newer than this dmt_wrap {_version()} reads "
                              f"(up to {FORMAT_VERSION}); upgrade dmt_wrap to load it.")
    return config


def stored_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the safetensors header (no weights read, nothing unpickled)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); re-export the model.") from exc


def check_tensors(stored: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], folder: Path,
                  network: str) -> None:
    """Refuse stored tensors whose names or shapes differ from the network's, saying which."""
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    reshaped = [f"{name} {stored[name]} != {expected[name]}" for name in sorted(set(stored) & set(expected))
                if stored[name] != expected[name]]
    if missing or unexpected or reshaped:
        details = "; ".join(f"{what}: {items[:3]}{' ...' if len(items) > 3 else ''}"
                            for what, items in (("missing", missing), ("unexpected", unexpected),
                                                ("shape", reshaped)) if items)
        raise CheckpointError(f"{folder / WEIGHTS_FILE} does not fit this {network} (another network, preset or "
                              f"size?): {details}.")


def network_factory(config: dict[str, Any]) -> Callable[[], nn.Module]:
    """A factory building the registered network ``config`` names, with its recorded arguments."""
    name, kwargs = config["network"]["name"], config["network"].get("kwargs", {})
    if name is None:
        raise ValueError(f"this export records no registered network name (its network is "
                         f"{config['network']['class']!r}); pass backbone_factory=.")
    constructor = registry.resolve(name)
    return lambda: constructor(**kwargs)


def load_pretrained(model_class: Callable[..., ExportableModel], folder: str | os.PathLike,
                    backbone_factory: Callable[[], nn.Module] | None = None,
                    device: str | torch.device | None = None) -> ExportableModel:
    """Rebuild an exported model; its ``localize`` gives the original's maps.

    Without ``backbone_factory`` the network is rebuilt by its registered name (packages
    advertised under the ``dmt_wrap.networks`` entry-point group are imported on demand).
    """
    folder = Path(folder)
    config = read_config(folder)
    factory = backbone_factory or network_factory(config)
    model = model_class(factory, DMTConfig.from_dict(config["train"]), device=device)
    recorded = config["network"]["class"]
    if model.network_name != recorded:
        raise CheckpointError(f"{folder} was exported from network {recorded!r} "
                              f"({config['network']['name']!r}); the backbone_factory builds "
                              f"{model.network_name!r}. Pass a factory of the same network.")
    expected = {f"{PREFIX}.{index}.{name}": tuple(value.shape) for index, student in enumerate(model.students)
                for name, value in student.state_dict().items()}
    check_tensors(stored_shapes(folder / WEIGHTS_FILE), expected, folder, model.network_name)
    tensors = load_file(str(folder / WEIGHTS_FILE))
    for index, student in enumerate(model.students):
        prefix = f"{PREFIX}.{index}."
        student.load_state_dict({name[len(prefix):]: value for name, value in tensors.items()
                                 if name.startswith(prefix)})
    if config["weights"]["source"] == "teachers":
        model.start_teachers()  # the teachers become exact copies of the loaded networks
    return model


def _version() -> str:
    from . import __version__
    return __version__
