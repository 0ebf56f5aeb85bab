"""Compare DMT with the other ways of training an AVSL method, on the same data and budget.

    python benchmarks/run.py --method ezvsl                 # the cpu preset, ~25 min on 2 cores
    python benchmarks/run.py --method ezvsl --quick         # ~3 min: checks the path, not meaningful
    python benchmarks/run.py --method all --preset paper    # every baseline, on a GPU
    python benchmarks/run.py --method lvs --label-ratio 0.01 0.03 0.1 --seeds 0 1

Every variant gets the same number of updates per network (``updates`` column) and is
scored on the same stored test set; the train seconds show what each costs. Results go
to ``--out``: results.md / results.json, plots/, and one folder per job (re-running with
the same --out skips finished jobs and resumes an interrupted one from its checkpoint).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

import dmt_wrap_baselines as baselines  # noqa: F401  (fills the registry)
from dmt_wrap_baselines.recipes import recipe_training
from dmt_wrap_baselines.registry import available
from dmt_wrap_benchmarks.comparison import Job, reference_scores, run_job
from dmt_wrap_benchmarks.composed import TIERS
from dmt_wrap_benchmarks.data import real, synthetic
from dmt_wrap_benchmarks.layout import MODEL, results_file
from dmt_wrap_benchmarks.presets import PRESETS, Preset
from dmt_wrap_benchmarks.report import (SINGLE_NETWORK_SUFFIX, aggregate, command_line, gains_payload, gains_table,
                               method_table, paired_gains_table, plot_curves, plot_ratio_curve,
                               with_single_network_rows, write_json)
from dmt_wrap_benchmarks.variants import ABLATION_VARIANTS, DEFAULT_VARIANTS, NAIVE, VARIANTS
from dmt_wrap import DMTConfig
from dmt_wrap.atomic import write_text_atomic
from dmt_wrap.cli import guarded
from dmt_wrap.datasets.split_files import read_split_info
from dmt_wrap.distributed import resolve_device
from dmt_wrap.machine import describe, machine_record
from dmt_wrap.metrics import get_protocol

#: The benchmark's tables are scored under the default protocol (dmt_wrap/metrics.py).
PROTOCOL = get_protocol()
log = logging.getLogger("benchmarks")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", nargs="+", default=["ezvsl"], help=f"one or more of {available()}, or 'all'")
    p.add_argument("--label-ratio", nargs="+", type=float, default=[0.03], help="several values sweep")
    p.add_argument("--data", choices=("synthetic", "flickr", "vggss"), default="synthetic")
    p.add_argument("--root", help="dataset folder for --data flickr|vggss")
    p.add_argument("--split", type=Path, default=None,
                   help="a published split folder (dmt-wrap splits: labeled/unlabeled/test ids) for --data "
                        "flickr|vggss; its label ratio replaces --label-ratio")
    p.add_argument("--tier", choices=list(TIERS), default=None,
                   help="composed-benchmark tier for --data synthetic (default: the preset's, flickr)")
    p.add_argument("--preset", choices=("cpu", "paper"), default="cpu")
    p.add_argument("--quick", action="store_true", help="~3 minutes: checks the whole path; numbers not meaningful")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS),
                   default=[v.name for v in DEFAULT_VARIANTS])
    p.add_argument("--ablation", action="store_true",
                   help=f"also run {[v.name for v in ABLATION_VARIANTS]}")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="override the preset's warm-up updates per network (stage 1)")
    p.add_argument("--steps", type=int, default=None,
                   help="override the preset's stage-2 updates per network (self-supervised: warm-up + steps)")
    p.add_argument("--network-args", type=json.loads, default={},
                   help="JSON constructor arguments for every --method, over the preset's "
                        "(e.g. '{\"reg_warmup_steps\": 1200}')")
    p.add_argument("--train-args", type=json.loads, default={},
                   help="JSON DMTConfig fields over the preset's, for every variant (the variant's own "
                        "ablation still applies on top; e.g. '{\"pseudo_labels\": {\"delta\": 0.7}}')")
    p.add_argument("--swap-pairs", action="store_true",
                   help="the seed-vs-position control: network A trains on pair B's seeds and B on A's "
                        "(benchmarks/benchmark_model.py); use its own --out")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the cores left after the data workers; oversubscribed "
                        "threads made a training step 7x slower on a 2-core machine)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<preset>-<methods>)")
    p.add_argument("--warmup-cache", type=Path, default=None, metavar="FOLDER",
                   help="share end-of-warm-up checkpoints here: a job whose warm-up (method, data, seed, "
                        "stage-1 settings) is cached starts stage 2 from it, bit-identical to training "
                        "through; for sweeps of stage-2 settings (--train-args delta, tau, lambda_u, ...)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars; log one line per epoch instead (for logs and nohup)")
    args = p.parse_args(argv)
    if args.method == ["all"]:
        args.method = available()
    unknown = [m for m in args.method if m not in available()]
    if unknown:
        p.error(f"--method {unknown}: unknown; choose from {available()} or 'all'")
    if args.data != "synthetic" and not args.root:
        p.error(f"--data {args.data} needs --root pointing at the dataset folder")
    if args.split is not None:
        if args.data == "synthetic":
            p.error("--split selects ids of a real dataset; use it with --data flickr|vggss")
        try:
            args.label_ratio = [read_split_info(args.split)["label_ratio"]]
        except (OSError, ValueError) as error:
            p.error(f"--split {args.split}: {error}")
    if any(not 0 < r <= 1 for r in args.label_ratio):
        p.error("--label-ratio values must lie in (0, 1]")
    if args.ablation:
        args.variants += [v.name for v in ABLATION_VARIANTS if v.name not in args.variants]
    for flag in ("warmup_steps", "steps"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
            p.error(f"--{flag.replace('_', '-')} must be >= 0")
    if args.quick and args.preset != "cpu":
        p.error("--quick scales the cpu preset down; use it without --preset paper")
    try:
        configured_preset(args)
    except (TypeError, ValueError) as error:
        p.error(f"--train-args {json.dumps(args.train_args)}: {error}")
    name = "quick" if args.quick else args.preset
    tier = f"-{args.tier}" if args.tier else ""
    args.out = args.out or Path("runs") / f"{name}{tier}-{'-'.join(args.method) if len(args.method) < 4 else 'all'}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # the bars show the epochs; without them, the trainer's one log line per epoch does
    logging.getLogger("dmt_wrap").setLevel(logging.INFO if args.no_progress else logging.WARNING)
    preset = configured_preset(args)
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) - preset.train.num_workers))
    machine = machine_record(torch.get_num_threads(), resolve_device(args.device))
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [VARIANTS[v] for v in args.variants]
    if "naive" in args.variants and "naive_ensemble" in args.variants:
        log.info("naive: scored as the naive ensemble's network A (the same network, bit for bit), no job of its own")
        variants.remove(NAIVE)
    jobs = [Job(m, v, r, s) for m in args.method for r in args.label_ratio for s in args.seeds for v in variants]
    log.info("%d jobs (%s), preset %s, output %s", len(jobs), ", ".join(args.method), preset.name, args.out)

    results, data_cache, references, descriptions = [], {}, None, set()
    outer = tqdm(jobs, desc="comparison", unit="job", disable=args.no_progress, position=0)
    for job in outer:
        key = (job.ratio, job.seed)
        if key not in data_cache:
            data_cache[key] = (synthetic(preset, job.ratio, job.seed) if args.data == "synthetic"
                               else real(args.data, args.root, preset, job.ratio, job.seed, split=args.split))
        data = data_cache[key]
        descriptions.add(data.description)
        if references is None and args.data == "synthetic":
            references = reference_scores(data)
        outer.set_postfix_str(f"{job.method} {job.variant.name} ratio={job.ratio:g} seed={job.seed}")
        result = run_job(job, preset, data, args.out, args.device, progress=not args.no_progress,
                         warmup_cache=args.warmup_cache, swap_pairs=args.swap_pairs)
        log.info("%s / %s: CIoU@0.5 %.3f, pointing %.3f (%.0f s)", job.method, job.variant.name,
                 result["scores"]["ciou50"], result["scores"]["pointing"], result["train_seconds"])
        results.append(result)

    table = aggregate(with_single_network_rows(results))
    header = [f"# DMT comparison ({preset.name} preset)", ""]
    if not preset.meaningful:
        header += ["**--quick run: checks the whole path; these numbers are NOT meaningful.**", ""]
    header += [f"Data: {d}" for d in sorted(descriptions)]
    header += [f"Command: `{command_line('run.py', argv)}`", f"Machine: {describe(machine)}",
               f"Seeds: {args.seeds}; metrics in % (mean ± std over seeds when several); equal updates per "
               f"network: {preset.train.warmup_steps} warm-up + {preset.train.steps} steps.",
               f"Evaluation protocol: `{PROTOCOL.name}` ({PROTOCOL.source}; dmt_wrap/metrics.py).",
               *recipe_lines(preset, args.method), ""]
    sections = []
    pairs = [(v.name, v.title) for v in variants]
    names = [name for name, _ in pairs]
    if "naive_ensemble" in names and "naive" not in names:  # its network A is the naive network
        pairs.insert(names.index("naive_ensemble"), ("naive", f"{NAIVE.title} (the ensemble's network A)"))
    pairs += [(v.name + SINGLE_NETWORK_SUFFIX, f"{v.title}, teacher A alone") for v in variants
              if v.name != "naive_ensemble"
              and any(r["variant"] == v.name and r.get("network_scores", {}).get("a") for r in results)]
    for method in args.method:
        for ratio in args.label_ratio:
            sections.append(f"## {method}, label ratio {ratio:g}\n\n" + method_table(method, ratio, table, pairs,
                                                                                   references))
    if len(args.method) > 1:
        for ratio in args.label_ratio:
            sections.append(f"## Gains per method (CIoU@0.5, label ratio {ratio:g})\n\n"
                            + gains_table(args.method, ratio, table))
    gains = [gains_payload(results, ratio) for ratio in args.label_ratio]
    for payload in gains:
        if any(payload["paired"].values()):
            sections.append(f"## DMT's paired gains (CIoU@0.5, label ratio {payload['ratio']:g}; mean ± s.e. over "
                            "seeds, (seeds agreeing in sign / seeds))\n\n" + paired_gains_table(payload))
    markdown = "\n".join(header) + "\n" + "\n\n".join(sections) + "\n"
    write_text_atomic(args.out / "results.md", markdown)
    write_json(args.out / "gains.json", {"preset": preset.name, "meaningful": preset.meaningful, "machine": machine,
                                         "protocol": PROTOCOL.name, "command": command_line("run.py", argv),
                                         "ratios": gains})
    write_json(results_file(args.out), {
        "preset": preset.name, "meaningful": preset.meaningful, "machine": machine, "protocol": PROTOCOL.name,
        "recipe": preset.recipe, "data": sorted(descriptions),
        "references": references,
        "rows": [{"method": k[0], "ratio": k[1], "variant": k[2], **v} for k, v in table.items()],
        "runs": [{k: v for k, v in r.items() if k != "history"} for r in results],
    })
    plots = args.out / "plots"
    plots.mkdir(exist_ok=True)
    plot_curves(results, plots / "curves.png")
    if len(args.label_ratio) > 1:
        plot_ratio_curve(args.method, args.label_ratio, table, plots / "label_ratio.png", gains)
    save_overlays(args, preset, data_cache, plots / "overlays.png")
    print(markdown)
    return 0


def recipe_lines(preset: Preset, methods: list[str]) -> list[str]:
    """The results' note of which recipe built each network and whose settings trained which rows."""
    lines = [f"Networks: each method's `{preset.recipe}` recipe (baselines/recipes.py)."]
    own = {m: recipe_training(m, preset.recipe) for m in methods}
    if any(own.values()):
        lines.append("Self-supervised and naive rows train with the method's own recipe ("
                     + "; ".join(f"{m}: {json.dumps(v)}" for m, v in own.items() if v) + "); the other rows "
                     f"with DMT's: optimizer {preset.train.optimizer}, lr {preset.train.lr:g}, weight decay "
                     f"{preset.train.weight_decay:g}, batch {preset.train.batch_size} unlabeled + "
                     f"{preset.train.labeled_batch_size} labeled.")
    return lines


