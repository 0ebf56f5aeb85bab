import torch
from torch import nn

from dmt_wrap.augment import Augmenter, GeometricParams, augment_audio, warp
from dmt_wrap.ema import make_teacher


def test_ema_matches_hand_computation():
    student = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    teacher = make_teacher(student, decay=0.9)
    start = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student[1].running_mean.fill_(2.0)
        student[1].num_batches_tracked.fill_(7)
    teacher.update(student)
    now = teacher.module.state_dict()
    for name, value in student.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(now[name], 0.9 * start[name] + 0.1 * value), name
        else:
            assert torch.equal(now[name], value), name
    assert not any(p.requires_grad for p in teacher.parameters())


def test_geometric_augmentation_moves_mask_with_image():
    image = torch.zeros(1, 3, 8, 8)
    mask = torch.zeros(1, 8, 8)
    image[0, :, 2, 1] = 1.0
    mask[0, 2, 1] = 1.0
    flip = GeometricParams(torch.ones(1), torch.zeros(1, 2), torch.tensor([True]))
    out_image, out_mask = warp(image, flip, "nearest"), warp(mask, flip, "nearest")
    assert out_mask[0, 2, 6] == 1 and out_mask.sum() == 1
    assert torch.equal(out_image[0, 0] > 0.5, out_mask[0] > 0.5)


def test_strong_view_keeps_every_map_aligned_and_leaves_masks_unjittered():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 16, 16) * 0.2
    masks = torch.zeros(6, 16, 16)
    for i in range(6):
        r, c = 3 + i, 10 - i
        images[i, :, r:r + 3, c:c + 3] = 1.0
        masks[i, r:r + 3, c:c + 3] = 1.0
    audio = torch.randn(6, 100)
    out_images, out_audio, out_masks, out_copy = Augmenter().strong(images, audio, gen, masks, masks.clone())
    assert torch.equal(out_masks, out_copy)
    assert set(out_masks.unique().tolist()) <= {0.0, 1.0}  # photometric ops never touch masks
    # the bright object is where its mask went: mean brightness inside >> outside
    gray = out_images.mean(1)
    inside = (gray * out_masks).flatten(1).sum(1) / out_masks.flatten(1).sum(1).clamp_min(1)
    outside = (gray * (1 - out_masks)).flatten(1).sum(1) / (1 - out_masks).flatten(1).sum(1)
    assert bool((inside > outside + 0.2).all())
    assert out_audio.shape == audio.shape and not torch.equal(out_audio, audio)


def test_augmentation_is_reproducible_from_the_generator():
    images, audio = torch.rand(4, 3, 16, 16), torch.randn(4, 50)
    one = Augmenter().strong(images, audio, torch.Generator().manual_seed(3))
    two = Augmenter().strong(images, audio, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(one, two))


def test_audio_time_mask_zeroes_a_span():
    out = augment_audio(torch.ones(2, 100), torch.Generator().manual_seed(0), gain_db=0, noise_snr_db=200,
                        mask_fraction=0.2)
    assert ((out == 0).sum(1) == 20).all()
