"""Per phase and GPU: NVML counter energy against integrated instant power, from one trace.

``python bench/nvml_compare.py DIR`` reads ``DIR/trace.csv``, ``DIR/markers.jsonl`` and
``DIR/sidecar.json`` as ``svbench monitor`` leaves them. For every phase and every NVML channel it
prints the counter energy (``nvmlDeviceGetTotalEnergyConsumption`` deltas, what ``svbench energy join``
reports as method ``counter``), the trapezoid over the ``power`` rows of the same channel (instant power,
``NVML_FI_DEV_POWER_INSTANT``; the join never integrates them when a counter exists) and over
``power_avg`` where the trace has it, and their ratio to the counter. It uses the join's own
integration functions, so what it checks is what the study reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from svbench.energy.join import join_trace  # noqa: E402
from svbench.energy.markers import attempts, phases, read_markers  # noqa: E402
from svbench.energy.trace import read_trace  # noqa: E402

LONG_S = 5.0  # phases at least this long are the ones the two figures should agree on
AGREE = 0.05  # |trapezoid / counter - 1| below this on long phases: "agree"

NVML_FACTS = """\
NVML sampling facts (read these before trusting a short phase):
- the counter (nvmlDeviceGetTotalEnergyConsumption, mJ since driver load, Volta+) is what the study uses;
- A100 and H100 measure board power only ~25 % of the time (25 ms of every 100 ms): instant power and
  the counter both come from those samples, so phases shorter than ~1 s are unreliable (resolved=False
  below 3 sensor periods is a floor, not a guarantee);
- nvmlDeviceGetPowerUsage (power_avg here) is a 1-s average on Ampere and newer except A100: its
  trapezoid lags the load and is never integrated by the join."""


def compare(trace_path: Path, markers_path: Path) -> pd.DataFrame:
    """One row per phase × NVML channel: counter J, trapezoid J of power (and power_avg), ratios."""
    records = read_markers(markers_path)
    joined = join_trace(trace_path, phases(records), attempts(records), quantities=("energy", "power", "power_avg"),
                        counter_first=False)
    nv = joined[(joined["sensor"] == "nvml") & (joined["phase"] != "rest_of_job")]
    if nv.empty:
        return pd.DataFrame()
    keys = ["phase", "index", "attempt", "channel"]
    frame = nv[keys + ["seconds"]].drop_duplicates(keys).set_index(keys)
    for method, prefix in (("counter", "counter"), ("trapezoid", "power"), ("trapezoid power_avg", "power_avg")):
        part = nv[nv["method"] == method].set_index(keys)
        if part.empty:
            continue
        if prefix == "counter":
            frame["counter_j"], frame["counter_coverage"] = part["energy_j"], part["coverage"]
        else:
            frame[f"{prefix}_trapezoid_j"], frame[f"{prefix}_samples"] = part["energy_j"], part["samples"]
        if prefix == "power":
            frame["power_coverage"], frame["resolved"] = part["coverage"], part["resolved"]
    frame = frame.reset_index()
    for quantity in ("power", "power_avg"):
        col = f"{quantity}_trapezoid_j"
        if col in frame and "counter_j" in frame:
            frame[f"{quantity}_ratio"] = frame[col] / frame["counter_j"].where(frame["counter_j"] > 0)
    return frame


def verdict(frame: pd.DataFrame) -> tuple[bool, str]:
    """Whether instant power and the counter agree within AGREE on every phase of at least LONG_S."""
    if frame.empty or "power_ratio" not in frame:
        return False, "no NVML energy counter and instant power to compare"
    long = frame[frame["seconds"] >= LONG_S].dropna(subset=["power_ratio"])
    if long.empty:
        return False, f"no phase of {LONG_S:g} s or more"
    worst = float((long["power_ratio"] - 1).abs().max())
    ok = worst < AGREE
    return ok, (f"{'agree' if ok else 'DISAGREE'}: on {len(long)} phases of >= {LONG_S:g} s, trapezoid/counter "
                f"within {worst:.2%} (threshold {AGREE:.0%})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    if not (args.run_dir / "trace.csv").exists() or not (args.run_dir / "markers.jsonl").exists():
        print(f"{args.run_dir}: no trace.csv and markers.jsonl of a monitored run")
        return 1
    trace = read_trace(args.run_dir / "trace.csv")
    frame = compare(args.run_dir / "trace.csv", args.run_dir / "markers.jsonl")
    meta_path = args.run_dir / "sidecar.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        for s in meta.get("sensors", []):
            if s["name"] == "nvml":
                if not s["available"]:
                    print(f"NVML not available: {s['reason']}")
                    return 1
                md = s.get("metadata", {})
                print(f"driver {md.get('driver_version')}; CUDA_VISIBLE_DEVICES={md.get('cuda_visible_devices')}")
                for ch, dev in md.get("devices", {}).items():
                    notes = f"; {'; '.join(dev['notes'])}" if dev["notes"] else ""
                    print(f"  {ch}: {dev['name']} {dev['uuid']} energy counter {dev['energy_counter']}, "
                          f"power from {dev['power_source']}{notes}")
    if frame.empty:
        print("no NVML rows in the trace")
        return 1
    nv = trace[trace["sensor"] == "nvml"]
    t = np.unique(nv["t_mono_ns"].to_numpy()) / 1e9
    if len(t) > 1:
        print(f"NVML read every {1e3 * float(np.median(np.diff(t))):.1f} ms (median) over {t[-1] - t[0]:.1f} s")
    cols = [c for c in ("phase", "index", "channel", "seconds", "counter_j", "power_trapezoid_j", "power_ratio",
                        "power_avg_trapezoid_j", "power_avg_ratio", "power_samples", "power_coverage", "resolved")
            if c in frame]
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.float_format", "{:.3f}".format):
        print(frame[cols].to_string(index=False))
    # whole-run sums per channel over the long phases and the short ones, where the sampling shows
    for label, part in ((f"phases >= {LONG_S:g} s", frame[frame["seconds"] >= LONG_S]),
                        ("phases < 1 s", frame[frame["seconds"] < 1.0])):
        if len(part) and "power_trapezoid_j" in part and "counter_j" in part:
            c, p = part["counter_j"].sum(), part["power_trapezoid_j"].sum()
            spread = (part["power_ratio"] - 1).abs().max() if "power_ratio" in part else float("nan")
            ratio = p / c if c else float("nan")
            print(f"{label}: counter {c:.1f} J, instant-power trapezoid {p:.1f} J, ratio {ratio:.4f}"
                  f" (worst single phase off by {spread:.2%})")
    print(NVML_FACTS)
    ok, text = verdict(frame)
    print(text)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
