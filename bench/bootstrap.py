"""Time 1,000 speaker-bootstrap resamples of a VoxCeleb1-E-sized trial list beside the plain metrics.

Run: .venv/bin/python bench/bootstrap.py [--trials 579818] [--speakers 1251] [--resamples 1000]

The list is random but shaped like VoxCeleb1-E: half target trials, scores with four decimals (ties, as
score files written with a fixed number of digits have). The baseline, measured in the same run, is one
plain `compute_all` (sort, DET curve, EER and minDCF at 0.01 and 0.05); a naive bootstrap would repeat it
per resample, re-sorting each time. The ratio says how many plain computations one resample costs.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from svbench.metrics import compute_all  # noqa: E402
from svbench.uncertainty.bootstrap import resampled_metrics, sort_trials, speaker_counts  # noqa: E402


def trial_list(n: int, speakers: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    enroll = rng.integers(0, speakers, n)
    target = rng.random(n) < 0.5
    test = np.where(target, enroll, (enroll + rng.integers(1, speakers, n)) % speakers)
    scores = np.round(rng.normal(np.where(target, 0.6, 0.1), 0.12), 4)
    return scores, target, enroll, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=579_818)
    parser.add_argument("--speakers", type=int, default=1251)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    scores, target, enroll, test = trial_list(args.trials, args.speakers)

    t0 = time.perf_counter()
    compute_all(scores, target)
    plain_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    trials = sort_trials(scores, target, enroll, test)
    sort_s = time.perf_counter() - t0
    counts = speaker_counts(trials.n_speakers, args.resamples, np.random.default_rng(1))
    t0, last, done = time.perf_counter(), time.perf_counter(), 0
    for start in range(0, args.resamples, 100):  # a progress line every 100 resamples
        resampled_metrics(trials, counts[start: start + 100])
        done = min(start + 100, args.resamples)
        if time.perf_counter() - last > 2:
            last = time.perf_counter()
            print(f"  {done}/{args.resamples} resamples, {last - t0:.1f} s", file=sys.stderr)
    resample_s = time.perf_counter() - t0

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"numpy {np.__version__}")
    print(f"{args.trials} trials, {trials.n_speakers} speakers, {args.resamples} resamples")
    print(f"plain compute_all (baseline): {plain_s * 1000:.1f} ms")
    print(f"sort once: {sort_s * 1000:.1f} ms; {args.resamples} resamples: {resample_s:.2f} s "
          f"({resample_s / args.resamples * 1000:.2f} ms each = {resample_s / args.resamples / plain_s:.2f} x "
          f"the baseline; total with the sort {sort_s + resample_s:.2f} s)")


if __name__ == "__main__":
    main()
