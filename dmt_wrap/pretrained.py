"""Portable trained models: a folder with ``model.safetensors``, ``config.json`` and ``SHA256SUMS``.

The folder holds what inference needs and nothing that must be unpickled: the networks
whose maps ``localize`` averages (both teachers, or the students when there are none), each
with its calibration, as named tensors; the network's registered name and constructor
arguments, the ``DMTConfig``, the data settings, the metrics reached and the library
versions as JSON. Loading treats the folder as untrusted input: checksums (no symbolic link followed out of
the folder), the exact format version and weight source, the data settings as numbers in
sane ranges, the network's arguments (built first on the meta device, so that no argument
can allocate memory before every tensor name, shape and dtype is checked against the file),
argument files only from inside the folder, and finite weights, all before a weight is copied.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.overrides import TorchFunctionMode

from . import registry
from .atomic import atomic_folder
from .checkpoint import CheckpointError
from .calibration import CalibratedNetwork
from .checksums import SUMS_FILE, read_sums, regular_file, verify_sums, write_sums
from .config import DMTConfig
from .inputs import InputSpec
from .machine import machine_record

FORMAT = "dmt_wrap.pretrained"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PREFIX = "networks"
WEIGHT_SOURCES = ("teachers", "students")
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: Network arguments whose names end so are files (pretrained initial weights): an export copies
#: them in and loading opens them only from inside the folder.
PATH_ARGUMENT_SUFFIXES = ("_weights", "_path", "_file")
#: ``data`` fields: (integral, lowest, highest). What a network can be fed, with room to spare; ``localize``
#: batches 16 frames and windows, so these bound its inputs to a few hundred MB.
DATA_LIMITS = {"image_size": (True, 1, 1024), "sample_rate": (True, 1, 384000), "duration": (False, 1e-3, 60.0)}
MAX_WINDOW_SAMPLES = 4_000_000  # sample_rate * duration: 83 s at 48 kHz
#: A network built from the recorded arguments may hold this much more than the file stores
#: (non-persistent buffers such as spectrogram windows) before it is refused unbuilt.
BUILD_SLACK_BYTES = 256 * 1024 * 1024
SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                      torch.uint8: "U8", torch.bool: "BOOL"}
FIX = "copy the whole exported folder again or re-export it with `dmt-wrap export`"


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
    expects as input); ``metrics`` e.g. ``{"scores": {...}, "test_set": "..."}``. Argument
    files (``PATH_ARGUMENT_SUFFIXES``) are copied into the folder, so that it is self-contained.
    Everything is written into a temporary sibling folder that is renamed at the end;
    ``overwrite`` replaces only an earlier export (``check_destination``).
    """
    folder = Path(folder)
    missing = [key for key in ("image_size", "sample_rate", "duration") if key not in data]
    if missing:
        raise ValueError(f"data lacks {missing}: the exported model must record the input its network expects.")
    check_data(data, "data")
    check_destination(folder, overwrite)
    source, tensors = inference_tensors(model)
    kwargs, copies = dict(network_kwargs), {}
    for key, value in network_kwargs.items():
        if is_path_argument(key, value):
            copies[key + Path(value).suffix] = Path(value)
            kwargs[key] = key + Path(value).suffix
    needed = sum(t.numel() * t.element_size() for t in tensors.values()) + sum(
        path.stat().st_size for path in copies.values())
    check_free_space(folder.parent, needed)
    config = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "network": {"name": network, "class": model.network_name, "kwargs": kwargs},
        "weights": {"source": source, "networks": len(model.students), "inference": model.config.inference},
        "train": model.config.to_dict(), "data": data, "preset": preset, "metrics": metrics or {},
        "versions": {"dmt_wrap": _version(), "torch": torch.__version__}, "machine": machine_record(),
    }
    with atomic_folder(folder, durable=True) as staging:
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
        for name, path in copies.items():
            shutil.copyfile(path, staging / name)
        write_sums(staging, (WEIGHTS_FILE, CONFIG_FILE, *copies))
    return folder


def is_path_argument(key: str, value: Any) -> bool:
    """Whether a network argument names a file (by the ``PATH_ARGUMENT_SUFFIXES`` convention)."""
    return isinstance(value, str) and key.endswith(PATH_ARGUMENT_SUFFIXES)


