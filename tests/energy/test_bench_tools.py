"""bench/gpu_check.sh, bench/nvml_compare.py and bench/gpu_burn.py: the parts that run without a GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes.node import TIMEOUT
from fakes.replay import T0, S, exact, marker, power, write_markers
from support import BENCH

from svbench.energy import markers as mk
from svbench.energy.markers import phases, read_markers
from svbench.energy.sensors.base import Reading
from svbench.energy.trace import TraceWriter


def _bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gpu_trace(path: Path, period: float = 0.025, seconds: float = 16.0) -> None:
    """An NVML channel as the sidecar writes it: the counter (exact integral of ``power``), instant power
    sampled at the same reads, and a 1-s running average as power_avg."""
    w = TraceWriter(path)
    for t in np.round(np.arange(0, seconds + 1e-9, period), 6):
        ns = T0 + round(t * S)
        avg = float(np.mean(power(np.linspace(max(t - 1, 0), t, 41))))
        w.write("nvml", [Reading("gpu0", "energy", exact(0, t), "J", "gpu"),
                         Reading("gpu0", "power", float(power(np.array(t))), "W", "gpu"),
                         Reading("gpu0", "power_avg", avg, "W", "gpu"),
                         Reading("gpu0", "utilisation", 100.0, "%", "gpu")], ns, ns)
    w.close()


def test_nvml_compare_counter_against_instant_power(tmp_path, capsys):
    compare = _bench_module("nvml_compare")
    gpu_trace(tmp_path / "trace.csv")
    write_markers(tmp_path / "markers.jsonl", [
        marker("begin", 0.5), marker("start", 1, phase="burn", index=0, pid=1),
        marker("stop", 13, phase="burn", index=0, pid=1, ok=True),
        marker("start", 13.5, phase="short", index=0, pid=1),
        marker("stop", 13.55, phase="short", index=0, pid=1, ok=True), marker("end", 15.5, status=0)])
    frame = compare.compare(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    burn = frame[frame["phase"] == "burn"].iloc[0]
    assert burn["counter_j"] == pytest.approx(exact(1, 13), rel=1e-6)
    assert burn["power_ratio"] == pytest.approx(1.0, abs=0.005)  # 25-ms trapezoid of a smooth profile
    assert burn["power_samples"] == 481 and burn["resolved"] and burn["power_coverage"] == pytest.approx(1.0)
    assert abs(burn["power_avg_ratio"] - 1) > abs(burn["power_ratio"] - 1)  # the 1-s average lags
    short = frame[frame["phase"] == "short"].iloc[0]
    assert not short["resolved"] and short["seconds"] == pytest.approx(0.05)
    ok, text = compare.verdict(frame)
    assert ok and "agree" in text

    assert compare.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "25 %" in out and "A100" in out and "H100" in out and "ratio" in out
    assert "NVML read every 25.0 ms" in out


def test_nvml_compare_disagreement_and_empty(tmp_path):
    compare = _bench_module("nvml_compare")
    w = TraceWriter(tmp_path / "trace.csv")
    for t in np.arange(0, 12.01, 0.1):  # a counter that runs at 300 W while instant power says 200 W
        ns = T0 + round(t * S)
        w.write("nvml", [Reading("gpu0", "energy", 300.0 * t, "J", "gpu"),
                         Reading("gpu0", "power", 200.0, "W", "gpu")], ns, ns)
    w.close()
    write_markers(tmp_path / "markers.jsonl", [marker("begin", 1), marker("end", 11, status=0)])
    frame = compare.compare(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    assert frame.iloc[0]["power_ratio"] == pytest.approx(2 / 3)
    ok, text = compare.verdict(frame)
    assert not ok and "DISAGREE" in text
    assert compare.main([str(tmp_path)]) == 2
    (tmp_path / "empty").mkdir()
    assert compare.main([str(tmp_path / "empty")]) == 1


def test_gpu_burn_phases_on_cpu(tmp_path):
    markers = tmp_path / "markers.jsonl"
    env = os.environ | {mk.ENV: str(markers)}
    subprocess.run([sys.executable, str(BENCH / "gpu_burn.py"), "--device", "cpu", "--long-s", "0.05",
                    "--pause-s", "0.01", "--short-s", "0.01", "--shorts", "2", "--size", "16"],
                   env=env, check=True, timeout=TIMEOUT, capture_output=True)
    got = [(p.name, p.index) for p in phases(read_markers(markers)) if p.complete]
    assert sorted(got, key=str) == sorted([("warmup", None), ("burn", 0), ("burn", 1), ("burn", 2), ("pause", 0),
                                           ("pause", 1), ("short", 0), ("short", 1)], key=str)


def test_gpu_check_fails_clearly_without_a_gpu(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed: no devices were found' >&2\nexit 9\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    root = BENCH.parent
    python = os.environ.get("SVBENCH_PYTHON", sys.executable)
    for path, message in ((f"{tmp_path / 'nothing'}:/usr/bin:/bin", "no nvidia-smi on PATH"),
                          (f"{bin_dir}:/usr/bin:/bin", "nvidia-smi -L failed")):
        env = os.environ | {"PATH": path, "SVBENCH_PYTHON": python, "TMPDIR": str(tmp_path)}
        if message.startswith("no nvidia-smi") and shutil.which("nvidia-smi", path=path):
            continue  # a real one in /usr/bin: the second case still runs
        proc = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], env=env, cwd=root, capture_output=True,
                              text=True, timeout=TIMEOUT)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not list(tmp_path.glob("svbench-gpu-check.*"))  # nothing created before the GPU is found
