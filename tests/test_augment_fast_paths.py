"""The fast geometric paths of ``dmt_wrap.augment`` against the general ones they replace."""
import torch
import torch.nn.functional as F

from dmt_wrap.augment import Augmenter, AugmentConfig, GeometricParams, mirror, sample_geometry, warp


def test_separable_grid_equals_affine_grid():
    params = sample_geometry(5, torch.Generator().manual_seed(0), (0.6, 1.0), flip_p=0.5)
    theta = torch.zeros(5, 2, 3)
    theta[:, 0, 0] = params.scale * torch.where(params.flip, -1.0, 1.0)
    theta[:, 1, 1] = params.scale
    theta[:, :, 2] = params.shift
    for height, width in ((16, 16), (9, 20)):
        expected = F.affine_grid(theta, [5, 3, height, width], align_corners=False)
        grid = params.grid(height, width, torch.device("cpu"), torch.float32)
        assert torch.allclose(grid, expected, atol=1e-6)
    # the same affine given as matrices warps images and [B, H, W] maps alike
    images, maps = torch.rand(5, 3, 9, 20), torch.rand(5, 9, 20)
    assert torch.allclose(warp(images, theta), warp(images, params), atol=1e-5)
    assert torch.allclose(warp(maps, theta), warp(maps, params), atol=1e-5)


def test_weak_view_mirror_equals_the_flip_warp():
    images, masks = torch.rand(6, 3, 8, 10), (torch.rand(6, 8, 10) > 0.5).float()
    flip = torch.tensor([True, False, True, True, False, False])
    params = GeometricParams(torch.ones(6), torch.zeros(6, 2), flip)
    assert torch.allclose(mirror(images, flip), warp(images, params), atol=1e-6)
    assert torch.equal(mirror(masks, flip), warp(masks, params, "nearest"))
    weak_image, weak_mask = Augmenter(AugmentConfig(weak_flip_p=1.0)).weak(images, torch.Generator(), masks)
    assert torch.equal(weak_image, images.flip(-1)) and torch.equal(weak_mask, masks.flip(-1))
