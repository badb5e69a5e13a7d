"""The NVML sensor against the real nvidia-ml-py binding, with a C fake of libnvidia-ml.so.1 under it.

tests/energy/test_sensors.py replaces the whole ``pynvml`` module with a Python fake; here the venv's
real ``pynvml`` makes its real ctypes calls (versioned entry points, structure layouts, error codes
mapped to its own exception classes) into tests/fakes/libnvml/fake_nvml.c, loaded through
LD_LIBRARY_PATH. Everything runs in subprocesses (the loader reads LD_LIBRARY_PATH at process start),
and the sensor is driven black-box through ``svbench monitor``: the trace, sidecar.json and the join
are what is checked. Times in the scripts count from the sidecar's nvmlInit (the fake's default epoch).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakes import libnvml
from fakes.node import CPU_W

from svbench.energy.join import join
from svbench.instrument.nodes import TRACE
from svbench.instrument.trace import read_trace

UUIDS = ["GPU-aaaaaaaa-1111-2222-3333-444444444444", "GPU-bbbbbbbb-1111-2222-3333-444444444444",
         "GPU-cccccccc-1111-2222-3333-444444444444"]
# Generous, as in test_energy.py: a loaded CI machine may stall the sampler. What these catch is a unit
# slip (mJ for J, mW for W: a factor of 1000) or a reset counted as a jump, not a few per cent.
REL = 0.15
COVERED = 0.5


@pytest.fixture(scope="module")
def lib_dir() -> Path:
    return libnvml.build()


@pytest.fixture
def gpu_node(node, lib_dir, tmp_path, monkeypatch):
    """The fake node with the C NVML: ``gpu_node.script(gpus, **globals)`` sets what the GPUs do."""

    def script(gpus: list[dict], **global_keys: object) -> Path:
        path = libnvml.write_script(tmp_path / "nvml-script.txt", gpus, **global_keys)
        env = libnvml.env(lib_dir, path, tmp_path / "nvml-calls.log")
        for key in ("LD_LIBRARY_PATH", "FAKE_NVML_SCRIPT", "FAKE_NVML_LOG"):
            monkeypatch.setenv(key, env[key])
        monkeypatch.delenv("PYTHONPATH", raising=False)  # the node's fake pynvml.py must not shadow the real one
        return path

    node.script = script
    node.calls = lambda: set((tmp_path / "nvml-calls.log").read_text().split())
    return node


def run_job(node, tmp_path: Path, work_s: float = 1.0):
    node.monkeypatch.setenv("WORK_S", str(work_s))
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    meta = json.loads((out / "sidecar.json").read_text())
    sensors = {s["name"]: s for s in meta["sensors"]}
    trace = read_trace(out / TRACE)
    frame = join(out / TRACE, out / "markers.jsonl")
    job = frame[(frame["phase"] == "job") & (frame["sensor"] == "nvml")].set_index("channel")
    return sensors, trace, job, output


def mean_w(row) -> float:
    return row["energy_j"] / row["seconds"]


# --- the fake itself, through the real binding ---------------------------------------------------

FAKE_CHECK = textwrap.dedent("""
    import json, pynvml as nv
    out = {"module": nv.__file__}
    nv.nvmlInit()
    out["driver"] = nv.nvmlSystemGetDriverVersion()
    out["count"] = nv.nvmlDeviceGetCount()
    gpus = []
    for i in range(out["count"]):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        g = {"uuid": nv.nvmlDeviceGetUUID(h), "name": nv.nvmlDeviceGetName(h), "mig": nv.nvmlDeviceGetMigMode(h)}
        fv = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_POWER_INSTANT])[0]
        g["field"] = [fv.fieldId, fv.valueType, fv.nvmlReturn, fv.value.uiVal, fv.timestamp > 0]
        for key, call in (("energy", nv.nvmlDeviceGetTotalEnergyConsumption), ("power", nv.nvmlDeviceGetPowerUsage),
                          ("limits", nv.nvmlDeviceGetPowerManagementLimitConstraints),
                          ("util", lambda h: nv.nvmlDeviceGetUtilizationRates(h).gpu),
                          ("mem", lambda h: nv.nvmlDeviceGetMemoryInfo(h).used),
                          ("mem2", lambda h: nv.nvmlDeviceGetMemoryInfo(h, version=nv.nvmlMemory_v2).used)):
            try:
                g[key] = call(h)
            except nv.NVMLError as exc:
                g[key] = [type(exc).__name__, str(exc)]
        gpus.append(g)
    out["gpus"] = gpus
    out["by_uuid"] = nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetHandleByUUID(gpus[-1]["uuid"]))
    try:
        nv.nvmlDeviceGetHandleByUUID("GPU-nope")
    except nv.NVMLError_NotFound as exc:
        out["not_found"] = str(exc)
    nv.nvmlShutdown()
    try:
        nv.nvmlDeviceGetCount()
    except nv.NVMLError_Uninitialized:
        out["after_shutdown"] = "Uninitialized"
    print(json.dumps(out))
