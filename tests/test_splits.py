import json
from pathlib import Path

import pytest

from dmt_wrap.datasets.flickr import FlickrSoundNet
from dmt_wrap.datasets.media import DataError
from dmt_wrap.datasets.split_files import make_split, read_split, write_split
from tests.test_real_datasets import write_clip, write_frame


def dataset(root: Path, count: int = 20) -> Path:
    for n in range(count):
        write_frame(root / "frames" / f"clip{n:02d}.jpg")
        write_clip(root / "audio" / f"clip{n:02d}.wav", seconds=0.3, rate=8000, channels=1)
    return root


def test_a_split_is_deterministic_and_independent_of_id_order():
    ids = [f"id{n}" for n in range(100)]
    split = make_split(ids, 0.1, seed=3, test_ratio=0.2)
    assert make_split(ids[::-1], 0.1, seed=3, test_ratio=0.2) == split
    assert make_split(ids, 0.1, seed=4, test_ratio=0.2) != split
    assert [len(split[p]) for p in ("labeled", "unlabeled", "test")] == [8, 72, 20]
    assert set(split["labeled"]) | set(split["unlabeled"]) | set(split["test"]) == set(ids)
    assert not set(split["labeled"]) & set(split["test"])
    with pytest.raises(ValueError, match="label_ratio.*picks none of them"):
        make_split(ids[:5], 0.1, seed=0)


def test_split_files_carry_a_checksum_and_the_loaders_read_them(tmp_path, capsys):
    root = dataset(tmp_path / "data")
    (root / "test.txt").write_text("clip00\nclip01\nclip02\nclip03\n")
    folder = write_split(root, 0.25, seed=0, test="test.txt")
    assert folder == root / "splits" / "ratio0.25-seed0"
    parts = read_split(folder)
    assert [len(parts[p]) for p in ("labeled", "unlabeled", "test")] == [4, 12, 4]
    info = json.loads((folder / "split.json").read_text())
    assert info["counts"] == {"labeled": 4, "unlabeled": 12, "test": 4} and info["seed"] == 0
    assert write_split(root, 0.25, seed=0, test="test.txt") == folder  # identical: left as it is
    with pytest.raises(FileExistsError, match="holds another split"):
        write_split(root, 0.25, seed=1, test="test.txt", out=folder)
    loaded = FlickrSoundNet(root, folder / "labeled.txt", masks=False, image_size=16, duration=0.25)
    assert loaded.names == parts["labeled"]
    assert capsys.readouterr().out.strip().endswith("labeled.txt: 4 evaluated / 4 listed / 0 missing")
    (root / "audio" / f"{parts['unlabeled'][0]}.wav").unlink()
    FlickrSoundNet(root, folder / "unlabeled.txt", masks=False, on_error="skip", image_size=16, duration=0.25)
    assert "unlabeled.txt: 11 evaluated / 12 listed / 1 missing" in capsys.readouterr().out
    (folder / "labeled.txt").write_text("clip19\n")
    with pytest.raises(DataError, match="does not match its checksum"):
        read_split(folder)
    assert not [p for p in (root / "splits").iterdir() if p.name.startswith(".")]


def test_run_py_takes_a_published_split(tmp_path, capsys):
    from dmt_wrap_benchmarks import data, presets, run
    from tests.test_benchmark_run import _vggss_root

    root = _vggss_root(tmp_path)
    train = [line for line in (root / "train.txt").read_text().split()]
    (root / "train_labeled.json").write_text(json.dumps(
        [{"file": name, "class": "dog", "bbox": [[0.1, 0.1, 0.6, 0.7]]} for name in train]))
    (root / "test_ids.txt").write_text("test0_000010\ntest1_000010\n")
    folder = write_split(root, 0.2, seed=1, ids="train.txt", test="test_ids.txt")
    args = run.parse_args(["--data", "vggss", "--root", str(root), "--split", str(folder), "--quick"])
    assert args.label_ratio == [0.2]
    preset = presets.QUICK
    built = data.apply_split(data.real("vggss", str(root), preset, 0.2, 1), folder)
    assert (len(built.labeled), len(built.unlabeled), len(built.test)) == (2, 8, 2)
    out = capsys.readouterr().out
    assert "labeled: 2 evaluated / 2 listed / 0 missing" in out and "test: 2 evaluated / 2 listed" in out
    with pytest.raises(SystemExit):
        run.parse_args(["--split", str(folder)])
    assert "--split selects ids of a real dataset" in capsys.readouterr().err


def test_the_documented_flow_prepared_clips_a_split_and_boxes_for_its_labeled_and_test_ids(tmp_path, monkeypatch,
                                                                                         capsys):
    """docs/cli.md's end to end: train.txt lists every prepared clip (test clips too), boxes exist only for the
    split's labeled and test ids, and --root is relative."""
    from dmt_wrap_benchmarks import data, presets

    root = dataset(tmp_path / "prepared")
    (root / "train.txt").write_text("".join(f"clip{n:02d}\n" for n in range(20)))
    folder = write_split(root, 0.1, seed=0, test_ratio=0.2)
    parts = read_split(folder)
    for part, file in (("labeled", "train_labeled.json"), ("test", "vggss.json")):
        (root / file).write_text(json.dumps([{"file": name, "bbox": [[0.1, 0.1, 0.6, 0.7]]} for name in parts[part]]))
    monkeypatch.chdir(tmp_path)
    built = data.real("vggss", "prepared/", presets.QUICK, 0.1, 0, split=folder.relative_to(tmp_path))
    assert (len(built.labeled), len(built.unlabeled), len(built.test)) == (1, 15, 4)
    assert "unlabeled: 15 evaluated / 15 listed / 0 missing" in capsys.readouterr().out
