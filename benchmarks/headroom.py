"""Headroom per tier: how far the fully supervised ceiling lies above naive semi-supervised.

    python benchmarks/headroom.py --method ezvsl                          # every tier, cpu preset
    python benchmarks/headroom.py --method lvs --tiers flickr multi --seeds 0 1

Semi-supervised learning can only show its value where the labels are scarce for what must
be learned: where naive semi-supervised training on 3% of the labels already reaches the
ceiling, no pseudo-labelling method has anything to add. For each composed-benchmark tier
this runs ``run.py --variants naive fully_supervised --tier T`` (same budget, same stored
test set; finished jobs are reused) and tabulates ceiling minus naive, with the centre-prior
reference for scale. Other arguments (``--preset``, ``--quick``, ``--label-ratio``,
``--threads``, ``--network-args`` ...) pass through to run.py.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import run
from benchmarks.composed import TIERS
from benchmarks.report import command_line

HEADROOM_METRICS = (("ciou50", "CIoU@0.5"), ("pointing", "pointing"), ("area_iou", "area IoU"))


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="ezvsl", help="one baseline name")
    p.add_argument("--tiers", nargs="+", choices=list(TIERS), default=list(TIERS))
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/headroom-<method>)")
    args, passthrough = p.parse_known_args(argv)
    if any(flag in passthrough for flag in ("--variants", "--tier", "--ablation")):
        p.error("--variants/--tier/--ablation are set by headroom.py (naive and fully_supervised, per --tiers)")
    args.out = args.out or Path("runs") / f"headroom-{args.method}"
    return args, passthrough


def headroom_rows(tier_results: dict[str, dict]) -> list[dict]:
    """One row per (tier, label ratio): naive, ceiling and their difference (means over seeds)."""
    rows = []
    for tier, payload in tier_results.items():
        by_key = {(r["ratio"], r["variant"]): r for r in payload["rows"]}
        for ratio in sorted({r["ratio"] for r in payload["rows"]}):
            naive, ceiling = by_key.get((ratio, "naive")), by_key.get((ratio, "fully_supervised"))
            if naive is None or ceiling is None:
                continue
            row = {"tier": tier, "ratio": ratio, "seeds": naive["seeds"]}
            for metric, _ in HEADROOM_METRICS:
                row[metric] = {"naive": naive[metric][0], "ceiling": ceiling[metric][0],
                               "headroom": ceiling[metric][0] - naive[metric][0],
                               "centre_prior": (payload.get("references") or {}).get("centre_prior", {}).get(metric)}
            rows.append(row)
    return rows


def headroom_markdown(rows: list[dict]) -> str:
    head = ["tier", "ratio"] + [f"{title} naive / ceiling / headroom" for _, title in HEADROOM_METRICS]
    head += ["centre prior CIoU@0.5 / pointing"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["tier"], f"{row['ratio']:g}"]
        for metric, _ in HEADROOM_METRICS:
            v = row[metric]
            cells.append(f"{v['naive'] * 100:.1f} / {v['ceiling'] * 100:.1f} / **{v['headroom'] * 100:+.1f}**")
        prior = [row[m]["centre_prior"] for m in ("ciou50", "pointing")]
        cells.append(" / ".join("—" if p is None else f"{p * 100:.1f}" for p in prior))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args, passthrough = parse_args(argv)
    results = {}
    for tier in args.tiers:
        folder = args.out / tier
        code = run.main(["--method", args.method, "--variants", "naive", "fully_supervised", "--tier", tier,
                         "--out", str(folder), *passthrough])
        if code:
            return code
        results[tier] = json.loads((folder / "results.json").read_text())
    rows = headroom_rows(results)
    warning = ("" if all(r["meaningful"] for r in results.values())
               else "**--quick run: checks the whole path; these numbers are NOT meaningful.**\n\n")
    markdown = (f"# Headroom per tier ({args.method})\n\n{warning}Command: `{command_line('headroom.py', argv)}`\n"
                f"Metrics in %, means over seeds; headroom = fully supervised ceiling - naive semi-supervised. "
                f"Per-tier tables: {args.out}/<tier>/results.md\n\n{headroom_markdown(rows)}\n")
    (args.out / "headroom.md").write_text(markdown)
    (args.out / "headroom.json").write_text(json.dumps({"method": args.method, "rows": rows}, indent=2))
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