def check_free_space(folder: Path, needed: int) -> None:
    """Refuse before writing when the disk holding ``folder`` (or its nearest existing parent) has no room."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return  # unknown: the atomic write still leaves nothing behind when the disk fills
    if free < needed + (1 << 20):
        raise OSError(f"{folder}: {free / 2**20:.1f} MiB free on its disk, the export needs {needed / 2**20:.1f} "
                      "MiB; free some space or write elsewhere.")


def check_destination(folder: Path, overwrite: bool) -> None:
    """Refuse an existing ``folder`` unless ``overwrite`` and it is an earlier export: nothing else is replaced."""
    if not os.path.lexists(folder):
        return
    if not overwrite:
        raise FileExistsError(f"{folder} already exists; choose another output folder, or pass overwrite=True "
                              "to replace an earlier export there.")
    if folder.is_symlink() or not folder.is_dir():
        raise FileExistsError(f"{folder} is not a folder written by `dmt-wrap export` (a file or a link); "
                              "overwrite replaces only an earlier export: choose another output folder.")
    names = sorted(entry.name for entry in folder.iterdir())
    try:
        allowed = {WEIGHTS_FILE, CONFIG_FILE, SUMS_FILE, *read_sums(folder, FileExistsError, "")}
        config = _read_json_limited(folder / CONFIG_FILE)
    except (OSError, ValueError, RecursionError):
        allowed, config = set(), None
    foreign = [name for name in names if name not in allowed]
    if foreign or not isinstance(config, dict) or config.get("format") != FORMAT:
        held = f"it holds {foreign[:3]}{' ...' if len(foreign) > 3 else ''}" if foreign else "no export config"
        raise FileExistsError(f"{folder} is not a folder written by `dmt-wrap export` ({held}); overwrite "
                              "replaces only an earlier export: choose another output folder.")


def verify_checksums(folder: Path, extra: tuple[str, ...] = ()) -> None:
    """Refuse a folder whose files do not match ``SHA256SUMS`` (or lack it), or that are links out of it."""
    verify_sums(folder, (WEIGHTS_FILE, CONFIG_FILE, *extra), CheckpointError, FIX)


def _read_json_limited(path: Path) -> Any:
    """JSON of a regular file of at most ``MAX_CONFIG_BYTES`` (no link followed)."""
    if regular_file(path, CheckpointError, FIX).st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB, not an export config ({FIX}).")
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(descriptor, "rb") as handle:
        return json.loads(handle.read(MAX_CONFIG_BYTES + 1))


def is_job_folder(folder: Path) -> bool:
    """A ``benchmarks/run.py`` job folder (not exported yet)."""
    return (folder / "model.pt").is_file() and (folder / "settings.json").is_file() and not os.path.lexists(
        folder / SUMS_FILE)


def read_config(folder: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """``config.json`` of an exported folder, after checking checksums and every field loading reads."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not os.path.lexists(folder) else "is not a folder"
        raise FileNotFoundError(f"{folder} {what}; pass the folder written by `dmt-wrap export`.")
    if is_job_folder(folder):
        raise CheckpointError(f"{folder} is a benchmarks/run.py job folder, not an exported model; export it first "
                              f"with `dmt-wrap export {folder} exported/NAME` and pass that folder.")
    if verify:
        verify_checksums(folder)
    path = folder / CONFIG_FILE
    try:
        config = _read_json_limited(path)
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        raise CheckpointError(f"{path} is not readable JSON ({reason}); re-export the model.") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{path} is not a dmt_wrap export (format {str(found)[:40]!r}, expected {FORMAT!r}).")
    version = config.get("format_version")
    if type(version) is int and version > FORMAT_VERSION:  # noqa: E721 (bool is an int; true is no version)
        raise CheckpointError(f"{folder} has format_version {version}, newer than this dmt_wrap {_version()} reads "
                              f"(up to {FORMAT_VERSION}); upgrade dmt_wrap to load it.")
    if type(version) is not int or version != FORMAT_VERSION:  # noqa: E721
        raise CheckpointError(f"{path}: format_version {repr(version)[:40]} is not a version this dmt_wrap wrote "
                              f"(it writes {FORMAT_VERSION}); re-export the model.")
    check_fields(config, path)
    return config


def _field_error(path: Path, field: str, value: Any, expected: str) -> CheckpointError:
    shown = repr(value) if isinstance(value, (int, float, bool, str, type(None))) else type(value).__name__
    return CheckpointError(f"{path}: {field} is {shown[:40]}, expected {expected}; re-export the model.")


