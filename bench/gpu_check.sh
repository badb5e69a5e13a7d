#!/usr/bin/env bash
# The device check of svbench's GPU path, one script, under 8 minutes on one GPU; from the repo root:
#
#     bash bench/gpu_check.sh          # on a GPU node
#     bash bench/gpu_check.sh --dry    # anywhere (or SVBENCH_GPU_CHECK_DRY=1): CPU, fake NVML, toy scale
#
# Five parts (bench/gpu_parts.py), each under its own time limit, then one report (bench/gpu_report.py):
#   nvml      NVML counter energy against the integral of sampled power and a known load (repeat-and-delay,
#             Yang et al. SC'24): which reading to trust for long phases and for bursts under a second
#   amp       ResNet34 training steps, AMP bf16 + channels-last against fp32 (goal >= 2x)
#   util      GPU utilisation while training from the feature store with the configured workers (goal >= 90 %)
#   overhead  training throughput with and without svbench monitor (goal < 2 %)
#   demo      the demo config's train and embed on the GPU under svbench monitor, end to end
# Writes report.md and report.json, with every part's traces and logs, in one new folder it names at the end
# (SVBENCH_GPU_CHECK_OUT to choose it). Exit status: 0 every goal met (dry: every part ran), 2 not, 1 setup.
# Environment: SVBENCH_PYTHON (default .venv/bin/python), CUDA_VISIBLE_DEVICES (default 0: one GPU).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${SVBENCH_PYTHON:-.venv/bin/python}
DRY=${SVBENCH_GPU_CHECK_DRY:-0}
[ "${1-}" = "--dry" ] && DRY=1
fail() { echo "gpu_check: $*" >&2; exit 1; }

[ -x "$PY" ] || fail "no Python at $PY: create the venv first (make test) or set SVBENCH_PYTHON"
if [ "$DRY" = 1 ]; then
    DRYFLAG=--dry
    # part: seconds it may take (toy scale on a CPU)
    BUDGETS="nvml:90 amp:90 util:90 overhead:90 demo:90"
else
    DRYFLAG=
    BUDGETS="nvml:120 amp:60 util:75 overhead:90 demo:135"  # 480 s in all
    command -v nvidia-smi >/dev/null 2>&1 || fail "no nvidia-smi on PATH: this is not an NVIDIA GPU node"
    nvidia-smi -L >/dev/null 2>&1 || fail "nvidia-smi -L failed: no NVIDIA GPU or driver here"
    export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-0}
    "$PY" - <<'PYCHECK' || fail "no usable GPU (see the line above)"
import os
import sys

import torch

if not torch.cuda.is_available():
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.exit(f"torch {torch.__version__} sees no CUDA device (CUDA_VISIBLE_DEVICES={visible!r})")
try:
    import pynvml

    pynvml.nvmlInit()
    pynvml.nvmlShutdown()
except Exception as exc:  # ImportError, NVMLError
    sys.exit(f"NVML not usable: {exc}")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PYCHECK
fi

if [ -n "${SVBENCH_GPU_CHECK_OUT-}" ]; then
    OUT=$SVBENCH_GPU_CHECK_OUT
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/svbench-gpu-check.XXXXXX")
fi
echo "gpu_check: working in $OUT"
"$PY" bench/gpu_report.py setup --out "$OUT" $DRYFLAG --command "bash bench/gpu_check.sh${DRYFLAG:+ --dry}"
[ "$DRY" = 1 ] && export PYTHONPATH="$OUT/fake_nvml${PYTHONPATH:+:$PYTHONPATH}"
[ "$DRY" = 1 ] || nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,clocks.max.sm --format=csv \
    > "$OUT/nvidia-smi.csv" || true

began=$(date +%s)
for entry in $BUDGETS; do
    part=${entry%%:*} budget=${entry##*:}
    mkdir -p "$OUT/$part"
    start=$(date +%s.%N)
    rc=0
    timeout --signal=TERM --kill-after=10 "$budget" "$PY" bench/gpu_parts.py "$part" --out "$OUT" $DRYFLAG \
        >> "$OUT/$part/log.txt" 2>&1 || rc=$?
    elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "$rc $elapsed $budget" > "$OUT/$part/exit"
    echo "gpu_check: $part exited $rc after $elapsed s (limit $budget s)"
done

status=0
"$PY" bench/gpu_report.py report --out "$OUT" $DRYFLAG --wall-s "$(( $(date +%s) - began ))" || status=$?
echo "gpu_check: report in $OUT/report.md (and report.json), every part's traces and logs beside it"
exit "$status"