def configured_preset(args: argparse.Namespace) -> Preset:
    """The chosen preset with the command line's training, schedule, tier and network arguments."""
    preset = PRESETS["quick" if args.quick else args.preset]
    schedule = {k: getattr(args, k) for k in ("warmup_steps", "steps") if getattr(args, k) is not None}
    if "swap_pairs" in args.train_args:
        raise ValueError("swap_pairs is a control of the comparison, not a DMTConfig field: pass --swap-pairs")
    # through from_dict, so that older flat names (``delta``, ``pseudo_label_shape``) still apply and a
    # nested config given as JSON (``{"pseudo_labels": {"delta": 0.7}}``) changes only what it names
    base = preset.train.to_dict()
    changes = {k: ({**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v)
               for k, v in args.train_args.items()}
    train = DMTConfig.from_dict({**base, **changes, **schedule})
    return replace(preset, train=train, tier=args.tier or preset.tier, network_overrides=args.network_args)


def save_overlays(args: argparse.Namespace, preset, data_cache, path: Path) -> None:
    """Maps of each trained variant (first method, ratio and seed) on the first eight test scenes."""
    from dmt_wrap_benchmarks.comparison import backbone_factory
    from dmt_wrap import DualMeanTeacher
    from dmt_wrap.visualize import save_overlay_grid

    job0 = Job(args.method[0], VARIANTS[args.variants[0]], args.label_ratio[0], args.seeds[0])
    test = data_cache[(job0.ratio, job0.seed)].test
    items = [test[i] for i in range(min(8, len(test)))]
    images = torch.stack([i["image"] for i in items])
    audio = torch.stack([i["audio"] for i in items])
    gt = torch.stack([i["mask"] for i in items])
    rows_images, rows_maps, titles = [], [], []
    for name in args.variants:
        model_file = Job(job0.method, VARIANTS[name], job0.ratio, job0.seed).folder(args.out) / MODEL
        if not model_file.exists():
            continue
        model = DualMeanTeacher.load(model_file, backbone_factory(job0.method, preset), device=args.device)
        rows_images.append(images)
        rows_maps.append(model.localize(images, audio).cpu())
        titles += [name] * len(items)
    if rows_maps:
        save_overlay_grid(torch.cat(rows_images), torch.cat(rows_maps), gt.repeat(len(rows_maps), 1, 1), path,
                          titles=titles, ncols=len(items))


if __name__ == "__main__":  # a refusal is one line (exit 1), Ctrl-C "interrupted"; --debug shows the traceback
    raise SystemExit(guarded("run.py", main, "--debug" in sys.argv))