def check_fields(config: dict[str, Any], path: Path) -> None:
    """Refuse a config whose network, weights, train or data fields are not what loading expects."""
    network = config.get("network")
    if not isinstance(network, dict):
        raise _field_error(path, "network", network, "an object with name, class and kwargs")
    if network.get("name") is not None and not isinstance(network.get("name"), str):
        raise _field_error(path, "network.name", network.get("name"), "a registered network name or null")
    if not isinstance(network.get("class"), str):
        raise _field_error(path, "network.class", network.get("class"), "the network's class name")
    if not isinstance(network.get("kwargs", {}), dict):
        raise _field_error(path, "network.kwargs", network.get("kwargs"), "an object of constructor arguments")
    weights = config.get("weights")
    if not isinstance(weights, dict) or weights.get("source") not in WEIGHT_SOURCES:
        source = weights.get("source") if isinstance(weights, dict) else weights
        raise _field_error(path, "weights.source", source, f"one of {list(WEIGHT_SOURCES)}")
    if not isinstance(config.get("train"), dict):
        raise _field_error(path, "train", config.get("train"), "the DMTConfig as an object")
    if not isinstance(config.get("data"), dict):
        raise _field_error(path, "data", config.get("data"), "an object with image_size, sample_rate, duration")
    check_data(config["data"], f"{path}: data", CheckpointError)


def check_data(data: dict[str, Any], where: str, error: type[Exception] = ValueError) -> None:
    """Refuse ``image_size``, ``sample_rate`` or ``duration`` that are not numbers in ``DATA_LIMITS``."""
    for key, (integral, low, high) in DATA_LIMITS.items():
        value = data.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (not number or not math.isfinite(value) or not low <= value <= high
                or (integral and value != int(value))):
            shown = repr(value)[:40] if number or value is None else type(value).__name__
            raise error(f"{where}.{key} is {shown}; expected {'an integer' if integral else 'a number'} in "
                        f"[{low:g}, {high:g}] (re-export the model with the settings it was trained at).")
    if data["sample_rate"] * data["duration"] > MAX_WINDOW_SAMPLES:
        raise error(f"{where}: sample_rate {data['sample_rate']} x duration {data['duration']:g} s is more than "
                    f"{MAX_WINDOW_SAMPLES} samples per window (re-export the model with the settings it was trained "
                    "at).")


