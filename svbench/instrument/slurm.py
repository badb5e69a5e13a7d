"""The SLURM job a measurement ran in: its context, and SLURM's own energy figure as a cross-check.

Node-level sensors describe one job only when the job has the node to itself; ``job_context`` says
whether it did (``exclusive``), from ``scontrol show job``. ``consumed_energy_j`` reads sacct's
``ConsumedEnergyRaw`` of one attempt of a (possibly requeued) job, where a site's ``acct_gather_energy``
plugin fills it; "not available" is ``None``, never 0 (SLURM reports 0 when its energy plugin has no sensor).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
from datetime import datetime

ENV_KEYS = ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES", "SLURM_STEP_NUM_NODES",
            "SLURM_RESTART_COUNT", "SLURM_JOB_PARTITION",
            "SLURM_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE", "SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS",
            "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES")


def _run(cmd: list[str], timeout: float = 10.0, env: dict[str, str] | None = None) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env=None if env is None else os.environ | env)
    except (subprocess.TimeoutExpired, OSError):
        return None
    return out.stdout if out.returncode == 0 else None


def exclusive(job_id: str) -> bool | None:
    """True when the job holds its node(s) alone (OverSubscribe=NO), None when unknown."""
    text = _run(["scontrol", "show", "job", "-o", job_id])
    if not text:
        return None
    for field in text.split():
        if field.startswith("OverSubscribe="):
            return field.split("=", 1)[1].upper() == "NO"
    return None


def job_context() -> dict:
    """Host, SLURM job id, node list, allocated CPUs/GPUs and node exclusivity of the current process."""
    context: dict = {"host": socket.gethostname()}
    context |= {k.lower(): os.environ[k] for k in ENV_KEYS if k in os.environ}
    job_id = os.environ.get("SLURM_JOB_ID")
    context["exclusive"] = exclusive(job_id) if job_id else None
    return context


START_SLACK_NS = 2_000_000_000  # SLURM's Start is whole seconds, set by the controller's clock, not the node's


def _epoch_ns(text: str) -> int | None:
    """sacct's Start as ns since the epoch: seconds (SLURM_TIME_FORMAT=%s), or its standard local
    ``YYYY-MM-DDTHH:MM:SS`` should a site's sacct ignore the format; None for Unknown/None (never started)."""
    text = text.strip()
    if text.isdigit():
        return int(text) * 1_000_000_000
    try:
        return int(datetime.fromisoformat(text).timestamp()) * 1_000_000_000
    except ValueError:
        return None


def consumed_energy_j(job_id: str, started_wall_ns: int | None = None) -> float | None:
    """sacct's ConsumedEnergyRaw (J) of one attempt of a job, or None when accounting has no energy for it.

    A requeued job keeps its id; without ``-D`` sacct shows only the latest attempt, so every attempt
    would get its figure. With ``-D`` there is a row per attempt: the one meant is the latest to have
    started at or before ``started_wall_ns`` (the attempt's begin marker, written a little after
    SLURM started it). Without ``started_wall_ns``: the latest attempt, as sacct without ``-D``.
    """
    text = _run(["sacct", "-j", str(job_id), "-X", "-D", "-n", "-P", "-o", "ConsumedEnergyRaw,Start"],
                env={"SLURM_TIME_FORMAT": "%s"})
    if not text:
        return None
    rows = [line.strip().split("|") for line in text.splitlines() if line.strip()]
    if not rows:
        return None
    limit = math.inf if started_wall_ns is None else started_wall_ns + START_SLACK_NS
    started = [(start, row[0]) for row in rows
               if len(row) > 1 and (start := _epoch_ns(row[1])) is not None and start <= limit]
    if started:
        value = max(started)[1]
    elif started_wall_ns is None:
        value = rows[-1][0]  # no Start to go by: the last row, as sacct lists the latest attempt
    else:
        return None
    try:
        joules = float(value)
    except ValueError:
        return None
    # SLURM writes 0 (or nothing) when its energy plugin had no sensor: that is "not measured", not 0 J
    return joules if joules else None
