"""Several comparisons sharing one --out: job folders are locked, files written atomically."""
import json
import subprocess
import sys
import time

from dmt_wrap_benchmarks.files import job_lock
from dmt_wrap.atomic import write_text_atomic
from tests.child_env import same_code_env

HOLD_LOCK = """
import sys, time
from pathlib import Path
from dmt_wrap_benchmarks.files import job_lock
with job_lock(Path(sys.argv[1])):
    Path(sys.argv[2]).write_text("held")
    time.sleep(float(sys.argv[3]))
    Path(sys.argv[2]).write_text("released")
"""


def test_a_second_process_waits_for_the_job_lock_and_a_killed_holder_releases_it(tmp_path):
    folder, marker = tmp_path / "job", tmp_path / "marker"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder), str(marker), "1.5"], env=same_code_env())
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "held"
    with job_lock(folder):  # blocks until the holder is done
        assert marker.read_text() == "released"
    assert holder.wait(timeout=60) == 0
    # a holder killed mid-job never blocks the next run: the operating system drops its lock
    marker.unlink()
    killed = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder), str(marker), "600"], env=same_code_env())
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.kill()
    killed.wait(timeout=60)
    started = time.monotonic()
    with job_lock(folder):
        assert time.monotonic() - started < 30


WRITE_LOOP = """
import json, sys
from pathlib import Path
from dmt_wrap.atomic import write_text_atomic
for i in range(200):
    write_text_atomic(Path(sys.argv[1]), json.dumps({"writer": sys.argv[2], "rows": list(range(2000))}))
"""


def test_concurrent_writers_never_leave_a_partial_results_file(tmp_path):
    path = tmp_path / "results.json"
    write_text_atomic(path, json.dumps({"writer": "first", "rows": []}))
    writers = [subprocess.Popen([sys.executable, "-c", WRITE_LOOP, str(path), name], env=same_code_env())
               for name in ("a", "b")]
    reads = 0
    while any(w.poll() is None for w in writers):
        payload = json.loads(path.read_text())  # never half a file
        assert payload["writer"] in ("first", "a", "b")
        reads += 1
    assert all(w.returncode == 0 for w in writers) and reads > 0
    assert json.loads(path.read_text())["rows"] == list(range(2000))
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left behind
