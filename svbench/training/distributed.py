"""Several processes training one model (``torchrun``, or ``srun`` under SLURM): the process layout, the
process group, and the collective checks that keep the ranks in step."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from svbench.training.launch import first_host, rendezvous_port


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's variables, else from an srun step's, else (0, 1, 0)."""
    env = os.environ
    if "WORLD_SIZE" in env:
        return int(env.get("RANK", 0)), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    # SLURM_STEP_ID: only inside `srun`; a batch script allocated several tasks is still one process
    if "SLURM_STEP_ID" in env and "SLURM_PROCID" in env:
        world = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS", 1))
        return int(env["SLURM_PROCID"]), world, int(env.get("SLURM_LOCALID", 0))
    return 0, 1, 0


def set_slurm_master() -> None:
    """MASTER_ADDR/PORT for an srun step that did not set them: the step's first node, a port from the job id."""
    os.environ.setdefault("MASTER_ADDR", first_host())
    os.environ.setdefault("MASTER_PORT", str(rendezvous_port()))


@contextmanager
def process_group(rank: int, world: int, device: torch.device, timeout_s: float = 600.0) -> Iterator[None]:
    """The process group of a multi-process job for the block, unless one exists already (then left alone).

    ``timeout_s`` bounds every collective: a rank whose peer died (its node lost, its monitor killed) fails
    after that long instead of waiting forever (gloo already fails at once when the peer's socket closes)."""
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        if "SLURM_STEP_ID" in os.environ and "WORLD_SIZE" not in os.environ:
            set_slurm_master()
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout_s))
    try:
        yield
    finally:
        if own_group:
            dist.destroy_process_group()


def any_rank(flags: tuple[bool, ...], world: int, device: torch.device) -> tuple[bool, ...]:
    """Each flag true when it is true on any rank: every rank must act at the same step, or the others wait
    in an all-reduce forever."""
    if world == 1:
        return flags
    values = torch.tensor([int(flag) for flag in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(value.item()) for value in values)


def sum_over_ranks(values: tuple[float, int, int], world: int, device: torch.device) -> tuple[float, int, int]:
    """A (float, int, int) triple summed over all ranks."""
    if world == 1:
        return values
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total[0]), int(total[1]), int(total[2])


def check_same_position(epoch: int, step: int, world: int) -> None:
    """Every rank must resume from the same position, or the all-reduces pair different steps."""
    if world == 1:
        return
    positions: list = [None] * world
    dist.all_gather_object(positions, (epoch, step))
    if len(set(positions)) != 1:
        raise RuntimeError(f"DDP ranks resumed from different checkpoints (epoch, step): {positions}")


def weights_digest(*modules: torch.nn.Module) -> str:
    """SHA-256 of the modules' state (names and bytes)."""
    digest = hashlib.sha256()
    for module in modules:
        for key, value in module.state_dict().items():
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def replica_digests(model: torch.nn.Module, head: torch.nn.Module, world: int) -> list[str]:
    """The weight digest of every rank; a RuntimeError when they differ.

    DDP keeps the replicas identical; this checks it, since a silent divergence would taint the study."""
    if world == 1:
        return [weights_digest(model, head)]
    for buffer in model.buffers():  # BN statistics of the last step are per rank; DDP's rule: rank 0's count
        dist.broadcast(buffer, 0)
    digests: list = [None] * world
    dist.all_gather_object(digests, weights_digest(model, head))
    if len(set(digests)) != 1:
        raise RuntimeError(f"DDP ranks ended with different weights: {digests}")
    return digests
