"""dmt_wrap.machine: every result file names the machine and kernels that computed it."""
import json
import subprocess
import sys

import torch

from dmt_wrap import DualMeanTeacher
from dmt_wrap.machine import describe, machine_record, numerics_key
from dmt_wrap.pretrained import write_pretrained
from dmt_wrap_benchmarks import run
from tests.child_env import same_code_env
from tests.registered_nets import ClipToyNet
from tests.test_export import FAST


def test_the_record_names_the_kernels_that_decide_the_bits(monkeypatch):
    for pin in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
        monkeypatch.delenv(pin, raising=False)
    record = machine_record(threads=1)
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["threads"] == 1 and record["device"] == "cpu" and record["torch"] == torch.__version__
    assert record["pins"] == {} and record["cpu_model"]
    if torch.backends.mkldnn.is_available():
        assert record["onednn"] and record["onednn"] in torch.__config__.show()
    json.dumps(record)  # JSON-ready as it is
    # threads and pins change the kernels, so the key; the Python version does not
    assert numerics_key(machine_record(threads=2)) != numerics_key(record)
    assert numerics_key({**record, "python": "3.12.0"}) == numerics_key(record)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    pinned = machine_record(threads=1)
    assert pinned["pins"] == {"MKL_CBWR": "COMPATIBLE"} and numerics_key(pinned) != numerics_key(record)
    assert "MKL_CBWR=COMPATIBLE" in describe(pinned) and "1 thread," in describe(pinned)
    assert numerics_key(None) is None and describe(None) == "machine not recorded"


def test_a_process_pinned_to_the_default_kernels_records_them():
    code = "import json; from dmt_wrap.machine import machine_record; print(json.dumps(machine_record()))"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=same_code_env(ATEN_CPU_CAPABILITY="default"))
    record = json.loads(child.stdout)
    assert record["cpu_capability"] == "DEFAULT" and record["pins"]["ATEN_CPU_CAPABILITY"] == "default"


def test_every_result_file_of_a_run_names_its_machine(tiny_preset, tmp_path):
    out = tmp_path / "out"
    assert run.main(["--method", "ezvsl", "--quick", "--variants", "naive", "--out", str(out), "--no-progress",
                     "--threads", "1", "--device", "cpu"]) == 0
    job = json.loads((out / "jobs" / "ezvsl" / "ratio0.03" / "seed0" / "naive" / "result.json").read_text())
    results, gains = (json.loads((out / name).read_text()) for name in ("results.json", "gains.json"))
    for record in (job["machine"], results["machine"], gains["machine"], results["runs"][0]["machine"]):
        assert record["threads"] == 1 and record["device"] == "cpu"
        assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert f"Machine: {describe(results['machine'])}" in (out / "results.md").read_text()


def test_an_exported_model_names_the_machine_that_exported_it(tmp_path):
    folder = write_pretrained(DualMeanTeacher(ClipToyNet, FAST), tmp_path / "m", network="toy_clip",
                              network_kwargs={}, data={"image_size": 16, "sample_rate": 16000, "duration": 1.0})
    machine = json.loads((folder / "config.json").read_text())["machine"]
    assert machine["torch"] == torch.__version__ and machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
