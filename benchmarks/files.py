"""Files of a comparison's output folder, safe when several processes share it."""
from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("benchmarks")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a uniquely named temp file in the same folder and a
    rename, so that concurrent writers and kills never leave a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def job_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a job folder (``job.lock``); another holder makes us wait.

    The lock is the operating system's (``flock``): it is released when its holder exits,
    even by a kill, so a crashed run never blocks the next one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "job.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s: another process is running this job; waiting for it", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
