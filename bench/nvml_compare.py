"""Per phase and GPU: NVML counter energy against integrated instant power, from one trace.

``python bench/nvml_compare.py DIR`` reads ``DIR/trace.csv.zst`` (or an earlier version's ``trace.csv``),
``DIR/markers.jsonl`` and ``DIR/sidecar.json`` as ``svbench monitor`` leaves them. For every phase and every NVML
channel it prints the counter energy (``nvmlDeviceGetTotalEnergyConsumption`` deltas, what ``svbench energy join``
reports as method ``counter``), the trapezoid over the ``power`` rows of the same channel (instant power,
``NVML_FI_DEV_POWER_INSTANT``; the join never integrates them when a counter exists) and over
``power_avg`` where the trace has it, and their ratio to the counter. It uses the join's own
integration functions, so what it checks is what the study reports.

With the matmul counts of ``bench/gpu_burn.py --counts`` (``DIR/burn_counts.json``, or ``--counts FILE``) it
also checks the repeat-and-delay protocol of Yang et al. (SC'24): the energy per matmul of the long burns
is the known load; each short burst's expected energy is its matmuls × that figure, and the single bursts
and the repeat-and-delay set (``rburst`` phases) are compared with it, through the counter and through
the trapezoid of instant power. ``advice`` turns the figures into which reading to trust.
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
from svbench.instrument.markers import attempts, phases, read_markers  # noqa: E402
from svbench.instrument.nodes import MARKERS, SIDECAR, trace_path  # noqa: E402
from svbench.instrument.trace import read_trace  # noqa: E402

LONG_S = 5.0  # phases at least this long are the ones the two figures should agree on
AGREE = 0.05  # |trapezoid / counter - 1| below this on long phases: "agree"
REPEAT_AGREE = 0.10  # repeat-and-delay mean burst energy within this of the known load
SINGLE_SPREAD = 0.05  # a single burst's spread (CV) below this: that reading resolves one burst

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


def verdict(frame: pd.DataFrame, long_s: float = LONG_S) -> tuple[bool, str]:
    """Whether instant power and the counter agree within AGREE on every phase of at least ``long_s``."""
    if frame.empty or "power_ratio" not in frame:
        return False, "no NVML energy counter and instant power to compare"
    long = frame[frame["seconds"] >= long_s].dropna(subset=["power_ratio"])
    if long.empty:
        return False, f"no phase of {long_s:g} s or more"
    worst = float((long["power_ratio"] - 1).abs().max())
    ok = worst < AGREE
    return ok, (f"{'agree' if ok else 'DISAGREE'}: on {len(long)} phases of >= {long_s:g} s, trapezoid/counter "
                f"within {worst:.2%} (threshold {AGREE:.0%})")


def read_counts(path: Path) -> dict[tuple[str, int | None], int]:
    """(phase, index) -> matmuls, from ``gpu_burn.py --counts``."""
    data = json.loads(Path(path).read_text())
    return {(c["phase"], c["index"]): int(c["matmuls"]) for c in data["phases"]}


def _key(row: pd.Series) -> tuple[str, int | None]:
    index = row["index"]
    return str(row["phase"]), None if pd.isna(index) else int(index)


def _ratios(rows: pd.DataFrame, column: str, expected: np.ndarray) -> dict[str, float | None]:
    """Per-burst ``column`` / expected: mean, spread (coefficient of variation) and total / total expected."""
    if column not in rows or not len(rows):
        return {"mean": None, "cv": None, "total": None}
    got = rows[column].to_numpy(dtype=float)
    ok = np.isfinite(got) & (expected > 0)
    if not ok.any():
        return {"mean": None, "cv": None, "total": None}
    r = got[ok] / expected[ok]
    cv = float(np.std(r, ddof=1) / np.mean(r)) if ok.sum() > 1 and np.mean(r) > 0 else None
    return {"mean": float(np.mean(r)), "cv": cv, "total": float(got[ok].sum() / expected[ok].sum())}


def known_load(frame: pd.DataFrame, counts: dict[tuple[str, int | None], int]) -> dict:
    """Single bursts (``short``) and the repeat-and-delay set (``rburst``) against the known load: each burst's
    matmuls × the energy per matmul of the long burns (counter). Ratios near 1 mean the reading is right."""
    out: dict = {"j_per_matmul": None, "single": None, "repeat": None, "repeat_phase": None}
    if frame.empty or "counter_j" not in frame or not counts:
        return out
    gpu = frame[frame["channel"] == sorted(frame["channel"].unique())[0]]  # one GPU: the one the burn ran on
    matmuls = np.array([counts.get(_key(row), 0) for _, row in gpu.iterrows()], dtype=float)
    burns = (gpu["phase"] == "burn").to_numpy() & (matmuls > 0)
    if not burns.any() or not np.isfinite(gpu["counter_j"].to_numpy()[burns]).all():
        return out
    per = float(gpu["counter_j"].to_numpy()[burns].sum() / matmuls[burns].sum())
    out["j_per_matmul"] = per
    for label, name in (("single", "short"), ("repeat", "rburst")):
        pick = (gpu["phase"] == name).to_numpy() & (matmuls > 0)
        if not pick.any():
            continue
        rows, expected = gpu[pick], matmuls[pick] * per
        out[label] = {"bursts": int(pick.sum()), "seconds": float(rows["seconds"].mean()),
                      "counter": _ratios(rows, "counter_j", expected),
                      "instant": _ratios(rows, "power_trapezoid_j", expected)}
    whole = gpu[gpu["phase"] == "repeat"]
    if len(whole) and "power_ratio" in whole:
        out["repeat_phase"] = {"seconds": float(whole["seconds"].iat[0]), "ratio": float(whole["power_ratio"].iat[0])}
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def advice(frame: pd.DataFrame, load: dict, long_s: float = LONG_S) -> str:
    """Which reading to trust, from the figures: long phases, single bursts, the repeat-and-delay set."""
    lines = []
    long = frame[frame["seconds"] >= long_s].dropna(subset=["power_ratio"]) if "power_ratio" in frame else frame[:0]
    if len(long):
        worst = float((long["power_ratio"] - 1).abs().max())
        word = "agree" if worst < AGREE else "DISAGREE"
        lines.append(f"counter and instant-power integral {word} within {worst:.2%} on phases >= {long_s:g} s")
    else:
        lines.append(f"no phase of >= {long_s:g} s with both counter and instant power: nothing to trust yet")
    single, repeat = load.get("single"), load.get("repeat")
    resolves = False
    if single:
        c, i = single["counter"], single["instant"]
        resolves = c["cv"] is not None and c["cv"] < SINGLE_SPREAD
        lines.append(f"single bursts of {single['seconds']:.2g} s: counter spread {_pct(c['cv'])} (CV) around "
                     f"{_pct(c['mean'])} of the known load, instant-power trapezoid spread {_pct(i['cv'])}; "
                     + ("the counter resolves a single burst (it does not share the power sensor's duty cycle)"
                        if resolves else "a single burst < 1 s is unreliable from either reading"))
    if repeat:
        c, i = repeat["counter"], repeat["instant"]
        c_off = None if c["total"] is None else abs(c["total"] - 1)
        i_off = None if i["total"] is None else abs(i["total"] - 1)
        c_good = c_off is not None and c_off < REPEAT_AGREE
        i_good = i_off is not None and i_off < REPEAT_AGREE
        if c_good and resolves:
            trust = "for bursts < 1 s the counter is right even for a single burst"
        elif c_good:
            trust = ("for bursts < 1 s trust only the counter, and only summed over repeat-and-delay bursts"
                     + (" (the instant-power integral gets as close)" if i_good else ""))
        elif i_good:
            trust = "for bursts < 1 s trust the instant-power integral of repeat-and-delay bursts, not the counter"
        else:
            trust = "even repeat-and-delay does not recover the known load: do not trust bursts < 1 s from NVML"
        lines.append(f"repeat-and-delay ({repeat['bursts']} bursts, starts staggered over the sensor period): "
                     f"counter total off the known load by {_pct(c_off)}, instant-power trapezoid by {_pct(i_off)}; "
                     + trust)
    return "\n".join(lines)


def summary(run_dir: Path, counts: Path | None = None, long_s: float = LONG_S) -> dict:
    """Everything ``gpu_check`` reports from one monitored gpu_burn run, as plain numbers (JSON-ready)."""
    frame = compare(trace_path(run_dir), run_dir / MARKERS)
    counts = counts or run_dir / "burn_counts.json"
    load = known_load(frame, read_counts(counts)) if counts.exists() else known_load(frame, {})
    trace = read_trace(trace_path(run_dir))
    t = np.unique(trace.loc[trace["sensor"] == "nvml", "t_mono_ns"].to_numpy()) / 1e9
    long = frame[frame["seconds"] >= long_s] if len(frame) else frame
    out: dict = {"read_interval_ms": float(1e3 * np.median(np.diff(t))) if len(t) > 1 else None,
                 "long_s": long_s, "long_phases": int(len(long)), "worst_long": None, "long_ratio": None,
                 "worst_long_avg": None, "known_load": load}
    if len(long) and "power_ratio" in long and long["power_ratio"].notna().any():
        out["worst_long"] = float((long["power_ratio"] - 1).abs().max())
        out["long_ratio"] = float(long["power_trapezoid_j"].sum() / long["counter_j"].sum())
    if len(long) and "power_avg_ratio" in long and long["power_avg_ratio"].notna().any():
        out["worst_long_avg"] = float((long["power_avg_ratio"] - 1).abs().max())
    out["ok"], out["verdict"] = verdict(frame, long_s)
    out["advice"] = advice(frame, load, long_s) if len(frame) else "no NVML rows in the trace"
    return out


def _print_sidecar(run_dir: Path) -> bool:
    """The NVML facts of sidecar.json; False when NVML was not available."""
    meta_path = run_dir / SIDECAR
    if not meta_path.exists():
        return True
    meta = json.loads(meta_path.read_text())
    for s in meta.get("sensors", []):
        if s["name"] == "nvml":
            if not s["available"]:
                print(f"NVML not available: {s['reason']}")
                return False
            md = s.get("metadata", {})
            print(f"driver {md.get('driver_version')}; CUDA_VISIBLE_DEVICES={md.get('cuda_visible_devices')}")
            for ch, dev in md.get("devices", {}).items():
                notes = f"; {'; '.join(dev['notes'])}" if dev["notes"] else ""
                print(f"  {ch}: {dev['name']} {dev['uuid']} energy counter {dev['energy_counter']}, "
                      f"power from {dev['power_source']}{notes}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--counts", type=Path, help="gpu_burn.py --counts output (default: RUN_DIR/burn_counts.json)")
    parser.add_argument("--long-s", type=float, default=LONG_S, help="phases this long must agree")
    args = parser.parse_args(argv)
    if not trace_path(args.run_dir).exists() or not (args.run_dir / MARKERS).exists():
        print(f"{args.run_dir}: no trace and markers of a monitored run")
        return 1
    trace = read_trace(trace_path(args.run_dir))
    frame = compare(trace_path(args.run_dir), args.run_dir / MARKERS)
    if not _print_sidecar(args.run_dir):
        return 1
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
    long_s = args.long_s
    # whole-run sums per channel over the long phases and the short ones, where the sampling shows
    for label, part in ((f"phases >= {long_s:g} s", frame[frame["seconds"] >= long_s]),
                        ("phases < 1 s", frame[frame["seconds"] < 1.0])):
        if len(part) and "power_trapezoid_j" in part and "counter_j" in part:
            c, p = part["counter_j"].sum(), part["power_trapezoid_j"].sum()
            spread = (part["power_ratio"] - 1).abs().max() if "power_ratio" in part else float("nan")
            ratio = p / c if c else float("nan")
            print(f"{label}: counter {c:.1f} J, instant-power trapezoid {p:.1f} J, ratio {ratio:.4f}"
                  f" (worst single phase off by {spread:.2%})")
    counts = args.counts or args.run_dir / "burn_counts.json"
    if counts.exists():
        load = known_load(frame, read_counts(counts))
        if load["j_per_matmul"] is not None:
            print(f"known load: {load['j_per_matmul']:.4g} J per matmul (counter, long burns)")
        print(advice(frame, load, long_s))
    print(NVML_FACTS)
    ok, text = verdict(frame, long_s)
    print(text)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
