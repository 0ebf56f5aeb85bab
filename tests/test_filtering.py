import pytest
import torch

from dmt_wrap.filtering import (PseudoLabelConfig, consensus_filter, fill_boxes, label_quality, make_pseudo_labels,
                                 peak_component)


def maps_from(*rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float)


def test_consensus_filter_keeps_exactly_at_tau():
    # A: 4 pixels on; B: 2 of them on -> IoU = 2 / 4 = 0.5
    a = maps_from([[0.9, 0.9], [0.9, 0.9]])
    b = maps_from([[0.9, 0.9], [0.1, 0.1]])
    keep, iou = consensus_filter(a, b, delta=0.5, tau=0.5)
    assert iou.tolist() == [0.5] and keep.tolist() == [True]
    keep, _ = consensus_filter(a, b, delta=0.5, tau=0.5001)
    assert keep.tolist() == [False]


def test_delta_is_inclusive_and_empty_union_is_rejected():
    a = maps_from([[0.5, 0.2], [0.2, 0.2]])
    keep, iou = consensus_filter(a, a, delta=0.5, tau=1.0)
    assert keep.tolist() == [True] and iou.tolist() == [1.0]
    empty = torch.zeros(1, 2, 2)
    keep, iou = consensus_filter(empty, empty, delta=0.5, tau=0.0)
    assert keep.tolist() == [False] and iou.tolist() == [0.0]


def test_ipl_is_the_intersection_of_kept_samples_only():
    a = torch.stack([maps_from([[1, 1], [0, 0]])[0], maps_from([[1, 0], [0, 0]])[0]])
    b = torch.stack([maps_from([[1, 1], [1, 0]])[0], maps_from([[0, 0], [0, 1]])[0]])
    pl = make_pseudo_labels(a, b, PseudoLabelConfig(delta=0.5, tau=0.6))
    assert pl.keep.tolist() == [True, False]
    assert pl.labels[0].tolist() == [[1, 1], [0, 0]]
    assert pl.labels[1].sum() == 0
    assert pl.consensus_iou.tolist() == pytest.approx([2 / 3, 0.0])


def test_no_filter_union_first_and_single_teacher():
    a = maps_from([[1, 1], [0, 0]])
    b = maps_from([[0, 1], [0, 1]])
    assert make_pseudo_labels(a, b, PseudoLabelConfig(tau=0.9, noise_filter=False)).labels[0].tolist() == [[0, 1], [0, 0]]
    assert make_pseudo_labels(a, b, PseudoLabelConfig(noise_filter=False, combine="union")).labels[0].tolist() == [[1, 1], [0, 1]]
    assert make_pseudo_labels(a, b, PseudoLabelConfig(noise_filter=False, combine="first")).labels[0].tolist() == [[1, 1], [0, 0]]
    single = make_pseudo_labels(a, None)
    assert single.keep.tolist() == [True] and single.labels[0].tolist() == [[1, 1], [0, 0]]
    # an empty intersection is never kept, even without the filter
    disjoint = make_pseudo_labels(maps_from([[1, 0], [0, 0]]), maps_from([[0, 0], [0, 1]]), PseudoLabelConfig(noise_filter=False))
    assert disjoint.keep.tolist() == [False]


def test_box_shaped_labels_fill_the_bounding_box():
    mask = torch.zeros(2, 5, 5, dtype=torch.bool)
    mask[0, 1, 1] = mask[0, 3, 2] = True
    boxes = fill_boxes(mask)
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[1:4, 1:3] = True
    assert torch.equal(boxes[0], expected)
    assert not boxes[1].any()
    pl = make_pseudo_labels(mask.float(), mask.float(), PseudoLabelConfig(shape="box"))
    assert torch.equal(pl.labels[0].bool(), expected)


