"""The one table ``benchmarks/gpu_check.sh`` prints: per method, the bare and DMT step in bf16, their
ratio and peak memory (``perf.py --json``), then the short job's scores, seconds and machine.

    python benchmarks/gpu_check_table.py runs/gpu-check
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def table(folder: Path) -> str:
    """The check's markdown table from the files ``gpu_check.sh`` left in ``folder``."""
    lines = ["| method | device | precision | bare ms | DMT ms | ratio | peak MiB (bare / DMT) |", "|---|---|---|---|---|---|---|"]
    for path in sorted(folder.glob("perf-*.json")):
        m = json.loads(path.read_text())
        lines.append(f"| {m['method']} | {m['device']} | {m['precision']} | {m['bare_ms']:.1f} | {m['dmt_ms']:.1f} | "
                     f"{m['ratio']:.2f} | {m['bare_mib']} / {m['dmt_mib']} |")
    tests = folder / "cuda-tests.txt"
    if tests.exists():
        lines.append(f"\nCUDA-marked tests: {tests.read_text().strip()}")
    results = folder / "job" / "results.json"
    if results.exists():
        runs = json.loads(results.read_text())["runs"]
        for run in runs:
            lines.append(f"Short job {run['method']} / {run['variant']}: CIoU@0.5 {run['scores']['ciou50']:.3f}, "
                         f"{run['train_seconds']:.0f} s, machine {run.get('machine', {})}")
    else:
        lines.append(f"Short job: no results ({folder / 'job.txt'} says why)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    print(table(parser.parse_args(argv).folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
