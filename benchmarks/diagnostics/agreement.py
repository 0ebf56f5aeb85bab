"""How much a two-network model's networks agree, and what averaging them buys.

    python -m benchmarks.diagnostics.agreement runs/preset5 --method ezvsl --json agreement.json
    python -m benchmarks.diagnostics.agreement --from-json agreement.json        # the tables again

DMT scores the mean of its two teachers, the naive ensemble the mean of two naive networks.
Averaging helps only as far as the two disagree: two networks trained on the same
pseudo-labels may become one network twice. For every finished two-network job of a ``run.py``
output folder (DMT, naive ensemble) this reloads the model and reports, on the stored test
scenes: CIoU@0.5 of network A, of network B and of their mean, the mean's gain over the two
alone (the ensembling gain), and how alike the two networks' maps are: the Pearson correlation
of their maps and the IoU of their binarised maps (binarised as CIoU does: min-max normalised,
at the median), per scene, averaged; and the share of scenes on which each network's map is
flat (the same value at every location: a collapsed network, e.g. Attention10k's dead ReLU).

Then, per method, paired by seed: network A minus network B in each variant (the two pairs differ
only in their seeds, so this should centre on 0), and DMT against one naive network counted two
ways: the naive ensemble's network A (``run.py``'s naive, which shares pair A's seeds) and the mean
of its two networks' scores (both are naive networks; their mean does not depend on which pair's
seeds one calls naive). ``--from-json`` re-reads the rows an earlier ``--json`` wrote instead of
evaluating again.

Jobs trained with ``swap_pairs`` (network A on pair B's seeds and B on A's, each in its own
position; ``run.py --swap-pairs``) are kept out of those tables and, where they pair
with unswapped jobs of the same method, variant and seed, split A − B into what the position
gives (position A minus position B, each averaged over both seed assignments) and what the seeds
give (pair A's seeds minus pair B's, each averaged over both positions); DMT is then also compared
with the naive network at position A (where a naive run trains) averaged over both seed assignments.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from dmt_wrap_benchmarks.diagnostics.shared import finished_jobs, localize_as
from dmt_wrap_benchmarks.report import command_line, format_difference, format_mean, job_table, paired_difference
from dmt_wrap.atomic import write_text_atomic
from dmt_wrap.metrics import binarise_at_median, ciou_at, ciou_per_image, minmax_normalise, upsample_maps


def map_agreement(maps_a: torch.Tensor, maps_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per scene: Pearson correlation of two networks' maps, and the IoU of their binarised maps."""
    flat_a, flat_b = maps_a.flatten(1).double(), maps_b.flatten(1).double()
    flat_a, flat_b = flat_a - flat_a.mean(1, keepdim=True), flat_b - flat_b.mean(1, keepdim=True)
    correlation = (flat_a * flat_b).sum(1) / (flat_a.norm(dim=1) * flat_b.norm(dim=1)).clamp_min(1e-12)
    region_a = binarise_at_median(minmax_normalise(maps_a)).flatten(1)
    region_b = binarise_at_median(minmax_normalise(maps_b)).flatten(1)
    iou = (region_a & region_b).sum(1) / (region_a | region_b).sum(1).clamp_min(1)
    return correlation, iou.double()


def flat_maps(maps: torch.Tensor, tolerance: float = 1e-5) -> torch.Tensor:
    """Per scene: whether the map is flat, its spread (max - min) within ``tolerance`` of its scale."""
    flat = maps.flatten(1).double()
    spread = flat.amax(1) - flat.amin(1)
    return spread <= tolerance * flat.abs().amax(1).clamp_min(1e-12)


