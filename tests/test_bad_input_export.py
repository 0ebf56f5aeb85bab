"""Tampered exported folders (issue 31): every one refused by name before a weight is copied, nothing read outside
the folder, nothing echoed from its files, overwrite replaces only an earlier export, outputs readable by others."""
import json
import os
import stat
import subprocess
import sys
import textwrap
import warnings
from importlib.metadata import EntryPoint

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dmt_wrap import DMTConfig, DualMeanTeacher, registry
from dmt_wrap.checkpoint import CheckpointError
from dmt_wrap.checksums import sha256
from dmt_wrap.cli import main
from dmt_wrap.pretrained import write_pretrained
from tests.registered_nets import ClipToyNet

DATA = {"image_size": 16, "sample_rate": 16000, "duration": 1.0}


@registry.register("wide_toy")
class WideToy(ClipToyNet):
    """ClipToyNet with a width argument and an initial-weights file argument (``*_weights``: a path)."""

    def __init__(self, dim: int = 8, init_weights: str | None = None) -> None:
        super().__init__()
        self.extra = nn.Linear(dim, 1)
        if init_weights is not None:
            self.extra.load_state_dict(torch.load(init_weights, weights_only=True))


@pytest.fixture
def export(tmp_path):
    model = DualMeanTeacher(ClipToyNet, DMTConfig(teachers=0))
    return write_pretrained(model, tmp_path / "m", network="toy_clip", network_kwargs={}, data=DATA)


def resum(folder, *extra):
    """What anyone can do after editing a file: regenerate the checksums."""
    names = ("model.safetensors", "config.json", *extra)
    (folder / "SHA256SUMS").write_text("".join(f"{sha256(folder / n)}  {n}\n" for n in names))


def edit_config(folder, change, *extra):
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    resum(folder, *extra)


