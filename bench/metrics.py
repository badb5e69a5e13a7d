"""Time eer + min_dcf on 10^6 random trials against a plain numpy baseline measured in the same run.

Run: .venv/bin/python bench/metrics.py [--trials N] [--repeats R]

The baseline is the bare NIST/WeSpeaker recipe (argsort + cumulative sums, no input checks, no tie
merging), computing EER and minDCF from one sort. svbench.metrics sorts once per call (eer and
min_dcf are separate calls), validates input and merges tied scores, so the ratio shows what that
costs.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from svbench.instrument.sidecar import cpu_model  # noqa: E402
from svbench.metrics import compute_all, eer, min_dcf  # noqa: E402


def baseline(scores: np.ndarray, labels: np.ndarray, p: float = 0.01) -> tuple[float, float]:
    y = labels[np.argsort(scores)]
    fnr = np.cumsum(y) / y.sum()
    fpr = 1 - np.cumsum(~y) / (~y).sum()
    d = fnr - fpr
    x1 = np.flatnonzero(d >= 0)[0]
    x2 = x1 - 1
    a = d[x1] / (d[x1] - d[x2])
    e = fnr[x1] + a * (fnr[x2] - fnr[x1])
    dcf = np.min(fnr * p + fpr * (1 - p)) / min(p, 1 - p)
    return float(e), float(dcf)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10**6)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    labels = rng.random(args.trials) < 0.1
    scores = rng.normal(size=args.trials) + 2.0 * labels

    # Same numbers on tie-free data, so the comparison is like for like.
    ours = (eer(scores, labels), min_dcf(scores, labels))
    ref = baseline(scores, labels)
    assert np.allclose(ours, ref, atol=1e-12), (ours, ref)

    t_ours = median_time(lambda: (eer(scores, labels), min_dcf(scores, labels)), args.repeats)
    t_all = median_time(lambda: compute_all(scores, labels), args.repeats)
    t_base = median_time(lambda: baseline(scores, labels), args.repeats)

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} {platform.machine()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}")
    print(f"trials: {args.trials:,} (10% targets), median of {args.repeats} runs")
    print(f"EER {ours[0]:.6f}, minDCF(0.01) {ours[1]:.6f} (baseline agrees)")
    print(f"svbench eer + min_dcf:        {t_ours * 1e3:8.1f} ms")
    print(f"svbench compute_all:          {t_all * 1e3:8.1f} ms  (one sort, minDCF at 0.01 and 0.05)")
    print(f"baseline argsort+cumsum:      {t_base * 1e3:8.1f} ms  (one sort, no checks, no tie merging)")
    print(f"ratio eer+min_dcf / baseline: {t_ours / t_base:8.2f}x")
    print(f"ratio compute_all / baseline: {t_all / t_base:8.2f}x")


if __name__ == "__main__":
    main()
