"""The evaluation protocol against hand-computed cases."""
import math

import numpy as np
import pytest
import torch

from dmt_wrap.datasets.boxes import flickr_gt, vggss_gt
from dmt_wrap.metrics import (DEFAULT_PROTOCOL, PROTOCOLS, MetricAccumulator, area_iou, binarise, ciou_at,
                              ciou_auc, ciou_per_image, extended_ap_f1, get_protocol, map_confidence, pixel_ap,
                              pointing_game, protocol_upsample, upsample_maps)

# Flickr-like consensus on a 4x4 grid: both annotators on the left 2x2, one on the right 2x2.
CONSENSUS = torch.tensor([[1.0, 1.0, 0.5, 0.5],
                          [1.0, 1.0, 0.5, 0.5],
                          [0.0, 0.0, 0.0, 0.0],
                          [0.0, 0.0, 0.0, 0.0]])
TOP_HALF_MAP = torch.arange(16.0).flip(0).reshape(4, 4)  # 15..0: rows 0-1 are the top half
LEFT_HALF_MAP = torch.tensor([[9.0, 8.0, 0.0, 1.0]]).repeat(4, 1) - torch.arange(4.0)[:, None] / 10


def test_flickr_gt_is_consensus_of_two_annotators_rescaled_from_256():
    gt = flickr_gt([[0, 0, 128, 128], [0, 0, 256, 128]], size=224)
    assert gt.shape == (224, 224)
    assert torch.all(gt[:112, :112] == 1.0)
    assert torch.all(gt[:112, 112:] == 0.5)
    assert torch.all(gt[112:] == 0.0)
    # coordinates are truncated like the originals: int(224 * 100 / 256) = int(87.5) = 87
    single = flickr_gt([[100, 0, 256, 256], [100, 0, 256, 256]], size=224)
    assert single[0, 86] == 0 and single[0, 87] == 1


def test_vggss_gt_is_union_of_clipped_normalised_boxes():
    gt = vggss_gt([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 1.2, 1.0]], size=8)
    assert set(gt.unique().tolist()) == {0.0, 1.0}
    assert gt.sum() == 16 + 36 - 4
    assert gt[7, 7] == 1 and gt[0, 7] == 0
    assert vggss_gt([], size=8).sum() == 0


def test_ciou_with_consensus_ground_truth():
    maps = torch.stack([TOP_HALF_MAP, LEFT_HALF_MAP])
    gt = CONSENSUS.expand(2, 4, 4)
    # top half covers all of G (4 * 1 + 4 * 0.5 = 6) and nothing outside: 6 / 6
    # left half hits 4 * 1 and covers 4 pixels of G == 0: 4 / (6 + 4)
    assert ciou_per_image(maps, gt).tolist() == [1.0, 0.4]


def test_empty_ground_truth_scores_zero_never_nan():
    maps = torch.stack([TOP_HALF_MAP, torch.zeros(4, 4)])
    result = ciou_per_image(maps, torch.zeros(2, 4, 4))
    assert result.tolist() == [0.0, 0.0]
    assert area_iou(maps, torch.zeros(2, 4, 4)).tolist() == [0.0, 0.0]
    assert pixel_ap(maps, torch.zeros(2, 4, 4)).tolist() == [0.0, 0.0]


def test_median_ties_are_all_kept():
    # sorted pixels [0, 1, 1, 3]: the threshold is the element at index n // 2 = 2, i.e. 1,
    # and both pixels equal to it are kept: 3 of 4 pixels are foreground.
    tied = torch.tensor([[[3.0, 1.0], [1.0, 0.0]]])
    on_tie = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    below = torch.tensor([[[0.0, 0.0], [0.0, 1.0]]])
    assert ciou_per_image(tied, on_tie).item() == pytest.approx(1 / 3)
    assert ciou_per_image(tied, below).item() == 0.0
    # a constant map keeps every pixel: G of 2 pixels gives 2 / (2 + 2)
    half = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    assert ciou_per_image(torch.full((1, 2, 2), 7.0), half).item() == 0.5


def test_upsampling_uses_half_pixel_centres_like_cv2():
    ramp = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    assert upsample_maps(ramp, (4, 4))[0, 0].tolist() == [0.0, 0.25, 0.75, 1.0]


