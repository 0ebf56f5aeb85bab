"""evaluate_model over a DataLoader with trivial localizers whose scores are known."""
import importlib
import json

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import dmt_wrap_baselines as baselines
from dmt_wrap.contract import ContractError
from dmt_wrap.datasets.boxes import vggss_gt
from dmt_wrap.evaluation import evaluate_model
from dmt_wrap.metrics import MetricAccumulator
from dmt_wrap.wrapper import DualMeanTeacher
from tests.test_real_datasets import FLICKR_BOXES, write_clip, write_flickr_xml, write_frame

SIZE = 32


class BoxesInImages(Dataset):
    """Items whose red channel is the ground truth, so ``images[:, 0]`` is a perfect map."""

    def __init__(self, boxes, sounding=None):
        self.masks = [vggss_gt([box], size=SIZE) for box in boxes]
        self.sounding = sounding

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, index):
        image = torch.zeros(3, SIZE, SIZE)
        image[0] = self.masks[index]
        item = {"image": image, "audio": torch.zeros(160), "mask": self.masks[index],
                "index": index}
        if self.sounding is not None:
            item["sounding"] = self.sounding[index]
        return item


def red_channel(images, audio):
    return images[:, 0]


LARGE = [[0.0, 0.0, 0.8, 0.9], [0.1, 0.2, 1.0, 1.0], [0.0, 0.0, 1.0, 0.6]]
SMALL = [[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.8, 0.7]]


def test_ground_truth_as_map_scores_perfectly_on_large_boxes():
    accumulator = MetricAccumulator()
    scores = evaluate_model(red_channel, BoxesInImages(LARGE), batch_size=2, progress=False,
                            accumulator=accumulator)
    assert scores["ciou50"] == 1.0 and scores["auc"] == pytest.approx(1.0)
    assert scores["pointing"] == 1.0 and scores["area_iou"] == 1.0 and scores["pixel_ap"] == 1.0
    np.testing.assert_array_equal(accumulator.per_image()["ciou"], [1.0, 1.0, 1.0])


def test_median_protocol_fails_small_boxes_that_small_object_metrics_credit():
    scores = evaluate_model(red_channel, BoxesInImages(SMALL), batch_size=4, progress=False)
    assert scores["ciou50"] == 0.0  # a perfect map of a small box binarises to everything
    assert scores["pointing"] == 1.0 and scores["area_iou"] == 1.0 and scores["pixel_ap"] == 1.0


def test_extended_protocol_and_contract_tuples():
    data = BoxesInImages(LARGE, sounding=[True, True, False])

    def with_loss(images, audio):  # the contract's (map, self_supervised_loss) form
        return images[:, 0] * torch.tensor([1.0, 1.0, 0.1])[: len(images), None, None], None

    scores = evaluate_model(with_loss, data, batch_size=3, progress=False)
    assert scores["ext_ap"] == pytest.approx(1.0) and scores["ext_f1"] == pytest.approx(1.0)


def test_bad_localizers_and_datasets_are_refused():
    with pytest.raises(ContractError, match="NaN"):
        evaluate_model(lambda images, audio: images[:, 0] * float("nan"), BoxesInImages(LARGE),
                       progress=False)
    with pytest.raises(ContractError, match="2 samples but was given 3"):
        evaluate_model(lambda images, audio: images[:2, 0], BoxesInImages(LARGE),
                       progress=False)

    class Unlabeled(BoxesInImages):
        def __getitem__(self, index):
            item = super().__getitem__(index)
            del item["mask"]
            return item

    with pytest.raises(ValueError, match="no 'mask'"):
        evaluate_model(red_channel, Unlabeled(LARGE), progress=False)


def evaluate_cli():
    """``benchmarks/evaluate.py`` as a module."""
    return importlib.import_module("dmt_wrap_benchmarks.evaluate")


def test_evaluate_cli_scores_a_saved_checkpoint_on_flickr_layout(tmp_path):
    for name, boxes in FLICKR_BOXES.items():
        write_frame(tmp_path / "frames" / f"{name}.jpg")
        write_clip(tmp_path / "audio" / f"{name}.wav")
        write_flickr_xml(tmp_path / "Annotations" / f"{name}.xml", boxes)
    DualMeanTeacher(lambda: baselines.build("ezvsl", encoder_size="tiny", sample_rate=8000),
                    device="cpu").save(tmp_path / "model.pt")
    cli = evaluate_cli()

    scores = cli.main(["--data", "flickr", "--root", str(tmp_path), "--checkpoint",
                       str(tmp_path / "model.pt"), "--network", "ezvsl", "--network-args",
                       '{"encoder_size": "tiny"}', "--image-size", "32", "--sample-rate",
                       "8000", "--duration", "0.5", "--device", "cpu", "--out",
                       str(tmp_path / "metrics.json")])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["pairs"] == 2 and written["metrics"] == scores
    assert set(scores) == {"ciou50", "auc", "pointing", "area_iou", "pixel_ap"}
    assert all(0.0 <= value <= 1.0 for value in scores.values())


def test_protocol_reaches_every_metric_and_must_match_the_accumulator():
    data = BoxesInImages(LARGE)
    assert evaluate_model(red_channel, data, progress=False, protocol="ezvsl")["ciou50"] == 1.0
    lvs = MetricAccumulator("lvs")
    evaluate_model(red_channel, data, progress=False, accumulator=lvs, protocol="lvs")
    assert lvs.protocol.name == "lvs"
    with pytest.raises(ValueError, match="accumulator"):
        evaluate_model(red_channel, data, progress=False, accumulator=MetricAccumulator(), protocol="sspl")
