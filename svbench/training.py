"""The training loop: AAM-softmax on random crops, SGD, warm-up + exponential LR, checkpoints, resume.

Determinism by construction: the sample order of epoch e is a permutation seeded by (seed, e) and
the crop (and augmentation) of sample i in epoch e is drawn from a generator seeded by (seed, e, i).
A checkpoint therefore only needs the weights, the optimiser and the position (epoch, step): a job
killed at any moment resumes from its last checkpoint and finishes with the same weights as one that
never stopped (on CPU with deterministic kernels). SIGTERM (SLURM time limit, preemption) makes the
loop checkpoint at the next step and exit with status 143 so the job can be requeued.

Several processes (``torchrun``, or ``srun`` under SLURM) train with DistributedDataParallel: each
global batch of the deterministic order is cut into one slice per rank, so the samples seen do not
depend on how many processes there are; only rank 0 writes files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import signal
import subprocess
import time
from dataclasses import Field, InitVar, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from svbench.augment import SPEEDS, Augmenter, speed_segment
from svbench.corpus.manifest import read_manifest
from svbench.energy.markers import phase
from svbench.errors import UserError
from svbench.features import FbankConfig, FeatureStore, fbank
from svbench.fileio import atomic_write
from svbench.models import AAMSoftmax, ArchSpec, build, summarize
from svbench.models.loading import resolve_device

log = logging.getLogger("svbench.training")

PROGRESS_S = 60.0  # a progress line at least this often inside an epoch (VoxCeleb epochs take an hour)
HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "lr", "margin", "seconds", "samples_per_s", "data_wait_share"]
AMP_MODES = ("auto", "bf16", "fp16", "off")


def _check_field(f: Field, value: object, key: str) -> object:
    """``value`` if it has the field's type (its annotation) and bounds, else a UserError naming ``key``."""
    kinds = f.type.replace(" ", "").split("|")
    if value is None and "None" in kinds:
        return None
    kind, limits = kinds[0], f.metadata
    number = isinstance(value, int | float) and not isinstance(value, bool)  # bool is an int to Python, not here
    ok = {"int": number and isinstance(value, int), "float": number and math.isfinite(value),
          "bool": isinstance(value, bool), "str": isinstance(value, str), "dict": isinstance(value, dict)}[kind]
    if ok and "choices" in limits:
        ok = value in limits["choices"]
    if ok and "pattern" in limits:
        ok = re.match(limits["pattern"], value) is not None
    if ok and number:
        ok = (value >= limits.get("ge", -math.inf) and value > limits.get("gt", -math.inf)
              and value <= limits.get("le", math.inf))
    if ok:
        return float(value) if kind == "float" else value
    if "choices" in limits:
        want = f"one of {', '.join(limits['choices'])}"
    elif "pattern" in limits:
        want = f"a string matching {limits['pattern']}"
    else:
        want = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                "dict": "a mapping"}[kind]
        bounds = [f"{op} {limits[name]}" for name, op in (("ge", ">="), ("gt", ">"), ("le", "<=")) if name in limits]
        want += (" " + " and ".join(bounds)) if bounds else ""
    if "None" in kinds:
        want += " or null"
    raise UserError(f"{key}: must be {want}, got {value!r}")


def _f(default: object, **limits: object) -> Any:
    """A field with its bounds (ge, gt, le: numbers; choices, pattern: strings), checked on construction."""
    return field(default=default, metadata=limits)