def _random_boxes_gt(generator, batch, size):
    gts = []
    for _ in range(batch):
        x0, y0 = torch.randint(0, size // 2, (2,), generator=generator).tolist()
        x1, y1 = torch.randint(size // 2 + 1, size + 1, (2,), generator=generator).tolist()
        gts.append(flickr_gt([[x0, y0, x1, y1], [0, 0, x1, y1]], size=size, annotation_size=size))
    return torch.stack(gts)


@pytest.mark.parametrize("metric", [ciou_per_image, pointing_game, area_iou, pixel_ap])
def test_batched_equals_one_by_one(metric):
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(5, 7, 7, generator=generator)
    maps[1] = torch.randint(0, 3, (7, 7), generator=generator).float()  # heavy ties
    gt = _random_boxes_gt(generator, 5, 56)
    batched = metric(maps, gt)
    single = torch.cat([metric(maps[i:i + 1], gt[i:i + 1]) for i in range(5)])
    assert torch.equal(batched, single)


def test_ciou_at_and_auc_on_known_list():
    assert ciou_at([0.49, 0.5, 0.7]) == pytest.approx(2 / 3)
    assert ciou_at(torch.tensor([0.2, 0.9]), threshold=0.1) == 1.0
    # success 1 at t=0, 2/3 for t in 0.05..0.5, 1/3 for t in 0.55..1.0
    expected = 0.05 * ((1 + 2 / 3) / 2 + 9 * 2 / 3 + (2 / 3 + 1 / 3) / 2 + 9 * 1 / 3)
    assert ciou_auc([0.0, 0.5, 1.0]) == pytest.approx(expected)
    assert ciou_auc([1.0, 1.0]) == pytest.approx(1.0)
    assert ciou_auc([0.0]) == pytest.approx(0.025)  # t=0 counts every image, as originally
    # thresholds are 0.05 * i in float64, so 0.15 misses 0.05 * 3 = 0.15000000000000002
    assert ciou_auc([0.15]) == pytest.approx(0.05 * 2.5)
    with pytest.raises(ValueError):
        ciou_auc([])


def test_pointing_game():
    gt = torch.zeros(3, 4, 4)
    gt[:, 2:, 2:] = 1.0
    inside = torch.zeros(4, 4)
    inside[3, 2] = 5
    outside = torch.zeros(4, 4)
    outside[0, 3] = 5
    constant = torch.ones(4, 4)  # first maximum is the top-left pixel, outside G
    hits = pointing_game(torch.stack([inside, outside, constant]), gt)
    assert hits.tolist() == [True, False, False]
    # a 2x2 map peaking at its bottom-right cell points into G after upsampling to 4x4
    assert pointing_game(torch.tensor([[[0.0, 0.0], [0.0, 1.0]]]), gt[:1]).tolist() == [True]


def test_area_iou_thresholds_at_the_ground_truth_area():
    gt = torch.zeros(1, 4, 4)
    gt[0, :2, :2] = 1.0  # 4 pixels
    exact = torch.zeros(1, 4, 4)
    exact[0, :2, :2] = 1.0
    row = torch.zeros(1, 4, 4)
    row[0, 0] = 1.0  # top row: 2 pixels inside G, union 6
    assert area_iou(exact, gt).item() == 1.0
    assert area_iou(row, gt).item() == pytest.approx(2 / 6)
    # ties are broken in raster order: a constant map predicts the top row
    assert area_iou(torch.ones(1, 4, 4), gt).item() == pytest.approx(2 / 6)


def _brute_force_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """sklearn's definition: sum over distinct thresholds of (R_n - R_n-1) * P_n."""
    ap, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores.tolist()), reverse=True):
        selected = scores >= threshold
        true_positive = (selected & labels).sum()
        recall = true_positive / labels.sum()
        ap += (recall - previous_recall) * true_positive / selected.sum()
        previous_recall = recall
    return ap


def test_pixel_ap_hand_case_and_brute_force():
    scores = torch.tensor([[[3.0, 2.0], [1.0, 0.0]]])
    labels = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert pixel_ap(scores, labels).item() == pytest.approx((1 + 2 / 3) / 2)

    generator = torch.Generator().manual_seed(1)
    gt = _random_boxes_gt(generator, 4, 8)
    quantised = torch.randint(0, 4, (4, 8, 8), generator=generator).float()  # many ties
    smooth = torch.randn(4, 3, 3, generator=generator)  # upsampled to 8x8
    for maps in (quantised, smooth):
        result = pixel_ap(maps, gt)
        upsampled = upsample_maps(maps, (8, 8))
        for i in range(4):
            expected = _brute_force_ap(upsampled[i].flatten().numpy(),
                                       (gt[i] > 0).flatten().numpy())
            assert result[i].item() == pytest.approx(expected, abs=1e-12)


def test_map_confidence_is_mean_of_top_quarter():
    maps = torch.stack([torch.arange(16.0).reshape(4, 4), -torch.arange(16.0).reshape(4, 4)])
    assert map_confidence(maps).tolist() == [13.5, -1.5]


