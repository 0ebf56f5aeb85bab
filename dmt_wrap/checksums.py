"""``SHA256SUMS`` files (the ``sha256sum`` format) that published folders carry and readers verify."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

SUMS_FILE = "SHA256SUMS"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(folder: Path, names: Sequence[str]) -> Path:
    """Write ``folder/SHA256SUMS`` for the files ``names`` (checkable with ``sha256sum -c``)."""
    path = folder / SUMS_FILE
    path.write_text("".join(f"{sha256(folder / name)}  {name}\n" for name in names))
    return path


def verify_sums(folder: Path, names: Sequence[str], error: type[Exception], fix: str) -> None:
    """Raise ``error`` unless every file of ``names`` is listed in ``SHA256SUMS`` and matches it."""
    sums_path = folder / SUMS_FILE
    if not sums_path.is_file():
        raise error(f"{sums_path} is missing; {folder} is incomplete ({fix}).")
    listed: dict[str, str] = {}
    for number, line in enumerate(sums_path.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise error(f"{sums_path} line {number} is not '<sha256>  <file>': {line!r} ({fix}).")
        listed[parts[1].lstrip("*")] = parts[0].lower()
    for name in names:
        path = folder / name
        if name not in listed:
            raise error(f"{sums_path} lists no checksum for {name} ({fix}).")
        if not path.is_file():
            raise error(f"{path} is missing; copy the whole folder ({fix}).")
        if sha256(path) != listed[name]:
            raise error(f"{path} does not match its checksum in {sums_path}: the file is corrupt, incomplete or "
                        f"was edited ({fix}).")
