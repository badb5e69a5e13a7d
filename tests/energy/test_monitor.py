"""The monitor and the sidecar as real processes, end to end.

Fakes sit only at the OS boundary: a powercap tree in tmp_path (SVBENCH_POWERCAP_ROOT), the fake
ipmitool (SVBENCH_IPMITOOL) and the fake pynvml first on PYTHONPATH of the sidecar process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import psutil
import pytest
import zstandard
from fakes.node import CPU_W, DRAM_W, GPU_W, NODE_W, TIMEOUT, gone, kill_quietly, started, wait_for
from fakes.replay import S

from svbench.energy.join import join
from svbench.instrument.markers import read_markers
from svbench.instrument.nodes import TRACE
from svbench.instrument.trace import read_trace


def test_all_sensors_end_to_end(node, tmp_path):
    node.all_sensors()
    out = tmp_path / "run"
    status, output = node.run(out, baseline=0.3)
    assert status == 0, output
    trace = read_trace(out / TRACE)
    assert {"nvml", "rapl", "ipmi"} <= set(trace["sensor"]) and "estimate" not in set(trace["sensor"])
    assert "error" not in set(trace["quantity"]), trace[trace["quantity"] == "error"]
    pkg = trace[(trace["sensor"] == "rapl") & (trace["channel"] == "package-0")]["value"].to_numpy()
    assert (np.diff(pkg) >= 0).all() and pkg[-1] > 1.0  # unwrapped across max_energy_range_uj

    meta = json.loads((out / "sidecar.json").read_text())
    assert {s["name"]: s["available"] for s in meta["sensors"]} == {"nvml": True, "rapl": True, "ipmi": True}

    frame = join(out / TRACE, out / "markers.jsonl")
    assert {"job", "idle_baseline", "load", "work"} <= set(frame["phase"])
    job = frame[frame["phase"] == "job"].set_index("component")
    assert set(job.index) == {"gpu", "cpu", "dram", "node", "rest_of_node"}
    assert job.loc["gpu", "method"] == "counter" and job.loc["cpu", "method"] == "counter"
    assert job.loc["dram", "method"] == "counter" and job.loc["node", "method"] == "trapezoid"
    assert not job["estimated"].any() and job["complete"].all()
    assert (job["coverage"] > 0.5).all()  # generous: a loaded CI machine may stall the sampler
    for component, watts in (("gpu", GPU_W), ("cpu", CPU_W), ("dram", DRAM_W), ("node", NODE_W)):
        mean_w = job.loc[component, "energy_j"] / job.loc[component, "seconds"]
        assert mean_w == pytest.approx(watts, rel=0.25), component
    work = frame[frame["phase"] == "work"]
    assert (work["energy_j"] > 0).all() and work["complete"].all() and (work["index"] == 0).all()
    assert work[work["component"] != "rest_of_node"]["idle_w"].notna().all()


def test_estimate_only_without_sensors_and_node_metadata(node, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    out = tmp_path / "run"
    status, output = node.run(out, arg="3")
    assert status == 3, output
    meta = json.loads((out / "sidecar.json").read_text())
    sensors = {s["name"]: s for s in meta["sensors"]}
    for name in ("nvml", "rapl", "ipmi"):
        assert not sensors[name]["available"] and sensors[name]["reason"]
    assert "no GPU" in sensors["nvml"]["reason"] and "powercap" in sensors["rapl"]["reason"]
    assert "not found" in sensors["ipmi"]["reason"]
    assert sensors["estimate"]["available"]
    assert meta["node"]["host"] and meta["node"]["cpu_model"] is not None
    assert meta["node"]["environment"]["SLURM_JOB_ID"] == "4242"

    trace = read_trace(out / TRACE)
    assert set(trace["sensor"]) == {"estimate"} and trace["estimated"].all()
    frame = join(out / TRACE, out / "markers.jsonl")
    # job 4242 is not a real SLURM job: its sacct cross-check row is there, and empty (never 0)
    crosscheck = frame[frame["component"] == "slurm_crosscheck"]
    assert len(crosscheck) == 1 and crosscheck["energy_j"].isna().all()
    frame = frame[frame["component"] != "slurm_crosscheck"]
    assert frame["estimated"].all() and set(frame["component"]) == {"cpu", "dram"}
    job = frame[(frame["phase"] == "job")]
    assert not job["complete"].any()  # status 3
    cpu = job[job["component"] == "cpu"].iloc[0]
    assert cpu["energy_j"] > 0  # the busy loop burnt CPU time


def test_exit_status_of_a_workload_that_kills_itself(node, tmp_path):
    node.with_rapl()
    out = tmp_path / "run"
    status, output = node.run(out, mode="sigkill")
    assert status == 128 + 9, output
    records = read_markers(out / "markers.jsonl")
    assert records[-1].event == "end" and records[-1].status == 137
    frame = join(out / TRACE, out / "markers.jsonl")
    work = frame[frame["phase"] == "work"].iloc[0]
    assert not work["complete"] and work["energy_j"] >= 0
    assert frame[frame["phase"] == "load"]["complete"].all()


def test_sigterm_is_forwarded_and_its_status_returned(node, tmp_path):
    node.with_rapl()
    out = tmp_path / "run"
    flag = tmp_path / "checkpointed"
    proc = node.monitor(out, mode="term", arg=str(flag))
    try:
        wait_for(lambda: started(out, "work"), "the work phase")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 143, output
    assert flag.read_text() == "checkpoint"
    end = read_markers(out / "markers.jsonl")[-1]
    assert end.event == "end" and end.status == 143 and end.extra["signals"] == [signal.SIGTERM]
    frame = join(out / TRACE, out / "markers.jsonl")
    assert not frame[frame["phase"] == "work"]["complete"].any()  # left by SystemExit: ok=false


def test_sidecar_stops_when_the_monitor_is_killed(node, tmp_path):
    node.with_rapl()
    out = tmp_path / "run"
    proc = node.monitor(out, mode="sleep")
    workload = None
    try:
        workload = wait_for(lambda: started(out, "work"), "the work phase").pid
        sidecar = json.loads((out / "sidecar.json").read_text())["pid"]
        proc.kill()
        proc.wait(timeout=TIMEOUT)
        wait_for(lambda: gone(sidecar), "the sidecar to stop by itself", timeout=15)
    finally:
        proc.kill()
        if workload:
            kill_quietly(workload)
    frame = join(out / TRACE, out / "markers.jsonl")
    job = frame[frame["phase"] == "job"].iloc[0]
    assert not job["complete"] and job["seconds"] > 0
    assert not frame[frame["phase"] == "work"]["complete"].any()


def test_a_killed_sidecar_leaves_no_ipmitool_shell_behind(node, tmp_path, monkeypatch):
    node.with_ipmi()
    monkeypatch.setenv("FAKE_IPMI_LINGER", "1")  # like ipmitool on a LAN interface: it outlives its input
    out = tmp_path / "run"
    proc = node.monitor(out, mode="sleep")
    shells: list[psutil.Process] = []
    try:
        wait_for(lambda: started(out, "work"), "the work phase")
        sidecar = psutil.Process(json.loads((out / "sidecar.json").read_text())["pid"])
        shells = [p for p in sidecar.children() if p.cmdline()[-1:] == ["shell"]]
        assert len(shells) == 1
        sidecar.kill()
        time.sleep(0.5)
        assert not gone(shells[0].pid)  # orphaned, still there: only the monitor can clear it
        proc.send_signal(signal.SIGTERM)  # ends the workload, then the monitor
        output, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 143, output
        wait_for(lambda: gone(shells[0].pid), "the orphaned ipmitool shell to be killed", timeout=5)
    finally:
        proc.kill()
        for shell in shells:
            kill_quietly(shell.pid)


@pytest.mark.parametrize("mode", ["session", "stall"])
def test_a_sensor_failing_mid_run_becomes_a_gap(node, tmp_path, monkeypatch, mode):
    node.with_rapl()
    node.with_ipmi(fail_after=4, mode=mode)  # open() takes one call, then three good readings
    node.config["ipmi"]["timeout_s"] = 0.3
    monkeypatch.setenv("WORK_S", "1.5")
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    trace = read_trace(out / TRACE)
    ipmi = trace[trace["sensor"] == "ipmi"]
    assert (ipmi["quantity"] == "power").sum() == 3
    errors = ipmi[ipmi["quantity"] == "error"]
    assert len(errors) >= 2 and errors["value"].isna().all()
    rapl = trace[trace["sensor"] == "rapl"]
    assert rapl["t_mono_ns"].max() > errors["t_mono_ns"].max() - S  # RAPL went on sampling
    frame = join(out / TRACE, out / "markers.jsonl")
    job = frame[frame["phase"] == "job"]
    assert job[job["sensor"] == "ipmi"]["coverage"].item() < 0.5
    assert (job[job["sensor"] == "rapl"]["coverage"] >= 0.5).all()


def test_rerun_after_success_sets_the_old_run_aside(node, tmp_path):
    node.with_rapl()
    out = tmp_path / "run"
    assert node.run(out, arg="3")[0] == 3  # a failed attempt ...
    with open(out / "markers.jsonl", "a") as f:
        f.write('{"event": "start", "pha')  # ... killed while writing a marker
    with open(out / TRACE, "ab") as f:
        z = zstandard.ZstdCompressor().compressobj()
        f.write((z.compress(b"0,17000,12,\n") + z.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))[:-4])  # ... and a read
    assert node.run(out)[0] == 0  # the retry appends: both attempts count
    assert not (out / "previous").exists()
    frame = join(out / TRACE, out / "markers.jsonl")
    jobs = frame[(frame["phase"] == "job") & (frame["sensor"] == "rapl") & (frame["channel"] == "package-0")]
    assert jobs["attempt"].tolist() == [1, 2] and jobs["complete"].tolist() == [False, True]
    assert (jobs["energy_j"] / jobs["seconds"]).to_numpy() == pytest.approx([CPU_W, CPU_W], rel=0.25)
    both = (out / "markers.jsonl").read_text()

    assert node.run(out)[0] == 0  # a forced rerun of a finished job: a new measurement
    previous = out / "previous"
    assert (previous / "markers.jsonl").read_text() == both
    assert (previous / TRACE).exists() and (previous / "sidecar.json").exists()
    records = read_markers(out / "markers.jsonl")
    assert [r.event for r in records].count("begin") == 1
    frame = join(out / TRACE, out / "markers.jsonl")
    assert set(frame["attempt"]) == {1}
    assert read_trace(out / TRACE)["t_mono_ns"].min() > records[0].t_mono_ns - 5 * S


def test_requeue_on_another_node_each_attempt_on_its_own_clock(node, tmp_path):
    """Attempt 1 runs with another monotonic clock (a time namespace: another node's boot) and is SIGKILLed;
    attempt 2 runs normally into the same folder. Both count, each joined on its own clock."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a time namespace needs root and unshare")
    node.with_ipmi()
    out = tmp_path / "run"
    cmd = ["unshare", "--time", "--monotonic", "100000", *node.monitor_cmd(out, "sleep")]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: started(out, "work"), "the first attempt's work phase")
        time.sleep(1.5)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the node's OOM killer: no end marker, no checkpoint
        first.communicate(timeout=TIMEOUT)
    time.sleep(1.5)  # the orphaned sidecar notices and stops
    status, output = node.run(out)
    assert status == 0, output
    begins = [r for r in read_markers(out / "markers.jsonl") if r.event == "begin"]
    assert len(begins) == 2 and begins[0].t_mono_ns > 90_000 * S > begins[1].t_mono_ns  # two clocks
    frame = join(out / TRACE, out / "markers.jsonl")
    jobs = frame[(frame["phase"] == "job") & (frame["sensor"] == "ipmi")].set_index("attempt")
    assert sorted(jobs.index) == [1, 2]
    assert not jobs.loc[1, "complete"] and jobs.loc[2, "complete"]
    for attempt in (1, 2):
        assert jobs.loc[attempt, "energy_j"] == pytest.approx(NODE_W * jobs.loc[attempt, "seconds"], rel=0.02)
    assert 1.5 < jobs.loc[1, "seconds"] < 6  # from its begin to its last sample, not across clocks
    assert 0.5 < jobs.loc[2, "seconds"] < 6
    work = frame[(frame["phase"] == "work") & (frame["sensor"] == "ipmi")].set_index("attempt")
    assert sorted(work.index) == [1, 2] and not work.loc[1, "complete"]


