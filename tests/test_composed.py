"""The composed benchmark: determinism, masks, tiers, splits, fallback, stored eval sets."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dmt_wrap_benchmarks.composed import (DEFAULT_CLASSES, ComposedScenes, TierConfig, get_tier,
                                        load_eval_set, reference_maps)
from dmt_wrap_benchmarks.composed import evalset as evalset_module
from dmt_wrap_benchmarks.composed import scene as scene_module
from dmt_wrap_benchmarks.composed.audio import (_change_speed, _fade_in_place, _loop,
                                              split_bounds)
from dmt_wrap_benchmarks.composed.backgrounds import _tint
from dmt_wrap_benchmarks.composed.fallback import fallback_sources
from dmt_wrap_benchmarks.composed.preview import save_tier_preview
from dmt_wrap_benchmarks.composed.sources import discover_stamps, stamps_dir_from
from dmt_wrap.metrics import ciou_at, ciou_per_image, pointing_game

HAVE_STAMPS = bool(discover_stamps(stamps_dir_from(None)))
needs_stamps = pytest.mark.skipif(not HAVE_STAMPS, reason="tuxpaint-stamps-default is not "
                                  "installed (apt-get install tuxpaint-stamps-default)")
SHORT = {"duration": 0.5}  # half-second clips keep the tests fast
ITEM_SHAPES = {"mask": (32, 32), "instance_mask": (32, 32), "objectness": (32, 32),
               "silent_mask": (32, 32)}


def box_fraction(box: tuple[int, int, int, int], size: int) -> float:
    return (box[2] - box[0]) * (box[3] - box[1]) / size ** 2


@needs_stamps
def test_same_key_same_sample_and_different_keys_differ() -> None:
    first = ComposedScenes("clutter", "train", 10, image_size=32, **SHORT)
    again = ComposedScenes("clutter", "train", 10, image_size=32, **SHORT)
    a, b = first[3], again[3]
    for key in ("image", "audio", "mask", "instance_mask", "objectness", "silent_mask"):
        assert torch.equal(a[key], b[key]), key
    other_index, other_seed = first[4], ComposedScenes("clutter", "train", 10, image_size=32,
                                                       seed=1, **SHORT)[3]
    other_split = ComposedScenes("clutter", "test", 10, image_size=32, **SHORT)[3]
    for other in (other_index, other_seed, other_split):
        assert not torch.equal(a["image"], other["image"])
        assert not torch.equal(a["audio"], other["audio"])
    first.set_epoch(1)
    assert not torch.equal(first[3]["image"], a["image"])
    again.set_epoch(1)
    assert torch.equal(first[3]["image"], again[3]["image"])


@needs_stamps
@pytest.mark.parametrize("tier", ["flickr", "clutter", "small", "multi", "negatives"])
def test_items_have_fixed_shapes_types_and_ranges(tier: str) -> None:
    dataset = ComposedScenes(tier, "train", 4, image_size=32, sample_rate=16_000, **SHORT)
    assert (dataset.image_size, dataset.sample_rate, dataset.is_fallback) == (32, 16_000, False)
    assert len(dataset.classes) == 24 and len(set(dataset.classes)) == 24
    batch = next(iter(DataLoader(dataset, batch_size=4)))  # the default collate works
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["audio"].shape == (4, 8000) and batch["audio"].dtype == torch.float32
    assert batch["audio"].abs().max() <= 1
    rms = batch["audio"].pow(2).mean(dim=1).sqrt()
    assert torch.allclose(rms, torch.full_like(rms, 0.1), rtol=0.05)
    for key, shape in ITEM_SHAPES.items():
        values = batch[key]
        assert values.shape == (4, *shape) and values.dtype == torch.float32, key
        assert set(values.unique().tolist()) <= {0.0, 1.0}, key
    assert batch["sounding"].dtype == torch.bool and batch["index"].tolist() == [0, 1, 2, 3]
    # exact masks lie inside the boxes, and every sounding object is a visible object
    assert (batch["instance_mask"] <= batch["mask"]).all()
    assert (batch["instance_mask"] <= batch["objectness"]).all()


@needs_stamps
def test_masks_are_exactly_the_pasted_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Composing each scene on black and on white recovers the pasted alpha per pixel:
    the exact masks must be where it is at least one half."""
    dataset = ComposedScenes("clutter", "train", 8, image_size=48, **SHORT)

    def on_plain(value: int) -> list:
        monkeypatch.setattr(scene_module, "random_background",
                            lambda rng, size: Image.new("RGB", (size, size), (value,) * 3))
        return [dataset.scene(index) for index in range(8)]

    for black, white in zip(on_plain(0), on_plain(255)):
        assert black.objects == white.objects
        alpha = 1 - (white.image.astype(np.float64) - black.image).mean(axis=2) / 255
        objectness = black.objectness()
        assert not objectness[alpha <= 0.48].any()
        # two faint edges (each alpha < 1/2) can overlap to more than 1/2 without being
        # either object: a handful of pixels at most
        assert ((alpha >= 0.52) & ~objectness).sum() <= 0.005 * alpha.size
        assert objectness.sum() > 0
        for label, obj in enumerate(black.objects):
            ys, xs = np.nonzero(black.owner == label)
            assert obj.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        heard = [w.class_name for w in black.windows if w.role == "source"]
        assert heard == [obj.class_name for obj in black.objects if obj.sounding]
        x0, y0, x1, y1 = next(obj.box for obj in black.objects if obj.sounding)
        boxes = black.box_mask(True)
        assert boxes.sum() == (x1 - x0) * (y1 - y0) and boxes[y0:y1, x0:x1].all()
        assert (black.instance_mask() <= boxes).all() and black.instance_mask().any()


