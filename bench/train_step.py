"""Does data loading keep up with training? Run by hand: ``.venv/bin/python bench/train_step.py``.

``--precision`` only times ResNet34 in float32 against AMP (bf16) + channels-last in one run (segments/s,
ratio; ``bench/gpu_check.sh`` part 2); ``--steady-s S`` only runs training steps for S seconds, logging each
step's end (part 4, the sidecar's overhead).

1. Forward+backward(+SGD) step time of ResNet34 and ResNet293 (m = 32, batch 32, 200 frames x 80 bins,
   AAM head) on the current device, with the training loop's settings (AMP, channels-last on CUDA).
2. Data-loader segments/s from a generated memory-mapped feature store (clean crops, as in training
   without augmentation), and from generated wavs with the VoxCeleb recipe's on-the-fly path
   (speed perturbation + MUSAN/RIR at probability 0.6: fbank computed in the workers).
3. The ratio loader / ResNet34 consumption (issue 3 asks for at least 5x).

On a CPU the defaults time few steps, and ResNet293 with batch 4: batch 32 at 200 frames needs more than
22 GB of memory for its activations (it was OOM-killed on a 23 GB machine); its segments/s are per segment.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from svbench.augment import Augmenter
from svbench.corpus.audio import write_wav
from svbench.features import FeatureStore
from svbench.models import AAMSoftmax, build, preset
from svbench.models.loading import resolve_device
from svbench.training import CropDataset, TrainingModel, amp_mode, epoch_order, grad_scaler, train_step


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


N_CLASSES = 17982  # VoxCeleb2 x 3 speeds


def build_parts(name: str, device: torch.device, width: int = 32, dtype: torch.dtype | None | str = "auto",
                channels_last: bool | None = None) -> tuple[TrainingModel, torch.optim.Optimizer, object]:
    """Model with its AAM head, optimiser and gradient scaler as training builds them. ``dtype``: the autocast
    dtype (None: float32; "auto": the training loop's choice); ``channels_last`` None follows training."""
    dtype = amp_mode("auto", device) if dtype == "auto" else dtype
    spec = preset(name, width)
    model = build(spec).to(device)
    if channels_last if channels_last is not None else device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    head = AAMSoftmax(spec.embedding, N_CLASSES, scale=32.0, margin=0.2).to(device)
    net = TrainingModel(model, head, dtype)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    return net, opt, grad_scaler(device, dtype)


def build_step(name: str, device: torch.device, dtype: torch.dtype | None, batch: int, frames: int, *,
               width: int = 32, channels_last: bool | None = None) -> Callable[[], object]:
    """One training step (the loop's own ``train_step``: forward, backward, SGD update, loss read back) on a
    fixed random batch, as a closure. ``dtype``: the autocast dtype (None: float32); ``channels_last`` None
    follows training (on for CUDA)."""
    net, opt, scaler = build_parts(name, device, width, dtype, channels_last)
    x = torch.randn(batch, frames, 80, device=device)
    y = torch.randint(0, N_CLASSES, (batch,), device=device)
    return lambda: train_step(net, opt, scaler, x, y)


def time_steps(step: Callable[[], object], device: torch.device, steps: int, warmup: int) -> float:
    """Seconds per call of ``step`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / steps


def step_time(name: str, device: torch.device, amp: str, batch: int, frames: int, steps: int, warmup: int) -> float:
    """Seconds per training step (forward, backward, SGD update) after ``warmup`` untimed steps."""
    return time_steps(build_step(name, device, amp_mode(amp, device), batch, frames), device, steps, warmup)


def low_precision(device: torch.device) -> torch.dtype:
    """bf16 for autocast: the training loop's choice on CUDA (fp16 where bf16 is not supported); on a CPU,
    where training never uses it, bf16 all the same so that the comparison's code runs anywhere."""
    if device.type != "cuda":
        return torch.bfloat16
    return amp_mode("bf16", device) or torch.bfloat16


def precision_rates(device: torch.device, batch: int, frames: int, steps: int, warmup: int, width: int = 32,
                    name: str = "ResNet34") -> list[dict]:
    """Segments/s of one model in float32 (NCHW, torch's default TF32 convolutions; and strict, TF32 off)
    and with AMP (bf16 autocast) + channels-last, in this one process, one after the other."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    low = low_precision(device)
    configs = [("fp32", None, False, flags), ("fp32 strict (TF32 off)", None, False, (False, False)),
               (f"{str(low).removeprefix('torch.')} + channels-last", low, True, flags)]
    rows = []
    try:
        for label, dtype, cl, (conv_tf32, mm_tf32) in configs:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv_tf32, mm_tf32
            step = build_step(name, device, dtype, batch, frames, width=width, channels_last=cl)
            seconds = time_steps(step, device, steps, warmup)
            rows.append({"config": label, "dtype": str(dtype or torch.float32).removeprefix("torch."),
                         "channels_last": cl, "cudnn_tf32": conv_tf32, "step_s": seconds,
                         "segments_per_s": batch / seconds, "steps": steps})
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    return rows


def steady(device: torch.device, batch: int, frames: int, seconds: float, log_path: Path, width: int = 32,
           warmup: int = 5) -> int:
    """Training steps (ResNet34, the training loop's precision and layout) for ``seconds`` or until SIGTERM,
    each step's end written to ``log_path`` as monotonic ns: the throughput of any window can be read from it
    afterwards (``bench/gpu_parts.py`` runs the sidecar beside it in some windows). Returns the steps."""
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    step = build_step("ResNet34", device, amp_mode("auto", device), batch, frames, width=width)
    for _ in range(warmup):
        step()
    n, end = 0, time.monotonic() + seconds
    with open(log_path, "w") as log:
        log.write(f"ready {time.monotonic_ns()} batch {batch}\n")
        log.flush()
        while not stop and time.monotonic() < end:
            step()  # reads the loss back: the GPU's work for this step is done when it returns
            n += 1
            log.write(f"{time.monotonic_ns()}\n")
            if n % 16 == 0:
                log.flush()
    return n


def make_store(root: Path, n_utts: int, rng: np.random.Generator) -> tuple[FeatureStore, list[str]]:
    """A one-shard float16 store of random 2-10 s utterances, laid out like `svbench features`."""
    root.mkdir(parents=True)
    lengths = rng.integers(200, 1000, n_utts)
    np.save(root / "shard0000.npy", rng.standard_normal((int(lengths.sum()), 80)).astype(np.float16))
    ids, rows, offset = [], [], 0
    for k, n in enumerate(lengths):
        ids.append(f"spk{k % 100:03d}/u{k:05d}.wav")
        rows.append(f"{ids[-1]}\t0\t{offset}\t{n}\n")
        offset += int(n)
    (root / "index.tsv").write_text("utt\tshard\toffset\tframes\n" + "".join(rows))
    return FeatureStore(root), ids


def loader_rate(dataset: CropDataset, n: int, batch: int, workers: int, seconds: float, pin: bool) -> float:
    """Segments per second the DataLoader delivers in steady state (the first batches, worker start-up, excluded)."""
    order = epoch_order(n, n * 50, seed=0, epoch=0)
    batches = [order[k: k + batch] for k in range(0, len(order), batch)]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=pin)
    it = iter(loader)
    for _ in range(max(2 * workers, 2)):
        next(it)
    got, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, _ = next(it)
        got += len(x)
    return got / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--steps", type=int, default=None, help="timed steps per model (default: 20 on CUDA, 3 on CPU)")
    p.add_argument("--steps-293", type=int, default=None, help="timed ResNet293 steps (default: 20 on CUDA, 1 on CPU)")
    p.add_argument("--batch-293", type=int, default=None, help="ResNet293 batch (default: --batch on CUDA, 4 on CPU)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--loader-seconds", type=float, default=10.0)
    p.add_argument("--precision", action="store_true",
                   help="only ResNet34 in float32 against AMP bf16 + channels-last, same run: segments/s and ratio")
    p.add_argument("--width", type=int, default=32, help="base width m of the timed ResNets (--precision, --steady-s)")
    p.add_argument("--steady-s", type=float, default=0.0,
                   help="only ResNet34 training steps for this long (or until SIGTERM), step ends to --steps-log")
    p.add_argument("--steps-log", type=Path, default=Path("steps.log"))
    a = p.parse_args()

    device = resolve_device(a.device)
    cuda = device.type == "cuda"
    if a.steady_s:
        n = steady(device, a.batch, a.frames, a.steady_s, a.steps_log, width=a.width, warmup=5 if cuda else 1)
        print(f"steady: {n} steps of batch {a.batch} logged to {a.steps_log}")
        return
    if a.precision:
        print(f"machine: {machine(device)}")
        rows = precision_rates(device, a.batch, a.frames, a.steps or (20 if cuda else 2), 5 if cuda else 1, a.width)
        for row in rows:
            print(f"ResNet34 {row['config']:<26} batch {a.batch} step {row['step_s'] * 1e3:8.1f} ms -> "
                  f"{row['segments_per_s']:8.1f} segments/s")
        print(f"AMP + channels-last / fp32: {rows[2]['segments_per_s'] / rows[0]['segments_per_s']:.2f}x "
              f"(/ strict fp32: {rows[2]['segments_per_s'] / rows[1]['segments_per_s']:.2f}x)")
        return
    steps = a.steps or (20 if cuda else 3)
    steps293 = a.steps_293 or (20 if cuda else 1)
    dtype = amp_mode(a.amp, device)
    print(f"machine: {machine(device)}")
    print(f"device: {device}, amp: {str(dtype).removeprefix('torch.') if dtype else 'off'}, batch {a.batch}, "
          f"{a.frames} frames x 80 bins")

    consumption = {}
    batch293 = a.batch_293 or (a.batch if cuda else 4)
    for name, n, b in (("ResNet34", steps, a.batch), ("ResNet293", steps293, batch293)):
        s = step_time(name, device, a.amp, b, a.frames, n, warmup=3 if cuda else 1)
        consumption[name] = b / s
        print(f"{name:<10} batch {b:3d} step {s * 1000:9.1f} ms ({n} timed steps) -> consumes "
              f"{consumption[name]:8.1f} segments/s")

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, ids = make_store(root / "features", 2000, rng)
        clean = CropDataset(store, ids, [0] * len(ids), a.frames, seed=0)
        rate_clean = loader_rate(clean, len(ids), a.batch, a.workers, a.loader_seconds, cuda)
        # the on-the-fly path: wavs for the same utterances, a MUSAN-like folder and RIRs
        wavs = []
        for k in range(200):
            wavs.append(root / "wav" / f"u{k:05d}.wav")
            wavs[-1].parent.mkdir(exist_ok=True)
            write_wav(wavs[-1], 0.1 * rng.standard_normal(int(16000 * rng.uniform(2, 10))))
        for kind, sec in (("noise", 5), ("speech", 30), ("music", 60)):
            (root / "musan" / kind).mkdir(parents=True)
            for j in range(3):
                write_wav(root / "musan" / kind / f"{j}.wav", 0.1 * rng.standard_normal(16000 * sec))
        (root / "rir").mkdir()
        for j in range(5):
            t = np.arange(8000) / 16000
            write_wav(root / "rir" / f"{j}.wav", 0.5 * rng.standard_normal(8000) * np.exp(-t / 0.1))
        aug = CropDataset(store, ids[:200], [0] * 200, a.frames, seed=0, wavs=wavs, speed_perturb=True,
                          augmenter=Augmenter(root / "musan", root / "rir", 0.6), n_speakers=100)
        rate_aug = loader_rate(aug, 200, a.batch, a.workers, a.loader_seconds, cuda)

    need = consumption["ResNet34"]
    print(f"loader, clean crops from the memory-mapped store: {rate_clean:9.1f} segments/s with {a.workers} workers"
          f" -> {rate_clean / need:6.1f}x ResNet34's consumption")
    print(f"loader, speed perturbation + MUSAN/RIR (p 0.6), fbank in the workers: {rate_aug:9.1f} segments/s"
          f" -> {rate_aug / need:6.1f}x ResNet34's consumption")


if __name__ == "__main__":
    main()
