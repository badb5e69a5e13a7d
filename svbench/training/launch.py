"""Starting a training job's processes on one node: ``svbench launch`` builds the torchrun command.

One node, one process: the command as it is. One node, several: ``torchrun --standalone``. Several nodes:
every node runs the same ``svbench launch`` (under ``srun --ntasks-per-node=1``, each beside its own
``svbench monitor``) and gets ``torchrun --nnodes N --node-rank K`` with a *static* rendezvous at the first
node. Static, not c10d: node rank K is then SLURM's node K and the node folder ``nodeK`` of the energy
measurement, and global rank ``K × processes + local rank`` always takes the same slice of each global batch,
so a layout trains the same model every time (c10d hands ranks out in arrival order).

This module imports no torch: it runs before the training processes exist.
"""

from __future__ import annotations

import os
import subprocess

from svbench.errors import UserError
from svbench.instrument.nodes import node_rank

PORT_BASE = 20000  # the rendezvous port of a SLURM job: PORT_BASE + job id mod PORT_SPAN (no two jobs of a node)
PORT_SPAN = 20000


def first_host(env: dict[str, str] | None = None) -> str:
    """The rendezvous address: ``$MASTER_ADDR``, else the address of the SLURM job's first node, else 127.0.0.1
    (one machine). A SLURM node name need not resolve (``NodeName=d1 NodeAddr=10.0.0.7``): its ``NodeAddr`` is
    asked of ``scontrol``, and the name used only where none is recorded."""
    env = os.environ if env is None else env
    if env.get("MASTER_ADDR"):
        return env["MASTER_ADDR"]
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "")
    names = _scontrol(["show", "hostnames", nodes]).split() if nodes else []
    if not names:
        return "127.0.0.1"
    for field in _scontrol(["show", "node", "-o", names[0]]).split():
        if field.startswith("NodeAddr=") and field != "NodeAddr=":
            return field.split("=", 1)[1]
    return names[0]


def _scontrol(args: list[str]) -> str:
    """What ``scontrol ARGS`` prints, "" when it cannot say."""
    try:
        return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def rendezvous_port(env: dict[str, str] | None = None) -> int:
    """``$MASTER_PORT``, else a port from the SLURM job id (the same on every node of the job), else 29500."""
    env = os.environ if env is None else env
    if env.get("MASTER_PORT"):
        try:
            return int(env["MASTER_PORT"])
        except ValueError:
            raise UserError(f"MASTER_PORT: {env['MASTER_PORT']!r} is not a port number") from None
    job = env.get("SLURM_JOB_ID", "")
    return PORT_BASE + int(job) % PORT_SPAN if job.isdigit() else 29500


def launch_command(command: list[str], nodes: int, processes: int, rank: int = 0, host: str = "127.0.0.1",
                   port: int = 29500) -> list[str]:
    """The argv that starts ``command`` as ``processes`` processes on node ``rank`` of ``nodes``."""
    if not command:
        raise UserError("svbench launch: no command given after --")
    if nodes < 1 or processes < 1:
        raise UserError(f"svbench launch: nodes and processes must be at least 1 (got {nodes} and {processes})")
    if nodes == 1 and processes == 1:
        return list(command)
    if nodes == 1:
        return ["torchrun", "--standalone", "--nproc-per-node", str(processes), "--no-python", *command]
    return ["torchrun", "--nnodes", str(nodes), "--node-rank", str(rank), "--nproc-per-node", str(processes),
            "--rdzv-backend", "static", "--master-addr", host, "--master-port", str(port), "--no-python", *command]


def process_launch(nodes: int, processes: int) -> list[str]:
    """The ``svbench launch`` prefix of a training command: none for one process, the launcher otherwise."""
    if nodes * processes == 1:
        return []
    return ["svbench", "launch", "--nodes", str(nodes), "--processes", str(processes), "--"]


def launch(command: list[str], nodes: int, processes: int, rank: int | None = None, host: str | None = None,
           port: int | None = None) -> list[str]:
    """:func:`launch_command` with what is not given taken from the environment (the monitor's node rank,
    SLURM's node list and job id)."""
    return launch_command(command, nodes, processes, node_rank(nodes, rank), host or first_host(),
                          port or rendezvous_port())


def srun_prefix(nodes: int, processes: int) -> list[str]:
    """What runs one ``svbench monitor`` on every node of a multi-node job: an ``srun`` step with one task per
    node holding that node's GPUs (``--kill-on-bad-exit``: a node whose monitor fails ends the others, so no
    rank waits for a peer that is gone); nothing on one node, where the monitor runs in the job itself."""
    if nodes == 1:
        return []
    return ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", f"--gres=gpu:{processes}",
            "--kill-on-bad-exit=1", "--label"]


def slurm_resources(nodes: int, processes: int) -> dict[str, int | str | None]:
    """The Snakemake resources of a training job for snakemake-executor-plugin-slurm (None: not set).

    One node: ``gpu`` (``sbatch --gpus=P``), and the plugin's job step runs the command under ``srun -n1``.
    Several: ``nodes`` and ``gres=gpu:P`` (GRES count per node), ``tasks`` = one per node, and ``mpi``, which
    makes the plugin run the command as it is so that its own ``srun`` (:func:`srun_prefix`) reaches every
    node; ``tasks_per_gpu`` 0 keeps the plugin from turning ``tasks`` into ``--ntasks-per-gpu``."""
    if nodes == 1:
        return {"gpu": processes, "nodes": 1, "gres": None, "mpi": None, "tasks": None, "tasks_per_gpu": None}
    return {"gpu": None, "nodes": nodes, "gres": f"gpu:{processes}", "mpi": "srun", "tasks": nodes,
            "tasks_per_gpu": 0}
