"""DMT's gains paired by seed, from the finished jobs of run.py output folders or stored gains JSON.

    python benchmarks/paired.py runs/h1                                   # DMT against its controls
    python benchmarks/paired.py runs/h1 --json docs/results/gains-cpu.json
    python benchmarks/paired.py runs/h1 --compare "loss / unlabeled=runs/h1-unlabeled" \\
        "component box=runs/h2-component"                               # one change at a time
    python benchmarks/paired.py runs/new-dmt --controls docs/results/gains-cpu.json  # stored controls
    python benchmarks/paired.py runs/new --controls "stored.json:ezvsl,lvs"         # only those methods
    python benchmarks/paired.py runs/mine --against docs/results/gains-cpu.json   # a rerun beside the record

Every SOURCE is a ``run.py --out`` folder (its finished jobs) or a gains JSON (``run.py``'s
``gains.json`` or this script's ``--json``, with per-seed rows). ``--controls`` adds the
variants the reference lacks (naive ensemble, single teacher, ...), and the seeds of a variant
it lacks, from other sources, so that a new DMT run is paired with controls trained earlier;
``SOURCE:METHOD,...`` takes only those methods' rows from it. Jobs reproduce bit for bit at one
commit only (docs/reliability.md): pair with stored controls of the same training code.

The reference holds the reference jobs (naive or naive ensemble, DMT, ...); its table is the
one ``run.py`` writes (per method: DMT minus naive, naive ensemble, single teacher and teacher A,
mean ± standard error over seeds and how many seeds agree in sign). Each ``--compare
LABEL=SOURCE[:VARIANT]`` names a DMT run with one thing changed (default variant ``dmt``);
its table gives, per method, the changed DMT's CIoU@0.5 and pointing, its paired difference
from the reference DMT (the effect of the change), from naive and from the naive ensemble, and
its keep rate and pseudo-label precision. Only seeds present on both sides of a difference are
paired.

``--against RECORDED`` sets the reference (a rerun) beside a recorded gains JSON: per seed, which
scores reproduced exactly; per method, whether DMT's paired differences agree within their standard
errors; and the machines of both sides (``benchmarks/reproduction.py``). It exits 1 only when both
sides name the same kernels and threads and a job still moved.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dmt_wrap_benchmarks.layout import RESULT, job_folders
from dmt_wrap_benchmarks.reproduction import PerSeed, against_report, distinct
from dmt_wrap_benchmarks.report import (command_line, format_difference, gains_payload, paired_difference,
                               paired_gains_table, paired_payload)
from dmt_wrap.atomic import write_text_atomic
from dmt_wrap.metrics import get_protocol


def finished_results(out: Path) -> list[dict[str, Any]]:
    """Every finished job's ``result.json`` under ``out/jobs``, without its history."""
    files = [folder / RESULT for folder in job_folders(out, needs=(RESULT,))]
    if not files:
        raise SystemExit(f"{out}: no finished job (jobs/<method>/ratio<R>/seed<S>/<variant>/result.json); "
                         "pass a run.py --out folder.")
    return [{k: v for k, v in json.loads(f.read_text()).items() if k != "history"} for f in files]


def load_rows(source: Path, ratio: float) -> PerSeed:
    """Per-seed rows at ``ratio`` from a run.py --out folder or a stored gains JSON."""
    if source.is_dir():
        payload = gains_payload(finished_results(source), ratio)
    elif source.suffix == ".json" and source.is_file():
        stored = json.loads(source.read_text())
        candidates = stored.get("ratios", [stored])  # run.py's gains.json holds one payload per ratio
        payload = next((c for c in candidates if c.get("ratio") == ratio and "methods" in c), None)
        if payload is None:
            raise SystemExit(f"{source}: no per-seed rows at label ratio {ratio:g} "
                             f"(it holds {[c.get('ratio') for c in candidates]}); pass --ratio.")
    else:
        raise SystemExit(f"{source}: not a run.py --out folder or a gains JSON file.")
    return {m: {v: {int(s): row for s, row in seeds.items()} for v, seeds in variants.items()}
            for m, variants in payload["methods"].items()}


def source_machines(source: Path) -> list[dict[str, Any]]:
    """The machines that computed a source's jobs: each finished job's record (a run.py --out
    folder), or what a gains JSON stored (``machines``, or run.py's ``machine``)."""
    if source.is_dir():
        return distinct([r.get("machine") for r in finished_results(source)])
    stored = json.loads(source.read_text())
    return distinct(stored.get("machines") or [stored.get("machine")])


def source_protocol(source: Path) -> str:
    """The evaluation protocol a source was scored under (``dmt_wrap.metrics.PROTOCOLS``): what its
    results.json or gains JSON names; a record from before protocols were named used the evaluator
    that is now the default one."""
    stored = source / "results.json" if source.is_dir() else source
    try:
        named = json.loads(stored.read_text()).get("protocol")
    except (OSError, ValueError):
        named = None
    return named or get_protocol().name


def with_controls(reference: PerSeed, controls: list[PerSeed]) -> PerSeed:
    """``reference`` plus, per method it holds, the variants and the seeds of a variant it lacks
    from ``controls`` (the reference first, then the controls in order)."""
    merged = {m: {name: dict(seeds) for name, seeds in variants.items()} for m, variants in reference.items()}
    for source in controls:
        for method, variants in source.items():
            if method in merged:
                for name, seeds in variants.items():
                    held = merged[method].setdefault(name, {})
                    for seed, row in seeds.items():
                        held.setdefault(seed, row)
    return merged


