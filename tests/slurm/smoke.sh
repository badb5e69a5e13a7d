#!/usr/bin/env bash
# Self-check of the test cluster and the test profile, run by hand after start.sh:
#  0. srun one task on each node: d1 and d2 answer, d2's monotonic clock runs ahead by
#     start.sh's offset, and a variable in $STATE/node-env/d2 reaches d2's task only;
#  1. sbatch a 1-GPU job, wait for sacct to say COMPLETED, check it saw CUDA_VISIBLE_DEVICES;
#  2. run Snakemake with tests/slurm/profile on a two-rule toy workflow (one rule on a GPU).
# Usage: tests/slurm/smoke.sh    (the temp folder is kept if a check fails)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SNAKEMAKE=${SNAKEMAKE:-$ROOT/.venv/bin/snakemake}
WORK=$(mktemp -d /tmp/svbench-slurm-smoke.XXXXXX)
STATE=${SVBENCH_SLURM_STATE:-/tmp/svbench-slurm}
OFFSET=${SVBENCH_SLURM_D2_CLOCK_OFFSET:-100000}   # as in start.sh

log() { echo "[smoke] $*"; }
fail() { echo "[smoke] FAILED: $* (files in $WORK)" >&2; exit 1; }

# --- 0. both nodes, d2's clock, the TaskProlog's per-node variables ------------------
ENVFILE=$STATE/node-env/d2
made_env=0
if [[ -e $ENVFILE ]]; then
    log "$ENVFILE exists (a test's?); leaving it alone and skipping the TaskProlog check"
else
    echo "export SVBENCH_SMOKE_NODE_ENV=d2-only" >"$ENVFILE"
    made_env=1
    trap 'rm -f "$ENVFILE"' EXIT
fi
# shellcheck disable=SC2016  # expanded inside the tasks, not here
timeout 60 srun -N2 -n2 --time=2 --mem=100 bash -c \
    'echo "$SLURMD_NODENAME $(python3 -c "import time; print(time.monotonic())") ${SVBENCH_SMOKE_NODE_ENV:-none}"' \
    >"$WORK/srun.out" || fail "srun -N2 -n2 failed"
if ((made_env)); then rm -f "$ENVFILE"; trap - EXIT; fi
read -r _ mono1 env1 < <(grep '^d1 ' "$WORK/srun.out") || fail "no task on d1: $(cat "$WORK/srun.out")"
read -r _ mono2 env2 < <(grep '^d2 ' "$WORK/srun.out") || fail "no task on d2: $(cat "$WORK/srun.out")"
lead=$(python3 -c "print(round($mono2 - $mono1))")
# the two tasks start within a few seconds of each other
((lead > OFFSET - 30 && lead < OFFSET + 30)) || fail "d2's monotonic clock leads d1's by ${lead} s, expected ~$OFFSET s"
if ((made_env)); then
    [[ $env1 == none && $env2 == d2-only ]] ||
        fail "TaskProlog variable: d1 saw '$env1' (expected none), d2 saw '$env2' (expected d2-only)"
fi
log "srun -N2: one task on d1 and one on d2, d2's monotonic clock ${lead} s ahead$( ((made_env)) && echo ", $ENVFILE reached d2's task only")"

# --- 1. plain sbatch ---------------------------------------------------------------
# shellcheck disable=SC2016  # expanded inside the job, not here
job=$(timeout 30 sbatch --parsable --gpus=1 --time=2 --mem=100 -o "$WORK/sbatch.out" \
    --wrap 'echo CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}')
log "submitted 1-GPU job $job"
state=
for _ in $(seq 150); do   # up to 30 s
    state=$(timeout 10 sacct -X -n -P -j "$job" -o State || true)
    [[ $state == COMPLETED || $state == FAILED || $state == CANCELLED* ]] && break
    sleep 0.2
done
[[ $state == COMPLETED ]] || fail "sacct says job $job is '${state:-not known}', expected COMPLETED"
grep -qx 'CUDA_VISIBLE_DEVICES=0' "$WORK/sbatch.out" ||
    fail "job output: '$(cat "$WORK/sbatch.out")', expected CUDA_VISIBLE_DEVICES=0"
log "sbatch job $job COMPLETED, saw CUDA_VISIBLE_DEVICES=0; sacct AllocTRES: $(sacct -X -n -P -j "$job" -o AllocTRES)"

# --- 2. Snakemake with the test profile ---------------------------------------------
mkdir "$WORK/wf"
cat >"$WORK/wf/Snakefile" <<'EOF'
rule all:
    input: "trained.txt"

rule prep:
    output: "prepared.txt"
    shell: "echo job=${{SLURM_JOB_ID:-none}} > {output}"

rule train:
    input: "prepared.txt"
    output: "trained.txt"
    resources: gpu=1
    shell: "echo job=${{SLURM_JOB_ID:-none}} gpu=${{CUDA_VISIBLE_DEVICES:-none}} > {output}"
EOF
log "running snakemake with $HERE/profile (log: $WORK/snakemake.log)"
(cd "$WORK/wf" && PATH=$(dirname "$SNAKEMAKE"):$PATH timeout 300 "$SNAKEMAKE" \
    --profile "$HERE/profile" >"$WORK/snakemake.log" 2>&1) ||
    { tail -n 30 "$WORK/snakemake.log" >&2; fail "snakemake exited non-zero"; }
grep -qE '^job=[0-9]+$' "$WORK/wf/prepared.txt" || fail "prepared.txt: $(cat "$WORK/wf/prepared.txt")"
grep -qE '^job=[0-9]+ gpu=0$' "$WORK/wf/trained.txt" || fail "trained.txt: $(cat "$WORK/wf/trained.txt")"
train_job=$(cut -d' ' -f1 "$WORK/wf/trained.txt" | cut -d= -f2)
tres=$(sacct -X -n -P -j "$train_job" -o AllocTRES)
[[ $tres == *gres/gpu=1* ]] || fail "train job $train_job AllocTRES '$tres' has no gres/gpu=1"
log "snakemake ran prep ($(cat "$WORK/wf/prepared.txt")) and train ($(cat "$WORK/wf/trained.txt"), AllocTRES $tres)"
rm -rf "$WORK"
log "all checks passed"
