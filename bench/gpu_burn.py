"""A short, marked GPU workload for ``bench/gpu_check.sh``: matmul phases of known length and known work.

Run inside ``svbench monitor`` (which sets ``SVBENCH_MARKERS``); every phase is marked with
``phase(..., sync=torch.cuda.synchronize)`` so that its markers come when the GPU's work is done, not when
the last kernel was queued. Phases:

- ``burn`` ×3 (``--longs``), ``--long-s`` each (default 15 s): float32/TF32 matmuls back to back, full load;
- ``pause`` between them, 3 s idle: the GPU falls back towards idle power;
- ``short`` ×10, 0.3 s of matmuls then 0.3 s idle: single bursts shorter than ~1 s, which NVML on
  A100/H100 (power sampled ~25 % of the time) cannot resolve well;
- ``repeat``: the repeat-and-delay protocol of Yang et al. (SC'24): the same 0.3-s burst ``--repeats`` times
  (phases ``rburst`` 0..N-1), each followed by an idle delay staggered over the sensor's update period
  (``--period-s``, 100 ms on A100/H100, in ``--stagger`` steps), so that the bursts start at every phase
  of the sampling window and the sampling error averages out over the set (which lasts several seconds).

``--counts FILE`` writes how many matmuls each phase did (JSON): the known load that
``bench/nvml_compare.py`` turns into an expected energy per burst (energy per matmul of the long burns).
``--device cpu`` runs the same phases on the CPU, tiny, so that the phase layout can be tested anywhere.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from svbench.instrument.markers import phase


def burn(a: torch.Tensor, b: torch.Tensor, seconds: float, sync: Callable[[], object]) -> int:
    """Matmuls for ``seconds`` of wall time; returns how many were done."""
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(8):  # queue a few before looking at the clock again
            torch.matmul(a, b)
            n += 1
        sync()
    return n


def staggered_delays(n: int, idle_s: float, period_s: float, steps: int) -> list[float]:
    """Idle time after each of ``n`` bursts: ``idle_s`` plus k/steps of the sensor period, k cycling 0..steps-1,
    so that successive bursts start at evenly spread offsets within the sensor's update window."""
    steps = max(steps, 1)
    return [idle_s + (k % steps) * period_s / steps for k in range(n)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--longs", type=int, default=3)
    parser.add_argument("--long-s", type=float, default=15.0)
    parser.add_argument("--pause-s", type=float, default=3.0)
    parser.add_argument("--short-s", type=float, default=0.3)
    parser.add_argument("--shorts", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=0, help="repeat-and-delay bursts (0: no repeat set)")
    parser.add_argument("--period-s", type=float, default=0.1, help="the power sensor's update period")
    parser.add_argument("--stagger", type=int, default=8, help="start offsets per sensor period")
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--counts", type=Path, help="write the matmuls of every phase here (JSON)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("gpu_burn: torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = True
        sync = torch.cuda.synchronize
        size = args.size
    else:
        sync = lambda: None  # noqa: E731
        size = min(args.size, 64)
    device = torch.device(args.device)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    counts: list[dict] = []

    def marked(name: str, index: int | None, seconds: float) -> None:
        t0 = time.monotonic()
        with phase(name, index, sync=sync):
            n = burn(a, b, seconds, sync)
        counts.append({"phase": name, "index": index, "matmuls": n, "seconds": round(time.monotonic() - t0, 6)})

    marked("warmup", None, args.warmup_s)
    for i in range(args.longs):
        marked("burn", i, args.long_s)
        if i < args.longs - 1:
            with phase("pause", i, sync=sync):
                time.sleep(args.pause_s)
    for i in range(args.shorts):
        marked("short", i, args.short_s)
        time.sleep(args.short_s)
    if args.repeats:
        with phase("repeat", sync=sync):
            for i, delay in enumerate(staggered_delays(args.repeats, args.short_s, args.period_s, args.stagger)):
                marked("rburst", i, args.short_s)
                time.sleep(delay)
    total = sum(c["matmuls"] for c in counts if c["phase"] != "warmup")
    if args.counts:
        args.counts.write_text(json.dumps({"size": size, "device": str(device), "phases": counts}, indent=1))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"gpu_burn: {total} matmuls of {size}x{size} on {name}", flush=True)


if __name__ == "__main__":
    main()
