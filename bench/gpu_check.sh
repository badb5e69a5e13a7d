#!/usr/bin/env bash
# One short check of NVML on a real NVIDIA GPU (about 2 minutes, at most 5): run from the repo root as
#
#     bash bench/gpu_check.sh
#
# It runs `svbench monitor` (NVML only, read every 25 ms, 5 s idle baseline) around bench/gpu_burn.py
# (~60 s of marked matmul phases on one GPU: three 15-s burns, two 3-s pauses, ten 0.3-s bursts), then
# bench/nvml_compare.py prints, per phase, the NVML counter energy (what the study reports) next to the
# trapezoid of instant power of the same GPU, their ratio, and the NVML sampling facts.
# Exit status: 0 the two agree within 5 % on every phase of >= 5 s; 2 they do not; 1 no GPU / setup.
# Writes nothing outside one new temporary folder, which it keeps and names at the end.
# Environment: SVBENCH_PYTHON (default .venv/bin/python), CUDA_VISIBLE_DEVICES (default 0: one GPU).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${SVBENCH_PYTHON:-.venv/bin/python}
fail() { echo "gpu_check: $*" >&2; exit 1; }

[ -x "$PY" ] || fail "no Python at $PY: create the venv first (make test) or set SVBENCH_PYTHON"
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

OUT=$(mktemp -d "${TMPDIR:-/tmp}/svbench-gpu-check.XXXXXX")
echo "gpu_check: working in $OUT"
nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,clocks.max.sm --format=csv | tee "$OUT/nvidia-smi.csv"

CONFIG="$OUT/energy.json"
echo '{"sensors": ["nvml"], "nvml": {"interval_s": 0.025, "context_interval_s": 0.1}, "estimate": {"enabled": false}}' > "$CONFIG"
status=0
timeout --signal=TERM --kill-after=15 240 \
    "$PY" -m svbench.cli monitor --out "$OUT/run" --config "$CONFIG" --baseline 5 -- \
    "$PY" bench/gpu_burn.py || status=$?
[ "$status" -eq 0 ] || fail "the monitored run failed with status $status (trace kept in $OUT/run)"

"$PY" -m svbench.cli energy join --trace "$OUT/run/trace.csv" --markers "$OUT/run/markers.jsonl" \
    --out "$OUT/run/energy.csv"
set +e
"$PY" bench/nvml_compare.py "$OUT/run" | tee "$OUT/compare.txt"
status=${PIPESTATUS[0]}
set -e
echo "gpu_check: trace, markers, energy.csv and compare.txt kept in $OUT"
exit "$status"
