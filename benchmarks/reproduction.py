"""A rerun beside a recorded result (``paired.py --against``): which scores reproduce exactly, and
whether DMT's paired differences agree within their standard errors.

Exact reproduction needs the same kernels: the same CPU type and torch CPU capability, MKL and
oneDNN builds, kernel pins, threads, device and torch (``dmt_wrap.machine.numerics_key``). On
another machine the per-seed numbers move and the claim is statistical: the paired means and their
standard errors (docs/benchmark.md, "What a rerun reproduces").
"""
from __future__ import annotations

import json
from typing import Any

from dmt_wrap_benchmarks.report import (GAIN_FIELDS, PAIRED_BASELINES, SINGLE_NETWORK_SUFFIX, format_difference,
                               paired_difference)
from dmt_wrap.machine import describe, numerics_key

PerSeed = dict[str, dict[str, dict[int, dict[str, Any]]]]  # method -> variant -> seed -> row


def distinct(records: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The different machine records among ``records`` (missing ones left out), in order."""
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        if record:
            seen.setdefault(json.dumps(record, sort_keys=True), record)
    return list(seen.values())


def same_numerics(recorded: list[dict[str, Any]], rerun: list[dict[str, Any]]) -> bool:
    """Whether both sides ran on one kind of machine with the same kernels and threads: only then
    is every job expected to be bit-identical."""
    keys = {numerics_key(r) for r in recorded} | {numerics_key(r) for r in rerun}
    return bool(recorded) and bool(rerun) and len(keys) == 1


def _exact(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(field) == b.get(field) for field in GAIN_FIELDS)


def _points(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}"


def seed_comparison(recorded: PerSeed, rerun: PerSeed) -> tuple[str, dict[str, Any]]:
    """One row per (method, seed) held by both sides, one cell per shared variant: ``= 47.4`` when
    the score reproduced exactly (every gains field), ``47.4 → 48.2`` (CIoU@0.5) when it moved.
    ``naive_ensemble@A`` is left out where ``naive`` is there: the same network's score."""
    rows, scores, moves = [], [], []
    for method in sorted(set(recorded) & set(rerun)):
        variants = [v for v in recorded[method] if v in rerun[method]]
        if "naive" in variants:
            variants = [v for v in variants if v != "naive_ensemble" + SINGLE_NETWORK_SUFFIX]
        seeds = sorted({s for v in variants for s in set(recorded[method][v]) & set(rerun[method][v])})
        for seed in seeds:
            cells = []
            for variant in variants:
                a, b = recorded[method][variant].get(seed), rerun[method][variant].get(seed)
                if a is None or b is None:
                    cells.append("")
                    continue
                exact = _exact(a, b)
                shift = None if a["ciou50"] is None or b["ciou50"] is None else b["ciou50"] - a["ciou50"]
                scores.append({"method": method, "variant": variant, "seed": seed, "exact": exact,
                             "recorded": a["ciou50"], "rerun": b["ciou50"], "shift": shift})
                if not exact and shift is not None:
                    moves.append(abs(shift))
                cells.append(f"= {_points(a['ciou50'])}" if exact else f"{_points(a['ciou50'])} → {_points(b['ciou50'])}")
            rows.append((method, seed, variants, cells))
    lines = []
    for method, seed, variants, cells in rows:
        if not lines or lines[-1][0] != method:
            lines.append((method, ["| method | seed | " + " | ".join(variants) + " |",
                                   "|" + "---|" * (len(variants) + 2)]))
        lines[-1][1].append(f"| {method} | {seed} | " + " | ".join(cells) + " |")
    summary = {"scores": len(scores), "exact": sum(score["exact"] for score in scores),
               "largest_move": max(moves) if moves else 0.0,
               "mean_move": sum(moves) / len(moves) if moves else 0.0, "per_score": scores}
    return "\n\n".join("\n".join(table) for _, table in lines), summary


def difference_comparison(recorded: PerSeed, rerun: PerSeed, metric: str = "ciou50") -> tuple[str, list[dict]]:
    """Per method and baseline, DMT − baseline paired by seed on each side, over the seeds both
    sides hold: the two means ± s.e., and whether they agree (their ± s.e. intervals overlap)."""
    head = ["method", "DMT −", "recorded", "rerun", "rerun − recorded", "agree within s.e.", "sign kept"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts = []
    for method in sorted(set(recorded) & set(rerun)):
        for baseline in PAIRED_BASELINES:
            sides = [recorded[method], rerun[method]]
            if not all("dmt" in s and baseline in s for s in sides):
                continue
            seeds = set.intersection(*(set(s[v]) for s in sides for v in ("dmt", baseline)))
            if not seeds:
                continue
            a, b = (paired_difference({v: {k: s[v][k] for k in seeds} for v in ("dmt", baseline)}, "dmt", baseline,
                                      metric) for s in sides)
            if a is None or b is None:
                continue
            gap = b["mean"] - a["mean"]
            if a["differences"] == b["differences"]:
                agree = "exact"
            elif a["stderr"] is None or b["stderr"] is None:
                agree = "— (one seed)"
            else:
                agree = "yes" if abs(gap) <= a["stderr"] + b["stderr"] else "no"
            kept = "yes" if (a["mean"] > 0) == (b["mean"] > 0) else "no"
            verdicts.append({"method": method, "baseline": baseline, "seeds": sorted(seeds), "recorded": a,
                             "rerun": b, "gap": gap, "agree": agree, "sign_kept": kept == "yes"})
            lines.append(f"| {method} | {baseline} | {format_difference(a)} | {format_difference(b)} | "
                         f"{gap * 100:+.1f} | {agree} | {kept} |")
    return "\n".join(lines), verdicts


def against_report(recorded: PerSeed, recorded_machines: list[dict[str, Any]], rerun: PerSeed,
                   rerun_machines: list[dict[str, Any]], names: tuple[str, str]) -> tuple[str, dict[str, Any], int]:
    """Markdown, JSON and exit status of a rerun (``names[1]``) beside a recorded result (``names[0]``).

    The status is 1 only when both sides name the same kernels and threads and a job still moved:
    then something other than the machine (the code, the data) differs. Statistical disagreement
    on another machine is reported, not failed: with three seeds one difference in six lands
    outside the overlap by chance.
    """
    same = same_numerics(recorded_machines, rerun_machines)
    seeds_md, seeds = seed_comparison(recorded, rerun)
    diffs_md, verdicts = difference_comparison(recorded, rerun)
    if not seeds["scores"]:
        raise SystemExit(f"{names[1]} and {names[0]} share no (method, variant, seed) at this label ratio; "
                         "pass the rerun's --out folder and the JSON it reproduces (and --ratio if needed).")
    expectation = ("same kernels and threads on both sides: every job should be exact" if same else
                   "another machine, other kernels or threads, or a side without a machine record: per-seed "
                   "numbers may move; the paired means and their standard errors are the claim")
    moved = seeds["scores"] - seeds["exact"]
    text = [f"## {names[1]} against {names[0]}", "",
            f"Recorded on: {'; '.join(describe(m) for m in recorded_machines) or 'machine not recorded'}",
            f"Rerun on: {'; '.join(describe(m) for m in rerun_machines) or 'machine not recorded'}",
            f"Expectation: {expectation}.", "",
            f"**Per seed:** {seeds['exact']} of {seeds['scores']} scores exact (variant and seed; every gains field)"
            + (f"; the other {moved} moved CIoU@0.5 by {seeds['mean_move'] * 100:.1f} points on average, "
               f"{seeds['largest_move'] * 100:.1f} at most." if moved else "."), "",
            "CIoU@0.5 (%), recorded → rerun, `=` where the job reproduced exactly:", "", seeds_md, "",
            "**Per method:** DMT's paired differences (CIoU@0.5, mean ± s.e. over the seeds both sides hold; "
            "they agree when their ± s.e. intervals overlap):", "", diffs_md]
    payload = {"recorded": names[0], "rerun": names[1], "recorded_machines": recorded_machines,
               "rerun_machines": rerun_machines, "same_numerics": same, "seeds": seeds, "differences": verdicts}
    return "\n".join(text), payload, 1 if same and moved else 0