def test_extended_ap_f1_on_hand_ranking():
    confidence = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    sounding = torch.tensor([True, False, True, True, False])
    ciou = torch.tensor([0.6, 0.9, 0.3, 0.8, 0.0])  # non-sounding cIoU is ignored
    # hits [1, 0, 0, 1, 0] over 3 sounding pairs: precision 1, 1/2, 1/3, 1/2, 2/5
    ap, f1 = extended_ap_f1(confidence, ciou, sounding)
    assert ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 1 / 2)
    assert f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_extended_ap_uses_the_interpolated_precision_envelope():
    # hits [0, 1, 1] over 2 sounding pairs: precision 0, 1/2, 2/3, envelope 2/3 everywhere
    ap, f1 = extended_ap_f1(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0.0, 0.9, 0.9]),
                            torch.tensor([False, True, True]))
    assert ap == pytest.approx(2 / 3)
    assert f1 == pytest.approx(0.8)


def test_extended_ap_tied_confidences_are_one_threshold():
    conf = torch.tensor([0.9, 0.9, 0.5])
    ciou = torch.tensor([0.0, 0.7, 0.7])
    sounding = torch.tensor([False, True, True])
    swapped = [1, 0, 2]
    first = extended_ap_f1(conf, ciou, sounding)
    second = extended_ap_f1(conf[swapped], ciou[swapped], sounding[swapped])
    assert first == second
    assert first[0] == pytest.approx(2 / 3)  # points (R 1/2, P 1/2), (R 1, P 2/3)
    with pytest.raises(ValueError, match="sounding"):
        extended_ap_f1(conf, ciou, torch.zeros(3, dtype=torch.bool))


def test_accumulator_matches_batch_functions_and_filters_sounding():
    maps = torch.stack([TOP_HALF_MAP, LEFT_HALF_MAP, TOP_HALF_MAP])
    gt = torch.stack([CONSENSUS, CONSENSUS, torch.zeros(4, 4)])
    sounding = torch.tensor([True, True, False])
    accumulator = MetricAccumulator()
    accumulator.update(maps[:1], gt[:1], map_confidence(maps[:1]), sounding[:1])
    accumulator.update(maps[1:], gt[1:], map_confidence(maps[1:]), sounding[1:])
    summary = accumulator.compute()
    assert set(summary) == {"ciou50", "auc", "pointing", "area_iou", "pixel_ap",
                            "ext_ap", "ext_f1"}
    assert summary["ciou50"] == 0.5  # [1.0, 0.4] over the sounding pairs only
    assert summary["pointing"] == 1.0  # both maxima fall on G
    per_image = accumulator.per_image()
    np.testing.assert_array_equal(per_image["ciou"], [1.0, 0.4, 0.0])
    assert per_image["sounding"].tolist() == [True, True, False]
    assert all(0.0 <= value <= 1.0 and not math.isnan(value) for value in summary.values())

    plain = MetricAccumulator()
    plain.update(maps[:2], gt[:2])
    assert "ext_ap" not in plain.compute()
    with pytest.raises(ValueError, match="confidence"):
        plain.update(maps[:1], gt[:1], confidence=torch.ones(1))
    with pytest.raises(ValueError, match="before any update"):
        MetricAccumulator().compute()


# ---------------------------------------------------------------- named protocols, from their definitions

RAMP = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # 2x2, rising left to right


