"""Files that appear whole or not at all: write under a temporary name, then rename."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: once, at import, before any thread writes
    os.umask(mask)
    return mask


_UMASK = _read_umask()
_FILE_MODE = 0o666 & ~_UMASK
_FOLDER_MODE = 0o777 & ~_UMASK


@contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = False, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed to ``path``.

    A crash, an exception or a kill mid-write leaves ``path`` as it was (or absent) and no
    temporary file behind (an exception removes it; a kill leaves only a hidden ``.NAME.*``
    file that never shadows a real one). The file gets the permissions a plain ``open`` would
    give (not ``mkstemp``'s owner-only ones), and ends in ``suffix`` (default: ``path``'s own, so
    that writers that pick a format by extension, PyAV or Pillow, still work). ``durable`` also
    fsyncs the file and its folder, so that the rename survives a power cut (checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix,
                                    dir=path.parent)
    os.close(handle)
    os.chmod(temp, _FILE_MODE)
    try:
        yield temp
        if durable:
            with open(temp, "rb") as written:
                os.fsync(written.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """``Path(path).write_text(text)``, atomically."""
    with atomic_path(path) as temp:
        Path(temp).write_text(text)
    return Path(path)


@contextmanager
def atomic_folder(folder: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``folder``; when the block succeeds it replaces
    ``folder`` (an existing one is removed first: callers check that it is theirs to replace),
    otherwise it is removed. The folder and its files get the permissions of the user's umask
    (not ``mkdtemp``'s owner-only ones). ``durable`` fsyncs every file written into it before
    the rename."""
    folder = Path(folder)
    if folder.is_symlink():
        raise FileExistsError(f"{folder} is a symbolic link; write to a real folder, the link is not replaced.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield staging
        for written in staging.iterdir():
            if written.is_file() and not written.is_symlink():
                os.chmod(written, _FILE_MODE)
                if durable:
                    with open(written, "rb") as handle:
                        os.fsync(handle.fileno())
        os.chmod(staging, _FOLDER_MODE)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
