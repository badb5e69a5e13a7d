"""The idle baseline (issue 25, class 2): every way to give it is checked, it takes effect from the config file,
and a signal during it ends the run at once with the baseline marked as cut short."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from fakes.node import TIMEOUT, wait_for

from svbench.errors import UserError
from svbench.instrument.config import EnergyConfig
from svbench.instrument.markers import read_markers


@pytest.mark.parametrize("value", ["-1", "nan", "-inf", "inf", "1e400"])
def test_a_baseline_that_is_not_a_finite_number_of_seconds_is_refused(node, tmp_path, value):
    out = tmp_path / "run"
    cmd = node.monitor_cmd(out)
    at = cmd.index("--baseline")
    cmd[at:at + 2] = [f"--baseline={value}"]  # "-inf" as a separate word would be an option to argparse
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 2, run.stderr
    assert "--baseline" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (out / "markers.jsonl").exists()  # nothing started, nothing half-written


@pytest.mark.parametrize("key", ["baseline_s", "rapl.interval_s", "ipmi.timeout_s", "nvml.interval_s",
                                 "estimate.interval_s"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_the_energy_config_refuses_non_finite_numbers_naming_the_key(key, value):
    config: dict = {}
    *parents, name = key.split(".")
    target = config
    for parent in parents:
        target = target.setdefault(parent, {})
    target[name] = value
    with pytest.raises(UserError, match=rf"energy\.{key}: must be a finite number"):
        EnergyConfig.from_dict(config)


def test_the_config_files_baseline_takes_effect(node, tmp_path):
    """`svbench monitor --config c.json` with baseline_s: 1 and no --baseline samples a 1-s baseline."""
    node.config["baseline_s"] = 1.0
    out = tmp_path / "run"
    cmd = node.monitor_cmd(out)
    at = cmd.index("--baseline")
    del cmd[at:at + 2]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    base = [m for m in read_markers(out / "markers.jsonl") if m.phase == "idle_baseline"]
    assert [m.event for m in base] == ["start", "stop"]
    assert (base[1].t_mono_ns - base[0].t_mono_ns) / 1e9 == pytest.approx(1.0, abs=0.2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_baseline_ends_the_run_at_once(node, tmp_path, signum):
    out = tmp_path / "run"
    proc = subprocess.Popen(node.monitor_cmd(out, baseline=60.0), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        wait_for(lambda: any(m.phase == "idle_baseline" for m in read_markers(out / "markers.jsonl")),
                 "the baseline to start")
        sent = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=TIMEOUT)
        assert time.monotonic() - sent < 5  # not the 60 s of the baseline, nor SLURM's KillWait
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum
    markers = read_markers(out / "markers.jsonl")
    stop = next(m for m in markers if m.event == "stop" and m.phase == "idle_baseline")
    assert stop.ok is False  # cut short: not a whole baseline
    assert markers[-1].event == "end" and markers[-1].status == 128 + signum
    assert not any(m.event == "start" and m.phase != "idle_baseline" for m in markers)  # the workload never ran
    assert json.loads((out / "sidecar.json").read_text())  # the measurement closed cleanly