def keys_cubic(distance: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel (``a = -0.75``, PyTorch's bicubic)."""
    x = abs(distance)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def bicubic_corners_row(values: list[float], size: int) -> list[float]:
    """1-D bicubic resampling with ``align_corners=True`` (output j at input j (n-1)/(size-1)),
    replicating the border samples."""
    n = len(values)
    row = []
    for j in range(size):
        position = j * (n - 1) / (size - 1)
        base = math.floor(position)
        row.append(sum(keys_cubic(position - k) * values[min(max(k, 0), n - 1)]
                       for k in range(base - 1, base + 3)))
    return row


@pytest.mark.parametrize("name, expected", [
    ("benchmark", [0.0, 0.25, 0.75, 1.0]),   # half-pixel centres, cv2.INTER_LINEAR
    ("lvs", [0.0, 0.25, 0.75, 1.0]),
    ("ssltie", [0.0, 0.25, 0.75, 1.0]),
    ("sspl", [0.0, 0.25, 0.75, 1.0]),
    ("ezvsl", [0.0, 1 / 3, 2 / 3, 1.0]),     # align_corners=True: corners on corners
    ("fnac", [0.0, 1 / 3, 2 / 3, 1.0]),
    ("slavc", bicubic_corners_row([0.0, 1.0], 4)),  # 0, 17/54, 37/54, 1
])
def test_each_protocol_upsamples_as_its_evaluator(name, expected):
    row = protocol_upsample(RAMP, (4, 4), name)[0, 0].tolist()
    assert row == pytest.approx(expected, abs=1e-6)
    if name == "slavc":
        assert row[1] == pytest.approx(17 / 54, abs=1e-6)


def test_protocol_binarisations_on_hand_cases():
    # min-max [1, .75, .25, 0]; sorted [0, .25, .75, 1], v = .75 (index n // 2)
    steps = torch.tensor([[[4.0, 3.0], [1.0, 0.0]]])
    assert binarise(steps, "benchmark").sum() == 2   # >= v: the top half
    assert binarise(steps, "ezvsl").sum() == 2
    assert binarise(steps, "lvs").sum() == 1         # > v, plus the maximum
    assert binarise(steps, "sspl").sum() == 2        # min-max >= 0.5
    # min-max [1, .25, .125, 0], v = .25: SSPL's fixed 0.5 keeps only the peak
    skewed = torch.tensor([[[4.0, 1.0], [0.5, 0.0]]])
    assert binarise(skewed, "ezvsl").sum() == 2 and binarise(skewed, "sspl").sum() == 1
    # SLAVC thresholds absolute scores, no normalisation: >= 0.5 as they are
    absolute = torch.tensor([[[0.6, 0.5], [0.4, 0.9]]])
    assert binarise(absolute, "slavc").tolist() == [[[True, True], [False, True]]]
    assert binarise(absolute * 0.5, "slavc").sum() == 0  # a quiet map stays quiet
    # without ties LVS keeps n - n // 2 - 1 pixels, EZ-VSL n - n // 2
    distinct = torch.randperm(16, generator=torch.Generator().manual_seed(0)).float().reshape(1, 4, 4)
    assert binarise(distinct, "lvs").sum() == 7 and binarise(distinct, "ezvsl").sum() == 8
    # a constant map: EZ-VSL's >= keeps everything, LVS's > keeps nothing
    constant = torch.full((1, 2, 2), 3.0)
    assert binarise(constant, "ezvsl").all() and not binarise(constant, "lvs").any()


def test_protocol_ciou_differs_only_where_its_definition_says():
    gt = torch.zeros(1, 2, 2)
    gt[0, 0, 0] = 1.0
    steps = torch.tensor([[[4.0, 3.0], [1.0, 0.0]]])
    assert ciou_per_image(steps, gt).item() == 0.5          # B = 2 pixels, 1 on G
    assert ciou_per_image(steps, gt, "lvs").item() == 1.0   # B = the peak alone
    assert ciou_per_image(steps, gt, "benchmark").item() == ciou_per_image(steps, gt).item()


def test_default_protocol_is_todays_evaluator():
    """The benchmark's numbers: bilinear half-pixel upsampling and >= the median, as before."""
    protocol = get_protocol()
    assert protocol.name == DEFAULT_PROTOCOL == "benchmark"
    assert (protocol.upsample, protocol.align_corners, protocol.binarise) == ("bilinear", False, "median_ge")
    generator = torch.Generator().manual_seed(3)
    maps, gt = torch.randn(4, 7, 7, generator=generator), _random_boxes_gt(generator, 4, 56)
    default = MetricAccumulator()
    default.update(maps, gt)
    named = MetricAccumulator("benchmark")
    named.update(maps, gt)
    assert default.compute() == named.compute()
    assert not torch.equal(ciou_per_image(maps, gt, "ezvsl"), ciou_per_image(maps, gt))


def test_slavc_confidence_is_over_the_upsampled_map():
    maps = torch.tensor([[[0.0, 1.0], [0.2, 0.4]]])
    native = map_confidence(maps)  # top quarter of 4 cells: the 1.0
    assert native.item() == pytest.approx(1.0)
    # SLAVC: the mean of the top 4 of the 16 bicubic (align_corners) values
    rows = [bicubic_corners_row(column, 4) for column in ([0.0, 0.2], [1.0, 0.4])]  # down each column
    grid = [bicubic_corners_row([rows[0][i], rows[1][i]], 4) for i in range(4)]   # then across
    expected = sum(sorted(v for row in grid for v in row)[-4:]) / 4
    assert map_confidence(maps, (4, 4), "slavc").item() == pytest.approx(expected, abs=1e-6)
    assert map_confidence(maps, (4, 4), "benchmark").item() == native.item()
    with pytest.raises(ValueError, match="size"):
        map_confidence(maps, protocol="slavc")


def test_unknown_protocol_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="benchmark"):
        MetricAccumulator("lvs-ish")
    assert set(PROTOCOLS) == {"benchmark", "lvs", "ssltie", "ezvsl", "fnac", "slavc", "sspl"}