@dataclass
class Recipe:
    """Training hyper-parameters (config section ``training``); defaults follow WeSpeaker's recipe.

    The types (annotations) and bounds (field metadata) of every field are checked on construction;
    workflow/schemas/config.schema.yaml states the same bounds (tests/test_config_validation.py).
    """

    epochs: int = _f(150, ge=1)
    batch_size: int = _f(128, ge=1)  # per process
    crop_frames: int = _f(200, ge=8)
    samples_per_epoch: int | None = _f(None, ge=1)  # None: one crop per training utterance
    lr: float = _f(0.1, gt=0)
    final_lr: float = _f(5e-5, gt=0)
    warmup_epochs: int = _f(6, ge=0)
    scale_lr_by_batch: bool = True  # lr × global batch / 64
    momentum: float = _f(0.9, ge=0)
    nesterov: bool = True
    weight_decay: float = _f(1e-4, ge=0)
    aam_scale: float = _f(32.0, gt=0)
    margin: float = _f(0.2, ge=0)
    margin_start_epoch: int = _f(20, ge=0)
    margin_end_epoch: int = _f(40, ge=0)
    speed_perturb: bool = False  # speeds 0.9/1.0/1.1, each its own class (3x the speakers)
    musan: str | None = None  # MUSAN folder (noise/, speech/, music/) for additive noise
    rir: str | None = None  # folder of room impulse responses (*.wav) for reverberation
    aug_prob: float = _f(0.6, ge=0, le=1)  # share of samples augmented (half noise, half reverb when both are set)
    average_last: int = _f(1, ge=1)  # model.pt = mean of the weights after the last N epochs
    checkpoint_minutes: float = _f(10.0, ge=0)  # also checkpoint mid-epoch this often: a SIGKILL loses at most this
    amp: str = _f("auto", choices=AMP_MODES)  # auto: bf16 on CUDA where supported, else fp16 + grad scaler; CPU: off
    channels_last: bool = True  # CUDA only
    cudnn_benchmark: bool = True  # CUDA only
    processes: int = _f(1, ge=1)  # processes per job (one per GPU); the workflow launches them with torchrun
    num_workers: int = _f(0, ge=0)
    device: str = _f("auto", pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")
    threads: int | None = _f(None, ge=1)
    extra: dict = field(default_factory=dict)

    where: InitVar[str] = "training"  # the config key named in errors; not a field

    def __post_init__(self, where: str) -> None:
        """UserError naming the first field of a wrong type or out of its bounds; ints become floats where
        a float is expected."""
        for f in fields(self):
            setattr(self, f.name, _check_field(f, getattr(self, f.name), f"{where}.{f.name}"))

    @classmethod
    def from_dict(cls, d: dict, where: str = "training") -> Recipe:
        known = {f.name for f in fields(cls) if f.name != "extra"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"{where}.{unknown[0]}: unknown training option (known: {', '.join(sorted(known))})")
        return cls(**d, where=where)

    def peak_lr(self, world_size: int = 1) -> float:
        return self.lr * (self.batch_size * world_size / 64 if self.scale_lr_by_batch else 1.0)

    def lr_at(self, epoch: int, step: int, steps_per_epoch: int, world_size: int = 1) -> float:
        """Linear warm-up to the peak, then exponential decay to ``final_lr`` at the last step."""
        t = epoch + step / steps_per_epoch
        peak = self.peak_lr(world_size)
        if t < self.warmup_epochs:
            return peak * (t + 1 / steps_per_epoch) / self.warmup_epochs
        span = max(self.epochs - self.warmup_epochs, 1e-9)
        frac = min((t - self.warmup_epochs) / span, 1.0)
        return peak * (self.final_lr / peak) ** frac

    def margin_at(self, epoch: int) -> float:
        """0 until ``margin_start_epoch``, then a linear ramp reaching ``margin`` at ``margin_end_epoch``."""
        if epoch < self.margin_start_epoch:
            return 0.0
        if epoch >= self.margin_end_epoch:
            return self.margin
        ramp = self.margin_end_epoch - self.margin_start_epoch + 1
        return self.margin * (epoch - self.margin_start_epoch + 1) / ramp


class CropDataset(Dataset):
    """Random fixed-length crops; item i of epoch e always gives the same crop for a seed.

    Clean crops come from the memory-mapped feature store. With speed perturbation or an augmenter,
    a sample that draws a speed other than 1.0 or an augmentation is made from its wav instead
    (``svbench.augment``) and its fbank computed here, in the data-loader worker.
    """

    def __init__(self, store: FeatureStore, utts: list[str], labels: list[int], frames: int, seed: int,
                 wavs: list[Path] | None = None, speed_perturb: bool = False, augmenter: Augmenter | None = None,
                 n_speakers: int = 0) -> None:
        self.store, self.utts, self.labels, self.frames, self.seed = store, utts, labels, frames, seed
        self.wavs, self.speed_perturb, self.augmenter, self.n_speakers = wavs, speed_perturb, augmenter, n_speakers
        self.fbank = FbankConfig(n_mels=store.get(utts[0]).shape[1]) if utts else FbankConfig()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        k = int(rng.integers(0, len(SPEEDS))) if self.speed_perturb else 0
        augment = self.augmenter is not None and self.augmenter.wants(rng)
        if k == 0 and not augment:
            return torch.from_numpy(self.store.crop(self.utts[i], self.frames, rng)), self.labels[i]
        hop = self.fbank.sample_rate * self.fbank.frame_shift_ms // 1000
        window = self.fbank.sample_rate * self.fbank.frame_length_ms // 1000
        x = speed_segment(self.wavs[i], int((self.frames - 1) * hop + window), SPEEDS[k], rng)
        if augment:
            x = self.augmenter.apply(x, rng)
        feats = fbank(x, self.fbank.sample_rate, self.fbank)[: self.frames]
        return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)), self.labels[i] + k * self.n_speakers


