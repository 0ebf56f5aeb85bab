"""Output paths checked before any work, so that a refusal or a failure leaves nothing behind.

An output is never one of the inputs (compared by resolved path and by inode, so a hard link
or a ``./`` spelling does not slip through), never another output, never an existing file
unless the user allowed it (``--overwrite``), never a folder; its folder must be writable
(missing folders are created) and its disk not full.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Below this much free space an output is refused before processing (the exact size is unknown).
MIN_FREE_BYTES = 16 * 1024 * 1024


class ArgumentError(ValueError):
    """A command-line argument that cannot work as given (a usage error: exit status 2)."""


class OutputError(ArgumentError):
    """An output argument that cannot be written as given."""


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file: equal once resolved, or one inode (hard links)."""
    if first.resolve() == second.resolve():
        return True
    try:
        a, b = os.stat(first), os.stat(second)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def existing_parent(path: Path) -> Path:
    """The nearest folder above ``path`` that exists (where missing folders would be created)."""
    parent = path.absolute().parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    return parent


def check_outputs(outputs: Mapping[str, Path | None], inputs: Mapping[str, Path | None], overwrite: bool = False,
                  suffixes: Mapping[str, Sequence[str]] | None = None, min_free: int = MIN_FREE_BYTES) -> None:
    """Refuse, with an ``OutputError`` naming the argument, any output that would lose data or fail late.

    ``outputs`` and ``inputs`` map an argument's name (``--out``, ``VIDEO``) to its path
    (``None``: not given). ``suffixes`` lists the extensions each output may take.
    """
    given = [(flag, Path(path)) for flag, path in outputs.items() if path is not None]
    sources = [(flag, Path(path)) for flag, path in inputs.items() if path is not None]
    for number, (flag, path) in enumerate(given):
        for source_flag, source in sources:
            if same_file(path, source):
                raise OutputError(f"{flag} {path} is the input {source_flag} {source}; writing it would destroy the "
                                  "input: choose another output name.")
        for other_flag, other in given[number + 1:]:
            if same_file(path, other):
                raise OutputError(f"{flag} and {other_flag} both name {path}; give each output its own file.")
        if path.is_dir():
            raise OutputError(f"{flag} {path} is a folder; name a file inside it instead.")
        allowed = (suffixes or {}).get(flag)
        if allowed and path.suffix.lower() not in allowed:
            raise OutputError(f"{flag} {path}: name it with one of {', '.join(allowed)} (the extension says what is "
                              "written).")
        if os.path.lexists(path) and not overwrite:
            raise OutputError(f"{flag} {path} already exists; pass --overwrite to replace it, or choose another "
                              "name.")
        parent = existing_parent(path)
        if not parent.is_dir():
            raise OutputError(f"{flag} {path}: {parent} is a file, not a folder; choose another output path.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"{flag} {path}: cannot write in {parent} (permission denied); choose a writable "
                              "folder.")
        try:
            free = shutil.disk_usage(parent).free
        except OSError:
            continue
        if free < min_free:
            raise OutputError(f"{flag} {path}: only {free / 2**20:.1f} MiB free on the disk of {parent}; free some "
                              "space or write elsewhere.")