def agreement(model, test, batch_size: int = 100) -> dict[str, float]:
    """CIoU@0.5 of each network and of their mean, the ensembling gain, and the maps' agreement."""
    network_a, network_b, both = localize_as(model, "a"), localize_as(model, "b"), model.localize
    ciou = {"a": [], "b": [], "mean": []}
    correlation, iou, flat = [], [], {"a": [], "b": []}
    for batch in DataLoader(test, batch_size=batch_size):
        images, audio, truth = batch["image"], batch["audio"], batch["mask"]
        maps = {"a": network_a(images, audio), "b": network_b(images, audio), "mean": both(images, audio)}
        for name, value in maps.items():
            ciou[name].append(ciou_per_image(value, truth))
        for name in flat:
            flat[name].append(flat_maps(maps[name]))
        size = truth.shape[-2:]
        c, i = map_agreement(upsample_maps(maps["a"].float(), size), upsample_maps(maps["b"].float(), size))
        correlation.append(c)
        iou.append(i)
    scores = {f"ciou50_{name}": ciou_at(torch.cat(values)) for name, values in ciou.items()}
    return {**scores, "ensemble_gain": scores["ciou50_mean"] - (scores["ciou50_a"] + scores["ciou50_b"]) / 2,
            "map_correlation": float(torch.cat(correlation).mean()), "region_iou": float(torch.cat(iou).mean()),
            **{f"flat_{name}": float(torch.cat(values).double().mean()) for name, values in flat.items()}}


def markdown(rows: list[dict]) -> str:
    return job_table(["CIoU@0.5 A", "B", "mean of A and B", "ensembling gain", "map correlation", "region IoU",
                      "flat maps A", "flat maps B", "pairs swapped"], rows,
                     lambda r: [f"{r['ciou50_a'] * 100:.1f}", f"{r['ciou50_b'] * 100:.1f}",
                                f"{r['ciou50_mean'] * 100:.1f}", f"{r['ensemble_gain'] * 100:+.1f}",
                                f"{r['map_correlation']:.3f}", f"{r['region_iou']:.3f}", f"{r['flat_a'] * 100:.0f}%",
                                f"{r['flat_b'] * 100:.0f}%", "yes" if r.get("swap_pairs") else "no"])


#: The networks' scores by position ("a", "b") in the jobs trained without and with ``swap_pairs``,
#: and what each side of the position / seeds split averages of them.
SPLIT_NETWORKS = ("unswapped a", "unswapped b", "swapped a", "swapped b")
SPLIT_SIDES = {"a": ("unswapped a",), "b": ("unswapped b",), "swapped a": ("swapped a",),
               "swapped b": ("swapped b",), "position a": ("unswapped a", "swapped a"),
               "position b": ("unswapped b", "swapped b"), "seeds a": ("unswapped a", "swapped b"),
               "seeds b": ("unswapped b", "swapped a")}