def epoch_order(n_utts: int, samples: int, seed: int, epoch: int) -> list[tuple[int, int]]:
    """The (epoch, utterance index) keys of one epoch, in order."""
    rng = np.random.default_rng([seed, epoch, 1_000_003])
    reps = -(-samples // n_utts)
    order = np.concatenate([rng.permutation(n_utts) for _ in range(reps)])[:samples]
    return [(epoch, int(i)) for i in order]


def rank_batches(order: list, batch_size: int, rank: int, world_size: int) -> list[list]:
    """This rank's slice of every global batch (``batch_size`` per rank, ``world_size`` ranks)."""
    g = batch_size * world_size
    return [order[k + rank * batch_size: k + (rank + 1) * batch_size] for k in range(0, len(order) - g + 1, g)]


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


def _slurm_master() -> None:
    """MASTER_ADDR/PORT for an srun step that did not set them: the step's first node, a port from the job id."""
    if "MASTER_ADDR" not in os.environ:
        nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST", "")
        try:
            out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                                 check=True, timeout=30).stdout.split()
            os.environ["MASTER_ADDR"] = out[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", 0)) % 20000))


def amp_mode(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 where the GPU supports it, else fp16; None (full precision) on CPU or off."""
    if amp == "off" or device.type != "cuda":
        if amp not in ("off", "auto"):
            log.warning("amp %s requested on %s: mixed precision is only used on CUDA, training in float32", amp,
                        device)
        return None
    if amp in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if amp == "bf16":
        log.warning("bf16 is not supported on %s: using fp16 with a gradient scaler", device)
    return torch.float16


def _save_atomic(obj: object, path: Path, previous: Path | None = None) -> None:
    """Write ``path`` through a temporary file; with ``previous``, the former ``path`` is kept there."""
    # durable: on disk before the rename, a node crash must not leave a truncated checkpoint
    with atomic_write(path, "wb", durable=True, previous=previous) as f:
        torch.save(obj, f)


CHECKPOINT_KEYS = ("spec", "n_classes", "model", "head", "optimiser", "epoch", "step", "history", "running",
                   "torch_rng")


def load_checkpoint(current: Path, previous: Path, device: torch.device) -> tuple[dict, Path] | None:
    """The checkpoint to resume from and its file: ``current``, else (damaged or missing) ``previous``.

    None when neither exists (a fresh start); a UserError naming both when neither loads."""
    if not current.exists() and not previous.exists():
        return None
    problems = []
    for path in (current, previous):
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        try:
            ckpt = torch.load(path, map_location=device, weights_only=False)
        except Exception as exc:  # truncated, empty, not a torch file, ...: all mean "damaged"
            detail = (str(exc).splitlines() or [""])[0][:160]  # torch's messages run to a paragraph
            problems.append(f"{path}: cannot load ({type(exc).__name__}: {detail})")
        else:
            if isinstance(ckpt, dict) and all(k in ckpt for k in CHECKPOINT_KEYS):
                if path != current:
                    log.warning("resuming from %s, the checkpoint before %s", path, current)
                return ckpt, path
            problems.append(f"{path}: cannot load (not a training checkpoint)")
        log.warning("%s", problems[-1])
    raise UserError(f"no checkpoint to resume from: {'; '.join(problems)}; remove both to train from scratch")


class _StopRequested:
    """Turns SIGTERM into a flag the loop checks between steps."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __enter__(self) -> _StopRequested:
        self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum
        log.warning("SIGTERM received: checkpointing at the next step")

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._old)


class Preempted(Exception):
    """Training stopped on request after writing a checkpoint; the job should be resumed."""


class _Net(torch.nn.Module):
    """Backbone + margin head as one module, so DDP synchronises both; the head runs in float32."""

    def __init__(self, backbone: torch.nn.Module, head: AAMSoftmax, amp_dtype: torch.dtype | None) -> None:
        super().__init__()
        self.backbone, self.head, self.amp_dtype = backbone, head, amp_dtype

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            emb = self.backbone(x)
        return self.head(emb.float(), y)


def _digest(*modules: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for module in modules:
        for key, value in module.state_dict().items():
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def average_state(paths: list[Path]) -> dict:
    """Element-wise mean of saved state dicts; integer buffers (BN batch counters) come from the last."""
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    avg = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            avg[key] = sum(s[key].double() for s in states).div(len(states)).to(last.dtype)
        else:
            avg[key] = last.clone()
    return avg


def train(features: Path, manifest: Path, spec: ArchSpec, recipe: Recipe, out_dir: Path, seed: int = 0,
          stop_after_steps: int | None = None) -> Path:
    """Train one architecture; resumes from ``out_dir/checkpoint.pt`` (or ``checkpoint.prev.pt``) if present.

    Writes ``checkpoint.pt`` (every epoch, and on SIGTERM; the one before is kept as ``checkpoint.prev.pt``,
    resumed from when ``checkpoint.pt`` is damaged), ``history.csv``, ``spec.json`` (with params
    and MACs of the built model) and finally ``model.pt`` (the mean of the last ``average_last`` epochs'
    weights, kept in ``epochs/``). ``stop_after_steps`` simulates a kill (tests). Under ``torchrun`` or
    ``srun`` with several processes it trains with DDP and only rank 0 writes.
    """
    rank, world, local_rank = dist_env()
    own_group = world > 1 and not dist.is_initialized()
    device = resolve_device(recipe.device, local_rank)
    if own_group:
        if "SLURM_STEP_ID" in os.environ and "WORLD_SIZE" not in os.environ:
            _slurm_master()
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    try:
        return _train(features, manifest, spec, recipe, Path(out_dir), seed, stop_after_steps, rank, world, device)
    finally:
        if own_group:
            dist.destroy_process_group()


def _train(features: Path, manifest: Path, spec: ArchSpec, recipe: Recipe, out_dir: Path, seed: int,
           stop_after_steps: int | None, rank: int, world: int, device: torch.device) -> Path:
    lead = rank == 0
    if lead:
        out_dir.mkdir(parents=True, exist_ok=True)
    if recipe.processes != world:
        log.warning("training.processes is %d but this job has %d process(es)", recipe.processes, world)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    torch.manual_seed(seed)
    if device.type == "cuda" and recipe.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True  # fixed crop size: the fastest kernels are found once
    amp_dtype = amp_mode(recipe.amp, device)
    augmenter = None
    if recipe.musan is not None or recipe.rir is not None:
        augmenter = Augmenter(None if recipe.musan is None else Path(recipe.musan),
                              None if recipe.rir is None else Path(recipe.rir), recipe.aug_prob)
    store = FeatureStore(features)
    utts = read_manifest(manifest)
    speakers = sorted({u.speaker for u in utts})
    speaker_index = {s: k for k, s in enumerate(speakers)}
    missing = [u.utt for u in utts if u.utt not in store]
    if missing:
        raise UserError(f"{features}: {len(missing)} training utterances have no features, e.g. {missing[0]!r}")
    ids = [u.utt for u in utts]
    labels = [speaker_index[u.speaker] for u in utts]
    n_classes = len(speakers) * (len(SPEEDS) if recipe.speed_perturb else 1)
    samples = recipe.samples_per_epoch or len(ids)
    global_batch = recipe.batch_size * world
    steps_per_epoch = max(samples // global_batch, 1)

    model = build(spec).to(device)
    head = AAMSoftmax(spec.embedding, n_classes, scale=recipe.aam_scale, margin=0.0).to(device)
    if device.type == "cuda" and recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimiser = torch.optim.SGD(
        [{"params": decay, "weight_decay": recipe.weight_decay},
         {"params": no_decay, "weight_decay": 0.0},
         {"params": head.parameters(), "weight_decay": 0.0}],  # no decay on the margin head's weights
        lr=recipe.peak_lr(world), momentum=recipe.momentum, nesterov=recipe.nesterov)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    net: torch.nn.Module = _Net(model, head, amp_dtype)
    if world > 1:
        ids_ = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids_)

    ckpt_path, prev_path = out_dir / "checkpoint.pt", out_dir / "checkpoint.prev.pt"
    epochs_dir = out_dir / "epochs"
    epoch, step, history = 0, 0, []
    running = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0, "wait": 0.0}
    found = load_checkpoint(ckpt_path, prev_path, device)
    # a checkpoint.pt that did not load must not be rotated into checkpoint.prev.pt: the next write replaces it
    keep_previous = [found is None or found[1] == ckpt_path]
    if found is not None:
        ckpt, source = found
        if ckpt["spec"] != spec.to_dict() or ckpt["n_classes"] != n_classes:
            raise UserError(f"{source}: checkpoint is for another architecture or corpus; remove it to restart")
        model.load_state_dict(ckpt["model"])
        head.load_state_dict(ckpt["head"])
        optimiser.load_state_dict(ckpt["optimiser"])
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        epoch, step, history, running = ckpt["epoch"], ckpt["step"], ckpt["history"], ckpt["running"]
        if not lead:  # the saved sums are already totals over all ranks: count them once
            running |= {"loss": 0.0, "correct": 0, "seen": 0}
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed from %s at epoch %d step %d", source, epoch, step)
    if world > 1:  # every rank must resume from the same position, or the all-reduces pair different steps
        positions: list = [None] * world
        dist.all_gather_object(positions, (epoch, step))
        if len(set(positions)) != 1:
            raise RuntimeError(f"DDP ranks resumed from different checkpoints (epoch, step): {positions}")

    def reduce_running() -> None:
        """Sum the loss/accuracy counters over ranks (rank 0 then holds the totals, the others zero)."""
        if world == 1:
            return
        t = torch.tensor([running["loss"], running["correct"], running["seen"]], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        running["loss"], running["correct"], running["seen"] = float(t[0]), int(t[1]), int(t[2])
        if not lead:
            running.update(loss=0.0, correct=0, seen=0)

    def checkpoint() -> None:
        if lead:
            _save_atomic({"spec": spec.to_dict(), "n_classes": n_classes, "model": model.state_dict(),
                          "head": head.state_dict(), "optimiser": optimiser.state_dict(),
                          "scaler": scaler.state_dict(), "epoch": epoch, "step": step, "history": history,
                          "running": running, "torch_rng": torch.get_rng_state(), "recipe": asdict(recipe),
                          "seed": seed, "world_size": world}, ckpt_path, prev_path if keep_previous[0] else None)
            keep_previous[0] = True

    last_checkpoint = [time.monotonic()]
    last_progress = [time.monotonic()]

    def after_step(stop: _StopRequested) -> tuple[bool, bool]:
        """(stop now, checkpoint now): a stop request, or a periodic mid-epoch checkpoint being due."""
        wanted = stop.signum is not None or (stop_after_steps is not None and steps_done >= stop_after_steps)
        due = recipe.checkpoint_minutes > 0 and time.monotonic() - last_checkpoint[0] >= 60 * recipe.checkpoint_minutes
        if world > 1:  # every rank must act at the same step, or the others wait in all-reduce forever
            flags = torch.tensor([int(wanted), int(due)], device=device)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            wanted, due = bool(flags[0].item()), bool(flags[1].item())
        return wanted, due

    wavs = [u.path for u in utts] if recipe.speed_perturb or augmenter is not None else None
    dataset = CropDataset(store, ids, labels, recipe.crop_frames, seed, wavs=wavs, speed_perturb=recipe.speed_perturb,
                          augmenter=augmenter, n_speakers=len(speakers))
    steps_done = 0
    with _StopRequested() as stop:
        while epoch < recipe.epochs:
            margin = recipe.margin_at(epoch)
            head.set_margin(margin)
            order = epoch_order(len(ids), steps_per_epoch * global_batch, seed, epoch)
            batches = rank_batches(order, recipe.batch_size, rank, world)
            loader = DataLoader(dataset, batch_sampler=batches[step:], num_workers=recipe.num_workers,
                                pin_memory=device.type == "cuda")
            net.train()
            # if resumed at an epoch's end
            lr = recipe.lr_at(epoch, min(step, steps_per_epoch - 1), steps_per_epoch, world)
            with phase("epoch", epoch):
                t_wait = time.monotonic()
                for x, y in loader:
                    t_got = time.monotonic()
                    running["wait"] += t_got - t_wait
                    lr = recipe.lr_at(epoch, step, steps_per_epoch, world)
                    for group in optimiser.param_groups:
                        group["lr"] = lr
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    logits = net(x, y)
                    loss = torch.nn.functional.cross_entropy(logits, y)
                    optimiser.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimiser)
                    scaler.update()
                    running["loss"] += float(loss.detach()) * len(y)
                    running["correct"] += int((logits.argmax(1) == y).sum())
                    running["seen"] += len(y)
                    step += 1
                    steps_done += 1
                    t_wait = time.monotonic()
                    running["seconds"] += t_wait - t_got
                    if lead and t_wait - last_progress[0] >= PROGRESS_S:  # long epochs: a line a minute
                        last_progress[0] = t_wait
                        seen = max(running["seen"], 1)
                        log.info("epoch %d/%d step %d/%d loss %.3f acc %.3f %.0f samples/s", epoch + 1, recipe.epochs,
                                 step, steps_per_epoch, running["loss"] / seen, running["correct"] / seen,
                                 running["seen"] / max(running["seconds"] + running["wait"], 1e-9))
                    wanted, due = after_step(stop)
                    if wanted or due:
                        reduce_running()
                        checkpoint()
                        last_checkpoint[0] = time.monotonic()
                    if wanted:
                        raise Preempted(f"stopped at epoch {epoch} step {step}; checkpoint in {ckpt_path}")
            reduce_running()
            seconds = running["seconds"] + running["wait"]
            history.append({
                "epoch": epoch + 1, "loss": running["loss"] / max(running["seen"], 1),
                "accuracy": running["correct"] / max(running["seen"], 1), "lr": lr, "margin": margin,
                "seconds": round(seconds, 3), "samples_per_s": running["seen"] / max(seconds, 1e-9),
                "data_wait_share": running["wait"] / max(seconds, 1e-9),
            })
            if lead:
                log.info("epoch %d/%d loss %.3f acc %.3f lr %.4f margin %.2f %.1f s", epoch + 1, recipe.epochs,
                         history[-1]["loss"], history[-1]["accuracy"], lr, margin, seconds)
            epoch, step = epoch + 1, 0
            running = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0, "wait": 0.0}
            if lead and recipe.average_last > 1:
                _keep_epoch_weights(epochs_dir, epoch, model, recipe.average_last)
            checkpoint()
            last_checkpoint[0] = time.monotonic()
            if lead:
                _write_history(out_dir / "history.csv", history)

    digests = [_digest(model, head)]
    if world > 1:  # DDP keeps the replicas identical; check it, since a silent divergence would taint the study
        for buffer in model.buffers():  # BN statistics of the last step are per rank; DDP's rule: rank 0's count
            dist.broadcast(buffer, 0)
        digests = [None] * world
        dist.all_gather_object(digests, _digest(model, head))
        if len(set(digests)) != 1:
            raise RuntimeError(f"DDP ranks ended with different weights: {digests}")
    if not lead:
        return out_dir / "model.pt"
    averaged = list(range(max(recipe.epochs - recipe.average_last + 1, 1), recipe.epochs + 1))
    if len(averaged) > 1:
        state = average_state([epochs_dir / f"epoch{e:04d}.pt" for e in averaged])
        log.info("model.pt: mean of the weights after epochs %d..%d", averaged[0], averaged[-1])
    else:
        state = model.state_dict()
    info = summarize(spec) | {"seed": seed, "n_classes": n_classes, "speakers": len(speakers),
                              "train_utterances": len(ids), "epochs": recipe.epochs,
                              "samples_per_epoch": steps_per_epoch * global_batch, "world_size": world,
                              "averaged_epochs": averaged, "recipe": asdict(recipe), "device": str(device),
                              "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype else "off",
                              "final_weights_sha256_per_rank": digests}
    (out_dir / "spec.json").write_text(json.dumps(info, indent=2, default=str))
    _save_atomic({"spec": spec.to_dict(), "model": state}, out_dir / "model.pt")
    return out_dir / "model.pt"


def _keep_epoch_weights(epochs_dir: Path, epoch: int, model: torch.nn.Module, keep: int) -> None:
    """Save the backbone after ``epoch`` (1-based) and drop the files no longer among the last ``keep``."""
    epochs_dir.mkdir(exist_ok=True)
    _save_atomic(model.state_dict(), epochs_dir / f"epoch{epoch:04d}.pt")
    for old in epochs_dir.glob("epoch*.pt"):
        if int(old.stem.removeprefix("epoch")) <= epoch - keep:
            old.unlink()


def _write_history(path: Path, history: list[dict]) -> None:
    with atomic_write(path) as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
                             for k, v in row.items()})
