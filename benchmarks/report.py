"""Tables (Markdown + JSON) and plots of a comparison."""
from __future__ import annotations

import json
import math
import shlex
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from dmt_wrap.atomic import atomic_path, write_text_atomic  # noqa: E402

METRICS = (("ciou50", "CIoU@0.5"), ("auc", "AUC"), ("pointing", "pointing"), ("area_iou", "area IoU"),
           ("pixel_ap", "pixel AP"))


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that wrote a report, quoted so that it can be pasted into a shell
    (``--network-args`` JSON has spaces and quotes). ``argv=None``: this process's arguments."""
    return f"python benchmarks/{script} {shlex.join(sys.argv[1:] if argv is None else argv)}"


#: The single-network scores of two-network variants get rows of their own (see ``comparison.SINGLE_NETWORK``).
SINGLE_NETWORK_SUFFIX = "@A"
#: DMT's paired differences against these variants, in the gains tables and the gains JSON.
PAIRED_BASELINES = ("naive", "naive_ensemble", "single_teacher", "dmt" + SINGLE_NETWORK_SUFFIX)
GAIN_FIELDS = ("ciou50", "auc", "pointing", "keep_rate", "pseudo_precision")


#: The columns that say which job a diagnostic row is about.
JOB_COLUMNS = ("method", "ratio", "seed", "variant")


def job_table(columns: list[str], rows: list[dict[str, Any]], cells: Any, run_column: bool = False) -> str:
    """A Markdown table with a line per job: its ``JOB_COLUMNS``, then ``cells(row)`` (strings).

    ``run_column``: a ``run`` column after them with each row's output folder (``row["out"]``),
    for rows gathered from several folders."""
    keys = (*JOB_COLUMNS, "out") if run_column else JOB_COLUMNS
    head = [*JOB_COLUMNS, *(["run"] if run_column else []), *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([*(str(r[k]) for k in keys), *cells(r)]) + " |" for r in rows]
    return "\n".join(lines)


def with_single_network_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results`` plus, for each two-network job, a row scored with network A alone
    (variant ``<name>@A``: DMT's teacher A, the naive ensemble's network A).

    The naive ensemble's network A trains exactly as the naive network does (same build seed,
    data order and per-step randomness; ``tests/test_pseudo_label_options.py``), so where no
    naive job ran it also gives the ``naive`` row.
    """
    extra = [{**r, "variant": r["variant"] + SINGLE_NETWORK_SUFFIX, "scores": r["network_scores"]["a"]}
             for r in results if r.get("network_scores", {}).get("a")]
    naive_jobs = {(r["method"], r["ratio"], r["seed"]) for r in results if r["variant"] == "naive"}
    extra += [{**r, "variant": "naive", "scores": r["network_scores"]["a"], "keep_rate": None,
               "pseudo_precision": None, "train_seconds": r["train_seconds"] / 2}
              for r in results if r["variant"] == "naive_ensemble" and r.get("network_scores", {}).get("a")
              and (r["method"], r["ratio"], r["seed"]) not in naive_jobs]
    return results + extra


def paired_difference(per_seed: dict[str, dict[int, dict[str, Any]]], variant: str, baseline: str,
                      metric: str = "ciou50") -> dict[str, Any] | None:
    """``variant`` minus ``baseline`` on ``metric``, paired by seed (see ``summarise``); None when
    the two share no seed with a score."""
    if variant not in per_seed or baseline not in per_seed:
        return None
    seeds = [s for s in sorted(set(per_seed[variant]) & set(per_seed[baseline]))
             if per_seed[variant][s].get(metric) is not None and per_seed[baseline][s].get(metric) is not None]
    diffs = [per_seed[variant][s][metric] - per_seed[baseline][s][metric] for s in seeds]
    return summarise(seeds, diffs) if diffs else None


def summarise(seeds: list[Any], diffs: list[float]) -> dict[str, Any]:
    """Per-seed differences, their mean, standard error (sample std / sqrt(n); None for one seed),
    and in how many seeds the difference has the mean's sign."""
    values = np.array(diffs)
    mean = float(values.mean())
    stderr = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    agree = int(np.sum(np.sign(values) == np.sign(mean))) if mean != 0 else 0
    return {"seeds": seeds, "differences": diffs, "mean": mean, "stderr": stderr, "agree": agree}


