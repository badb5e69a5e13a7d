"""The SLURM job a measurement ran in: its context, and SLURM's own energy figure as a cross-check.

Node-level sensors describe one job only when the job has the node to itself; ``job_context`` says
whether it did (``exclusive``), from ``scontrol show job``. ``consumed_energy_j`` reads sacct's
``ConsumedEnergyRaw`` where a site's ``acct_gather_energy`` plugin fills it; "not available" is
``None``, never 0 (SLURM reports 0 when its energy plugin has no sensor).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

ENV_KEYS = ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_RESTART_COUNT", "SLURM_JOB_PARTITION",
            "SLURM_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE", "SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS",
            "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES")


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
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


def consumed_energy_j(job_id: str) -> float | None:
    """sacct's ConsumedEnergyRaw (J) of a job, or None when accounting has no energy for it."""
    text = _run(["sacct", "-j", str(job_id), "-X", "-n", "-P", "-o", "ConsumedEnergyRaw"])
    if not text:
        return None
    values = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        joules = float(values[0]) if values else None
    except ValueError:
        return None
    # SLURM writes 0 (or nothing) when its energy plugin had no sensor: that is "not measured", not 0 J
    return joules if joules else None
