"""SLAVC's extended protocol on the real layouts: pairs files, non-sounding items, AP / max-F1."""
import json
from pathlib import Path

import pytest
import torch

import dmt_wrap_baselines as baselines
from dmt_wrap.datasets.boxes import flickr_gt, vggss_gt
from dmt_wrap.datasets.extended import ExtendedPairs, generate_pairs, write_pairs
from dmt_wrap.datasets.flickr import FlickrSoundNet
from dmt_wrap.datasets.media import DataError
from dmt_wrap.datasets.vggss import VGGSoundSource
from dmt_wrap.evaluation import evaluate_model
from dmt_wrap.wrapper import DualMeanTeacher
from tests.test_evaluation import evaluate_cli
from tests.test_real_datasets import FLICKR_BOXES, flickr_root, write_clip, write_frame  # noqa: F401

SIZE = 32
# A and C have large boxes, so that a map equal to G scores cIoU 1 at the median; B's is
# small, so that a map of everything but G scores cIoU 0.
VGGSS_BOXES = {"clipA_000010": [0.0, 0.0, 0.8, 0.9], "clipB_000020": [0.0, 0.0, 0.3, 0.3],
               "clipC_000030": [0.0, 0.0, 1.0, 0.6]}


@pytest.fixture
def vggss_root(tmp_path: Path) -> Path:
    entries = []
    for number, (name, box) in enumerate(VGGSS_BOXES.items()):
        write_frame(tmp_path / "frames" / f"{name}.jpg")
        write_clip(tmp_path / "audio" / f"{name}.flac", rate=8000, channels=1,
                   frequency=200.0 * (number + 1))
        entries.append({"file": name, "class": "dog barking", "bbox": [box]})
    (tmp_path / "vggss.json").write_text(json.dumps(entries))
    return tmp_path


def vggss(root: Path) -> VGGSoundSource:
    return VGGSoundSource(root, image_size=SIZE, sample_rate=8000, duration=0.5)


A, B, C = VGGSS_BOXES


def test_non_sounding_pairs_have_empty_masks_and_the_other_clips_audio(vggss_root):
    (vggss_root / "pairs.txt").write_text(f"{A} {A}\n\n{A}\t{B}\n{C},{C}\n")
    base = vggss(vggss_root)
    pairs = ExtendedPairs(base, "pairs.txt")
    assert len(pairs) == 3 and pairs.sounding == [True, False, True]
    assert pairs.names == [f"{A} {A}", f"{A} {B}", f"{C} {C}"]
    sounding, silent = pairs[0], pairs[1]
    assert sounding["sounding"].item() is True and silent["sounding"].item() is False
    assert torch.equal(sounding["mask"], vggss_gt([VGGSS_BOXES[A]], size=SIZE))
    assert silent["mask"].shape == (SIZE, SIZE) and silent["mask"].sum() == 0
    assert torch.equal(silent["image"], base[0]["image"])      # the frame of A
    assert torch.equal(silent["audio"], base[1]["audio"])      # the audio of B
    batch = next(iter(torch.utils.data.DataLoader(pairs, batch_size=3)))
    assert batch["sounding"].dtype == torch.bool and batch["sounding"].tolist() == [True, False, True]


def test_flickr_pairs_and_slavc_csv_format(flickr_root):
    (flickr_root / "plus_silent.csv").write_text(
        "1001,1001,dog\n1002,1002,\"car horn, honking\"\n1001,1002,non-sounding\n")
    base = FlickrSoundNet(flickr_root, "test.txt", image_size=SIZE, duration=0.5)
    pairs = ExtendedPairs(base, "plus_silent.csv")
    assert pairs.sounding == [True, True, False]
    assert torch.equal(pairs[1]["mask"], flickr_gt(FLICKR_BOXES["1002"], size=SIZE))
    assert pairs[2]["mask"].sum() == 0


def test_ap_and_max_f1_match_a_hand_computation(vggss_root):
    """Confidence (the mean of the top 25% of the map) is set per pair by scaling a 0 / 1
    map covering over a quarter of the image: G, or everything but G (mislocalised).

    Sorted by confidence: 0.9 A-A (sounding, map = G: TP), 0.8 A-B (FP), 0.6 C-A (FP),
    0.55 C-C (TP), 0.5 B-B (sounding but mislocalised, cIoU 0: FP), 0.2 B-C (FP).
    Precision 1, 1/2, 1/3, 1/2, 2/5, 1/3 at recall 1/3, 1/3, 1/3, 2/3, 2/3, 2/3 (3 sounding
    pairs): AP = 1/3 * 1 + 1/3 * 1/2 = 1/2; max-F1 at rank 4 = 2 (1/2)(2/3) / (7/6) = 4/7.
    """
    rows = [(A, A, 0.9, True), (B, B, 0.5, False), (C, C, 0.55, True), (A, B, 0.8, True),
            (B, C, 0.2, False), (C, A, 0.6, True)]
    (vggss_root / "pairs.txt").write_text("".join(f"{f} {a}\n" for f, a, _, _ in rows))
    pairs = ExtendedPairs(vggss(vggss_root), "pairs.txt")
    maps = []
    for frame_id, _, confidence, on_target in rows:
        truth = vggss_gt([VGGSS_BOXES[frame_id]], size=SIZE)
        maps.append(confidence * (truth if on_target else 1 - truth))
    maps = torch.stack(maps)

    def localize(images, audio):  # one batch holding every pair, in file order
        return maps[: len(images)]

    scores = evaluate_model(localize, pairs, batch_size=len(rows), progress=False)
    assert scores["ext_ap"] == pytest.approx(0.5)
    assert scores["ext_f1"] == pytest.approx(4 / 7)
    assert scores["ciou50"] == pytest.approx(2 / 3)  # localisation over the sounding pairs only


