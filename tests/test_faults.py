"""Faults a long run must survive: a SIGKILL mid-training, a crash mid-checkpoint-write.

The killed processes are real: a separate interpreter (``sys.executable``) running
``fault_scripts/train_toy.py``, and forked writers saving a large checkpoint in a loop.
Every process is killed and reaped in ``finally``; every wait is bounded.
"""
from __future__ import annotations

import errno
import io
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dmt_wrap.checkpoint import CheckpointError, load_checkpoint, save_atomic
from tests.child_env import same_code_env
from tests.fault_scripts import train_toy

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

TRAIN_SCRIPT = Path(train_toy.__file__)
PROCESS_TIMEOUT = 120.0  # seconds: a loaded CI machine still imports torch well within this


# ----------------------------------------------------------------- helpers
def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               alive: Callable[[], bool] = lambda: True, log: Path | None = None) -> None:
    """Poll ``condition`` every 2 ms; fail with ``what`` (and the log) on timeout or death."""
    deadline = time.monotonic() + timeout
    while not condition():
        details = f"\n--- process log ---\n{log.read_text()}" if log is not None and log.exists() else ""
        assert alive(), f"the process died while waiting for {what}{details}"
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}{details}"
        time.sleep(0.002)


def stop_subprocess(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def stop_forked(proc: multiprocessing.process.BaseProcess) -> None:
    if proc.is_alive():
        proc.kill()
    proc.join(timeout=30)


def temp_files(folder: Path) -> set[Path]:
    """Temporary files ``save_atomic`` leaves when killed mid-write (``.<name>.*.tmp``)."""
    return set(folder.glob(".*.tmp"))


def assert_same_tensors(mine: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    assert list(mine) == list(theirs)
    different = [name for name in mine if not torch.equal(mine[name], theirs[name])]
    assert not different, f"tensors differ from the uninterrupted run: {different}"


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# ----------------------------------------------------------------- kill a training run
def test_training_killed_mid_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a training process after its first checkpoint; resuming reaches the very same weights."""
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    checkpoint = run_dir / "last.pt"
    total = train_toy.CONFIG.warmup_steps + train_toy.CONFIG.steps
    with open(log, "w") as log_handle:
        proc = subprocess.Popen([sys.executable, str(TRAIN_SCRIPT), str(run_dir)], stdout=log_handle,
                                stderr=subprocess.STDOUT, cwd=tmp_path, env=same_code_env())
    try:
        wait_until(checkpoint.exists, PROCESS_TIMEOUT, f"the first checkpoint {checkpoint}",
                   alive=lambda: proc.poll() is None, log=log)
        assert proc.poll() is None, "the run finished before it could be killed: raise CONFIG.steps"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_subprocess(proc)
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    killed_at = load_checkpoint(checkpoint)["step"]
    assert 0 < killed_at < total  # the run really was cut short, and resuming has work to do

    resumed = train_toy.train(run_dir)  # a new call, in another process than the killed one
    uninterrupted = train_toy.train(None, resume=False)
    assert_same_tensors(resumed.state_dict(), uninterrupted.state_dict())
    assert load_checkpoint(checkpoint)["step"] == total
    assert without_timing(resumed.history) == without_timing(uninterrupted.history)


# ----------------------------------------------------------------- kill a checkpoint write
WRITE_NUMEL = 4_000_000  # int64: a 32 MB checkpoint, so a good share of each loop is spent writing


def save_forever(path: Path, round_number: int) -> None:
    """A writer process: save ever-newer complete states to the same ``path`` until killed."""
    saves = 0
    while True:
        saves += 1
        value = round_number * 1_000_000 + saves
        save_atomic({"round": round_number, "value": value,
                     "data": torch.full((WRITE_NUMEL,), value, dtype=torch.int64)}, path)


def assert_complete(state: dict) -> int:
    """A state written by ``save_forever`` in full: every element carries its ``value``."""
    data = state["data"]
    assert data.shape == (WRITE_NUMEL,)
    assert bool((data == state["value"]).all()), "the checkpoint mixes two saves"
    return int(state["value"])


def test_kill_during_checkpoint_write_never_corrupts_the_file(tmp_path):
    """SIGKILL writers at random moments, half of them mid-write: the file always loads in full.

    After each kill ``load_checkpoint`` must return one complete state, never older than
    the previous one; temp files of killed writes stay behind but never break a later save.
    """
    fork = multiprocessing.get_context("fork")
    path = tmp_path / "ckpt" / "last.pt"
    rng = random.Random(1234)
    newest, kills_mid_write = 0, 0
    for round_number in range(1, 7):
        inode_before = path.stat().st_ino if path.exists() else None
        temps_before = temp_files(path.parent) if path.parent.exists() else set()
        writer = fork.Process(target=save_forever, args=(path, round_number), daemon=True)
        writer.start()
        try:
            # Wait for this writer's first complete save (os.replace gives the path a new inode) ...
            wait_until(lambda: path.exists() and path.stat().st_ino != inode_before, PROCESS_TIMEOUT,
                       f"round {round_number}'s first save", alive=writer.is_alive)
            if round_number % 2:  # ... then kill it while its temp file is being written,
                wait_until(lambda: temp_files(path.parent) - temps_before, PROCESS_TIMEOUT,
                           f"round {round_number}'s next write", alive=writer.is_alive)
            else:  # ... or at a random moment.
                time.sleep(rng.uniform(0.0, 0.3))
            os.kill(writer.pid, signal.SIGKILL)
            writer.join(timeout=30)
        finally:
            stop_forked(writer)
        assert writer.exitcode == -signal.SIGKILL
        state = load_checkpoint(path)
        value = assert_complete(state)
        assert state["round"] == round_number and value >= newest
        newest = value
        kills_mid_write += bool(temp_files(path.parent) - temps_before)
    assert kills_mid_write >= 2, "kills did not land inside writes: the test did not test atomicity"

    stray = temp_files(path.parent)
    save_atomic({"value": 1, "data": torch.full((WRITE_NUMEL,), 1, dtype=torch.int64)}, path)
    assert assert_complete(load_checkpoint(path)) == 1
    assert temp_files(path.parent) == stray  # the next save neither failed on nor removed them


# ----------------------------------------------------------------- failures inside save_atomic
def old_state() -> dict:
    return {"value": 1, "data": torch.arange(1000)}


def assert_old_state_intact(path: Path, stray: frozenset[Path] = frozenset()) -> None:
    """``path`` holds ``old_state()``, and no temp file but ``stray`` lies next to it."""
    state = load_checkpoint(path)
    assert state["value"] == 1 and torch.equal(state["data"], torch.arange(1000))
    assert temp_files(path.parent) == stray, "a temp file was left behind"


def test_unpicklable_state_leaves_previous_checkpoint_intact(tmp_path):
    """torch.save fails half-way (an object it cannot pickle): the old file stays, no temp file."""
    path = tmp_path / "last.pt"
    save_atomic(old_state(), path)
    with pytest.raises(Exception, match="pickle"):
        save_atomic({"value": 2, "data": torch.arange(10), "callback": lambda: None}, path)
    assert_old_state_intact(path)


def test_interrupt_mid_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    """Ctrl-C after half the bytes are on disk: KeyboardInterrupt propagates, the old file stays."""
    path = tmp_path / "last.pt"
    save_atomic(old_state(), path)
    real_save = torch.save

    def save_half_then_interrupt(obj, handle, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"value": 2, "data": torch.arange(5000)}, path)
    assert_old_state_intact(path)


def test_disk_full_at_fsync_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    """ENOSPC when flushing the new file: the error propagates, the old file stays, no temp file."""
    path = tmp_path / "last.pt"
    save_atomic(old_state(), path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        save_atomic({"value": 2, "data": torch.arange(5000)}, path)
    monkeypatch.undo()
    assert_old_state_intact(path)


def test_killed_writer_temp_file_is_never_taken_for_the_checkpoint(tmp_path):
    """A half-written temp file next to a missing checkpoint: loading refuses, saving works."""
    buffer = io.BytesIO()
    torch.save({"format": "dmt_wrap/1", "data": torch.arange(5000)}, buffer)
    stray = tmp_path / ".last.pt.abc123.tmp"
    stray.write_bytes(buffer.getvalue()[:2000])  # what a writer killed mid-write leaves
    with pytest.raises(FileNotFoundError, match="last.pt"):
        load_checkpoint(tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="abc123"):
        load_checkpoint(stray)
    save_atomic(old_state(), tmp_path / "last.pt")
    assert_old_state_intact(tmp_path / "last.pt", frozenset({stray}))
