"""The tables of docs/results.md that neither ``paired.py`` nor the diagnostics print, from the committed JSON.

    python -m benchmarks.tables changes docs/results/pseudo-label-weight.json       # one change at a time
    python -m benchmarks.tables label-ratio docs/results/label-ratio-ezvsl.json     # a label-ratio curve
    python -m benchmarks.tables seed-free-naive docs/results/agreement-seeds0-2.json \\
        docs/results/agreement-seeds3-5.json docs/results/agreement-swapped-pairs.json
    python -m benchmarks.tables audio docs/results/audio-dependence-former-default.json --runs runs/all4 runs/ref

``changes`` re-prints the "one change at a time" table that ``paired.py --compare ... --json``
computed (the JSON keeps the changed runs' per-seed rows). ``label-ratio`` tabulates a
``run.py --label-ratio ...`` comparison's ``gains.json``. ``seed-free-naive`` compares DMT with the
naive network's expected score over seed draws (see ``seed_free_naive``). ``audio`` averages the
rows of ``audio_dependence.py --json`` over seeds. CIoU@0.5 and pointing in points throughout.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dmt_wrap_benchmarks.paired import change_table
from dmt_wrap_benchmarks.report import format_difference, paired_difference, summarise

PerSeed = dict[str, dict[int, dict[str, Any]]]  # variant -> seed -> row


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"{path}: cannot be read as JSON ({exc}); pass a file from docs/results/") from exc


def _int_seeds(variants: dict[str, dict[str, Any]]) -> PerSeed:
    return {name: {int(seed): row for seed, row in seeds.items()} for name, seeds in variants.items()}


def changes(path: Path) -> str:
    """The stored "one change at a time" table of a ``paired.py --compare ... --json`` file."""
    stored = _load(path)
    if not stored.get("changes"):
        raise SystemExit(f"{path}: holds no --compare rows (key 'changes'); pass a paired.py --compare --json file")
    reference = {**stored, "methods": {m: _int_seeds(v) for m, v in stored["methods"].items()}}
    changed = [(label, {m: {int(s): row for s, row in seeds.items()} for m, seeds in methods.items()})
               for label, methods in stored["changes"].items()]
    return change_table(reference, changed)


def label_ratio(path: Path) -> str:
    """Per method and label ratio of a ``run.py`` ``gains.json``: naive, naive ensemble and DMT
    (CIoU@0.5, mean ± std over seeds), DMT's paired differences, and its keep rate and precision."""
    stored = _load(path)
    if "ratios" not in stored:
        raise SystemExit(f"{path}: no 'ratios' (a run.py gains.json has one payload per label ratio)")
    head = ["method", "label ratio", "naive", "naive ensemble", "DMT", "DMT − naive", "DMT − naive ensemble",
            "DMT − dmt@A", "keep rate", "PL precision"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for payload in sorted(stored["ratios"], key=lambda p: p["ratio"]):
        for method, variants in sorted(payload["methods"].items()):
            per_seed = _int_seeds(variants)

            def spread(variant: str, field: str = "ciou50", std: bool = True) -> str:
                values = [r[field] for r in per_seed.get(variant, {}).values() if r.get(field) is not None]
                if not values:
                    return "—"
                text = f"{np.mean(values) * 100:.1f}"
                return f"{text} ± {np.std(values) * 100:.1f}" if std else text

            cells = [method, f"{payload['ratio']:g}", spread("naive"), spread("naive_ensemble"), spread("dmt"),
                     *(format_difference(paired_difference(per_seed, "dmt", b)) for b in ("naive", "naive_ensemble",
                                                                                          "dmt@A")),
                     spread("dmt", "keep_rate", std=False), spread("dmt", "pseudo_precision", std=False)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _exchanges_exactly(rows: list[dict[str, Any]], method: str) -> bool:
    """Whether ``method``'s swapped naive ensembles scored exactly its unswapped ones' networks
    exchanged, at every seed with both (a method whose training draws no global random numbers)."""
    unswapped = {r["seed"]: r for r in rows if (r["method"], r["variant"]) == (method, "naive_ensemble")
                 and not r.get("swap_pairs")}
    swapped = {r["seed"]: r for r in rows if (r["method"], r["variant"]) == (method, "naive_ensemble")
               and r.get("swap_pairs")}
    both = set(unswapped) & set(swapped)
    return bool(both) and all(swapped[s]["ciou50_a"] == unswapped[s]["ciou50_b"]
                              and swapped[s]["ciou50_b"] == unswapped[s]["ciou50_a"] for s in both)


def seed_free_naive(rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """DMT minus the naive network at position A averaged over both seed assignments, per seed
    averaged over the methods (the seeds with every method's DMT and naive ensemble).

    The naive run a user trains is the network at position A; which seeds it draws is chance.
    Its expected score is, per method and seed: the mean of the unswapped and the swapped naive
    ensemble's network A where the swapped job ran; the mean of networks A and B for a method
    whose swapped jobs exchanged the two networks exactly (position gives it nothing); network A
    alone otherwise (the issue's naive)."""
    unswapped = [r for r in rows if not r.get("swap_pairs")]
    swapped = {(r["method"], r["seed"]): r for r in rows if r.get("swap_pairs") and r["variant"] == "naive_ensemble"}
    dmt = {(r["method"], r["seed"]): r for r in unswapped if r["variant"] == "dmt"}
    naive = {(r["method"], r["seed"]): r for r in unswapped if r["variant"] == "naive_ensemble"}
    methods = sorted({m for m, _ in dmt})
    seeds = sorted({s for _, s in dmt if all((m, s) in dmt and (m, s) in naive for m in methods)},
                   key=lambda s: int(str(s).removeprefix("seed")))
    exchangeable = {m: _exchanges_exactly(rows, m) for m in methods}
    how, per_method = {}, defaultdict(list)
    for method in methods:
        for seed in seeds:
            a, b = naive[(method, seed)]["ciou50_a"], naive[(method, seed)]["ciou50_b"]
            if (method, seed) in swapped:
                reference, how[method] = (a + swapped[(method, seed)]["ciou50_a"]) / 2, "swapped jobs"
            elif exchangeable[method]:
                reference, how[method] = (a + b) / 2, "mean of A and B (exchange exact)"
            else:
                reference, how[method] = a, "network A (not swapped)"
            per_method[method].append(dmt[(method, seed)]["ciou50_mean"] - reference)
    per_seed = np.mean([per_method[m] for m in methods], axis=0).tolist()
    lines = ["| method | naive reference | DMT − naive, free of pair A's seed draw |", "|---|---|---|"]
    lines += [f"| {m} | {how[m]} | {format_difference(summarise(seeds, per_method[m]))} |" for m in methods]
    overall = summarise(seeds, per_seed)
    lines.append(f"| *mean over methods* | | {format_difference(overall)} |")
    seed_text = " / ".join(f"{d * 100:+.2f}" for d in per_seed)
    text = "\n".join(lines) + f"\n\nPer seed ({', '.join(map(str, seeds))}), mean over methods: {seed_text}"
    return text, overall


def audio(path: Path, runs: list[str] | None = None) -> str:
    """Per run, method, label ratio and variant, means over seeds of ``audio_dependence.py``'s rows
    (of the output folders ``runs`` only, when given)."""
    rows = [r for r in _load(path)["rows"] if not runs or r.get("out") in runs]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["ratio"], r["variant"], r.get("out", ""))].append(r)
    head = ["method", "ratio", "variant", "run", "seeds", "sounding object: own / other clip",
            "silent object: own / other", "audio gap", "pointing: own / other clip"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (method, ratio, variant, out), group in sorted(groups.items()):
        def mean(key: str) -> float:
            return float(np.nanmean([r[key] for r in group]))
        lines.append(f"| {method} | {ratio} | {variant} | {out} | {len(group)} "
                     f"| {mean('sounding_own'):.2f} / {mean('sounding_other'):.2f} "
                     f"| {mean('silent_own'):.2f} / {mean('silent_other'):.2f} | {mean('audio_gap'):+.3f} "
                     f"| {mean('pointing_own') * 100:.1f} / {mean('pointing_other') * 100:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="table", required=True)
    sub.add_parser("changes", help="a paired.py --compare JSON's change table").add_argument("json", type=Path)
    sub.add_parser("label-ratio", help="a run.py gains.json over label ratios").add_argument("json", type=Path)
    seed_free = sub.add_parser("seed-free-naive", help="DMT − naive free of pair A's seed draw")
    seed_free.add_argument("json", type=Path, nargs="+", help="agreement.py --json files (with swapped jobs)")
    audio_args = sub.add_parser("audio", help="audio_dependence.py --json rows, means over seeds")
    audio_args.add_argument("json", type=Path)
    audio_args.add_argument("--runs", nargs="+", default=None, help="only the rows of these run.py output folders")
    args = p.parse_args(argv)
    if args.table == "changes":
        print(changes(args.json))
    elif args.table == "label-ratio":
        print(label_ratio(args.json))
    elif args.table == "seed-free-naive":
        print(seed_free_naive([r for path in args.json for r in _load(path)["rows"]])[0])
    else:
        print(audio(args.json, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