@needs_stamps
def test_flickr_boxes_cover_30_to_60_percent_with_a_silent_object_opposite() -> None:
    size = 64
    dataset = ComposedScenes("flickr", "test", 80, image_size=size, **SHORT)
    with_silent = 0
    for index in range(80):
        scene = dataset.scene(index)
        sounding = [obj for obj in scene.objects if obj.sounding]
        silent = [obj for obj in scene.objects if not obj.sounding]
        assert len(sounding) == 1 and len(silent) <= 1
        assert 0.30 <= box_fraction(sounding[0].box, size) <= 0.60
        if silent:
            with_silent += 1
            a, b = sounding[0].box, silent[0].box
            assert silent[0].class_name != sounding[0].class_name
            assert 0.2 <= box_fraction(b, size) <= 0.65  # a similar size
            centre_a = np.array([a[0] + a[2], a[1] + a[3]]) / 2 - size / 2
            centre_b = np.array([b[0] + b[2], b[1] + b[3]]) / 2 - size / 2
            # opposite corners: far apart, on opposite sides of the centre (along one axis at
            # least: a box nearly as wide as the image sits on the vertical centre line)
            assert np.linalg.norm(centre_a - centre_b) >= 0.25 * size
            assert (centre_a * centre_b < 0).any()
            overlap = (max(0, min(a[2], b[2]) - max(a[0], b[0]))
                       * max(0, min(a[3], b[3]) - max(a[1], b[1])))
            assert overlap / size ** 2 <= 0.08
    assert 0.7 <= with_silent / 80 <= 0.97


@needs_stamps
def test_train_and_test_hear_disjoint_parts_of_every_recording() -> None:
    train = ComposedScenes("clutter", "train", 60, image_size=16, **SHORT)
    test = ComposedScenes("clutter", "test", 60, image_size=16, **SHORT)
    for source in train.sources:
        train_part, test_part = (split_bounds(source, split, 0.3) for split in ("train", "test"))
        assert 0 < train_part[1] == test_part[0] < test_part[1] == len(source.waveform)
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for split, dataset in (("train", train), ("test", test)):
        for index in range(60):
            for window in dataset.scene(index).windows:
                spans.setdefault((split, window.class_name), []).append((window.start,
                                                                         window.end))
    assert any(w.role == "distractor" for i in range(60) for w in test.scene(i).windows)
    checked = 0
    for (split, name), train_spans in spans.items():
        if split != "train" or ("test", name) not in spans:
            continue
        assert max(end for _, end in train_spans) <= min(s for s, _ in spans["test", name])
        checked += 1
    assert checked >= 12


def plain_change_speed(window: np.ndarray, speed: float) -> np.ndarray:
    """The definition ``_change_speed`` must match bit for bit (it uses cached pieces)."""
    positions = np.arange(max(2, int(len(window) / speed)), dtype=np.float32) * np.float32(speed)
    left = np.minimum(positions.astype(np.int32), len(window) - 2)
    fraction = np.minimum(positions - left, np.float32(1.0))
    return window[left] + (window[left + 1] - window[left]) * fraction


