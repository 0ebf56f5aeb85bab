"""Careless and hostile dataset input (issues 31 and 32): edited split folders, prepare run on the wrong folder or
with names that would break its list file, and the messages that say which argument to change."""
import json

import pytest

from dmt_wrap.checksums import sha256
from dmt_wrap.cli import main
from dmt_wrap.datasets.media import DataError
from dmt_wrap.datasets.split_files import read_split, read_split_info, write_split
from dmt_wrap.prepare import PrepareSettings, prepare
from tests.synthetic_media import make_video
from tests.test_splits import dataset


def edit_ratio(folder, ratio, resum):
    info = json.loads((folder / "split.json").read_text())
    (folder / "split.json").write_text(json.dumps({**info, "label_ratio": ratio}))
    if resum:  # what anyone can do after an edit
        names = ["labeled.txt", "unlabeled.txt", "test.txt", "split.json"]
        (folder / "SHA256SUMS").write_text("".join(f"{sha256(folder / n)}  {n}\n" for n in names))


@pytest.mark.parametrize("resum", [False, True])
def test_an_edited_split_json_is_refused_everywhere(tmp_path, capsys, resum):
    root = dataset(tmp_path / "data")
    folder = write_split(root, 0.2, seed=0)
    edit_ratio(folder, 0.9, resum)
    fragment = "label_ratio 0.9 does not give the 4 labeled of 20" if resum else "split.json does not match its checksum"
    with pytest.raises(DataError, match=fragment):
        read_split_info(folder)
    if not resum:
        with pytest.raises(DataError, match=fragment):
            read_split(folder)
    capsys.readouterr()
    assert main(["splits", str(root), "--label-ratio", "0.2", "--seed", "0"]) == 1
    assert fragment in capsys.readouterr().err
    from dmt_wrap_benchmarks import run
    with pytest.raises(SystemExit) as info:
        run.parse_args(["--data", "vggss", "--root", str(root), "--split", str(folder), "--quick"])
    assert info.value.code == 2 and fragment in capsys.readouterr().err


def test_writing_the_same_split_again_says_unchanged(tmp_path, capsys):
    root = dataset(tmp_path / "data")
    assert main(["splits", str(root), "--label-ratio", "0.2"]) == 0
    assert capsys.readouterr().out.startswith("wrote ")
    assert main(["splits", str(root), "--label-ratio", "0.2"]) == 0
    assert capsys.readouterr().out.startswith("unchanged ")


def test_a_too_small_test_ratio_is_named_as_such(tmp_path, capsys):
    root = dataset(tmp_path / "data")
    assert main(["splits", str(root), "--label-ratio", "0.5", "--test-ratio", "0.01"]) == 1
    err = capsys.readouterr().err
    assert "test_ratio (--test-ratio)=0.01 of 20 samples picks none" in err and "label_ratio" not in err


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    make_video(folder / "a.mp4", seconds=1.0)
    return folder


def test_prepare_refuses_an_empty_folder_and_a_list_outside_its_output(videos, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["prepare", str(empty), str(tmp_path / "out"), "--no-progress"]) == 1
    assert "holds no video files" in capsys.readouterr().err and not (tmp_path / "out").exists()
    for name in ("../escape.txt", str(tmp_path / "abs.txt")):
        assert main(["prepare", str(videos), str(tmp_path / "out"), "--list", name, "--no-progress"]) == 1
        assert "--list" in capsys.readouterr().err
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "abs.txt").exists()


def test_prepare_refuses_a_file_name_that_would_split_its_id(videos, tmp_path):
    make_video(videos / "two\nlines.mp4", seconds=1.0)
    with pytest.raises(DataError, match="holds a line break or control character"):
        prepare(videos, tmp_path / "out", settings=PrepareSettings(duration=1.0), progress=False)
    assert not (tmp_path / "out").exists()


def test_prepare_refuses_a_folder_it_did_not_write_and_names_a_changed_setting(videos, tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "train.txt").write_text("my own list")
    assert main(["prepare", str(videos), str(thesis), "--no-progress"]) == 2
    assert "was not written by `dmt-wrap prepare`" in capsys.readouterr().err
    assert (thesis / "train.txt").read_text() == "my own list"
    out = tmp_path / "out"
    assert main(["prepare", str(videos), str(out), "--duration", "1", "--no-progress"]) == 0
    assert main(["prepare", str(videos), str(out), "--duration", "0.5", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "prepared with other settings: duration 1.0 (now 0.5)" in err and "sample_rate" not in err
    ids = out / "train.txt"
    assert main(["prepare", str(videos), str(out), "--ids", str(ids), "--duration", "1", "--no-progress"]) == 2
    assert "would destroy the input" in capsys.readouterr().err
