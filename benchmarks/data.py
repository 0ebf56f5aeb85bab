"""The datasets of one comparison: labeled / unlabeled training data, test set, references."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset, Subset

from dmt_wrap.datasets.splits import label_split

from presets import Preset


@dataclass
class ComparisonData:
    labeled: Dataset | None      # by variant: see ``training_sets``
    unlabeled: Dataset
    all_labeled: Dataset         # the ceiling's labeled data
    test: Dataset
    description: str
    is_fallback: bool = False


def synthetic(preset: Preset, ratio: float, seed: int, cache_dir: str | None = None) -> ComparisonData:
    """The composed benchmark: a fixed labeled pool, fresh unlabeled scenes, a stored test set."""
    from dmt_wrap.datasets.composed import ComposedScenes, load_eval_set

    scenes = ComposedScenes(tier=preset.tier, split="train", length=preset.train_size + preset.unlabeled_size,
                            image_size=preset.image_size, sample_rate=preset.sample_rate,
                            duration=preset.duration, seed=seed)
    labeled_idx, _ = label_split(preset.train_size, ratio, seed)
    unlabeled = Subset(scenes, range(preset.train_size, len(scenes)))
    test = load_eval_set(preset.tier, n=preset.test_size, image_size=preset.image_size,
                         sample_rate=preset.sample_rate, duration=preset.duration, cache_dir=cache_dir)
    desc = (f"composed benchmark, tier {preset.tier}, {preset.image_size}px, {len(scenes.classes)} classes, "
            f"{len(labeled_idx)} labeled of {preset.train_size} + fresh unlabeled scenes, "
            f"{len(test)} stored test scenes")
    if scenes.is_fallback:
        desc = "PROCEDURAL FALLBACK (tuxpaint-stamps-default not installed): " + desc
    return ComparisonData(Subset(scenes, labeled_idx), unlabeled, scenes, test, desc, scenes.is_fallback)


def real(kind: str, root: str, preset: Preset, ratio: float, seed: int) -> ComparisonData:
    """Flickr-SoundNet from its published layout under ``root``.

    Needs ``train.txt`` (all training ids: the unlabeled pool), ``train_labeled.txt`` (ids
    whose ``Annotations/<id>.xml`` exist: the labeled pool) and ``test.txt``. The labeled
    set is ``floor(ratio * len(train))`` ids of the labeled pool, chosen by ``seed``.
    VGG-Sound Source publishes test annotations only: evaluate on it with
    ``benchmarks/evaluate.py``.
    """
    if kind != "flickr":
        raise SystemExit("--data vggss: VGG-SS publishes only test annotations, so there is nothing to train the "
                         "labeled part on; train on --data flickr or synthetic and evaluate with "
                         "benchmarks/evaluate.py --data vggss.")
    from dmt_wrap.datasets.flickr import FlickrSoundNet

    common = dict(image_size=preset.image_size, sample_rate=preset.sample_rate, duration=preset.duration)
    root_path = Path(root)
    unlabeled = FlickrSoundNet(root_path, "train.txt", masks=False, on_error="skip", **common)
    pool = FlickrSoundNet(root_path, "train_labeled.txt", masks=True, **common)
    test = FlickrSoundNet(root_path, "test.txt", masks=True, **common)
    wanted = max(1, int(ratio * len(unlabeled)))
    if wanted > len(pool):
        raise SystemExit(f"--label-ratio {ratio} asks for {wanted} labeled pairs but {root_path / 'train_labeled.txt'} "
                         f"lists {len(pool)}; lower the ratio or annotate more pairs.")
    labeled_idx, _ = label_split(len(pool), wanted / len(pool), seed)
    return ComparisonData(Subset(pool, labeled_idx), unlabeled, pool, test,
                          f"flickr at {root}: {len(labeled_idx)} labeled, {len(unlabeled)} unlabeled, "
                          f"{len(test)} test")
