#!/usr/bin/env bash
# The prepared GPU check (docs/performance.md, "The first GPU run"): the CUDA-marked tests, what a DMT
# step costs against a bare one in bf16 for all seven methods (perf.py), a short paper-preset job,
# and peak memory, printed as one table. Sized to finish in under 8 minutes on one H100.
#
#   bash benchmarks/gpu_check.sh                 # on a GPU machine
#   bash benchmarks/gpu_check.sh --cpu-dry-run   # the same path on the CPU at tiny shapes (CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT="${GPU_CHECK_OUT:-runs/gpu-check}"
METHODS="ezvsl lvs slavc fnac ssltie attention10k sspl"
if [ "${1:-}" = "--cpu-dry-run" ]; then
    DEVICE=cpu PERF_PRESET=dry REPEATS=1 STEPS=1
    JOB=(--quick --warmup-steps 2 --steps 2 --device cpu --threads 1)
else
    DEVICE=cuda PERF_PRESET=paper REPEATS=3 STEPS=3
    JOB=(--preset paper --warmup-steps 20 --steps 20 --device cuda)
fi
rm -rf "$OUT" && mkdir -p "$OUT"
echo "gpu_check: CUDA-marked tests"
"$PY" -m pytest -q -m cuda tests | tail -n 1 | tee "$OUT/cuda-tests.txt"
for method in $METHODS; do
    echo "gpu_check: perf $method (bf16, $PERF_PRESET)"
    "$PY" benchmarks/perf.py --method "$method" --preset "$PERF_PRESET" --device "$DEVICE" --precision bf16 \
        --steps "$STEPS" --repeats "$REPEATS" --warmup 1 --pipeline-steps 0 --json "$OUT/perf-$method.json" \
        > "$OUT/perf-$method.txt"
done
echo "gpu_check: a short job (ezvsl, dmt)"
"$PY" benchmarks/run.py --method ezvsl --variants dmt --seeds 0 --no-progress "${JOB[@]}" \
    --train-args '{"precision": "bf16"}' --out "$OUT/job" > "$OUT/job.txt" 2>&1
"$PY" benchmarks/gpu_check_table.py "$OUT"