def gains_payload(results: list[dict[str, Any]], ratio: float) -> dict[str, Any]:
    """Per method, per variant, per seed: CIoU@0.5, AUC, pointing, keep rate, pseudo-label
    precision (fractions), and DMT's paired differences against ``PAIRED_BASELINES``."""
    methods: dict[str, dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for r in with_single_network_rows(results):
        if r["ratio"] != ratio:
            continue
        row = {k: r["scores"][k] for k in ("ciou50", "auc", "pointing")}
        row.update({k: r.get(k) for k in ("keep_rate", "pseudo_precision")})
        if not row["keep_rate"]:  # nothing kept: the precision of no label is not 0, it is undefined
            row["pseudo_precision"] = None
        methods[r["method"]][r["variant"]][r["seed"]] = row
    return paired_payload(methods, ratio)


def paired_payload(methods: dict[str, dict[str, dict[int, dict[str, Any]]]], ratio: float) -> dict[str, Any]:
    """The gains JSON of per-seed rows (method -> variant -> seed -> row): the rows, and DMT's
    paired differences against each of ``PAIRED_BASELINES`` present."""
    paired = {m: {f"dmt-{b}": {metric: paired_difference(v, "dmt", b, metric) for metric in ("ciou50", "pointing")}
                  for b in PAIRED_BASELINES if b in v and "dmt" in v}
              for m, v in methods.items()}
    return {"ratio": ratio, "methods": {m: {v: {str(s): row for s, row in sorted(seeds.items())}
                                            for v, seeds in variants.items()} for m, variants in methods.items()},
            "paired": paired}


def format_difference(diff: dict[str, Any] | None) -> str:
    """``+3.1 ± 1.2 (3/3)``: mean ± s.e. in points, and how many seeds agree in sign."""
    if diff is None:
        return "—"
    spread = f" ± {diff['stderr'] * 100:.1f}" if diff["stderr"] is not None else ""
    return f"{diff['mean'] * 100:+.1f}{spread} ({diff['agree']}/{len(diff['differences'])})"


def format_mean(diffs: list[dict[str, Any]]) -> str:
    """The mean over methods of their paired differences (``paired_difference``), in points.

    A job seed fixes the same build and data seeds for every method, so the methods at one seed
    are not independent draws and their spread says nothing of the mean's uncertainty. When every
    method has the same seeds (two or more), the mean comes with the standard error over seeds of
    the per-seed mean over methods and how many seeds agree in its sign; otherwise it stands alone."""
    if not diffs:
        return "—"
    seeds = diffs[0]["seeds"]
    if len(seeds) < 2 or any(d["seeds"] != seeds for d in diffs):
        return f"{np.mean([d['mean'] for d in diffs]) * 100:+.1f}"
    per_seed = np.mean([d["differences"] for d in diffs], axis=0)
    return format_difference(summarise(seeds, per_seed.tolist()))


def paired_gains_table(payload: dict[str, Any], metric: str = "ciou50") -> str:
    """DMT minus each control, paired by seed, one row per method, with the mean over methods."""
    head = ["method", "seeds"] + [f"DMT − {b}" for b in PAIRED_BASELINES] + ["DMT keep rate", "DMT PL precision"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    means: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for method, variants in payload["methods"].items():
        pairs = payload["paired"].get(method, {})
        dmt = variants.get("dmt", {})
        cells = [method, str(len(dmt))]
        for b in PAIRED_BASELINES:
            diff = pairs.get(f"dmt-{b}", {}).get(metric)
            cells.append(format_difference(diff))
            if diff is not None:
                means[b].append(diff)
        for field in ("keep_rate", "pseudo_precision"):
            values = [row[field] for row in dmt.values() if row.get(field) is not None]
            cells.append(f"{np.mean(values) * 100:.1f}" if values else "—")
        lines.append("| " + " | ".join(cells) + " |")
    if len(payload["methods"]) > 1:
        cells = ["*mean over methods*", ""] + [format_mean(means[b]) for b in PAIRED_BASELINES] + ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    save_figure(fig, path)


def plot_ratio_curve(methods: list[str], ratios: list[float], table: dict[tuple, dict[str, Any]], path: Path,
                     gains: list[dict[str, Any]] | None = None) -> None:
    """CIoU@0.5 against the label ratio, per method and variant (mean ± std over seeds); with
    ``gains`` (one ``gains_payload`` per ratio) a second panel: DMT minus naive and minus the
    naive ensemble, paired by seed (mean ± s.e.), where above zero DMT helps."""
    fig, axes = plt.subplots(1, 2 if gains else 1, figsize=(11 if gains else 6, 4), squeeze=False)
    ax = axes[0][0]
    for method in methods:
        for variant in ("naive", "naive_ensemble", "single_teacher", "dmt"):
            points = [(r, table[(method, r, variant)]["ciou50"]) for r in ratios if (method, r, variant) in table]
            if points:
                ax.errorbar([p[0] for p in points], [p[1][0] * 100 for p in points],
                            yerr=[p[1][1] * 100 for p in points], marker="o", capsize=3, label=f"{method} {variant}")
    ax.set_ylabel("CIoU@0.5 (%)")
    if gains:
        gain_ax = axes[0][1]
        for method in methods:
            for baseline in ("naive", "naive_ensemble"):
                points = [(g["ratio"], g["paired"].get(method, {}).get(f"dmt-{baseline}", {}).get("ciou50"))
                          for g in gains]
                points = [(r, d) for r, d in points if d is not None]
                if points:
                    gain_ax.errorbar([r for r, _ in points], [d["mean"] * 100 for _, d in points],
                                     yerr=[(d["stderr"] or 0.0) * 100 for _, d in points], marker="o", capsize=3,
                                     label=f"{method}: DMT − {baseline}")
        gain_ax.axhline(0.0, color="black", linewidth=0.8)
        gain_ax.set_ylabel("paired CIoU@0.5 difference (points)")
    for axis in axes[0]:
        axis.set_xscale("log")
        axis.set_xticks(ratios, [f"{r:g}" for r in ratios])
        axis.set_xlabel("label ratio")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def write_json(path: Path, payload: Any) -> None:
    """Atomic write: several comparisons may share one output folder."""
    write_text_atomic(path, json.dumps(payload, indent=1, default=str))


def save_figure(fig: Any, path: Path) -> None:
    """Save ``fig`` to ``path`` atomically and close it."""
    try:
        with atomic_path(path) as temp:
            fig.savefig(temp, dpi=110)
    finally:
        plt.close(fig)
