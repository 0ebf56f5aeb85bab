"""Do a trained model's maps use the audio? Its maps with each scene's own clip against another clip's.

    python -m benchmarks.diagnostics.audio_dependence runs/preset5 --method slavc ezvsl --json audio.json

On the composed benchmark the audio must pick one of the visible objects. A map that lights
the sounding object as brightly when another scene's clip plays is an objectness map: it
finds objects, not the one that sounds, and its teachers' pseudo-labels cannot tell a silent
object from the sounding one either (no filter on two such teachers' agreement can). For
every finished job of a ``run.py`` output folder this reloads the model and scores the
stored test scenes twice, with each scene's own clip and with the next scene's clip (the
test set rolled by one within each batch of 100): the mean confidence on the sounding object,
on the silent objects and on the background under each, the audio gap (own minus other on the
sounding object: 0 for a map that ignores the audio), and the pointing game under each
(a share of the pointing that survives another clip's audio is not owed to the audio).

A DMT job also gets a second table: the pseudo-labels its teachers would give the test scenes
under its own filter settings, plain and audio-contrasted (``audio_contrast``: each teacher's map
times one minus its map under the next clip), each with an absolute and a relative ``delta``: keep rate,
pixel precision of the kept labels, and the share of label pixels on a silent object.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from dmt_wrap_benchmarks.diagnostics.shared import Localize, batches, finished_jobs, localize_as, no_jobs_error
from dmt_wrap_benchmarks.report import command_line, job_table
from dmt_wrap.atomic import write_text_atomic
from dmt_wrap.filtering import make_pseudo_labels
from dmt_wrap.metrics import pointing_game, upsample_maps

REGIONS = ("sounding", "silent", "background")


def region_means(maps: torch.Tensor, sounding: torch.Tensor, objects: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per scene: the mean map value on the sounding object, on the silent objects and on the
    background (NaN where a scene has no such region)."""
    maps = upsample_maps(maps.float(), sounding.shape[-2:]).flatten(1)
    truth, visible = sounding.flatten(1) > 0, objects.flatten(1) > 0
    regions = {"sounding": truth, "silent": visible & ~truth, "background": ~visible & ~truth}
    means = {}
    for name, region in regions.items():
        total = (maps * region).sum(1) / region.sum(1).clamp_min(1)
        means[name] = torch.where(region.any(1), total, torch.full_like(total, float("nan")))
    return means


def audio_dependence(localize: Localize, test) -> dict[str, float]:
    """Mean confidences per region and pointing game, with each scene's own clip and the next one's."""
    parts: dict[str, list[torch.Tensor]] = {}
    for images, audio, sounding, objects in batches(test):
        for clip, batch_audio in (("own", audio), ("other", audio.roll(1, dims=0))):
            maps = localize(images, batch_audio)
            for region, values in region_means(maps, sounding, objects).items():
                parts.setdefault(f"{region}_{clip}", []).append(values)
            parts.setdefault(f"pointing_{clip}", []).append(pointing_game(maps.float(), sounding).float())
    means = {key: float(torch.nanmean(torch.cat(values).double())) for key, values in parts.items()}
    return {**means, "audio_gap": means["sounding_own"] - means["sounding_other"]}


LABEL_SUMS = ("scenes", "kept", "precision", "pixels", "on_silent")


