#!/usr/bin/env bash
# Start a two-node SLURM test cluster on localhost (Debian 12, as root, no systemd):
# munged, MariaDB + slurmdbd (so sacct works), slurmctld, and one slurmd per node (d1, d2),
# each node with one fake GPU. d2's slurmd runs in its own time namespace, so its jobs see a
# monotonic (and boot) clock D2_CLOCK_OFFSET s ahead of d1's, as on another real machine.
# A TaskProlog gives each node's tasks the variables in $STATE/node-env/<node> (fake sensors).
# Every PID started is recorded in $STATE/pids ("name pid" per line) for stop.sh.
# Usage: tests/slurm/start.sh    (state folder: $SVBENCH_SLURM_STATE, default /tmp/svbench-slurm)
set -euo pipefail

STATE=${SVBENCH_SLURM_STATE:-/tmp/svbench-slurm}
PIDS=$STATE/pids
HERE=$(cd "$(dirname "$0")" && pwd)
HOST=$(hostname -s)
CLUSTER=svbench
PARTITION=debug
ACCOUNT=svbench
DB_PORT=${SVBENCH_SLURM_DB_PORT:-3306}
DB_PASS=svbench-test            # test-only password for the local MariaDB user
MARK="# written by svbench tests/slurm/start.sh"
# Two slurmd on one machine: both nodes share this host's name and address and differ by port
# (6817 is slurmctld's and 6819 slurmdbd's default port).
NODES=(d1 d2)
declare -A PORT=([d1]=6818 [d2]=6820)
# d2's clock lead; 0 starts d2 without a time namespace (where unshare --time is not allowed).
D2_CLOCK_OFFSET=${SVBENCH_SLURM_D2_CLOCK_OFFSET:-100000}

log() { echo "[slurm] $*"; }
die() { echo "[slurm] error: $*" >&2; exit 1; }

# A recorded PID counts only if it still runs the program we started (PIDs get reused).
ours_alive() { [[ -r /proc/$2/comm && $(cat "/proc/$2/comm" 2>/dev/null) == "$1" ]]; }

all_recorded_alive() {
    local name pid
    while read -r name pid; do ours_alive "$name" "$pid" || return 1; done <"$PIDS"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s until COMMAND succeeds.
wait_for() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "timed out after ${secs}s waiting for $what (logs in $STATE/log)"
}

record() { echo "$1 $2" >>"$PIDS"; log "$1 running (pid $2)"; }

# The running controller knows exactly our nodes (not, say, the old one-node layout's), a
# slurmd was recorded for each (a failed start leaves fewer), and every node answers: not
# down, no "*" (not responding).
nodes_up() {
    local states
    [[ $(grep -c '^slurmd ' "$PIDS") == "${#NODES[@]}" ]] || return 1
    [[ $(timeout 10 sinfo -h -N -o %N 2>/dev/null | sort -u | tr '\n' ' ') == "${NODES[*]} " ]] || return 1
    states=$(timeout 10 sinfo -h -N -o %T 2>/dev/null) || return 1
    ! grep -qE '^down|\*$' <<<"$states"
}

# --- already up? -------------------------------------------------------------------
if [[ -s $PIDS ]]; then
    if all_recorded_alive && timeout 10 scontrol ping 2>/dev/null | grep -q UP && nodes_up; then
        log "cluster already running (pids in $PIDS); nothing to do"
        exit 0
    fi
    log "found a partly running cluster, or one with other nodes; stopping it first"
    "$HERE/stop.sh"
fi

# --- packages ----------------------------------------------------------------------
mkdir -p "$STATE/log" "$STATE/run" "$STATE/ctld"
for n in "${NODES[@]}"; do mkdir -p "$STATE/slurmd/$n"; done
PKGS=(slurm-wlm munge slurmdbd mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt log: $STATE/log/apt.log)"
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # Stop package scripts from starting services themselves; we start them below.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    if ! apt-cache policy slurm-wlm 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        timeout 300 apt-get update -q >>"$STATE/log/apt.log" 2>&1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >>"$STATE/log/apt.log" 2>&1 || die "apt-get install failed, see $STATE/log/apt.log"
    if ((made_policy)); then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
fi

# --- configuration -----------------------------------------------------------------
if [[ -e /etc/slurm/slurm.conf ]] && ! grep -qF "$MARK" /etc/slurm/slurm.conf; then
    die "/etc/slurm/slurm.conf exists and was not written by this script; not overwriting it"
fi
mkdir -p /etc/slurm
# Node layout exactly as slurmd sees it, else slurmd refuses to register the node; both
# nodes claim the whole machine (so each can run an --exclusive job).
layout=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
log "nodes ${NODES[*]} on $HOST, each: $layout"
node_lines='' gres_lines=''
for n in "${NODES[@]}"; do
    node_lines+="NodeName=$n NodeHostname=$HOST NodeAddr=127.0.0.1 Port=${PORT[$n]} $layout Gres=gpu:1 State=UNKNOWN"$'\n'
    gres_lines+="NodeName=$n Name=gpu File=/dev/null"$'\n'