def test_label_quality_against_truth():
    labels = maps_from([[1, 1], [0, 0]], [[1, 0], [0, 0]])
    truth = maps_from([[1, 0], [0, 0]], [[1, 1], [1, 1]])
    iou, precision = label_quality(labels, torch.tensor([True, False]), truth)
    assert iou.item() == pytest.approx(0.5) and precision.item() == pytest.approx(0.5)
    iou, _ = label_quality(labels, torch.tensor([False, False]), truth)
    assert iou.item() == 0.0


def test_relative_delta_keeps_under_confident_maps_by_their_own_range():
    # two teachers whose calibrated maps never reach 0.6, agreeing on where they peak
    a = maps_from([[0.45, 0.40], [0.10, 0.05]])
    b = maps_from([[0.30, 0.28], [0.02, 0.10]])
    absolute = make_pseudo_labels(a, b, PseudoLabelConfig(delta=0.6, tau=0.5))
    assert absolute.keep.tolist() == [False]
    relative = make_pseudo_labels(a, b, PseudoLabelConfig(delta=0.6, tau=0.5, delta_mode="relative"))
    assert relative.keep.tolist() == [True] and relative.labels[0].tolist() == [[1, 1], [0, 0]]
    # the same maps scaled by any positive factor give the same labels
    scaled = make_pseudo_labels(a * 2, b / 3, PseudoLabelConfig(delta=0.6, tau=0.5, delta_mode="relative"))
    assert torch.equal(scaled.labels, relative.labels)
    # a flat map has no peak to keep
    flat = torch.full((1, 2, 2), 0.3)
    assert make_pseudo_labels(flat, flat, PseudoLabelConfig(delta=0.6, delta_mode="relative")).keep.tolist() == [False]
    with pytest.raises(ValueError, match="delta_mode must be one of"):
        make_pseudo_labels(a, b, PseudoLabelConfig(delta_mode="top-k"))


def test_component_shapes_drop_a_stray_patch_the_box_of_the_mask_would_span():
    # the teachers agree on a 2x2 object (peak) and on a stray 1-pixel patch far away
    prob = torch.zeros(1, 8, 8)
    prob[0, 1:3, 1:3] = 0.9
    prob[0, 1, 1] = 0.95
    prob[0, 6, 6] = 0.8
    whole_box = make_pseudo_labels(prob, prob, PseudoLabelConfig(shape="box")).labels[0]
    assert whole_box.sum() == 36  # rows and columns 1..6
    component = make_pseudo_labels(prob, prob, PseudoLabelConfig(shape="component")).labels[0]
    assert component.sum() == 4 and component[1:3, 1:3].all() and component[6, 6] == 0
    component_box = make_pseudo_labels(prob, prob, PseudoLabelConfig(shape="component_box")).labels[0]
    assert torch.equal(component_box, component)


def test_peak_component_follows_a_long_snake_and_keeps_empty_masks_empty():
    masks = torch.zeros(2, 9, 9, dtype=torch.bool)
    masks[0, 0, :] = True
    masks[0, :, 8] = True
    masks[0, 8, :] = True  # a U-shaped path of 25 pixels, longer than one batch of 16 dilations
    masks[0, 4, 2] = True  # and an isolated pixel
    scores = torch.rand(2, 9, 9)
    scores[0, 8, 0] = 5.0  # the peak sits at the far end of the path
    region = peak_component(masks, scores)
    assert region[0].sum() == 25 and not region[0, 4, 2]
    assert region[1].sum() == 0


def test_max_area_rejects_labels_covering_most_of_the_image():
    prob = torch.zeros(2, 4, 4)
    prob[0] = 0.9           # covers everything
    prob[1, :2, :2] = 0.9   # a quarter
    pl = make_pseudo_labels(prob, prob, PseudoLabelConfig(max_area=0.5))
    assert pl.keep.tolist() == [False, True] and pl.labels[0].sum() == 0
    with pytest.raises(ValueError, match="max_area"):
        PseudoLabelConfig(max_area=0.0)