def test_sped_faded_looped_clips_match_their_plain_definitions() -> None:
    """Cached ranges, ramps and slopes must give exactly the uncached result, every call."""
    source = fallback_sources(2, 16_000)[0]
    assert np.array_equal(source.slopes, np.diff(source.waveform))
    assert not source.slopes.flags.writeable
    rng = np.random.default_rng(0)
    for _ in range(2):  # the second pass reuses what the first cached
        for length in (2, 3, 7, 500, 4_000, 9_999):
            start = int(rng.integers(0, len(source.waveform) - length))
            window = source.waveform[start:start + length]
            slopes = source.slopes[start:start + length - 1]
            for speed in (0.5, 0.9, 1.0, rng.uniform(0.9, 1.1), 1.5):
                sped = _change_speed(window, slopes, speed)
                expected = plain_change_speed(window, speed)
                assert sped.dtype == expected.dtype and np.array_equal(sped, expected)
            fade = min(80, length // 4)
            ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade, dtype=np.float32))
            expected = sped.copy()
            expected[:fade] *= ramp
            expected[len(expected) - fade:] *= ramp[::-1]
            _fade_in_place(sped, 80)
            assert np.array_equal(sped, expected)
            for phase in (0, len(sped) // 3, len(sped) - 1):
                expected = np.resize(np.concatenate([sped[phase:], sped[:phase]]), 1_000)
                assert np.array_equal(_loop(sped, phase, 1_000), expected)


def test_grey_backgrounds_are_tinted_per_channel() -> None:
    grey = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    tint = np.array([150, 200, 255], dtype=np.uint16)
    tinted = _tint(Image.fromarray(grey), tint)
    assert tinted.mode == "RGB"
    expected = (np.repeat(grey[..., None], 3, axis=2) * tint >> 8).astype(np.uint8)
    assert np.array_equal(np.asarray(tinted), expected)


@needs_stamps
def test_negatives_hear_an_absent_class_and_have_empty_masks() -> None:
    dataset = ComposedScenes("negatives", "test", 40, image_size=32, **SHORT)
    negatives = 0
    for index in range(40):
        scene, item = dataset.scene(index), dataset[index]
        assert bool(item["sounding"]) == scene.sounding
        if not scene.sounding:
            negatives += 1
            heard = {w.class_name for w in scene.windows if w.role == "source"}
            assert len(heard) == 1 and not heard & {obj.class_name for obj in scene.objects}
            assert item["mask"].sum() == 0 and item["instance_mask"].sum() == 0
            assert item["objectness"].sum() > 0 and item["silent_mask"].sum() > 0
    assert 8 <= negatives <= 32


def test_missing_stamps_fall_back_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), pytest.warns(RuntimeWarning, match="FALLBACK"):
        dataset = ComposedScenes("flickr", "train", 4, image_size=32, stamps_dir=tmp_path,
                                 **SHORT)
    assert "FALLBACK" in caplog.text and str(tmp_path) in caplog.text
    assert dataset.is_fallback and len(dataset.classes) == 24
    item = dataset[0]
    assert item["image"].shape == (3, 32, 32) and item["audio"].shape == (8000,)
    assert item["mask"].sum() > 0 and (item["instance_mask"] <= item["mask"]).all()


def test_tier_knobs_are_validated_and_too_few_classes_are_refused(tmp_path: Path) -> None:
    assert get_tier("flickr", snr_db=(0.0, 5.0)).snr_db == (0.0, 5.0)
    with pytest.raises(ValueError, match="unknown tier 'flicker'"):
        get_tier("flicker")
    with pytest.raises(ValueError, match="n_silent"):
        TierConfig("crowded", n_silent=(2, 5))  # 6 objects in 4 corners
    with pytest.raises(ValueError, match="sounding_area"):
        TierConfig("huge", sounding_area=(0.5, 1.5))
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="needs at least 6"):
        ComposedScenes("clutter", classes=4, stamps_dir=tmp_path)


def write_stamp(folder: Path, name: str, tone: np.ndarray, rate: int) -> None:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGBA", (120, 96), (0, 0, 0, 0))
    image.paste((200, 60, 40, 255), (10, 13, 110, 83))
    image.save(folder / f"{name}.png")
    sf.write(folder / f"{name}.ogg", tone, rate)
    sf.write(folder / f"{name}_desc_fr.ogg", tone[::-1].copy(), rate)  # speech: never used


