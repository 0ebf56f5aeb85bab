"""evaluate_model over a DataLoader with trivial localizers whose scores are known."""
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from dmt_wrap.contract import ContractError
from dmt_wrap.evaluation import evaluate_model
from dmt_wrap.metrics import MetricAccumulator, vggss_gt

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