def seed_or_position(rows: list[dict]) -> str:
    """Per method and variant, paired by seed over jobs trained both ways (``swap_pairs`` off and
    on): A − B unswapped and swapped, the position's part and the seeds' part (CIoU@0.5), and for
    the naive ensemble DMT minus its network at position A averaged over both seed assignments
    (the naive network a user trains, freed of which seeds pair A drew), with the mean over methods
    of each variant. Empty when no swapped job pairs with an unswapped one."""
    groups: dict[str, dict[str, dict[str, dict[str, float]]]] = {}  # variant -> method -> network -> seed
    for r in rows:
        scores = groups.setdefault(r["variant"], {}).setdefault(f"{r['method']} | {r['ratio']}", {})
        way = "swapped" if r.get("swap_pairs") else "unswapped"
        for name in ("a", "b", "mean"):
            scores.setdefault(f"{way} {name}", {})[r["seed"]] = r[f"ciou50_{name}"]
    columns = [("a", "b"), ("swapped a", "swapped b"), ("position a", "position b"), ("seeds a", "seeds b"),
               ("dmt", "position a")]
    lines = ["| method | ratio | variant | A − B | A − B, pairs swapped | position A − position B | "
             "pair A's seeds − pair B's seeds | DMT − naive at position A, both seed sets |",
             "|---|---|---|---|---|---|---|---|"]
    for variant, methods in sorted(groups.items()):
        means: list[list[dict]] = [[] for _ in columns]
        for method, scores in sorted(methods.items()):
            seeds = sorted(set.intersection(*(set(scores.get(name, {})) for name in SPLIT_NETWORKS)))
            if not seeds:
                continue
            per_seed = {side: {s: {"ciou50": sum(scores[k][s] for k in keys) / len(keys)} for s in seeds}
                        for side, keys in SPLIT_SIDES.items()}
            if variant == "naive_ensemble":
                dmt = groups.get("dmt", {}).get(method, {}).get("unswapped mean", {})
                per_seed["dmt"] = {s: {"ciou50": value} for s, value in dmt.items()}
            diffs = [paired_difference(per_seed, x, y) for x, y in columns]
            for column, diff in zip(means, diffs):
                if diff is not None:
                    column.append(diff)
            lines.append(f"| {method} | {variant} | " + " | ".join(format_difference(d) for d in diffs) + " |")
        if means[0]:
            lines.append(f"| *mean over methods* | | {variant} | " + " | ".join(format_mean(m) for m in means) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def network_summary(rows: list[dict]) -> str:
    """Per method and label ratio, paired by seed: A − B of each variant, DMT − naive (A), and
    DMT − the mean of the naive ensemble's two networks (CIoU@0.5), with the mean over methods
    of each label ratio."""
    groups: dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]] = {}  # ratio -> method -> per seed
    for r in rows:
        per_seed = groups.setdefault(r["ratio"], {}).setdefault(r["method"], {})
        prefix = "naive" if r["variant"] == "naive_ensemble" else r["variant"]
        values = {f"{prefix} {name}": r[f"ciou50_{name}"] for name in ("a", "b", "mean")}
        values[f"{prefix} single"] = (r["ciou50_a"] + r["ciou50_b"]) / 2
        for name, value in values.items():
            per_seed.setdefault(name, {})[r["seed"]] = {"ciou50": value}
    pairs = [("naive a", "naive b"), ("dmt a", "dmt b"), ("dmt mean", "naive a"), ("dmt mean", "naive single")]
    lines = ["| method | ratio | naive ensemble: A − B | DMT: A − B | DMT − naive (A) | DMT − naive (mean of A and B) |",
             "|---|---|---|---|---|---|"]
    for ratio, methods in sorted(groups.items()):
        means: list[list[dict]] = [[] for _ in pairs]
        for method, per_seed in sorted(methods.items()):
            diffs = [paired_difference(per_seed, a, b) for a, b in pairs]
            for column, diff in zip(means, diffs):
                if diff is not None:
                    column.append(diff)
            lines.append(f"| {method} | {ratio} | " + " | ".join(format_difference(d) for d in diffs) + " |")
        lines.append(f"| *mean over methods* | {ratio} | " + " | ".join(format_mean(m) for m in means) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="*", type=Path, help="benchmarks/run.py output folders (synthetic data)")
    p.add_argument("--method", nargs="+", default=None, help="only these methods (default: every one found)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("--from-json", type=Path, nargs="+", default=[],
                   help="rows written by an earlier --json, summarised again without evaluating")
    args = p.parse_args(argv)
    if not args.out and not args.from_json:
        p.error("give run.py output folders, or --from-json with rows an earlier --json wrote")
    rows = [r for path in args.from_json for r in json.loads(path.read_text())["rows"]
            if args.method is None or r["method"] in args.method]
    with torch.no_grad():
        for out in args.out:
            for where, model, test in finished_jobs(out, args.method):
                if len(model.inference_networks()) == 2:
                    rows.append({**where, "swap_pairs": model.swap_pairs, **agreement(model, test)})
    if not rows:
        raise SystemExit(f"{[str(o) for o in args.out + args.from_json]}: no finished two-network job "
                         "(DMT or naive ensemble); run benchmarks/run.py --variants dmt naive_ensemble --out there first")
    unswapped = [r for r in rows if not r.get("swap_pairs")]
    text = (f"# Do the two networks agree?\n\nCommand: `{command_line('diagnostics/agreement.py', argv)}`\n"
            "CIoU@0.5 in points; the ensembling gain is the mean's CIoU@0.5 minus the average of A's and B's.\n\n"
            f"{markdown(rows)}\n\nPaired by seed, mean ± s.e. (seeds agreeing in sign):\n\n"
            f"{network_summary(unswapped)}\n")
    split = seed_or_position(rows)
    if split:
        text += ("\nNetwork A against B, split into position and seeds (jobs trained with and without "
                 f"swap_pairs):\n\n{split}\n")
    print(text)
    if args.json:
        stored = {"command": command_line("diagnostics/agreement.py", argv), "rows": rows}
        write_text_atomic(args.json, json.dumps(stored, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
