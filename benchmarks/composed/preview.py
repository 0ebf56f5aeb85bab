"""A picture of the tiers: one row per tier, sounding boxes drawn, the heard class written."""
from __future__ import annotations

import io
import os
from collections.abc import Sequence

from PIL import Image

from .dataset import ComposedScenes
from .tiers import TIERS

SOUNDING_COLOUR = "#00ff66"


def save_tier_preview(path: str | os.PathLike, tiers: Sequence[str] = tuple(TIERS),
                      n_per_tier: int = 6, image_size: int = 128, seed: int = 0,
                      split: str = "test", dpi: int = 100) -> None:
    """Write a PNG grid of ``n_per_tier`` scenes per tier (rows) to ``path``.

    Each scene shows its sounding objects' boxes (green); the caption names the heard
    class, marked "(absent)" for a negative.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    figure, axes = plt.subplots(len(tiers), n_per_tier, squeeze=False,
                                figsize=(1.3 * n_per_tier + 0.6, 1.45 * len(tiers)))
    for row, tier in enumerate(tiers):
        scenes = ComposedScenes(tier, split, n_per_tier, image_size=image_size, seed=seed)
        for column in range(n_per_tier):
            axis = axes[row, column]
            scene = scenes.scene(column)
            axis.imshow(scene.image)
            for obj in scene.objects:
                if obj.sounding:
                    x0, y0, x1, y1 = obj.box
                    axis.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0,
                                             fill=False, edgecolor=SOUNDING_COLOUR,
                                             linewidth=1.5))
            heard = [w.class_name for w in scene.windows if w.role == "source"]
            caption = "+".join(heard) + ("" if scene.sounding else " (absent)")
            axis.set_title(caption, fontsize=6, pad=2)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(scenes.tier.name, fontsize=8)
    figure.tight_layout(pad=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    # A 256-colour palette keeps the picture small enough for a README.
    with Image.open(buffer) as picture:
        picture.convert("RGB").quantize(256).save(path, optimize=True)
