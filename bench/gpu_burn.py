"""A short, marked GPU workload for ``bench/gpu_check.sh``: matmul phases of known length.

Run inside ``svbench monitor`` (which sets ``SVBENCH_MARKERS``); every phase is marked with
``phase(..., sync=torch.cuda.synchronize)`` so that its markers come when the GPU's work is done, not when
the last kernel was queued. Phases:

- ``burn`` ×3, ``--long-s`` each (default 15 s): float32/TF32 matmuls back to back, full load;
- ``pause`` ×2 between them, 3 s idle: the GPU falls back towards idle power;
- ``short`` ×10, 0.3 s of matmuls then 0.3 s idle: phases shorter than ~1 s, which NVML on A100/H100
  (power sampled ~25 % of the time) cannot resolve well.

``--device cpu`` runs the same phases on the CPU, tiny, so that the phase layout can be tested anywhere.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from svbench.energy.markers import phase


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--long-s", type=float, default=15.0)
    parser.add_argument("--pause-s", type=float, default=3.0)
    parser.add_argument("--short-s", type=float, default=0.3)
    parser.add_argument("--shorts", type=int, default=10)
    parser.add_argument("--size", type=int, default=8192)
    args = parser.parse_args()
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
    with phase("warmup", sync=sync):
        burn(a, b, 1.0, sync)
    total = 0
    for i in range(3):
        with phase("burn", i, sync=sync):
            total += burn(a, b, args.long_s, sync)
        if i < 2:
            with phase("pause", i, sync=sync):
                time.sleep(args.pause_s)
    for i in range(args.shorts):
        with phase("short", i, sync=sync):
            total += burn(a, b, args.short_s, sync)
        time.sleep(args.short_s)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"gpu_burn: {total} matmuls of {size}x{size} on {name}", flush=True)


if __name__ == "__main__":
    main()