def test_stamps_sharing_a_recording_are_one_class_resampled_to_one_rate(tmp_path: Path) -> None:
    t = np.arange(44_100) / 44_100
    write_stamp(tmp_path / "animals", "owl", 0.5 * np.sin(2 * np.pi * 300 * t), 44_100)
    write_stamp(tmp_path / "symbols", "o_upper", 0.5 * np.sin(2 * np.pi * 500 * t[:8000]), 8000)
    write_stamp(tmp_path / "symbols", "o_lower", 0.5 * np.sin(2 * np.pi * 500 * t[:8000]), 8000)
    dataset = ComposedScenes("flickr", classes=2, stamps_dir=tmp_path, image_size=32, **SHORT)
    assert not dataset.is_fallback and sorted(dataset.classes) == ["o_lower", "owl"]
    assert [len(s.waveform) for s in dataset.sources] == [16_000, 16_000]  # 1 s each
    assert [s.rgba.shape for s in dataset.sources] == [(70, 100, 4)] * 2  # cropped to alpha
    assert dataset[0]["audio"].shape == (8000,)


@needs_stamps
def test_named_classes_select_exactly_those_and_unknown_names_are_refused() -> None:
    dataset = ComposedScenes("flickr", classes=["cow", "violin", "kettle"], image_size=16,
                             **SHORT)
    assert dataset.classes == ["cow", "violin", "kettle"]
    assert ComposedScenes("flickr", classes=5, **SHORT).classes == list(DEFAULT_CLASSES[:5])
    with pytest.raises(ValueError, match="unicorn"):
        ComposedScenes("flickr", classes=["cow", "unicorn"], **SHORT)


@needs_stamps
def test_eval_set_is_stored_reloaded_and_regenerated_on_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"n": 5, "image_size": 24, "cache_dir": tmp_path, **SHORT}
    stored = load_eval_set("multi", **settings)
    files = sorted(tmp_path.glob("*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    payload = torch.load(files[0], weights_only=True)
    assert payload["tensors"]["image"].dtype == torch.uint8
    generated = ComposedScenes("multi", "test", 5, image_size=24, **SHORT)
    for index in range(5):
        for key, value in generated[index].items():
            assert torch.equal(torch.as_tensor(stored[index][key]), torch.as_tensor(value)), key

    def refuse(*args: object) -> None:
        raise AssertionError("the stored set should have been reused")

    monkeypatch.setattr(evalset_module, "_generate", refuse)
    reloaded = load_eval_set("multi", **settings)
    assert torch.equal(reloaded[2]["audio"], stored[2]["audio"])
    monkeypatch.undo()

    changed = load_eval_set("multi", **{**settings, "duration": 0.25})
    assert changed[0]["audio"].shape == (4000,) and len(list(tmp_path.glob("*.pt"))) == 2
    files[0].write_bytes(b"truncated")
    assert torch.equal(load_eval_set("multi", **settings)[1]["image"], stored[1]["image"])


def test_eval_set_default_folder_follows_the_environment(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMT_WRAP_CACHE", str(tmp_path))
    assert evalset_module.default_cache_dir() == tmp_path / "composed"


@needs_stamps
def test_flickr_oracle_scores_high_and_audio_blind_references_do_not() -> None:
    eval_set = ComposedScenes("flickr", "test", 160, image_size=64, **SHORT)
    batch = next(iter(DataLoader(eval_set, batch_size=160)))
    maps = reference_maps(batch)
    assert {key: value.shape for key, value in maps.items()} == {
        key: (160, 64, 64) for key in ("random", "centre_prior", "objectness", "oracle")}
    scores = {key: ciou_at(ciou_per_image(value, batch["mask"]), 0.5)
              for key, value in maps.items()}
    assert scores["oracle"] >= 0.9
    assert scores["centre_prior"] <= 0.3 and scores["random"] <= 0.3
    assert scores["objectness"] <= scores["oracle"] - 0.3
    # the silent object is as much an object as the sounding one: without the audio,
    # half the two-object scenes point at the wrong one
    two_objects = batch["silent_mask"].flatten(1).any(1)
    pointing = pointing_game(maps["objectness"][two_objects], batch["mask"][two_objects])
    assert pointing.float().mean() <= 0.8


@pytest.mark.filterwarnings("ignore:COMPOSED BENCHMARK FALLBACK")
def test_preview_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "tiers.png"
    save_tier_preview(path, tiers=("flickr", "negatives"), n_per_tier=2, image_size=32)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size[0] > picture.size[1] > 50


def test_random_reference_depends_on_the_item_not_the_batch() -> None:
    from dmt_wrap_benchmarks.composed.references import random_map

    together = random_map(torch.tensor([3, 5, 8]), 32, 32)
    assert torch.equal(together[1], random_map(torch.tensor([5]), 32, 32)[0])
    assert not torch.equal(together[0], together[1])
    assert together.min() >= 0 and together.max() <= 1
