"""The nodes of one measured job: where each node's monitor writes, and which node a process is on.

A job on one node is measured in its energy folder itself, as it always was; a job on N > 1 nodes has one
folder per node, ``node0`` … ``node{N-1}``, named by the node's rank in the job (SLURM's ``SLURM_NODEID``,
torchrun's ``--node-rank``), not by its host name: a requeued job may run on other hosts, and its second
attempt on node rank 1 belongs with the first attempt of node rank 1 (its attempts are sessions, each on its
own clock). Each folder holds what a one-node job's folder holds: that node's trace, markers and sidecar, named
here once (:data:`TRACE`, :data:`MARKERS`, :data:`SIDECAR`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from svbench.errors import UserError

NODE_PREFIX = "node"
RANK_ENV = "SVBENCH_NODE_RANK"  # set by the monitor for its workload: the launcher takes the same rank
NODES_ENV = "SVBENCH_NODES"
WRITER_ENV = "SVBENCH_MARKERS_NODE"  # the node whose clock the markers file is on: no other node writes there

# the files of a node's folder
TRACE = "trace.csv.zst"  # the sidecar's readings: compact CSV-like lines in a zstd stream (svbench.instrument.trace)
LEGACY_TRACE = "trace.csv"  # the long CSV trace of svbench versions before the compact one: still read
TRACES = (TRACE, LEGACY_TRACE)
MARKERS = "markers.jsonl"
SIDECAR = "sidecar.json"


def trace_path(folder: str | os.PathLike) -> Path:
    """The trace of a node's folder: ``trace.csv.zst``, or an earlier version's ``trace.csv`` where only that one
    exists (a job measured before, or a killed attempt of it that a new sidecar goes on appending to)."""
    folder = Path(folder)
    if not (folder / TRACE).exists() and (folder / LEGACY_TRACE).exists():
        return folder / LEGACY_TRACE
    return folder / TRACE


def node_name(rank: int) -> str:
    return f"{NODE_PREFIX}{rank}"


def node_dir(job_dir: str | os.PathLike, rank: int, nodes: int) -> str:
    """The folder node ``rank`` of a job on ``nodes`` nodes writes to: the job's folder itself on one node."""
    return os.fspath(job_dir) if nodes == 1 else f"{os.fspath(job_dir).rstrip('/')}/{node_name(rank)}"


def node_dirs(job_dir: str | os.PathLike, nodes: int) -> list[str]:
    """The folder of every node of a job, in rank order."""
    return [node_dir(job_dir, rank, nodes) for rank in range(nodes)]


def node_rank(nodes: int, given: int | None = None, env: dict[str, str] | None = None) -> int:
    """This process's node rank in a job on ``nodes`` nodes: ``given``, else ``$SVBENCH_NODE_RANK`` (set by the
    monitor), else ``$SLURM_NODEID`` (srun); 0 on one node. UserError when none says, or it is out of range."""
    env = os.environ if env is None else env
    if nodes == 1 and given is None:
        return 0
    sources = (("--node-rank", given), (RANK_ENV, env.get(RANK_ENV)), ("SLURM_NODEID", env.get("SLURM_NODEID")))
    for where, value in sources:
        if value is None or value == "":
            continue
        try:
            rank = int(value)
        except ValueError:
            raise UserError(f"{where}: {value!r} is not a node rank (an integer)") from None
        if not 0 <= rank < nodes:
            raise UserError(f"{where}: node rank {rank} is outside 0..{nodes - 1} for a job on {nodes} nodes")
        return rank
    raise UserError(f"a job on {nodes} nodes needs this node's rank: --node-rank, or run it under srun "
                    "(--ntasks-per-node=1), which sets SLURM_NODEID")


def this_node() -> str:
    """What names this node for the markers' one-writer rule: SLURM's node name, else the host name."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()