def parse_controls(text: str) -> tuple[Path, frozenset[str] | None]:
    """``SOURCE`` or ``SOURCE:METHOD,...`` (only those methods' rows are taken from it)."""
    where, sep, methods = text.partition(":")
    if sep and not methods:
        raise argparse.ArgumentTypeError(f"--controls {text!r}: expected SOURCE or SOURCE:METHOD,...")
    return Path(where), frozenset(methods.split(",")) if sep else None


def load_controls(source: Path, methods: frozenset[str] | None, ratio: float) -> PerSeed:
    rows = load_rows(source, ratio)
    if methods is None:
        return rows
    missing = methods - set(rows)
    if missing:
        raise SystemExit(f"--controls {source}: no rows for {sorted(missing)} (it holds {sorted(rows)}).")
    return {m: variants for m, variants in rows.items() if m in methods}


def parse_compare(text: str) -> tuple[str, Path, str]:
    label, sep, where = text.partition("=")
    if not sep or not label or not where:
        raise argparse.ArgumentTypeError(f"--compare {text!r}: expected LABEL=SOURCE[:VARIANT]")
    folder, _, variant = where.partition(":")
    return label, Path(folder), variant or "dmt"


def change_table(reference: dict[str, Any], changes: list[tuple[str, dict[str, Any]]]) -> str:
    """One row per (change, method): its scores and paired differences (see the module docstring)."""
    head = ["change", "method", "seeds", "CIoU@0.5", "pointing", "Δ CIoU@0.5 vs DMT", "Δ pointing vs DMT",
            "Δ CIoU@0.5 vs naive", "Δ CIoU@0.5 vs naive ensemble", "keep rate", "PL precision"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, variants in changes:
        for method, changed in variants.items():
            base = reference["methods"].get(method, {})
            both = {**base, "changed": changed}
            rows = list(changed.values())

            def mean(field: str) -> str:
                values = [r[field] for r in rows if r.get(field) is not None]
                return f"{sum(values) / len(values) * 100:.1f}" if values else "—"

            cells = [label, method, str(len(rows)), mean("ciou50"), mean("pointing"),
                     format_difference(paired_difference(both, "changed", "dmt", "ciou50")),
                     format_difference(paired_difference(both, "changed", "dmt", "pointing")),
                     format_difference(paired_difference(both, "changed", "naive", "ciou50")),
                     format_difference(paired_difference(both, "changed", "naive_ensemble", "ciou50")),
                     mean("keep_rate"), mean("pseudo_precision")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reference", type=Path, help="SOURCE with the reference DMT (and its controls)")
    p.add_argument("--controls", nargs="+", type=parse_controls, default=[], metavar="SOURCE[:METHOD,...]",
                   help="SOURCEs of the variants and seeds the reference lacks (e.g. a stored gains JSON); "
                        "SOURCE:METHOD,... takes only those methods from it")
    p.add_argument("--compare", nargs="+", type=parse_compare, default=[], metavar="LABEL=SOURCE[:VARIANT]")
    p.add_argument("--against", type=Path, default=None, metavar="RECORDED",
                   help="a recorded gains JSON (or run.py --out folder) to set the reference beside: which "
                        "jobs reproduce exactly, whether the paired differences agree within their s.e.")
    p.add_argument("--ratio", type=float, default=0.03, help="the label ratio to tabulate")
    p.add_argument("--json", type=Path, default=None, help="also write the reference's gains JSON here")
    p.add_argument("--out", type=Path, default=None, help="write the Markdown here (default: print only)")
    args = p.parse_args(argv)

    rows = with_controls(load_rows(args.reference, args.ratio),
                         [load_controls(source, methods, args.ratio) for source, methods in args.controls])
    machines = distinct([m for source in [args.reference, *(c for c, _ in args.controls)]
                         for m in source_machines(source)])
    payload = paired_payload(rows, args.ratio)
    protocols = distinct([source_protocol(source) for source in [args.reference, *(c for c, _ in args.controls)]])
    text = [f"Command: `{command_line('paired.py', argv)}`", "",
            f"Evaluation protocol: {', '.join(f'`{name}`' for name in protocols)} (dmt_wrap/metrics.py).", "",
            f"## DMT against its controls ({args.reference}, label ratio {args.ratio:g})", "",
            paired_gains_table(payload)]
    changes = []
    for label, source, variant in args.compare:
        changed = load_rows(source, args.ratio)
        changes.append((label, {m: variants[variant] for m, variants in changed.items() if variant in variants}))
    if changes:
        text += ["", "## One change at a time, paired by seed against the reference DMT", "",
                 change_table({**payload, "methods": rows}, changes)]
    against, status = None, 0
    if args.against:
        report, against, status = against_report(load_rows(args.against, args.ratio), source_machines(args.against),
                                                 rows, machines, (str(args.against), str(args.reference)))
        text += ["", report]
    markdown = "\n".join(text) + "\n"
    print(markdown)
    if args.out:
        write_text_atomic(args.out, markdown)
    if args.json:
        stored = {"command": command_line("paired.py", argv), "machines": machines, **payload,
                  "changes": {label: {m: {str(s): row for s, row in sorted(seeds.items())}
                                      for m, seeds in variants.items()} for label, variants in changes},
                  **({"against": against} if against else {})}
        write_text_atomic(args.json, json.dumps(stored, indent=1))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
