"""Where trained maps point on the composed benchmark: the sounding object, the silent one, or neither.

    python -m benchmarks.diagnostics.pointing_breakdown runs/preset5 --method lvs ssltie

Pointing game only says whether a map's maximum lies in the sounding object's box. On the
composed tiers the test scenes also carry every visible object's mask (``objectness``), so a
miss can be split into "on a silent object" (the map found an object but not the one that
sounds: an audio failure) and "on the background" (no object at all). For each finished job
of a ``run.py`` output folder this reloads the model (its ``settings.json`` says how it was
built and on what data) and reports, over the stored test scenes, the share of maxima in each
place, and the mean map value on the silent object relative to the sounding one (per-image
min-max normalised maps; scenes with a silent object only), and the pointing game on the
scenes with and without a silent object (a map that finds objects but not the one that sounds
points well only without). A two-teacher model also gets a row per teacher and one for its
students (a student far above its teacher would mean the EMA lags), and a second table: the
pseudo-labels its teachers would give the test scenes under its own filter settings (keep
rate, and where the kept label pixels lie).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dmt_wrap_benchmarks.diagnostics.shared import Localize, batches, finished_jobs, localize_as, no_jobs_error
from dmt_wrap_benchmarks.report import command_line, job_table
from dmt_wrap import DualMeanTeacher
from dmt_wrap.filtering import make_pseudo_labels
from dmt_wrap.metrics import minmax_normalise, pointing_game, upsample_maps


def peak_places(maps: torch.Tensor, sounding: torch.Tensor, objects: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per scene: is the map's maximum on the sounding object, a silent object, or the background,
    and the silent/sounding ratio of mean normalised map values (NaN without a silent object)."""
    maps = upsample_maps(maps.float(), sounding.shape[-2:])
    silent = ((objects > 0) & ~(sounding > 0)).float()
    on_sounding = pointing_game(maps, sounding)
    on_silent = pointing_game(maps, silent) & ~on_sounding
    normalised = minmax_normalise(maps).flatten(1)

    def mean_on(region: torch.Tensor) -> torch.Tensor:
        region = region.flatten(1) > 0
        return (normalised * region).sum(1) / region.sum(1).clamp_min(1)

    ratio = mean_on(silent) / mean_on(sounding).clamp_min(1e-12)
    present = (silent.flatten(1) > 0).any(1) & (sounding.flatten(1) > 0).any(1)
    ratio = torch.where(present, ratio, torch.full_like(ratio, float("nan")))
    return {"sounding": on_sounding, "silent": on_silent, "background": ~on_sounding & ~on_silent,
            "silent_over_sounding": ratio}


def breakdown(localize: Localize, test) -> dict[str, float]:
    parts: dict[str, list[torch.Tensor]] = {}
    for images, audio, sounding, objects in batches(test):
        for key, value in peak_places(localize(images, audio), sounding, objects).items():
            parts.setdefault(key, []).append(value)
    joined = {key: torch.cat(values).float() for key, values in parts.items()}
    with_silent = ~joined["silent_over_sounding"].isnan()
    return {"scenes": len(test), "scenes_with_silent": int(with_silent.sum()),
            **{f"peak_{k}": float(joined[k].mean()) for k in ("sounding", "silent", "background")},
            "silent_over_sounding": float(joined["silent_over_sounding"][with_silent].mean()),
            "pointing_with_silent": float(joined["sounding"][with_silent].mean()),
            "pointing_without_silent": float(joined["sounding"][~with_silent].mean())}


def pseudo_label_places(model: DualMeanTeacher, test) -> dict[str, float]:
    """The two teachers' pseudo-labels for the test scenes (the model's delta, tau, filter,
    combination and shape): keep rate, and the shares of kept label pixels in the sounding
    box, on a silent object, and elsewhere."""
    cfg, kept, pixels = model.config, [], {"sounding": 0.0, "silent": 0.0, "background": 0.0}
    teacher_a, teacher_b = localize_as(model, "a"), localize_as(model, "b")
    for images, audio, sounding, objects in batches(test):
        labels = make_pseudo_labels(teacher_a(images, audio), teacher_b(images, audio), cfg.pseudo_labels)
        label, truth, objects = labels.labels > 0, sounding > 0, objects > 0
        kept.append(labels.keep)
        pixels["sounding"] += float((label & truth).sum())
        pixels["silent"] += float((label & objects & ~truth).sum())
        pixels["background"] += float((label & ~objects & ~truth).sum())
    total = max(sum(pixels.values()), 1.0)
    return {"pl_keep_rate": float(torch.cat(kept).float().mean()),
            **{f"pl_on_{k}": v / total for k, v in pixels.items()}}


def job_rows(out: Path, methods: list[str] | None) -> tuple[list[dict], list[dict]]:
    rows, label_rows = [], []
    for where, model, test in finished_jobs(out, methods):
        views = [("", model.localize)]
        if model.config.teachers == 2 and model.has_teachers:
            label_rows.append({**where, **pseudo_label_places(model, test)})
            views += [(f" ({name})", localize_as(model, inference))
                      for name, inference in (("teacher A", "a"), ("teacher B", "b"), ("students", "students"))]
        for suffix, localize in views:
            rows.append({**where, "variant": where["variant"] + suffix, **breakdown(localize, test)})
    return rows, label_rows


def markdown(rows: list[dict]) -> str:
    return job_table(["peak on sounding", "peak on silent object", "peak on background", "silent / sounding map mean",
                      "pointing: scenes with / without a silent object"], rows,
                     lambda r: [f"{r['peak_sounding'] * 100:.1f}", f"{r['peak_silent'] * 100:.1f}",
                                f"{r['peak_background'] * 100:.1f}", f"{r['silent_over_sounding']:.2f}",
                                f"{r['pointing_with_silent'] * 100:.1f} / {r['pointing_without_silent'] * 100:.1f}"])


def label_markdown(rows: list[dict]) -> str:
    return job_table(["kept", "label pixels in sounding box", "on a silent object", "elsewhere"], rows,
                     lambda r: [f"{r['pl_keep_rate'] * 100:.1f}", f"{r['pl_on_sounding'] * 100:.1f}",
                                f"{r['pl_on_silent'] * 100:.1f}", f"{r['pl_on_background'] * 100:.1f}"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="a benchmarks/run.py output folder (synthetic data)")
    p.add_argument("--method", nargs="+", default=None, help="only these methods (default: every one found)")
    args = p.parse_args(argv)
    with torch.no_grad():
        rows, label_rows = job_rows(args.out, args.method)
    if not rows:
        raise no_jobs_error([args.out])
    text = (f"# Where the maps point\n\nCommand: `{command_line('diagnostics/pointing_breakdown.py', argv)}`\n"
            f"Shares of test scenes in %; silent/sounding: mean normalised map value on the silent object "
            f"over that on the sounding one (scenes with a silent object).\n\n{markdown(rows)}\n")
    if label_rows:
        text += ("\n## Pseudo-labels the teachers would give the test scenes\n\nShares in %: kept scenes, and "
                 "where the kept label pixels lie.\n\n" + label_markdown(label_rows) + "\n")
    (args.out / "pointing_breakdown.md").write_text(text)
    (args.out / "pointing_breakdown.json").write_text(json.dumps({"peaks": rows, "pseudo_labels": label_rows},
                                                                 indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
