"""Published semi-supervised splits: labeled / unlabeled / test id files with a checksum.

``write_split`` draws the split deterministically from the sorted ids of a dataset folder,
a label ratio and a seed (NumPy PCG64 through ``label_split``: the same files on every
machine), so a result can be reproduced from the published files alone. The files are id
lists, one per line: the format the loaders read (``FlickrSoundNet(root, "labeled.txt")``,
``VGGSoundSource(root, "unlabeled.txt", masks=False)``); ``select`` takes a split's ids
out of any loaded dataset.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from torch.utils.data import Subset

from ..atomic import atomic_folder
from ..checksums import verify_sums, write_sums
from .media import AUDIO_EXTENSIONS, DataError, FrameAudioDataset, read_lines
from .splits import label_split

PARTS = ("labeled", "unlabeled", "test")
INFO_FILE = "split.json"
SETTINGS = ("label_ratio", "seed", "test_ratio")  # what makes two splits of the same ids differ
RULE = ("ids sorted; test = label_split(n, test_ratio, seed)'s first part (or the --test list); "
        "labeled = label_split(len(rest), label_ratio, seed)'s first part; unlabeled = the rest")


def dataset_ids(root: Path, list_file: str | os.PathLike | None = None) -> list[str]:
    """The ids of ``list_file`` (relative to ``root`` or absolute), else every id with a frame and an audio file."""
    if list_file is not None:
        return [line.strip() for line in read_lines(root / list_file, "id list", "with one id per line")
                if line.strip()]
    frames = root / "frames"
    if not frames.is_dir():
        raise DataError(f"{frames} does not exist; pass the dataset folder (holding frames/ and audio/) or --ids.",
                        frames)
    return [path.stem for path in sorted(frames.glob("*.jpg"))
            if any((root / "audio" / f"{path.stem}{ext}").is_file() for ext in AUDIO_EXTENSIONS)]


def make_split(ids: list[str], label_ratio: float, seed: int, test_ids: list[str] | None = None,
               test_ratio: float = 0.0) -> dict[str, list[str]]:
    """Deterministic ``{"labeled", "unlabeled", "test"}`` id lists (sorted) from ``ids`` (order irrelevant)."""
    pool = sorted(set(ids))
    if not pool:
        raise ValueError("the dataset has no ids; prepare it first (dmt-wrap prepare) or pass --ids.")
    if test_ids is not None:
        test = sorted(set(test_ids))
        pool = [name for name in pool if name not in set(test)]
    elif test_ratio > 0:
        chosen, rest = label_split(len(pool), test_ratio, seed, name="test_ratio (--test-ratio)")
        test, pool = [pool[i] for i in chosen], [pool[i] for i in rest]
    else:
        test = []
    if not pool:
        raise ValueError("no ids are left for training once the test ids are taken out.")
    labeled, unlabeled = label_split(len(pool), label_ratio, seed, name="label_ratio (--label-ratio)")
    return {"labeled": [pool[i] for i in labeled], "unlabeled": [pool[i] for i in unlabeled], "test": test}


def split_folder(root: str | os.PathLike, label_ratio: float, seed: int,
                 out: str | os.PathLike | None = None) -> Path:
    """Where ``write_split`` writes: ``out``, or ``root/splits/ratio<r>-seed<s>``."""
    return Path(out) if out is not None else Path(root) / "splits" / f"ratio{label_ratio:g}-seed{seed}"


def write_split(root: str | os.PathLike, label_ratio: float, seed: int, out: str | os.PathLike | None = None,
                ids: str | os.PathLike | None = None, test: str | os.PathLike | None = None,
                test_ratio: float = 0.0) -> Path:
    """Write ``labeled.txt``, ``unlabeled.txt``, ``test.txt``, ``split.json`` and ``SHA256SUMS``; atomically.

    Default folder: ``root/splits/ratio<r>-seed<s>``. An existing folder is left as it is
    when its files (``split.json`` included) are identical, refused otherwise: an edited
    folder fails its checksum, another split is named as such.
    """
    root = Path(root)
    test_ids = dataset_ids(root, test) if test is not None else None
    parts = make_split(dataset_ids(root, ids), label_ratio, seed, test_ids, test_ratio)
    folder = split_folder(root, label_ratio, seed, out)
    info = {"label_ratio": label_ratio, "seed": seed, "test_ratio": test_ratio if test is None else None,
            "ids": None if ids is None else str(ids), "test": None if test is None else str(test),
            "counts": {part: len(names) for part, names in parts.items()}, "rule": RULE}
    if folder.exists():  # written before: the same split is kept, another one refused
        recorded = read_split_info(folder)
        if read_split(folder) != parts or any(recorded.get(key) != info[key] for key in SETTINGS):
            raise FileExistsError(f"{folder} holds another split; pass another --out or remove it.")
        return folder
    with atomic_folder(folder) as staging:
        for part, names in parts.items():
            (staging / f"{part}.txt").write_text("".join(f"{name}\n" for name in names))
        (staging / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
        write_sums(staging, [f"{part}.txt" for part in PARTS] + [INFO_FILE])
    return folder


SPLIT_FIX = "download the published split again or re-create it with `dmt-wrap splits`"


def _verified(folder: str | os.PathLike) -> Path:
    """``folder`` after checking that its id files and ``split.json`` match ``SHA256SUMS``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"split folder {folder} does not exist; write one with `dmt-wrap splits`.", folder)
    verify_sums(folder, [f"{part}.txt" for part in PARTS] + [INFO_FILE], DataError, SPLIT_FIX)
    return folder