done
gres_lines=${gres_lines%$'\n'}
node_list=$(IFS=,; echo "${NODES[*]}")
cat >/etc/slurm/slurm.conf <<EOF
$MARK (state in $STATE)
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
# %n: the node's name, so the two slurmd on this host keep their files apart.
SlurmdSpoolDir=$STATE/slurmd/%n
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
# No cgroups in a container: track job processes by parent PID, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job with no --mem would take the whole node's memory.
DefMemPerCPU=1000
# Keep finished jobs visible to squeue for an hour (status checks may use squeue).
MinJobAge=3600
ReturnToService=2
MailProg=/bin/true
# Sets each task's variables from $STATE/node-env/<node> (per-node fake sensors for tests).
TaskProlog=$STATE/task_prolog.sh
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
# Store each job's comment: the Snakemake plugin puts rule_<rule>_wildcards_<...> there.
AccountingStoreFlags=job_comment
# One fake GPU per node (File=/dev/null in gres.conf) so --gpus=1 jobs can be scheduled.
GresTypes=gpu
${node_lines}PartitionName=$PARTITION Nodes=$node_list Default=YES MaxTime=INFINITE State=UP
EOF
cat >/etc/slurm/gres.conf <<EOF
$MARK
AutoDetect=off
$gres_lines
EOF
cat >/etc/slurm/slurmdbd.conf <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 /etc/slurm/slurmdbd.conf   # slurmdbd refuses a readable file holding a password

# TaskProlog: slurmstepd runs it before each task (batch scripts too) on the task's node and
# sets the task's environment from the "export NAME=value" lines it prints. Tests write
# $STATE/node-env/<node> (world-writable folder) to give one node its own variables.
install -d -m 1777 "$STATE/node-env"
cat >"$STATE/task_prolog.sh" <<EOF
#!/bin/sh
$MARK
# Print the running node's env file, if any; a failing TaskProlog would kill the task.
f="$STATE/node-env/\${SLURMD_NODENAME:-}"
if [ -n "\${SLURMD_NODENAME:-}" ] && [ -f "\$f" ] && [ -r "\$f" ]; then cat "\$f"; fi
exit 0
EOF
chmod 755 "$STATE/task_prolog.sh"
: >"$PIDS"

# --- munge -------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
fi
install -d -o munge -g munge -m 755 /run/munge
runuser -u munge -- munged --pid-file=/run/munge/munged.pid
wait_for 10 "munged" test -s /run/munge/munged.pid
record munged "$(cat /run/munge/munged.pid)"
wait_for 10 "munge credentials" bash -c 'munge -n | unmunge'

# --- MariaDB (own data folder; it does not daemonise itself) ------------------------
DB=$STATE/mysql
install -d -o mysql -g mysql "$DB" "$STATE/mysql-run"
if [[ ! -d $DB/mysql ]]; then
    log "initialising MariaDB data in $DB"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB" --skip-test-db \
        >"$STATE/log/mariadb-install.log" 2>&1
fi
rm -f "$STATE/mysql-run/mariadb.pid"
setsid -f mariadbd --no-defaults --user=mysql --datadir="$DB" \
    --socket="$STATE/mysql-run/mysqld.sock" --pid-file="$STATE/mysql-run/mariadb.pid" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$STATE/log/mariadb.log" \
    </dev/null >>"$STATE/log/mariadb.out" 2>&1
wait_for 30 "MariaDB" test -s "$STATE/mysql-run/mariadb.pid"
record mariadbd "$(cat "$STATE/mysql-run/mariadb.pid")"
sql() { mariadb --no-defaults -S "$STATE/mysql-run/mysqld.sock" -u root -e "$1"; }
wait_for 30 "MariaDB socket" sql "SELECT 1"
for h in localhost 127.0.0.1; do
    sql "CREATE USER IF NOT EXISTS 'slurm'@'$h' IDENTIFIED BY '$DB_PASS';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'$h';"
done
sql "CREATE DATABASE IF NOT EXISTS slurm_acct_db;"

# --- slurmdbd, then the cluster and a test account in it -----------------------------
slurmdbd
wait_for 10 "slurmdbd pid file" test -s "$STATE/run/slurmdbd.pid"
record slurmdbd "$(cat "$STATE/run/slurmdbd.pid")"
wait_for 30 "slurmdbd" sacctmgr -n list cluster
if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="svbench tests" >/dev/null
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
fi

# --- slurmctld ---------------------------------------------------------------------
slurmctld
wait_for 10 "slurmctld pid file" test -s "$STATE/run/slurmctld.pid"
record slurmctld "$(cat "$STATE/run/slurmctld.pid")"
wait_for 30 "slurmctld" bash -c 'scontrol ping | grep -q UP'

# --- slurmd, one per node: the saved state says "idle" before slurmd registers, so also
# require that each node's SlurmdStartTime is not older than this start. -----------------
started=$(date +%Y-%m-%dT%H:%M:%S)
for n in "${NODES[@]}"; do
    rm -f "$STATE/run/slurmd-$n.pid"
    if [[ $n == d2 ]] && ((D2_CLOCK_OFFSET)); then
        # slurmd daemonises, so the daemon (and every job step it forks) is in the new
        # time namespace: CLOCK_MONOTONIC and CLOCK_BOOTTIME run ahead, the wall clock not.
        unshare --time --monotonic "$D2_CLOCK_OFFSET" --boottime "$D2_CLOCK_OFFSET" slurmd -N "$n" ||
            die "unshare --time failed (no time namespaces here?); SVBENCH_SLURM_D2_CLOCK_OFFSET=0 skips it"
    else
        slurmd -N "$n"
    fi
    wait_for 10 "slurmd $n pid file" test -s "$STATE/run/slurmd-$n.pid"
    record slurmd "$(cat "$STATE/run/slurmd-$n.pid")"
done
node_ready() {
    local t
    t=$(scontrol show node "$1" | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2)
    [[ $t != None && ! $t < $started ]] &&
        [[ $(sinfo -h -n "$1" -o %T) == idle ]]
}
for n in "${NODES[@]}"; do wait_for 60 "node $n to register idle" node_ready "$n"; done
log "cluster up: partition $PARTITION, nodes $node_list (1 fake GPU each; d2's clocks +${D2_CLOCK_OFFSET} s), account $ACCOUNT; stop with $HERE/stop.sh"
