"""The datasets of one comparison: labeled / unlabeled training data, test set, references."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset, Subset

from dmt_wrap.datasets.splits import label_split

from dmt_wrap_benchmarks.presets import Preset


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
    from dmt_wrap_benchmarks.composed import ComposedScenes, load_eval_set

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


# The files ``real`` needs under --root, with what each must contain.
LAYOUTS = {
    "flickr": {
        "unlabeled": ("train.txt", "ids of all training clips (the unlabeled pool), one per line, with "
                                   "frames/<id>.jpg and audio/<id>.wav"),
        "labeled": ("train_labeled.txt", "ids of the annotated training clips, one per line, each with "
                                         "Annotations/<id>.xml"),
        "test": ("test.txt", "the test ids, one per line, each with Annotations/<id>.xml"),
    },
    "vggss": {
        "unlabeled": ("train.txt", "ids of the unlabeled VGG-Sound training clips, one per line, with "
                                   "frames/<id>.jpg and audio/<id>.wav"),
        "labeled": ("train_labeled.json", "annotated training pairs in vggss.json's format: a list of "
                                          '{"file", "class", "bbox": [[x0, y0, x1, y1], ...]} in [0, 1]'),
        "test": ("vggss.json", "the VGG-SS test annotations as published"),
    },
}


def check_layout(kind: str, root: Path) -> dict[str, Path]:
    """The paths of ``LAYOUTS[kind]`` under ``root``; a SystemExit naming every missing one."""
    if not root.is_dir():
        raise SystemExit(f"--root {root} is not a directory; pass the {kind} dataset folder.")
    paths = {role: root / name for role, (name, _) in LAYOUTS[kind].items()}
    missing = [f"  {paths[role]}: {what}" for role, (_, what) in LAYOUTS[kind].items()
               if not paths[role].is_file()]
    if missing:
        raise SystemExit(f"--data {kind} --root {root}: missing file(s):\n" + "\n".join(missing))
    return paths


def real(kind: str, root: str, preset: Preset, ratio: float, seed: int,
         split: str | Path | None = None) -> ComparisonData:
    """Flickr-SoundNet or VGG-Sound (Source) from their published layouts under ``root``.

    Needs the files of ``LAYOUTS[kind]``: the unlabeled pool ``train.txt`` (ids), the
    labeled pool (Flickr: ``train_labeled.txt``, ids with ``Annotations/<id>.xml``;
    VGG-Sound: ``train_labeled.json`` in ``vggss.json``'s format, which the user annotates:
    VGG-SS publishes test boxes only) and the test set (``test.txt`` / ``vggss.json``).
    The labeled set is ``floor(ratio * len(train))`` pairs of the labeled pool, chosen by
    ``seed``; with ``split`` (a ``dmt-wrap splits`` folder) the split's ids instead
    (``apply_split``), where ``train.txt`` may list every prepared clip, test clips included.
    """
    from dmt_wrap.datasets.flickr import FlickrSoundNet
    from dmt_wrap.datasets.vggss import VGGSoundSource

    root_path = Path(root).resolve()  # absolute: the loaders join each list file to the root
    paths = check_layout(kind, root_path)
    common = dict(image_size=preset.image_size, sample_rate=preset.sample_rate, duration=preset.duration)
    loader = FlickrSoundNet if kind == "flickr" else VGGSoundSource
    unlabeled = loader(root_path, paths["unlabeled"], masks=False, on_error="skip", **common)
    pool = loader(root_path, paths["labeled"], masks=True, **common)
    test = loader(root_path, paths["test"], masks=True, **common)
    if split is not None:
        return apply_split(ComparisonData(None, unlabeled, pool, test, f"{kind} at {root}"), split)
    wanted = max(1, int(ratio * len(unlabeled)))
    if wanted > len(pool):
        raise SystemExit(f"--label-ratio {ratio} asks for {wanted} labeled pairs but {paths['labeled']} "
                         f"lists {len(pool)}; lower the ratio or annotate more pairs.")
    labeled_idx, _ = label_split(len(pool), wanted / len(pool), seed)
    return ComparisonData(Subset(pool, labeled_idx), unlabeled, pool, test,
                          f"{kind} at {root}: {len(labeled_idx)} labeled, {len(unlabeled)} unlabeled, "
                          f"{len(test)} test")


def apply_split(data: ComparisonData, folder: str | Path) -> ComparisonData:
    """The labeled / unlabeled / test sets a published split folder (``dmt-wrap splits``) names.

    Labeled ids are taken from the annotated pool, unlabeled ones from the unlabeled pool,
    test ids (when the split has any) from the test set; each prints "N evaluated / N listed /
    N missing", and the split's checksums are verified first.
    """
    from dmt_wrap.datasets.split_files import read_split, select

    parts = read_split(folder)
    labeled = select(data.all_labeled, parts["labeled"], f"{folder} labeled")
    unlabeled = select(data.unlabeled, parts["unlabeled"], f"{folder} unlabeled")
    test = select(data.test, parts["test"], f"{folder} test") if parts["test"] else data.test
    return ComparisonData(labeled, unlabeled, data.all_labeled, test,
                          f"{data.description}; split {folder}: {len(labeled)} labeled, {len(unlabeled)} "
                          f"unlabeled, {len(test)} test")