def read_split(folder: str | os.PathLike) -> dict[str, list[str]]:
    """The id lists of a split folder, after checking ``SHA256SUMS`` (``split.json`` included)."""
    folder = _verified(folder)
    return {part: [line.strip() for line in (folder / f"{part}.txt").read_text().splitlines() if line.strip()]
            for part in PARTS}


def read_split_info(folder: str | os.PathLike) -> dict[str, Any]:
    """``split.json`` of a split folder, after its checksum, with ``label_ratio`` checked against the id files.

    A ``label_ratio`` that does not give the folder's labeled count (an edit with the checksums
    regenerated) is refused, so that a result can never report another ratio than it trained on.
    """
    folder = _verified(folder)
    path = folder / INFO_FILE
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        raise DataError(f"{path} is not readable JSON ({SPLIT_FIX}).", path) from None
    ratio = info.get("label_ratio") if isinstance(info, dict) else None
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise DataError(f"{path}: label_ratio {str(ratio)[:20]!r} is not a ratio in (0, 1] ({SPLIT_FIX}).", path)
    parts = read_split(folder)
    training = len(parts["labeled"]) + len(parts["unlabeled"])
    if math.floor(training * ratio + 1e-9) != len(parts["labeled"]):
        raise DataError(f"{path}: label_ratio {ratio:g} does not give the {len(parts['labeled'])} labeled of "
                        f"{training} training ids in labeled.txt; the folder was edited ({SPLIT_FIX}).", path)
    return info


def select(dataset: FrameAudioDataset, names: list[str], what: str) -> Subset:
    """The items of ``dataset`` whose ids are ``names``, in that order; prints "N evaluated / N listed / N missing"."""
    position = {name: index for index, name in enumerate(dataset.names)}
    found = [position[name] for name in names if name in position]
    missing = [name for name in names if name not in position]
    print(f"{what}: {len(found)} evaluated / {len(names)} listed / {len(missing)} missing"
          + (f" (e.g. {missing[:3]})" if missing else ""))
    if not found:
        raise DataError(f"{what}: none of the split's {len(names)} ids is in {dataset.root}; pass the dataset "
                        "folder the split was made for.", dataset.root)
    return Subset(dataset, found)
