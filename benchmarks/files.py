"""Job folders that several processes may share: one exclusive lock per job."""
from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("benchmarks")


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