def test_several_ranks_mark_each_epoch_once_and_rest_of_job_is_not_negative(tiny_corpus, tmp_path, monkeypatch):
    """A real two-process torchrun of a tiny training under svbench monitor."""
    from dataclasses import asdict

    from support import BIN
    from support import DDP_RECIPE as RECIPE
    from support import DDP_SPEC as SPEC

    for var in [v for v in os.environ if v.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PATH", f"{BIN}:{os.environ['PATH']}")
    out = tmp_path / "energy"
    recipe = {k: v for k, v in asdict(RECIPE).items() if k != "extra"}
    (tmp_path / "energy.json").write_text(json.dumps({"sensors": [], "estimate": {"interval_s": 0.05}}))
    run = subprocess.run(
        [str(BIN / "svbench"), "monitor", "--out", str(out), "--config", str(tmp_path / "energy.json"), "--",
         str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python", "svbench", "train",
         "--features", str(tiny_corpus / "features" / "train"), "--manifest", str(tiny_corpus / "corpus" / "train.tsv"),
         "--arch", json.dumps(SPEC.to_dict()), "--recipe", json.dumps(recipe), "--seed", "0",
         "--out", str(tmp_path / "model")], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    starts = [r for r in read_markers(out / "markers.jsonl") if r.event == "start" and r.phase == "epoch"]
    assert [r.index for r in starts] == [0, 1, 2]  # rank 0 alone marks
    frame = join(out / TRACE, out / "markers.jsonl")
    cpu = frame[frame["channel"] == "cpu"]
    epochs = cpu[cpu["phase"] == "epoch"]
    job, rest = cpu[cpu["phase"] == "job"].iloc[0], cpu[cpu["phase"] == "rest_of_job"].iloc[0]
    assert len(epochs) == 3 and epochs["seconds"].sum() <= job["seconds"]
    assert rest["seconds"] >= 0 and rest["energy_j"] >= 0
    assert epochs["energy_j"].sum() + rest["energy_j"] == pytest.approx(job["energy_j"], rel=1e-6)


def test_baseline_is_its_own_phase_before_the_job(node, tmp_path):
    """`--baseline 1`: a 0.8-s workload is a 0.8-s job (plus start-up), not 1.8 s."""
    out = tmp_path / "run"
    status, output = node.run(out, baseline=1.0)
    assert status == 0, output
    frame = join(out / TRACE, out / "markers.jsonl")
    est = frame[frame["sensor"] == "estimate"]
    base = est[est["phase"] == "idle_baseline"].iloc[0]
    job = est[est["phase"] == "job"].iloc[0]
    assert base["seconds"] == pytest.approx(1.0, abs=0.1)
    assert job["seconds"] >= 1.1  # load 0.3 s + work 0.8 s, and the workload's start-up
    assert job["t_start_wall_ns"] >= base["t_end_wall_ns"]  # the workload alone: after the baseline, not around it


def test_a_rapl_counter_reset_mid_job_is_not_counted_as_a_wrap(node, tmp_path):
    """Through the monitor: the package counter restarts from 0 one second in; the job's energy stays near
    20 W × its seconds (a reset unwrapped as a wrap would add the 60-J range) and coverage says a read is
    missing."""
    node.with_rapl(reset_after_s=1.0)
    node.monkeypatch.setenv("WORK_S", "2.0")
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    trace = read_trace(out / TRACE)
    assert (trace["quantity"] == "counter_break").sum() == 1
    frame = join(out / TRACE, out / "markers.jsonl")
    job = frame[(frame["phase"] == "job") & (frame["channel"] == "package-0")].iloc[0]
    assert job["energy_j"] == pytest.approx(CPU_W * job["seconds"], rel=0.15)
    assert 0.8 < job["coverage"] < 1.0 and "counter break" in job["notes"]


def test_a_node_meter_below_the_gpus_is_not_the_total(node, tmp_path):
    """Fake NVML (300 W) and RAPL (25 W) under a BMC that reads 100 W: it leaves the GPUs out."""
    from svbench.energy.join import total_rows, total_sources

    node.all_sensors()
    node.monkeypatch.setenv("FAKE_IPMI_WATTS", "100")
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    frame = join(out / TRACE, out / "markers.jsonl")
    job = frame[frame["phase"] == "job"]
    assert total_sources(job)[0] == "node+gpu"
    seconds = job[job["component"] == "node"]["seconds"].iloc[0]
    assert total_rows(job)["energy_j"].sum() == pytest.approx((100 + GPU_W) * seconds, rel=0.25)
    rest = job[job["component"] == "rest_of_node"].iloc[0]
    assert rest["energy_j"] == pytest.approx((100 - CPU_W - DRAM_W) * seconds, rel=0.3)
    assert "leaves the GPUs out" in rest["notes"]


def test_the_sidecars_config_file_is_its_owners_alone(node, tmp_path):
    """sidecar_config.json names the BMC user and the tool's arguments: 0600, like results/energy/config.json."""
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    assert (out / "sidecar_config.json").stat().st_mode & 0o777 == 0o600
