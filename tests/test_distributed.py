"""Data-parallel training: two gloo processes under torchrun, on CPU.

One torchrun launch (``distributed_worker.py``) runs three short fits on two ranks; the
tests compare what each rank saved with the other rank and with one process that sees the
same global batches.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmt_wrap import DualMeanTeacher
from dmt_wrap.streams import BatchStream, EndlessSampler
from tests.child_env import same_code_env
from tests.distributed_setup import SINGLE_PROCESS, WORLD_SIZE, FlatToyNet, toy_data
from tests.toy import SquaresDataset

WORKER = Path(__file__).parent / "distributed_worker.py"
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> Path:
    """Run the worker on two ranks once; the folder holding what every rank saved."""
    out = tmp_path_factory.mktemp("distributed")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD_SIZE}",
               str(WORKER), str(out)]
    env = same_code_env(OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # torchrun and the ranks it started
        output, _ = process.communicate()
        pytest.fail(f"torchrun did not finish within {TIMEOUT_S} s:\n{output[-4000:]}")
    assert process.returncode == 0, output[-4000:]
    return out


def saved(out: Path, name: str) -> list[dict]:
    return [torch.load(out / f"{name}_rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize("name", ["flat", "batchnorm", "self_supervised"])
def test_every_rank_ends_with_the_same_networks_and_history(ranks, name):
    first, second = saved(ranks, name)
    for mine, theirs in zip(first["teachers"] + first["students"], second["teachers"] + second["students"]):
        assert_same_tensors(mine, theirs)
    assert len(first["teachers"]) == (0 if name == "self_supervised" else 2)
    assert without_timing(first["history"]) == without_timing(second["history"])


def test_only_rank_zero_writes_the_checkpoint(ranks):
    # rank 0's last.pt and end-of-warm-up warmup.pt, and nothing from rank 1 (no temporary file either)
    assert sorted(p.name for p in (ranks / "flat").iterdir()) == ["last.pt", "warmup.pt"]


def test_two_ranks_match_one_process_with_the_global_batch(ranks):
    """Rank 0's teachers after 8 steps against one process with twice the batch.

    Equal up to float rounding: DDP averages two half-batch gradients where one process
    takes the gradient of the whole batch's mean, and Adam rescales small differences
    (4e-8 here; normalising the pseudo loss per rank instead puts it 5e-4 off).
    """
    single = DualMeanTeacher(FlatToyNet, SINGLE_PROCESS, device="cpu")
    single.fit(*toy_data(), progress=False)
    parallel = saved(ranks, "flat")[0]
    for teacher, state in zip(single.teachers, parallel["teachers"]):
        for key, value in teacher.state_dict().items():
            assert torch.allclose(value.float(), state[key].float(), atol=1e-5, rtol=1e-4), key
    for mine, theirs in zip(without_timing(single.history), without_timing(parallel["history"])):
        assert mine.keys() == theirs.keys()
        for key, value in mine.items():
            expected = pytest.approx(theirs[key], rel=1e-4, abs=1e-5) if isinstance(value, float) else theirs[key]
            assert value == expected, key


def test_rank_shards_make_up_the_single_process_batches():
    """Rank r takes the r-th slice of every global batch of the one-process stream, from any start."""
    single = iter(EndlessSampler(10, seed=3, start=4, batch_size=6))
    shards = [iter(EndlessSampler(10, seed=3, start=4, rank=rank, world_size=2, batch_size=3)) for rank in range(2)]
    for _ in range(5):
        global_batch = [next(single) for _ in range(6)]
        assert [next(shards[0]) for _ in range(3)] + [next(shards[1]) for _ in range(3)] == global_batch


def test_stream_counts_global_samples():
    stream = BatchStream(SquaresDataset(10), batch_size=3, seed=0, rank=1, world_size=2)
    stream.next()
    assert stream.consumed == 6