""")


def pynvml_run(lib_dir: Path, script: Path, code: str, log: Path | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", code], env=libnvml.env(lib_dir, script, log), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_fake_answers_the_real_binding(lib_dir, tmp_path):
    script = libnvml.write_script(tmp_path / "s.txt", [
        {"uuid": UUIDS[0], "name": "NVIDIA A100-SXM4-80GB", "power_w": 250, "energy_mj": 7_000_000},
        {"uuid": UUIDS[1], "energy": 0, "instant": 0, "mig": 1, "limit_max_w": 0},
    ], driver="555.42.06")
    out = pynvml_run(lib_dir, script, FAKE_CHECK, tmp_path / "calls.log")
    assert "site-packages" in out["module"]  # the real nvidia-ml-py, not tests/fakes/fake_pynvml
    assert out["driver"] == "555.42.06" and out["count"] == 2
    a, b = out["gpus"]
    assert a["uuid"] == UUIDS[0] and a["name"] == "NVIDIA A100-SXM4-80GB" and a["mig"] == [0, 0]
    assert a["field"] == [186, 1, 0, 250_000, True]  # the nvmlFieldValue_t layout read back field by field
    assert 7_000_000 <= a["energy"] < 7_000_000 + 250 * 1000 * 10  # mJ, advancing at 250 W since init
    assert a["power"] == 250_000 and a["limits"] == [200_000, 700_000]
    assert a["util"] == 50 and a["mem"] == a["mem2"] == 2 << 30
    assert b["mig"] == [1, 1] and b["field"][2] == 3  # POWER_INSTANT: the call succeeds, the field says NotSupported
    for key in ("energy", "limits", "util"):
        assert b[key] == ["NVMLError_NotSupported", "Not Supported"], key
    assert out["by_uuid"] == UUIDS[1] and out["not_found"] == "Not Found" and out["after_shutdown"]
    calls = set((tmp_path / "calls.log").read_text().split())
    assert {"nvmlInitWithFlags", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2",
            "nvmlDeviceGetMemoryInfo_v2"} <= calls


def test_lost_denied_and_failed_init_are_the_real_exception_classes(lib_dir, tmp_path):
    script = libnvml.write_script(tmp_path / "s.txt", [{"uuid": UUIDS[0], "lost_at_s": 0},
                                                       {"uuid": UUIDS[1], "denied": 1}])
    code = textwrap.dedent("""
        import json, pynvml as nv
        nv.nvmlInit()
        out = {"count": nv.nvmlDeviceGetCount()}
        try:
            nv.nvmlDeviceGetHandleByIndex(0)
        except nv.NVMLError_GpuIsLost as exc:
            out["lost"] = str(exc)
        try:
            nv.nvmlDeviceGetHandleByIndex(1)
        except nv.NVMLError_NoPermission as exc:
            out["denied"] = str(exc)
        print(json.dumps(out))
    """)
    assert pynvml_run(lib_dir, script, code) == {"count": 2, "lost": "GPU is lost",
                                                 "denied": "Insufficient Permissions"}
    script = libnvml.write_script(tmp_path / "s.txt", [], init_error=9)
    code = textwrap.dedent("""
        import json, pynvml as nv
        try:
            nv.nvmlInit()
        except nv.NVMLError_DriverNotLoaded as exc:
            print(json.dumps({"init": str(exc)}))
    """)
    assert pynvml_run(lib_dir, script, code) == {"init": "Driver Not Loaded"}


# --- svbench monitor: the sensor through the real binding -------------------------------------------

def test_steady_load_joins_to_watts_times_seconds(gpu_node, tmp_path):
    gpu_node.script([{"uuid": UUIDS[0], "power_w": 300, "limit_max_w": 700}], driver="570.86.15")
    sensors, trace, job, output = run_job(gpu_node, tmp_path)
    nvml = sensors["nvml"]
    assert nvml["available"], nvml
    dev = nvml["metadata"]["devices"]["gpu0"]
    assert dev["uuid"] == UUIDS[0] and dev["energy_counter"] and dev["power_source"] == "field POWER_INSTANT"
    assert dev["max_power_w"] == 700 and dev["max_power_source"] == "nvmlDeviceGetPowerManagementLimitConstraints"
    assert nvml["metadata"]["driver_version"] == "570.86.15"
    gpu = trace[trace["sensor"] == "nvml"]
    assert "error" not in set(gpu["quantity"]) and "counter_break" not in set(gpu["quantity"])
    assert gpu[gpu["quantity"] == "power"]["value"].eq(300).all()
    assert {"energy", "power", "power_avg", "utilisation", "memory"} <= set(gpu["quantity"])
    row = job.loc["gpu0"]
    assert row["method"] == "counter" and row["coverage"] > COVERED
    assert mean_w(row) == pytest.approx(300, rel=REL)
    assert {"nvmlInitWithFlags", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2",
            "nvmlDeviceGetTotalEnergyConsumption", "nvmlShutdown"} <= gpu_node.calls()


def test_a_counter_reset_mid_run_is_one_break_not_a_jump(gpu_node, tmp_path):
    gpu_node.script([{"uuid": UUIDS[0], "power_w": 300, "energy_mj": 9_000_000_000, "reset_at_s": 1.0}])
    sensors, trace, job, output = run_job(gpu_node, tmp_path, work_s=2.0)
    breaks = trace[(trace["sensor"] == "nvml") & (trace["quantity"] == "counter_break")]
    assert len(breaks) == 1 and breaks["value"].item() < -8_000_000  # the 9-MJ counter fell to ~0
    assert sensors["nvml"]["metadata"]["devices"]["gpu0"]["energy_counter"]
    row = job.loc["gpu0"]
    assert mean_w(row) == pytest.approx(300, rel=REL)  # no 9 MJ, and nothing negative
    assert COVERED < row["coverage"] < 1.0 and "counter break" in row["notes"]


@pytest.mark.parametrize(("instant", "source", "quantities"), [
    (1, "field POWER_INSTANT", {"power", "power_avg"}),
    (0, "nvmlDeviceGetPowerUsage", {"power"}),
])
def test_no_energy_counter_falls_back_to_power_sampling(gpu_node, tmp_path, instant, source, quantities):
    """An old GPU: nvmlDeviceGetTotalEnergyConsumption is NOT_SUPPORTED; with or without instant power."""
    gpu_node.script([{"uuid": UUIDS[0], "power_w": 250, "energy": 0, "instant": instant}])
    sensors, trace, job, output = run_job(gpu_node, tmp_path)
    dev = sensors["nvml"]["metadata"]["devices"]["gpu0"]
    assert dev["energy_counter"] is False and dev["power_source"] == source
    assert "energy counter: Not Supported" in dev["notes"]
    gpu = trace[trace["sensor"] == "nvml"]
    assert "energy" not in set(gpu["quantity"]) and quantities <= set(gpu["quantity"])
    row = job.loc["gpu0"]
    assert row["method"] == "trapezoid" and row["coverage"] > COVERED
    assert mean_w(row) == pytest.approx(250, rel=REL)


def test_a_gpu_lost_mid_run_is_a_gap_and_the_job_goes_on(gpu_node, tmp_path):
    gpu_node.with_rapl()
    gpu_node.script([{"uuid": UUIDS[0], "power_w": 300, "lost_at_s": 1.0}])
    sensors, trace, job, output = run_job(gpu_node, tmp_path, work_s=2.0)
    nvml = trace[trace["sensor"] == "nvml"]
    errors = nvml[nvml["quantity"] == "error"]
    energy = nvml[nvml["quantity"] == "energy"]
    assert len(errors) >= 5 and errors["t_mono_ns"].min() > energy["t_mono_ns"].max()  # readings stopped
    assert "GPU is lost" in output
    rapl = trace[trace["sensor"] == "rapl"]
    assert rapl["t_mono_ns"].max() > errors["t_mono_ns"].max() - 10**9  # RAPL went on sampling
    row = job.loc["gpu0"]
    assert row["coverage"] < 0.8  # the energy of the covered part only: nothing made up for the gap
    assert row["energy_j"] == pytest.approx(300 * row["coverage"] * row["seconds"], rel=REL)
    frame = join(tmp_path / "run" / TRACE, tmp_path / "run" / "markers.jsonl")
    pkg = frame[(frame["phase"] == "job") & (frame["channel"] == "package-0")].iloc[0]
    assert pkg["coverage"] > COVERED and mean_w(pkg) == pytest.approx(CPU_W, rel=0.25)


def test_a_lost_gpu_leaves_the_other_gpus_sampled(gpu_node, tmp_path):
    """Two GPUs, the second falls off the bus: the first must go on being read."""
    gpu_node.script([{"uuid": UUIDS[0], "power_w": 200}, {"uuid": UUIDS[1], "power_w": 300, "lost_at_s": 1.0}])
    sensors, trace, job, output = run_job(gpu_node, tmp_path, work_s=2.0)
    assert job.loc["gpu1"]["coverage"] < 0.8
    row = job.loc["gpu0"]
    assert row["coverage"] > 0.6 and mean_w(row) == pytest.approx(200, rel=REL)


def test_mig_enabled_gpu_counts_whole_gpu_energy_without_utilisation(gpu_node, tmp_path):
    gpu_node.script([{"uuid": UUIDS[0], "power_w": 300, "mig": 1}])
    sensors, trace, job, output = run_job(gpu_node, tmp_path)
    dev = sensors["nvml"]["metadata"]["devices"]["gpu0"]
    assert dev["energy_counter"] and "utilisation: Not Supported" in dev["notes"]
    gpu = trace[trace["sensor"] == "nvml"]
    assert "utilisation" not in set(gpu["quantity"]) and "error" not in set(gpu["quantity"])
    assert mean_w(job.loc["gpu0"]) == pytest.approx(300, rel=REL)


def test_a_job_on_a_mig_instance_has_no_gpu_figure(gpu_node, tmp_path, monkeypatch):
    """CUDA_VISIBLE_DEVICES names a MIG instance: NVML's energy is the whole GPU's, so none is charged."""
    gpu_node.script([{"uuid": UUIDS[0], "power_w": 300, "mig": 1}])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-11111111-2222-3333-4444-555555555555")
    sensors, trace, job, output = run_job(gpu_node, tmp_path)
    assert not sensors["nvml"]["available"] and "leaves no usable GPU" in sensors["nvml"]["reason"]
    assert "nvml" not in set(trace["sensor"])


def test_cuda_visible_devices_by_uuid_picks_and_orders_the_gpus(gpu_node, tmp_path, monkeypatch):
    gpu_node.script([{"uuid": u, "power_w": w} for u, w in zip(UUIDS, (100, 200, 300), strict=True)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{UUIDS[2]},{UUIDS[0][:12]}")  # a unique prefix is enough
    sensors, trace, job, output = run_job(gpu_node, tmp_path)
    devices = sensors["nvml"]["metadata"]["devices"]
    assert {k: (d["uuid"], d["nvml_index"]) for k, d in devices.items()} == {"gpu0": (UUIDS[2], 2),
                                                                            "gpu1": (UUIDS[0], 0)}
    assert set(job.index) == {"gpu0", "gpu1"}
    assert mean_w(job.loc["gpu0"]) == pytest.approx(300, rel=REL)
    assert mean_w(job.loc["gpu1"]) == pytest.approx(100, rel=REL)


def test_a_driver_that_fails_init_leaves_the_job_running_without_nvml(gpu_node, tmp_path):
    gpu_node.script([{"uuid": UUIDS[0]}], init_error=9)  # NVML_ERROR_DRIVER_NOT_LOADED
    sensors, trace, job, output = run_job(gpu_node, tmp_path, work_s=0.3)
    assert not sensors["nvml"]["available"]
    assert sensors["nvml"]["reason"] == "pynvml: nvmlInit failed: Driver Not Loaded"


def test_a_lost_gpu_the_job_does_not_use_does_not_disable_the_sensor(gpu_node, tmp_path, monkeypatch):
    """A shared node: another job's GPU fell off the bus before this job started."""
    gpu_node.script([{"uuid": UUIDS[0], "power_w": 200}, {"uuid": UUIDS[1], "lost_at_s": 0}])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", UUIDS[0])
    sensors, trace, job, output = run_job(gpu_node, tmp_path)
    assert sensors["nvml"]["available"], sensors["nvml"]["reason"]
    assert mean_w(job.loc["gpu0"]) == pytest.approx(200, rel=REL)


def test_gpus_of_other_jobs_behind_a_cgroup_do_not_disable_the_sensor(gpu_node, tmp_path):
    """SLURM with ConstrainDevices: NVML counts the node's GPUs, but only the job's own answer."""
    gpu_node.script([{"uuid": UUIDS[0], "denied": 1}, {"uuid": UUIDS[1], "power_w": 200}])
    sensors, trace, job, output = run_job(gpu_node, tmp_path)
    assert sensors["nvml"]["available"], sensors["nvml"]["reason"]
    assert list(job.index) == ["gpu0"] and mean_w(job.loc["gpu0"]) == pytest.approx(200, rel=REL)