def cli_refuses(folder, tmp_path, capsys, fragment):
    """``dmt-wrap localize`` on the folder: exit 1, one line naming the problem, no traceback."""
    image = tmp_path / "p.png"
    from PIL import Image
    Image.new("RGB", (8, 8)).save(image)
    from tests.synthetic_media import make_wav
    capsys.readouterr()
    code = main(["localize", "--image", str(image), "--audio", str(make_wav(tmp_path / "s.wav")), "--model",
                 str(folder), "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "o.png").exists()


TAMPERED = {
    "format_version 0": (lambda c: c.update(format_version=0), "format_version 0 is not a version"),
    "format_version true": (lambda c: c.update(format_version=True), "format_version True is not a version"),
    "format_version '1'": (lambda c: c.update(format_version="1"), "format_version '1' is not a version"),
    "unknown weights.source": (lambda c: c["weights"].update(source="bogus"), "weights.source is 'bogus'"),
    "duration 1e9": (lambda c: c["data"].update(duration=1e9), "data.duration is 1000000000.0"),
    "image_size text": (lambda c: c["data"].update(image_size="big"), "data.image_size is str"),
    "sample_rate NaN": (lambda c: c["data"].update(sample_rate=float("nan")), "data.sample_rate is nan"),
    "network not an object": (lambda c: c.update(network=[]), "network is list"),
    "kwargs not an object": (lambda c: c["network"].update(kwargs=[1]), "network.kwargs is list"),
    "unknown kwarg": (lambda c: c["network"].update(kwargs={"nope": 1}), "do not build 'toy_clip'"),
    "train not a config": (lambda c: c.update(train={"teachers": "many"}), "train does not hold a valid DMTConfig"),
    "train a list": (lambda c: c.update(train=[]), "train is list"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_configs_are_refused_by_field_in_one_line(export, tmp_path, capsys, case):
    change, fragment = TAMPERED[case]
    edit_config(export, change)
    with pytest.raises(CheckpointError, match=fragment.replace("(", "\\(").replace(".", "\\.")):
        DualMeanTeacher.from_pretrained(export)
    cli_refuses(export, tmp_path, capsys, fragment)


def test_deeply_nested_and_non_object_configs_are_refused(export, tmp_path, capsys):
    (export / "config.json").write_text("[" * 100000 + "]" * 100000)
    resum(export)
    with pytest.raises(CheckpointError, match="not readable JSON"):
        DualMeanTeacher.from_pretrained(export)
    cli_refuses(export, tmp_path, capsys, "not readable JSON")


def test_arguments_are_checked_against_the_stored_shapes_before_the_network_is_built(tmp_path, monkeypatch):
    model = DualMeanTeacher(WideToy, DMTConfig(teachers=0))
    folder = write_pretrained(model, tmp_path / "m", network="wide_toy", network_kwargs={"dim": 8}, data=DATA)
    built = []
    monkeypatch.setattr(nn.Linear, "reset_parameters", lambda self: built.append(self.weight.device.type))
    edit_config(folder, lambda c: c["network"]["kwargs"].update(dim=2_000_000_000))  # 8 GB if built for real
    with pytest.raises(CheckpointError, match="arguments build networks of 7.5 GiB"):
        DualMeanTeacher.from_pretrained(folder)
    assert set(built) == {"meta"}  # nothing was allocated
    edit_config(folder, lambda c: c["network"]["kwargs"].update(dim=9))
    with pytest.raises(CheckpointError, match=r"shape: \['networks.0.net.extra.weight \(1, 8\) != \(1, 9\)'\]"):
        DualMeanTeacher.from_pretrained(folder)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int8, torch.bool])
def test_tensors_of_another_dtype_are_refused(export, dtype):
    tensors = load_file(export / "model.safetensors")
    tensors = {name: value.to(dtype) if value.is_floating_point() else value for name, value in tensors.items()}
    save_file(tensors, export / "model.safetensors", metadata={"format": "dmt_wrap.pretrained"})
    resum(export)
    with pytest.raises(CheckpointError, match="stores tensors of another type than the network's"):
        DualMeanTeacher.from_pretrained(export)


def test_non_finite_weights_are_refused(export):
    tensors = load_file(export / "model.safetensors")
    name = next(n for n, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[name][0] = float("nan")
    save_file(tensors, export / "model.safetensors", metadata={"format": "dmt_wrap.pretrained"})
    resum(export)
    with pytest.raises(CheckpointError, match=f"tensor {name} holds NaN or infinite values"):
        DualMeanTeacher.from_pretrained(export)


def test_a_linked_checksum_file_is_not_followed_nor_echoed(export, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE password=hunter2\n")
    (export / "SHA256SUMS").unlink()
    (export / "SHA256SUMS").symlink_to(secret)
    with pytest.raises(CheckpointError, match="SHA256SUMS is a symbolic link") as info:
        DualMeanTeacher.from_pretrained(export)
    assert "hunter2" not in str(info.value)
    cli_refuses(export, tmp_path, capsys, "is a symbolic link")
    (export / "SHA256SUMS").unlink()
    (export / "SHA256SUMS").write_text("TOP-SECRET-LINE password=hunter2\n")
    with pytest.raises(CheckpointError, match="line 1 is not") as info:
        DualMeanTeacher.from_pretrained(export)
    assert "hunter2" not in str(info.value)
    with open(export / "SHA256SUMS", "wb") as handle:  # sparse: large on paper, nothing on disk
        handle.truncate(8 << 30)
    with pytest.raises(CheckpointError, match="SHA256SUMS is larger than 65536 bytes"):
        DualMeanTeacher.from_pretrained(export)


def test_linked_weights_and_config_are_refused(export, tmp_path):
    outside = tmp_path / "elsewhere.json"
    (export / "config.json").rename(outside)
    (export / "config.json").symlink_to(outside)
    with pytest.raises(CheckpointError, match="config.json is a symbolic link"):
        DualMeanTeacher.from_pretrained(export)


def test_argument_files_are_copied_in_and_never_read_outside(tmp_path):
    init = tmp_path / "init.pt"
    torch.save(nn.Linear(8, 1).state_dict(), init)
    model = DualMeanTeacher(lambda: WideToy(init_weights=str(init)), DMTConfig(teachers=0))
    folder = write_pretrained(model, tmp_path / "m", network="wide_toy", network_kwargs={"init_weights": str(init)},
                              data=DATA)
    assert json.loads((folder / "config.json").read_text())["network"]["kwargs"] == {"init_weights": "init_weights.pt"}
    init.unlink()  # the export is self-contained
    images, audio = torch.rand(2, 3, 16, 16), torch.rand(2, 16000)
    assert torch.equal(DualMeanTeacher.from_pretrained(folder).localize(images, audio), model.localize(images, audio))
    for outside in ("/etc/passwd", "../init.pt", str(tmp_path / "m" / "init_weights.pt")):
        edit_config(folder, lambda c: c["network"]["kwargs"].update(init_weights=outside))
        with pytest.raises(CheckpointError, match="names a file outside the exported folder"):
            DualMeanTeacher.from_pretrained(folder)
    edit_config(folder, lambda c: c["network"]["kwargs"].update(init_weights="init_weights.pt"), "init_weights.pt")
    (folder / "init_weights.pt").write_bytes(b"changed")
    with pytest.raises(CheckpointError, match="init_weights.pt does not match its checksum"):
        DualMeanTeacher.from_pretrained(folder)


def test_exports_get_the_permissions_of_the_umask(export):
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(export.stat().st_mode) == 0o777 & ~umask
    for name in ("model.safetensors", "config.json", "SHA256SUMS"):
        assert stat.S_IMODE((export / name).stat().st_mode) == 0o666 & ~umask


def test_overwrite_replaces_only_an_earlier_export(export, tmp_path, capsys):
    model = DualMeanTeacher(ClipToyNet, DMTConfig(teachers=0))
    model.save(tmp_path / "model.pt")
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    args = ["--image-size", "16", "--sample-rate", "16000", "--duration", "1"]
    for out in (thesis, tmp_path / "model.pt", tmp_path):
        assert main(["export", str(tmp_path / "model.pt"), str(out), "--overwrite", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("not a folder written by `dmt-wrap export`" in err
                                         or "would replace the source" in err), err
    assert (thesis / "thesis.tex").read_text() == "years of work" and (tmp_path / "model.pt").is_file()
    assert main(["export", str(tmp_path / "model.pt"), str(export), *args]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "model.pt"), str(export), "--overwrite", *args]) == 0
    with pytest.raises(FileExistsError, match="not a folder written by"):
        write_pretrained(model, thesis, network="toy_clip", network_kwargs={}, data=DATA, overwrite=True)


def test_export_of_a_missing_source_and_a_job_folder_as_model_say_what_to_do(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "nowhere does not exist; pass" in capsys.readouterr().err
    job = tmp_path / "job"
    job.mkdir()
    DualMeanTeacher(ClipToyNet, DMTConfig(teachers=0)).save(job / "model.pt")
    (job / "settings.json").write_text("{}")
    with pytest.raises(CheckpointError, match="is a benchmarks/run.py job folder.*export it first with `dmt-wrap "
                                              "export"):
        DualMeanTeacher.from_pretrained(job)


def test_a_broken_plugin_is_skipped_with_a_warning_unless_asked_for(export, monkeypatch):
    def points(group):
        broken = EntryPoint(name="broken", value="no_such_module_anywhere", group=group)
        return [broken]

    monkeypatch.setattr(registry, "entry_points", points)
    monkeypatch.setattr(registry, "_NETWORKS", dict(registry._NETWORKS))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.load_plugins()
    assert any("network plugin broken = no_such_module_anywhere" in str(w.message) for w in caught)
    assert DualMeanTeacher.from_pretrained(export) is not None  # toy_clip is registered: the plugin is not needed
    edit_config(export, lambda c: c["network"].update(name="broken"))
    with pytest.raises(ValueError, match="'broken' is not registered: its plugin may be the one that failed.*"
                                         "no_such_module_anywhere"):
        DualMeanTeacher.from_pretrained(export)


MEMORY_PROBE = textwrap.dedent("""
    import resource, sys, time
    import torch
    import dmt_wrap_baselines as baselines  # noqa: F401
    from dmt_wrap import DualMeanTeacher
    from dmt_wrap.cli import main
    torch.set_num_threads(1)
    size = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + (2 << 30), resource.RLIM_INFINITY))  # 2 GB above the imports
    for folder in sys.argv[2:]:  # one process for every crafted folder: the imports are most of the time
        start = time.time()
        code = main(["localize", "--model", folder, *sys.argv[1].split("|")])
        print("EXIT", code, round(time.time() - start, 1), flush=True)
""")


def test_crafted_exports_stay_within_2_gb_and_60_s_on_the_cpu_preset_model(tmp_path):
    """The cpu preset's EZ-VSL, with arguments that would ask for gigabytes: refused under a 2 GB cap, quickly."""
    import dmt_wrap_baselines as baselines  # noqa: F401
    from dmt_wrap_benchmarks.presets import PRESETS
    preset = PRESETS["cpu"]
    kwargs = preset.network_kwargs("ezvsl")
    model = DualMeanTeacher(lambda: registry.build("ezvsl", **kwargs), DMTConfig(teachers=0))
    data = {"image_size": preset.image_size, "sample_rate": preset.sample_rate, "duration": preset.duration}
    from PIL import Image
    from tests.synthetic_media import make_wav
    Image.new("RGB", (64, 48)).save(tmp_path / "p.png")
    make_wav(tmp_path / "s.wav")
    folders = [str(write_pretrained(model, tmp_path / name, network="ezvsl", network_kwargs={**kwargs, **change},
                                    data=data))
               for name, change in (("rate", {"sample_rate": 1_000_000_000}), ("dim", {"dim": 2_000_000}))]
    probe = tmp_path / "probe.py"
    probe.write_text(MEMORY_PROBE)
    args = "|".join(["--image", str(tmp_path / "p.png"), "--audio", str(tmp_path / "s.wav"), "--out",
                     str(tmp_path / "o.png"), "--device", "cpu"])
    result = subprocess.run([sys.executable, str(probe), args, *folders], capture_output=True, text=True, timeout=180,
                            cwd=os.getcwd())
    exits = [line.split() for line in result.stdout.splitlines() if line.startswith("EXIT")]
    assert [code for _, code, _ in exits] == ["1", "1"], (result.stdout, result.stderr[-2000:])
    assert all(float(seconds) < 60 for _, _, seconds in exits)
    assert result.stderr.count("arguments build networks of") + result.stderr.count("does not fit") == 2, result.stderr
