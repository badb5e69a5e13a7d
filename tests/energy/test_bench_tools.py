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

from svbench.instrument import markers as mk
from svbench.instrument.markers import phases, read_markers
from svbench.instrument.sensors.base import Reading
from svbench.instrument.trace import TraceWriter


def _bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
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


def test_gpu_check_dry_runs_every_part_and_writes_one_report(tmp_path):
    """``gpu_check.sh --dry``: the five parts at toy scale on the CPU against the fake NVML, one report whose
    every figure says it is no GPU measurement, and no goal judged."""
    import json

    out = tmp_path / "check out"  # a space in the path, as a user's TMPDIR may have
    env = os.environ | {"SVBENCH_PYTHON": sys.executable, "SVBENCH_GPU_CHECK_OUT": str(out)}
    proc = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--dry"], env=env, cwd=BENCH.parent,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "dry" and [p["id"] for p in report["parts"]] == ["nvml", "amp", "util", "overhead",
                                                                                "demo"]
    for part in report["parts"]:
        assert part["status"] == "ok" and part["exit_status"] == 0, part
        for fig in part["figures"]:
            assert fig["met"] is None and "not a GPU measurement" in fig["note"], fig
    figures = {f["name"]: f["value"] for p in report["parts"] for f in p["figures"]}
    assert figures["NVML read interval (median)"] == pytest.approx(25, rel=0.5)  # the sidecar read the fake NVML
    assert any("+ channels-last / fp32" in name and value > 0 for name, value in figures.items())
    assert figures["utilisation readings"] > 0
    assert (out / "report.md").read_text().startswith("# svbench GPU device check")
    assert "DRY RUN" in (out / "report.md").read_text()


def test_gpu_report_names_a_part_that_ran_past_its_limit(tmp_path):
    """A part killed by its time limit, or one that never wrote its result, fails the check with its log."""
    import json

    report = _bench_module("gpu_report")
    report.setup(tmp_path, dry=False, command="test")
    (tmp_path / "nvml").mkdir()
    (tmp_path / "nvml" / "exit").write_text("124 120.3 120\n")
    (tmp_path / "nvml" / "log.txt").write_text("gpu_burn: started\n")
    result = report.Result("amp", tmp_path / "amp", dry=False)
    result.figure("ratio", 2.5, "×", report.Goal("≥ 2×", lambda v: v >= 2))
    result.status = "ok"
    result.write()
    (tmp_path / "amp" / "exit").write_text("0 10 60\n")
    assert report.report(tmp_path, dry=False) == 2
    data = json.loads((tmp_path / "report.json").read_text())
    nvml, amp = data["parts"][0], data["parts"][1]
    assert nvml["status"] == "failed" and "time limit" in nvml["error"] and "gpu_burn: started" in nvml["log_tail"]
    assert amp["status"] == "ok" and amp["figures"][0]["met"] is True
    assert [p["status"] for p in data["parts"][2:]] == ["not run"] * 3


def test_the_node_scaling_benchmark_joins_every_node(tmp_path):
    """bench/join.py --nodes: a tiny run (6 minutes of a 1-GPU node), each job's energy the nodes' sum."""
    import pandas as pd

    run = subprocess.run([sys.executable, str(BENCH / "join.py"), "--hours", "0.1", "--gpus", "1", "--nodes", "1",
                          "2", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=TIMEOUT * 4)
    assert run.returncode == 0, run.stderr
    assert "time / 1 node" in run.stdout and len([ln for ln in run.stdout.splitlines() if "x |" in ln]) == 2
    one = pd.read_csv(tmp_path / "job1" / "energy.csv")
    two = pd.read_csv(tmp_path / "job2" / "energy.csv")
    total = lambda f: f[(f["component"] == "job_total") & (f["phase"] == "job")]["energy_j"].iloc[0]  # noqa: E731
    assert total(two) == pytest.approx(2 * total(one))
