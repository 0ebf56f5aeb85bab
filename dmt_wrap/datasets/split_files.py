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
import os
from pathlib import Path

from torch.utils.data import Subset

from ..atomic import atomic_folder
from ..checksums import verify_sums, write_sums
from .media import AUDIO_EXTENSIONS, DataError, FrameAudioDataset, read_lines
from .splits import label_split

PARTS = ("labeled", "unlabeled", "test")
INFO_FILE = "split.json"
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
        chosen, rest = label_split(len(pool), test_ratio, seed)
        test, pool = [pool[i] for i in chosen], [pool[i] for i in rest]
    else:
        test = []
    if not pool:
        raise ValueError("no ids are left for training once the test ids are taken out.")
    labeled, unlabeled = label_split(len(pool), label_ratio, seed)
    return {"labeled": [pool[i] for i in labeled], "unlabeled": [pool[i] for i in unlabeled], "test": test}


def write_split(root: str | os.PathLike, label_ratio: float, seed: int, out: str | os.PathLike | None = None,
                ids: str | os.PathLike | None = None, test: str | os.PathLike | None = None,
                test_ratio: float = 0.0) -> Path:
    """Write ``labeled.txt``, ``unlabeled.txt``, ``test.txt``, ``split.json`` and ``SHA256SUMS``; atomically.

    Default folder: ``root/splits/ratio<r>-seed<s>``. An existing folder is left as it is
    when its files are identical, refused otherwise.
    """
    root = Path(root)
    test_ids = dataset_ids(root, test) if test is not None else None
    parts = make_split(dataset_ids(root, ids), label_ratio, seed, test_ids, test_ratio)
    folder = Path(out) if out is not None else root / "splits" / f"ratio{label_ratio:g}-seed{seed}"
    info = {"label_ratio": label_ratio, "seed": seed, "test_ratio": test_ratio if test is None else None,
            "ids": None if ids is None else str(ids), "test": None if test is None else str(test),
            "counts": {part: len(names) for part, names in parts.items()}, "rule": RULE}
    if folder.exists():  # written before: the same split is kept, another one refused
        if read_split(folder) != parts:
            raise FileExistsError(f"{folder} holds another split; pass another --out or remove it.")
        return folder
    with atomic_folder(folder) as staging:
        for part, names in parts.items():
            (staging / f"{part}.txt").write_text("".join(f"{name}\n" for name in names))
        (staging / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
        write_sums(staging, [f"{part}.txt" for part in PARTS] + [INFO_FILE])
    return folder


def read_split(folder: str | os.PathLike) -> dict[str, list[str]]:
    """The id lists of a split folder, after checking ``SHA256SUMS``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"split folder {folder} does not exist; write one with `dmt-wrap splits`.", folder)
    verify_sums(folder, [f"{part}.txt" for part in PARTS], DataError,
                "download the published split again or re-create it with `dmt-wrap splits`")
    return {part: [line.strip() for line in (folder / f"{part}.txt").read_text().splitlines() if line.strip()]
            for part in PARTS}


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
