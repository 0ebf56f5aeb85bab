"""Tables (Markdown + JSON) and plots of a comparison."""
from __future__ import annotations

import json
import shlex
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

METRICS = (("ciou50", "CIoU@0.5"), ("auc", "AUC"), ("pointing", "pointing"), ("area_iou", "area IoU"),
           ("pixel_ap", "pixel AP"))


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that wrote a report, quoted so that it can be pasted into a shell
    (``--network-args`` JSON has spaces and quotes). ``argv=None``: this process's arguments."""
    return f"python benchmarks/{script} {shlex.join(sys.argv[1:] if argv is None else argv)}"


def aggregate(results: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Mean and std over seeds for each (method, ratio, variant)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(r["method"], r["ratio"], r["variant"])].append(r)
    table = {}
    for key, runs in groups.items():
        row: dict[str, Any] = {"seeds": sorted(r["seed"] for r in runs)}
        for metric, _ in METRICS:
            values = np.array([r["scores"][metric] for r in runs])
            row[metric] = (float(values.mean()), float(values.std()))
        for extra in ("keep_rate", "pseudo_precision", "train_seconds"):
            values = [r[extra] for r in runs if r.get(extra) is not None]
            row[extra] = (float(np.mean(values)), float(np.std(values))) if values else None
        row["updates_per_network"] = runs[0]["updates_per_network"]
        table[key] = row
    return table


def _fmt(value: tuple[float, float] | None, scale: float = 100.0, digits: int = 1, std: bool = True) -> str:
    if value is None:
        return "—"
    mean, spread = value
    text = f"{mean * scale:.{digits}f}"
    return f"{text} ± {spread * scale:.{digits}f}" if std else text


def method_table(method: str, ratio: float, table: dict[tuple, dict[str, Any]], variants: list[tuple[str, str]],
                 references: dict[str, dict[str, float]] | None) -> str:
    """One method's variants at one ratio, DMT's gain over each, and the reference rows."""
    dmt = table.get((method, ratio, "dmt"))
    several = any(len(table[(method, ratio, v)]["seeds"]) > 1 for v, _ in variants if (method, ratio, v) in table)
    head = ["variant"] + [title for _, title in METRICS] + ["keep rate", "PL precision", "train s",
                                                            "DMT gain (CIoU@0.5)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, title in variants:
        row = table.get((method, ratio, name))
        if row is None:
            continue
        gain = "—" if dmt is None or name == "dmt" else f"{(dmt['ciou50'][0] - row['ciou50'][0]) * 100:+.1f}"
        cells = [title] + [_fmt(row[m], std=several) for m, _ in METRICS]
        cells += [_fmt(row["keep_rate"], std=False), _fmt(row["pseudo_precision"], std=False),
                  _fmt(row["train_seconds"], scale=1, digits=0, std=False), gain]
        lines.append("| " + " | ".join(cells) + " |")
    for name, scores in (references or {}).items():
        cells = [f"*reference: {name.replace('_', ' ')}*"] + [f"{scores[m] * 100:.1f}" for m, _ in METRICS]
        lines.append("| " + " | ".join(cells + ["—"] * 4) + " |")
    return "\n".join(lines)


def gains_table(methods: list[str], ratio: float, table: dict[tuple, dict[str, Any]]) -> str:
    """CIoU@0.5 of each method's variants and DMT's gains, one row per method."""
    cols = [("self_supervised", "self-sup."), ("naive", "naive"), ("single_teacher", "single MT"),
            ("dmt", "DMT"), ("fully_supervised", "full")]
    head = ["method"] + [t for _, t in cols] + ["DMT − self-sup.", "DMT − naive", "DMT − single MT"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        get = {name: table.get((method, ratio, name)) for name, _ in cols}
        cells = [method] + [_fmt(get[n]["ciou50"], std=False) if get[n] else "—" for n, _ in cols]
        for other in ("self_supervised", "naive", "single_teacher"):
            ok = get["dmt"] and get[other]
            cells.append(f"{(get['dmt']['ciou50'][0] - get[other]['ciou50'][0]) * 100:+.1f}" if ok else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(results: list[dict[str, Any]], path: Path) -> None:
    """Test CIoU@0.5 and pointing over training steps, one line per variant (first seed)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    seen = set()
    for r in sorted(results, key=lambda r: r["seed"]):
        key = (r["method"], r["variant"], r["ratio"])
        if key in seen:
            continue
        seen.add(key)
        steps = [row["step"] for row in r["history"]]
        for ax, metric in zip(axes, ("test_ciou50", "test_pointing")):
            ax.plot(steps, [row.get(metric, np.nan) for row in r["history"]], marker=".",
                    label=f"{r['method']} {r['variant']} ({r['ratio']:g})")
    for ax, title in zip(axes, ("CIoU@0.5 (curve subset)", "pointing (curve subset)")):
        ax.set_xlabel("training step (per network)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ratio_curve(methods: list[str], ratios: list[float], table: dict[tuple, dict[str, Any]], path: Path) -> None:
    """CIoU@0.5 against the label ratio, per method and variant."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in methods:
        for variant in ("naive", "single_teacher", "dmt"):
            points = [(r, table[(method, r, variant)]["ciou50"]) for r in ratios if (method, r, variant) in table]
            if points:
                ax.errorbar([p[0] for p in points], [p[1][0] * 100 for p in points],
                            yerr=[p[1][1] * 100 for p in points], marker="o", label=f"{method} {variant}")
    ax.set_xscale("log")
    ax.set_xlabel("label ratio")
    ax.set_ylabel("CIoU@0.5 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1, default=str))
