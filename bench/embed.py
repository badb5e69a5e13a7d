"""Embedding throughput per architecture on this machine (run by hand: .venv/bin/python bench/embed.py).

Whole utterances of 2–8 s (random lengths, 80 mel bins) are embedded one length at a time as
svbench.embedding does. Baseline measured in the same run: the same model with oneDNN enabled,
which svbench turns off on CPU because it compiles kernels for every new input length.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from svbench.instrument.sidecar import cpu_model
from svbench.models import ArchSpec, preset

ARCHS = [
    ArchSpec(name="ResNet10_w8", block="basic", stages=(1, 1, 1, 1), width=8),
    preset("ResNet18", width=8),
    preset("ResNet34", width=32),
    preset("ResNet293", width=32),
]


def utterances(n: int, seed: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.randn(1, int(rng.integers(200, 800)), 80) for _ in range(n)]


@torch.no_grad()
def throughput(spec: ArchSpec, utts: list[torch.Tensor], onednn: bool) -> tuple[float, float]:
    """(utterances/s, x real time) over the given utterances."""
    from svbench.models import build

    torch.backends.mkldnn.enabled = onednn
    model = build(spec).eval()
    model(utts[0])  # warm-up
    start = time.perf_counter()
    for x in utts:
        model(x)
    seconds = time.perf_counter() - start
    audio = sum(x.shape[1] for x in utts) / 100  # 10 ms frames
    return len(utts) / seconds, audio / seconds


def main() -> None:
    cpu = cpu_model()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{cpu}, {os.cpu_count()} CPUs"
    print(f"device: {device}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'architecture':<14} {'utt/s':>8} {'x real time':>12} {'oneDNN off utt/s':>17} {'ratio':>7}")
    for spec in ARCHS:
        n = 3 if spec.width >= 32 else 30
        utts = utterances(n)
        base, _ = throughput(spec, utts, onednn=False)
        ups, rt = throughput(spec, utts, onednn=True)
        print(f"{spec.name:<14} {ups:>8.1f} {rt:>12.0f} {base:>17.2f} {ups / base:>6.1f}x")


if __name__ == "__main__":
    main()