@pytest.mark.parametrize("line, message", [
    (f"{A}", r"line 2: 1 field\(s\)"),
    (f"{A} {B} non-sounding extra", r"line 2: 4 field\(s\)"),
    (f"{A} clipZ_000099", r"line 2: id 'clipZ_000099' is not in the test set"),
    (f"{A},{A},non-sounding", r"line 2: label 'non-sounding' contradicts"),
    (f"{A},{B},dog", r"line 2: label 'dog' contradicts"),
])
def test_malformed_lines_name_the_line_or_are_skipped_and_counted(vggss_root, line, message):
    (vggss_root / "pairs.txt").write_text(f"{A} {A}\n{line}\n{B} {A}\n")
    with pytest.raises(DataError, match=f"pairs.txt {message}"):
        ExtendedPairs(vggss(vggss_root), "pairs.txt")
    lenient = ExtendedPairs(vggss(vggss_root), "pairs.txt", on_error="skip")
    assert lenient.sounding == [True, False] and len(lenient.skipped) == 1
    assert "line 2" in lenient.skipped[0][1]


def test_refuses_unreadable_files_unannotated_bases_and_lists_without_positives(vggss_root):
    with pytest.raises(DataError, match="missing.txt: cannot read the pairs file"):
        ExtendedPairs(vggss(vggss_root), "missing.txt")
    (vggss_root / "ids.txt").write_text(f"{A}\n{B}\n")
    (vggss_root / "pairs.txt").write_text(f"{A} {B}\n")
    unlabeled = VGGSoundSource(vggss_root, "ids.txt", masks=False)
    with pytest.raises(DataError, match="has no annotations"):
        ExtendedPairs(unlabeled, "pairs.txt")
    with pytest.raises(DataError, match="no sounding pair"):
        ExtendedPairs(vggss(vggss_root), "pairs.txt")


def test_generated_pairs_are_deterministic_and_never_self_paired_in_the_negative_half():
    ids = [f"clip{number:03d}" for number in range(50)]
    pairs = generate_pairs(ids, seed=3)
    assert pairs == generate_pairs(ids, seed=3) and pairs != generate_pairs(ids, seed=4)
    assert pairs[:50] == [(name, name) for name in ids]
    negatives = pairs[50:]
    assert [frame for frame, _ in negatives] == ids
    assert all(frame != audio and audio in ids for frame, audio in negatives)
    assert len({audio for _, audio in negatives}) > 20  # spread over many clips
    assert generate_pairs(["a", "b"], seed=0)[2:] == [("a", "b"), ("b", "a")]
    with pytest.raises(ValueError, match="at least 2"):
        generate_pairs(["a"])
    with pytest.raises(ValueError, match="not distinct"):
        generate_pairs(["a", "a"])
    with pytest.raises(ValueError, match="whitespace or a comma"):
        generate_pairs(["a b", "c"])


def test_generated_file_reads_back(vggss_root):
    write_pairs(vggss_root / "pairs.txt", generate_pairs(list(VGGSS_BOXES), seed=0))
    pairs = ExtendedPairs(vggss(vggss_root), "pairs.txt")
    assert pairs.sounding == [True] * 3 + [False] * 3


def test_evaluate_cli_generates_pairs_and_reports_ap_and_max_f1(flickr_root, capsys):
    DualMeanTeacher(lambda: baselines.build("ezvsl", encoder_size="tiny", sample_rate=8000),
                    device="cpu").save(flickr_root / "model.pt")
    cli = evaluate_cli()
    argv = ["--data", "flickr", "--root", str(flickr_root), "--list", "test.txt",
            "--checkpoint", str(flickr_root / "model.pt"), "--network", "ezvsl",
            "--network-args", '{"encoder_size": "tiny"}', "--image-size", "32",
            "--sample-rate", "8000", "--duration", "0.5", "--device", "cpu",
            "--extended", "pairs.txt", "--generate-pairs", "--out", str(flickr_root / "m.json")]

    scores = cli.main(argv)
    assert (flickr_root / "pairs.txt").read_text() == "1001 1001\n1002 1002\n1001 1002\n1002 1001\n"
    written = json.loads((flickr_root / "m.json").read_text())
    assert written["pairs"] == 4 and written["sounding_pairs"] == 2 and written["metrics"] == scores
    assert {"ext_ap", "ext_f1"} <= set(scores)
    printed = capsys.readouterr().out
    assert "2 sounding, 2 non-sounding" in printed and "max-F1" in printed and "  AP " in printed
    with pytest.raises(SystemExit, match="pairs.txt exists"):
        cli.main(argv)  # never overwrites a pairs file
    with pytest.raises(SystemExit):
        cli.parse_args(argv[:-5] + ["--generate-pairs"])  # needs --extended
