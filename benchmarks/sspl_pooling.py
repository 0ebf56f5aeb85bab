"""Where SSPL's own objective would rather pool: its SimSiam loss over regions of the test scenes.

    python benchmarks/sspl_pooling.py runs/diag-1000-sspl-frozen-supervised-features

SSPL (``baselines/sspl.py``) learns its map only through the attention that pools its refined
visual features before the SimSiam head, so the map moves towards whatever pooling makes two
views of a scene agree. For each finished SSPL job of a ``run.py`` output folder this scores
the trained head's symmetrised SimSiam loss on the stored test scenes, each against a seeded
random second view (the model's own crop, flip and audio perturbation; the region masks move
with the image), with the features pooled over: the sounding object, the background (no
object), the model's own attention, and every location alike. Lower is what the loss prefers;
if the sounding object does not score clearly below the rest, the loss gives the map little
reason to go there.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import einsum
from torch import Tensor

from baselines.encoders import soft_min_max_normalise
from baselines.sspl import SSPL, draw_second_view, simsiam_sample_losses
from benchmarks.pointing_breakdown import batches, finished_jobs
from benchmarks.report import command_line
from dmt_wrap import DualMeanTeacher
from dmt_wrap.augment import warp

REGIONS = ("sounding object", "background", "own attention", "uniform")


def second_view_with_masks(net: SSPL, images: Tensor, audio: Tensor, masks: list[Tensor],
                           generator: torch.Generator) -> tuple[Tensor, Tensor, list[Tensor]]:
    """SSPL's second view of a batch, with each ``[B, H, W]`` mask warped by the same geometry."""
    view_images, view_audio, geometry = draw_second_view(images, audio, net.crop_scale, net.audio_gain_db,
                                                         net.audio_noise_snr_db, generator)
    return view_images, view_audio, [warp(mask, geometry) for mask in masks]


def region_weights(cosine: Tensor, sounding: Tensor, objects: Tensor) -> dict[str, Tensor]:
    """Pooling weights ``[B, h, w]`` on the feature grid of ``cosine`` for every region."""
    def on_grid(mask: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(mask[:, None].clamp(0, 1), cosine.shape[-2:])[:, 0]

    return {"sounding object": on_grid(sounding), "background": 1 - on_grid(objects),
            "own attention": soft_min_max_normalise(cosine), "uniform": torch.ones_like(cosine)}


def pooling_losses(net: SSPL, images: Tensor, audio: Tensor, sounding: Tensor, objects: Tensor,
                   generator: torch.Generator) -> dict[str, Tensor]:
    """Per-scene SimSiam loss ``[B]`` of ``net`` (in eval mode) for each pooling region."""
    first = (images, audio, sounding.float(), objects.float())
    second_images, second_audio, second_masks = second_view_with_masks(net, images, audio, list(first[2:]), generator)
    heads = []
    for view_images, view_audio, view_sounding, view_objects in (first, (second_images, second_audio, *second_masks)):
        features, cosine = net.refined_features_and_map(view_images, view_audio)
        heads.append({name: net.head(einsum(features, weights, "b c h w, b h w -> b c"))
                      for name, weights in region_weights(cosine, view_sounding, view_objects).items()})
    return {name: simsiam_sample_losses(*heads[0][name], *heads[1][name]) for name in REGIONS}


def sspl_network(model: DualMeanTeacher) -> SSPL:
    """The (first) student's SSPL network, under any wrapper the trainer put around it."""
    return next(m for m in model.students[0].modules() if isinstance(m, SSPL))


def job_rows(out: Path, seed: int) -> list[dict]:
    rows = []
    for where, model, test in finished_jobs(out, ["sspl"]):
        net = sspl_network(model).eval()
        generator = torch.Generator().manual_seed(seed)
        parts: dict[str, list[Tensor]] = {name: [] for name in REGIONS}
        for images, audio, sounding, objects in batches(test):
            for name, losses in pooling_losses(net, images, audio, sounding, objects, generator).items():
                parts[name].append(losses)
        rows.append({**where, "scenes": len(test), **{name: float(torch.cat(v).mean()) for name, v in parts.items()}})
    return rows


def markdown(rows: list[dict]) -> str:
    head = ["ratio", "seed", "variant", *REGIONS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [f"| {r['ratio']} | {r['seed']} | {r['variant']} | " + " | ".join(f"{r[n]:.4f}" for n in REGIONS) + " |"
              for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="a benchmarks/run.py output folder with SSPL jobs (synthetic data)")
    p.add_argument("--seed", type=int, default=0, help="seed of the second views")
    args = p.parse_args(argv)
    with torch.no_grad():
        rows = job_rows(args.out, args.seed)
    if not rows:
        raise SystemExit(f"{args.out}: no finished SSPL job (jobs/sspl/<ratio>/<seed>/<variant>/model.pt with "
                         "settings.json); run benchmarks/run.py --method sspl --out there first")
    text = (f"# SSPL's SimSiam loss by pooling region\n\nCommand: `{command_line('sspl_pooling.py', argv)}`\n"
            f"Mean over the stored test scenes (lower: the two views agree more); -1 is perfect agreement.\n\n"
            f"{markdown(rows)}\n")
    (args.out / "sspl_pooling.md").write_text(text)
    (args.out / "sspl_pooling.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
