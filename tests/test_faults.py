"""Faults leave nothing behind and secrets stay secret (issue 13): the monitor killed, a BMC that never
answers, two monitors on one folder, a hostile or credential-bearing config.

Black-box through `svbench monitor` and `snakemake -n -p`; fakes only at the OS edge (fake ipmitool)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from fakes.node import TIMEOUT, gone, kill_quietly, started, wait_for
from support import REPO, snakemake

WORKLOAD_WITH_CHILD = r"""
import subprocess, sys, time
from pathlib import Path
from svbench.instrument.markers import phase
child = subprocess.Popen(["sleep", "300"])  # a grandchild of the monitor, as torchrun's workers are
Path(sys.argv[1]).write_text(f"{__import__('os').getpid()} {child.pid}")
with phase("work", 0):
    time.sleep(300)
"""


def _monitor(node, out: Path, *command: str, config: dict | None = None) -> list[str]:
    path = out.parent / f"{out.name}.energy.json"
    path.write_text(json.dumps(config if config is not None else node.config))
    return [sys.executable, "-m", "svbench.cli", "monitor", "--out", str(out), "--config", str(path), "--", *command]


def test_sigkill_of_the_monitor_ends_the_workload_and_its_children(node, tmp_path):
    out, pids = tmp_path / "run", tmp_path / "pids"
    proc = subprocess.Popen(_monitor(node, out, sys.executable, "-c", WORKLOAD_WITH_CHILD, str(pids)))
    try:
        wait_for(lambda: started(out, "work") and pids.exists() and pids.read_text(), "the workload")
        workload, grandchild = map(int, pids.read_text().split())
        os.kill(proc.pid, signal.SIGKILL)  # the OOM killer, scancel --signal=KILL: no handler runs
        proc.wait(timeout=TIMEOUT)
        wait_for(lambda: gone(workload) and gone(grandchild), "the workload and its child to be gone", timeout=20)
    finally:
        for pid in map(int, pids.read_text().split()) if pids.exists() else []:
            kill_quietly(pid)


def test_a_bmc_that_never_answers_does_not_hold_the_job_back(node, tmp_path, monkeypatch):
    """ipmitool hangs at every start; timeout_s × (retries + 1) is far beyond the start-up budget."""
    node.with_ipmi()
    monkeypatch.setenv("FAKE_IPMI_MODE", "hang")
    out = tmp_path / "run"
    config = node.config | {"ipmi": {"interval_s": 0.5, "timeout_s": 30, "retries": 2}}
    t0 = time.monotonic()
    run = subprocess.run(_monitor(node, out, sys.executable, "-c", "print('ran')", config=config),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "ran" in run.stdout, run.stderr[-2000:]
    assert time.monotonic() - t0 < 45  # the 20-s budget, not 30 s x 3 tries
    sensors = {s["name"]: s for s in json.loads((out / "sidecar.json").read_text())["sensors"]}
    assert not sensors["ipmi"]["available"] and "start-up budget" in sensors["ipmi"]["reason"]
    time.sleep(1)
    left = [p for p in psutil.process_iter(["cmdline"]) if any("ipmitool" in a for a in p.info["cmdline"] or [])
            and str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not left, [p.info["cmdline"] for p in left]


def test_a_hung_per_reading_ipmitool_dies_with_a_killed_sidecar(node, tmp_path, monkeypatch):
    node.with_ipmi()
    node.config["ipmi"] = {"interval_s": 0.2, "timeout_s": 30, "retries": 0, "persistent": False}
    mode = tmp_path / "mode"
    monkeypatch.setenv("FAKE_IPMI_MODE_FILE", str(mode))
    out = tmp_path / "run"
    proc = subprocess.Popen(_monitor(node, out, sys.executable, "-c", "import time; time.sleep(60)"))
    try:
        wait_for(lambda: (out / "sidecar.json").exists(), "the sidecar")
        mode.write_text("stall\n")  # the next reading hangs for 30 s
        sidecar = psutil.Process(json.loads((out / "sidecar.json").read_text())["pid"])
        wait_for(lambda: any("ipmitool" in " ".join(c.cmdline()) for c in sidecar.children(recursive=True)),
                 "a hung ipmitool")
        tools = sidecar.children(recursive=True)
        sidecar.kill()
        wait_for(lambda: all(gone(t.pid) for t in tools), "the hung ipmitool to be gone", timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=TIMEOUT)


def test_a_second_monitor_on_the_same_folder_is_refused(node, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(_monitor(node, out, sys.executable, "-c", "import time; time.sleep(30)"))
    try:
        wait_for(lambda: (out / "sidecar.json").exists(), "the first monitor")
        second = subprocess.run(_monitor(node, out, sys.executable, "-c", "print('ran')"), capture_output=True,
                                text=True, timeout=TIMEOUT)
        assert second.returncode == 2 and "ran" not in second.stdout
        line = second.stderr.strip().splitlines()[-1]
        assert str(out) in line and f"PID {first.pid}" in line and "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=TIMEOUT)
    records = [json.loads(x) for x in (out / "markers.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records if r["event"] in ("begin", "end")] == ["begin", "end"]


def test_a_password_on_the_command_line_is_refused_before_anything_runs(node, tmp_path):
    node.with_ipmi()
    config = node.config | {"ipmi": {"extra_args": ["-I", "lanplus", "-U", "admin", "-P", "hunter2-xyz"]}}
    run = subprocess.run(_monitor(node, tmp_path / "run", sys.executable, "-c", "print('ran')", config=config),
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 2 and "ran" not in run.stdout
    assert "password_file" in run.stderr and "hunter2-xyz" not in run.stderr


def test_no_secret_in_ps_while_a_job_runs(node, tmp_path, monkeypatch):
    """The BMC password comes from a variable the job inherits; neither it nor the config is in any argv."""
    node.with_ipmi()
    monkeypatch.setenv("BMC_SECRET", "hunter2-xyz")
    node.config["ipmi"] = {"interval_s": 0.2, "timeout_s": 2, "retries": 0, "extra_args": ["-U", "admin-xyz"],
                           "password_env": "BMC_SECRET"}
    out = tmp_path / "run"
    proc = subprocess.Popen(_monitor(node, out, sys.executable, "-c", "import time; time.sleep(30)"))
    try:
        wait_for(lambda: (out / "sidecar.json").exists(), "the sidecar")
        time.sleep(0.5)
        table = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert "hunter2-xyz" not in table and '"password_env"' not in table
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=TIMEOUT)
    for path in out.rglob("*"):
        if path.is_file():
            assert "hunter2-xyz" not in path.read_text(errors="replace"), path


def _string_keys(schema: dict, prefix: tuple = ()) -> list[tuple[tuple, dict]]:
    """Every string-valued config key of the schema (path, its schema)."""
    out = []
    for key, sub in (schema.get("properties") or {}).items():
        path = (*prefix, key)
        if sub.get("type") == "string":
            out.append((path, sub))
        elif sub.get("type") == "object":
            out.extend(_string_keys(sub, path))
    return out


def _set(config: dict, path: tuple, value: object) -> None:
    for key in path[:-1]:
        config = config.setdefault(key, {})
    config[path[-1]] = value


HOSTILE = "x'; echo INJECTED; '"


def test_a_hostile_string_in_every_free_string_key_never_reaches_a_shell(tmp_path):
    import jsonschema

    schema = yaml.safe_load((REPO / "svbench/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config/voxceleb.yaml").read_text())
    free, checked = [], []
    for path, sub in _string_keys(schema):
        if path[-1] == "source" or path[:2] == ("carbon", "intensity") and path[-1] == "series":
            continue  # free text never given to a command; the series is an input file (quoted)
        (checked if "enum" in sub or "pattern" in sub else free).append(path)
    for path in checked:  # a key with a pattern or an enum refuses the hostile value by itself
        bad = json.loads(json.dumps(config))
        _set(bad, path, HOSTILE)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    hostile = json.loads(json.dumps(config))
    for path in free:
        _set(hostile, path, HOSTILE)
    configfile = tmp_path / "hostile.yaml"
    configfile.write_text(yaml.safe_dump(hostile))
    result = snakemake("-n", "-p", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile",
                       str(configfile))
    text = result.stdout + result.stderr
    for line in text.splitlines():
        if "INJECTED" in line and line.lstrip().startswith("svbench"):
            tokens = shlex.split(line)
            assert "echo" not in tokens, line  # inside one quoted argument, never a command of its own
    assert free, "no free-string key found: the test would check nothing"


def test_dry_run_never_prints_the_energy_config(tmp_path):
    config = yaml.safe_load((REPO / "tests/data/tiny.yaml").read_text())
    config.setdefault("energy", {})["ipmi"] = {"extra_args": ["-U", "bmc-user-xyz"]}
    configfile = tmp_path / "c.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "-p", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile",
                       str(configfile))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "svbench monitor" in result.stdout and "bmc-user-xyz" not in result.stdout + result.stderr


def test_an_unwritable_out_folder_is_one_line_not_a_traceback(node, tmp_path):
    """Root ignores file modes, so the folder is made impossible by a file standing where its parent must be."""
    blocker = tmp_path / "not a folder"
    blocker.write_text("")
    out = blocker / "run"
    config = tmp_path / "energy.json"
    config.write_text(json.dumps(node.config))
    for cmd in (["monitor", "--out", str(out), "--config", str(config), "--", sys.executable, "-c", "pass"],):
        run = subprocess.run([sys.executable, "-m", "svbench.cli", *cmd], capture_output=True, text=True,
                             timeout=TIMEOUT)
        assert run.returncode == 2 and str(out) in run.stderr and "Traceback" not in run.stderr, run.stderr
