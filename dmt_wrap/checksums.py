"""``SHA256SUMS`` files (the ``sha256sum`` format) that published folders carry and readers verify.

A published folder is read as untrusted: the sums file and the files it lists must be
regular files of the folder itself (a symbolic link is refused, never followed out of it),
the sums file is read up to ``MAX_SUMS_BYTES``, and errors name the file and the line but
never echo what it holds.
"""
from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

SUMS_FILE = "SHA256SUMS"
MAX_SUMS_BYTES = 64 * 1024  # thousands of lines; a published folder lists a handful of files


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


def regular_file(path: Path, error: type[Exception], fix: str) -> os.stat_result:
    """``lstat`` of ``path``, refusing anything but a regular file (a symlink, a folder, a device)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise error(f"{path} is missing; {path.parent} is incomplete ({fix}).") from None
    except OSError as exc:
        raise error(f"{path} cannot be read ({exc.strerror}); {fix}.") from None
    if stat.S_ISLNK(info.st_mode):
        raise error(f"{path} is a symbolic link; a published folder must hold its files itself, not point "
                    f"elsewhere ({fix}; copy links as files, e.g. cp -rL).")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path} is not a regular file ({fix}).")
    return info


def read_sums(folder: Path, error: type[Exception], fix: str) -> dict[str, str]:
    """``{file name: sha256}`` listed in ``folder/SHA256SUMS``; ``error`` for a link, an oversized or a bad file."""
    sums_path = folder / SUMS_FILE
    if regular_file(sums_path, error, fix).st_size > MAX_SUMS_BYTES:
        raise error(f"{sums_path} is larger than {MAX_SUMS_BYTES} bytes, not a checksum list ({fix}).")
    descriptor = os.open(sums_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(descriptor, "rb") as handle:
        raw = handle.read(MAX_SUMS_BYTES + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{sums_path} is not text ({fix}).") from None
    listed: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
            raise error(f"{sums_path} line {number} is not '<sha256>  <file>' ({fix}).")
        listed[parts[1].lstrip("*")] = parts[0].lower()
    return listed


def verify_sums(folder: Path, names: Sequence[str], error: type[Exception], fix: str) -> None:
    """Raise ``error`` unless every file of ``names`` is listed in ``SHA256SUMS`` and matches it."""
    sums_path = folder / SUMS_FILE
    if not os.path.lexists(sums_path):
        raise error(f"{sums_path} is missing; {folder} is incomplete ({fix}).")
    listed = read_sums(folder, error, fix)
    for name in names:
        path = folder / name
        if name not in listed:
            raise error(f"{sums_path} lists no checksum for {name} ({fix}).")
        regular_file(path, error, fix)
        if sha256(path) != listed[name]:
            raise error(f"{path} does not match its checksum in {sums_path}: the file is corrupt, incomplete or "
                        f"was edited ({fix}).")
