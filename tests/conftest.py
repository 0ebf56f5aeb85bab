"""Shared test set-up: one torch thread per test process, and the fixtures several files use."""
from dataclasses import replace

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def tiny_preset(monkeypatch, tmp_path):
    """The quick preset at 32 px and a few steps, its data cache in the test's folder: ``run.py --quick``
    trains and scores every variant in seconds."""
    from dmt_wrap_benchmarks import presets

    monkeypatch.setenv("DMT_WRAP_CACHE", str(tmp_path / "cache"))
    tiny = replace(presets.QUICK, image_size=32, duration=0.25, train_size=200, unlabeled_size=64, test_size=8,
                   curve_size=4, train=presets.QUICK.train.replace(warmup_steps=2, steps=2, steps_per_epoch=2,
                                                                   batch_size=4, labeled_batch_size=2,
                                                                   num_workers=0))
    monkeypatch.setitem(presets.PRESETS, "quick", tiny)
    return tiny


#: Tests that start other processes (a run killed mid-way, torchrun, two run.py at once, a browser,
#: the CLI or a script in a child interpreter), by module or by ``module::test``.
SUBPROCESS = {
    "test_faults.py", "test_distributed.py", "test_shared_output.py", "test_demo.py",
    "test_bad_input_export.py::test_crafted_exports_stay_within_2_gb_and_60_s_on_the_cpu_preset_model",
    "test_bad_input_media.py::test_a_long_silent_audio_file_decodes_only_the_window",
    "test_bad_input_media.py::test_help_does_not_import_torch",
    "test_benchmark_diagnostics.py::test_the_diagnostics_run_as_modules_and_as_files_from_any_folder",
    "test_benchmark_run.py::test_the_scripts_run_as_files_from_any_folder",
    "test_machine.py::test_a_process_pinned_to_the_default_kernels_records_them",
}
#: Tests that train or run a whole command for more than a few seconds on 2 cores (``pytest -m "not
#: slow"`` leaves them out for a fast loop; CI runs everything).
SLOW = SUBPROCESS | {
    "test_benchmark_run.py", "test_benchmark_schedule.py", "test_benchmark_diagnostics.py",
    "test_contract.py::test_the_guides_adapter_trains_their_network",
    "test_cli.py::test_prepare_train_export_localize",
    "test_bad_input_datasets.py::test_composed_silent_stamp_is_skipped_when_counted_and_refused_when_named",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module, test = item.path.name, item.originalname
        for marker, where in (("subprocess", SUBPROCESS), ("slow", SLOW)):
            if module in where or f"{module}::{test}" in where:
                item.add_marker(marker)