def audio_contrast(own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``own * (1 - other)``: the confidence that a pixel lights with its own clip and not with
    another clip's; what a map lights whatever the audio (an object that is silent) drops out."""
    return own * (1.0 - other)


def contrast_labels(model, test) -> list[dict[str, float]]:
    """A two-teacher model's pseudo-labels for the test scenes, plain and audio-contrasted, at an
    absolute and a relative ``delta``: keep rate, precision of kept labels, share on silent objects."""
    teachers = (localize_as(model, "a"), localize_as(model, "b"))
    sums: dict[tuple[bool, str], dict[str, float]] = {}
    for images, audio, sounding, objects in batches(test):
        own = [teacher(images, audio) for teacher in teachers]
        other = [teacher(images, audio.roll(1, dims=0)) for teacher in teachers]
        truth, silent = sounding > 0, (objects > 0) & ~(sounding > 0)
        for contrast in (False, True):
            maps = [audio_contrast(p, q) for p, q in zip(own, other)] if contrast else own
            for mode in ("absolute", "relative"):
                labels = make_pseudo_labels(*maps, replace(model.config.pseudo_labels, delta_mode=mode))
                pred = labels.labels > 0
                precision = (pred & truth).flatten(1).sum(1) / pred.flatten(1).sum(1).clamp_min(1)
                values = (len(images), labels.keep.sum(), precision[labels.keep].sum(), pred.sum(),
                          (pred & silent).sum())
                total = sums.setdefault((contrast, mode), dict.fromkeys(LABEL_SUMS, 0.0))
                for name, value in zip(LABEL_SUMS, values):
                    total[name] += float(value)
    return [{"audio_contrast": contrast, "delta_mode": mode, "keep_rate": t["kept"] / t["scenes"],
             "pseudo_precision": t["precision"] / max(t["kept"], 1.0),
             "pseudo_on_silent": t["on_silent"] / max(t["pixels"], 1.0)} for (contrast, mode), t in sums.items()]


def label_markdown(rows: list[dict], named: bool = False) -> str:
    return job_table(["audio contrast", "delta", "kept", "precision of kept labels", "label pixels on a silent object"],
                     rows, lambda r: ["on" if r["audio_contrast"] else "off", r["delta_mode"],
                                      f"{r['keep_rate'] * 100:.1f}", f"{r['pseudo_precision'] * 100:.1f}",
                                      f"{r['pseudo_on_silent'] * 100:.1f}"], run_column=named)


def markdown(rows: list[dict], named: bool = False) -> str:
    return job_table(["sounding: own / other clip", "silent: own / other", "background: own / other", "audio gap",
                      "pointing: own / other clip"], rows,
                     lambda r: [*(f"{r[f'{region}_own']:.2f} / {r[f'{region}_other']:.2f}" for region in REGIONS),
                                f"{r['audio_gap']:+.3f}",
                                f"{r['pointing_own'] * 100:.1f} / {r['pointing_other'] * 100:.1f}"],
                     run_column=named)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="+", type=Path, help="benchmarks/run.py output folders (synthetic data)")
    p.add_argument("--method", nargs="+", default=None, help="only these methods (default: every one found)")
    p.add_argument("--variant", nargs="+", default=None, help="only these variants (default: every one found)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    rows, label_rows = [], []
    with torch.no_grad():
        for out in args.out:
            for where, model, test in finished_jobs(out, args.method):
                if args.variant is None or where["variant"] in args.variant:
                    where = {**where, "out": str(out)}
                    rows.append({**where, **audio_dependence(model.localize, test)})
                    if model.config.teachers == 2 and model.has_teachers:
                        label_rows += [{**where, **row} for row in contrast_labels(model, test)]
    if not rows:
        raise no_jobs_error(args.out)
    named = len(args.out) > 1
    text = (f"# Do the maps use the audio?\n\nCommand: `{command_line('diagnostics/audio_dependence.py', argv)}`\n"
            "Mean confidence per region with each scene's own clip / the next scene's clip; audio gap: own minus "
            "other on the sounding object; pointing game in %.\n\n" + markdown(rows, named) + "\n")
    if label_rows:
        text += ("\n## Pseudo-labels the teachers would give the test scenes, with and without audio contrast\n\n"
                 "Shares in %.\n\n" + label_markdown(label_rows, named) + "\n")
    print(text)
    if args.json:
        stored = {"command": command_line("diagnostics/audio_dependence.py", argv), "rows": rows,
                  "pseudo_labels": label_rows}
        write_text_atomic(args.json, json.dumps(stored, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
