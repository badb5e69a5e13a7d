#!/usr/bin/env bash
# Stop the test cluster started by start.sh: cancel all jobs, then stop exactly the
# PIDs start.sh recorded in $STATE/pids (newest first) and wait for them to exit.
# Usage: tests/slurm/stop.sh    (state folder: $SVBENCH_SLURM_STATE, default /tmp/svbench-slurm)
set -euo pipefail

STATE=${SVBENCH_SLURM_STATE:-/tmp/svbench-slurm}
PIDS=$STATE/pids

log() { echo "[slurm] $*"; }

# A recorded PID counts only if it still runs the program we started (PIDs get reused).
ours_alive() { [[ -r /proc/$2/comm && $(cat "/proc/$2/comm" 2>/dev/null) == "$1" ]]; }

if [[ ! -s $PIDS ]]; then
    log "nothing recorded in $PIDS; nothing to stop"
    exit 0
fi

# Job processes are not children of slurmd: cancel jobs while slurmctld still runs.
if timeout 10 scontrol ping 2>/dev/null | grep -q UP; then
    jobs=$(timeout 10 squeue -h -o %A || true)
    if [[ -n $jobs ]]; then
        log "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
        # shellcheck disable=SC2086  # one argument per job id
        timeout 10 scancel $jobs || true
        for _ in $(seq 50); do
            [[ -z $(timeout 10 squeue -h -o %A || true) ]] && break
            sleep 0.2
        done
    fi
fi

# Reverse start order: both slurmd (d2, d1), slurmctld, slurmdbd, mariadbd, munged.
tac "$PIDS" | while read -r name pid; do
    if ! ours_alive "$name" "$pid"; then
        log "$name (pid $pid) already gone"
        continue
    fi
    kill -TERM "$pid"
    for _ in $(seq 150); do   # up to 30 s
        ours_alive "$name" "$pid" || break
        sleep 0.2
    done
    if ours_alive "$name" "$pid"; then
        log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid"
        sleep 0.5
    fi
    log "$name (pid $pid) stopped"
done
rm -f "$PIDS"
log "cluster stopped"