def stored_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` from the safetensors header (no weights read, nothing unpickled)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: (handle.get_slice(name).get_dtype(), tuple(handle.get_slice(name).get_shape()))
                    for name in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); re-export the model.") from None


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


def check_dtypes(stored: dict[str, str], expected: dict[str, torch.dtype], folder: Path) -> None:
    """Refuse stored tensors whose dtype is not the network's (float64, int8, bool weights of the right shape)."""
    wrong = [f"{name} {stored[name]} != {SAFETENSORS_DTYPES.get(dtype, str(dtype))}"
             for name, dtype in expected.items() if stored[name] != SAFETENSORS_DTYPES.get(dtype, str(dtype))]
    if wrong:
        raise CheckpointError(f"{folder / WEIGHTS_FILE} stores tensors of another type than the network's: "
                              f"{wrong[:3]}{' ...' if len(wrong) > 3 else ''}; re-export the model.")


def check_finite(tensors: dict[str, torch.Tensor], folder: Path) -> None:
    """Refuse NaN or infinite weights (they would give all-NaN maps)."""
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{folder / WEIGHTS_FILE}: tensor {name} holds NaN or infinite values; the model "
                                  "diverged or the file was altered: export a finite model.")


def network_factory(config: dict[str, Any], folder: Path | None = None) -> Callable[[], nn.Module]:
    """A factory building the registered network ``config`` names, with its recorded arguments.

    Argument files (``PATH_ARGUMENT_SUFFIXES``) are opened only from inside ``folder``, after
    their checksum; without ``folder`` such arguments are refused.
    """
    name, kwargs = config["network"]["name"], dict(config["network"].get("kwargs", {}))
    if name is None:
        raise ValueError(f"this export records no registered network name (its network is "
                         f"{config['network']['class']!r}); pass backbone_factory=.")
    for key, value in kwargs.items():
        if is_path_argument(key, value):
            kwargs[key] = str(_inside(folder, key, value))
    constructor = registry.resolve(name)
    return lambda: constructor(**kwargs)


def _inside(folder: Path | None, key: str, value: str) -> Path:
    """The argument file ``value`` of an exported folder, refused unless it is a checked file inside it."""
    where = f"{folder / CONFIG_FILE if folder else CONFIG_FILE}: network argument {key}"
    plain = folder is not None and value and "/" not in value and "\\" not in value and value not in (".", "..")
    if not plain:
        raise CheckpointError(f"{where} names a file outside the exported folder; an export is self-contained "
                              "(re-export it: the file is copied in) or pass backbone_factory=.")
    verify_sums(folder, (value,), CheckpointError, FIX)
    return folder / value


def load_pretrained(model_class: Callable[..., ExportableModel], folder: str | os.PathLike,
                    backbone_factory: Callable[[], nn.Module] | None = None,
                    device: str | torch.device | None = None) -> ExportableModel:
    """Rebuild an exported model as ``model_class`` (``DualMeanTeacher``); its ``localize`` gives the original's maps.

    Without ``backbone_factory`` the network is rebuilt by its registered name (packages
    advertised under the ``dmt_wrap.networks`` entry-point group are imported on demand).
    Every check runs before the network is built for real (``module docstring``).
    """
    folder = Path(folder)
    config = read_config(folder)
    header = stored_header(folder / WEIGHTS_FILE)
    factory = backbone_factory or network_factory(config, folder)
    try:
        train = DMTConfig.from_dict(config["train"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE}: train does not hold a valid DMTConfig ({exc}); re-export "
                              "the model.") from None
    planned = _planned_tensors(factory, train, folder, config, header)
    if planned is not None:
        check_planned(header, planned, folder, config["network"]["class"])
    try:
        model = model_class(factory, train, device=device)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE}: the recorded network arguments do not build "
                              f"{config['network']['name']!r} ({exc}); re-export the model.") from None
    if planned is None:
        check_planned(header, {f"{PREFIX}.{index}.{name}": value for index, student in enumerate(model.students)
                               for name, value in student.state_dict().items()}, folder, model.network_name)
    recorded = config["network"]["class"]
    if model.network_name != recorded:
        raise CheckpointError(f"{folder} was exported from network {recorded!r} "
                              f"({config['network']['name']!r}); the backbone_factory builds "
                              f"{model.network_name!r}. Pass a factory of the same network.")
    tensors = load_file(str(folder / WEIGHTS_FILE))
    check_finite(tensors, folder)
    for index, student in enumerate(model.students):
        prefix = f"{PREFIX}.{index}."
        student.load_state_dict({name[len(prefix):]: value for name, value in tensors.items()
                                 if name.startswith(prefix)})
    if config["weights"]["source"] == "teachers":
        model.start_teachers()  # the teachers become exact copies of the loaded networks
    model.input_spec = InputSpec.from_data(config["data"]).to_data()  # what preprocess converts to
    return model


class _MetaScalars(TorchFunctionMode):
    """Lets a constructor read a value of a meta tensor (torchaudio's mel filterbank asks ``.any()`` of its own):
    the answer is ``False`` / 0. Shapes do not depend on such checks; the weights come from the file anyway."""

    READS = {torch.Tensor.__bool__: False, torch.Tensor.item: 0, torch.Tensor.__float__: 0.0,
             torch.Tensor.__int__: 0, torch.Tensor.__index__: 0}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.READS and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return self.READS[func]
        return func(*args, **(kwargs or {}))


def check_planned(header: dict[str, tuple[str, tuple[int, ...]]], expected: dict[str, torch.Tensor], folder: Path,
                  network: str) -> None:
    """Refuse a weights file whose tensor names, shapes or dtypes are not those of ``expected``."""
    check_tensors({name: shape for name, (_, shape) in header.items()},
                  {name: tuple(value.shape) for name, value in expected.items()}, folder, network)
    check_dtypes({name: dtype for name, (dtype, _) in header.items()},
                 {name: value.dtype for name, value in expected.items()}, folder)


def _planned_tensors(factory: Callable[[], nn.Module], train: DMTConfig, folder: Path, config: dict[str, Any],
                     header: dict[str, tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor] | None:
    """The ``networks.<i>.<name>`` tensors the model would hold, as meta tensors: built without memory.

    Also refuses arguments that would build a network much larger than the file stores (a
    spectrogram window for ``sample_rate: 1e9``) before anything is allocated. ``None`` when the
    network cannot be built on the meta device at all (it computes with its tensors' values):
    then the checks run on the real build.
    """
    try:
        with torch.device("meta"), _MetaScalars():
            probe = CalibratedNetwork(factory())
    except NotImplementedError:
        return None  # an operation the meta device lacks: the checks run on the real build
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "meta" in str(exc):
            return None
        raise CheckpointError(f"{folder / CONFIG_FILE}: the recorded network arguments do not build "
                              f"{config['network']['name']!r} ({str(exc)[:200]}); re-export the model.") from None
    state = probe.state_dict(keep_vars=True)
    held = sum(t.numel() * t.element_size() for t in [*probe.parameters(), *probe.buffers()]) * train.num_networks
    stored = sum(math.prod(shape) * 4 for _, shape in header.values())
    if held > 2 * stored + BUILD_SLACK_BYTES:
        raise CheckpointError(f"{folder / CONFIG_FILE}: the recorded network arguments build networks of "
                              f"{held / 2**30:.1f} GiB, while {folder / WEIGHTS_FILE} stores {stored / 2**20:.1f} "
                              "MiB; the arguments were altered: re-export the model.")
    return {f"{PREFIX}.{index}.{name}": value for index in range(train.num_networks) for name, value in state.items()}


def _version() -> str:
    from . import __version__
    return __version__
