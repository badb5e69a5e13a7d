"""A training on two "nodes" without SLURM: two `svbench monitor --nodes 2` processes, each around its own
`svbench launch` (torchrun --nnodes 2, gloo on 127.0.0.1), each with its own fake BMC at its own power and, as
root, the second in a time namespace 100,000 s ahead (another node's monotonic clock).

Slow (three tiny trainings): marked e2e.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, replace
from pathlib import Path

import psutil
import pytest
import torch
from support import BIN, DDP_SPEC, FAKES
from support import DDP_RECIPE as RECIPE

from svbench.energy.node_join import join_nodes
from svbench.instrument.markers import read_markers
from svbench.instrument.nodes import TRACE

pytestmark = pytest.mark.e2e

WATTS = (120, 310)  # node0's and node1's fake BMC
SHIFT_S = 100_000  # node1's monotonic clock is this far ahead, where a time namespace can be made
# 64 samples of global batch 8 per epoch: 8 steps, long enough to kill a node between two checkpoints
LONG = replace(RECIPE, epochs=4, samples_per_epoch=64, checkpoint_minutes=0.0, processes=1, nodes=2)


def _time_namespace() -> list[str]:
    cmd = ["unshare", "--time", "--monotonic", str(SHIFT_S), "--boottime", str(SHIFT_S)]
    try:
        ok = shutil.which("unshare") and subprocess.run([*cmd, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return cmd if ok else []


SHIFT = _time_namespace()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path, watts: int) -> dict[str, str]:
    """A node's environment: no SLURM, no torchrun variables, no GPU or RAPL, its own fake BMC."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_", "SVBENCH_", "FAKE_IPMI"))}
    no_gpu = tmp / "no-gpu"
    no_gpu.mkdir(exist_ok=True)
    shutil.copy(FAKES / "fake_pynvml" / "pynvml.py", no_gpu / "pynvml.py")
    tool = tmp / "ipmitool"
    shutil.copy(FAKES / "ipmitool", tool)
    tool.chmod(0o755)
    return env | {"PATH": f"{BIN}:{env['PATH']}", "PYTHONPATH": str(no_gpu),
                  "SVBENCH_POWERCAP_ROOT": str(tmp / "no-powercap"), "SVBENCH_IPMITOOL": str(tool),
                  "FAKE_IPMI_WATTS": str(watts)}


def _train_cmd(corpus: Path, model: Path, recipe: object) -> list[str]:
    return ["svbench", "train", "--features", str(corpus / "features" / "train"),
            "--manifest", str(corpus / "corpus" / "train.tsv"), "--arch", json.dumps(DDP_SPEC.to_dict()),
            "--recipe", json.dumps(asdict(recipe)), "--seed", "0", "--out", str(model)]


def start_nodes(tmp: Path, corpus: Path, energy: Path, model: Path, recipe: object = LONG) -> list[subprocess.Popen]:
    """Both nodes' monitors, each the leader of its own process group (as an srun task is)."""
    config = tmp / "energy config.json"
    config.write_text(json.dumps({"ipmi": {"interval_s": 0.1, "timeout_s": 2, "retries": 0},
                                  "estimate": {"interval_s": 0.1}, "baseline_s": 0}))
    port = _free_port()
    procs = []
    for rank in (0, 1):
        folder = tmp / f"host{rank}"
        folder.mkdir(exist_ok=True)
        cmd = [*(SHIFT if rank == 1 else []), str(BIN / "svbench"), "monitor", "--out", str(energy), "--nodes", "2",
               "--node-rank", str(rank), "--baseline", "0.3", "--config", str(config), "--",
               "svbench", "launch", "--nodes", "2", "--processes", "1", "--master-addr", "127.0.0.1",
               "--master-port", str(port), "--", *_train_cmd(corpus, model, recipe)]
        procs.append(subprocess.Popen(cmd, env=_env(folder, WATTS[rank]), process_group=0,
                                      stdout=open(tmp / f"node{rank}.log", "a"), stderr=subprocess.STDOUT))
    return procs


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(deadline - time.monotonic(), 0.1)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)


def left_running(model: Path) -> list[str]:
    """Processes still working on this model (training ranks, launchers, monitors, sidecars)."""
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and str(model) in " ".join(proc.info["cmdline"] or []):
                out.append(" ".join(proc.info["cmdline"]))
        except psutil.Error:
            continue
    return out


def weights(model: Path) -> dict:
    return torch.load(model / "model.pt")["model"]


@pytest.fixture(scope="module")
def one_node_two_processes(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same recipe on one node × two processes (torchrun --standalone through svbench launch)."""
    tmp = tmp_path_factory.mktemp("one-node")
    model = tmp / "model"
    run = subprocess.run(["svbench", "launch", "--nodes", "1", "--processes", "2", "--",
                          *_train_cmd(tiny_corpus, model, replace(LONG, nodes=1, processes=2))],
                         env=_env(tmp, 0), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return model


def test_two_nodes_each_measured_on_its_own_clock_and_summed(tiny_corpus, one_node_two_processes, tmp_path):
    energy, model = tmp_path / "energy", tmp_path / "model"
    assert wait_all(start_nodes(tmp_path, tiny_corpus, energy, model), timeout=300) == [0, 0], \
        (tmp_path / "node0.log").read_text()[-3000:] + (tmp_path / "node1.log").read_text()[-3000:]
    # the same model as one node × two processes: the layout changes the cost, never the model
    a, b = weights(model), weights(one_node_two_processes)
    assert all(torch.equal(a[k], b[k]) for k in a)

    begins = []
    for rank in (0, 1):
        markers = read_markers(energy / f"node{rank}" / "markers.jsonl")
        epochs = [m.index for m in markers if m.event == "start" and m.phase == "epoch"]
        assert epochs == [0, 1, 2, 3]  # each node marks each epoch once, on its own clock
        begins.append(next(m for m in markers if m.event == "begin"))
        assert begins[-1].node == rank and begins[-1].nodes == 2
    if SHIFT:  # node1's stamps are on a clock 100,000 s ahead; a mixed series would be nonsense
        assert begins[1].t_mono_ns - begins[0].t_mono_ns > (SHIFT_S - 60) * 1e9

    frame = join_nodes(energy, 2, energy / "energy.csv")
    job = frame[(frame["phase"] == "job") & (frame["component"] == "node")].set_index("node")
    for rank, watts in enumerate(WATTS):
        row = job.loc[f"node{rank}"]
        assert row["energy_j"] == pytest.approx(watts * row["seconds"], rel=0.03)
        assert row["coverage"] > 0.9
    total = frame[(frame["component"] == "job_total") & (frame["phase"] == "job")].iloc[0]
    assert not total["partial"] and total["notes"] == ""
    assert total["energy_j"] == pytest.approx(sum(job.loc[f"node{r}", "energy_j"] for r in (0, 1)), rel=1e-9)
    epochs = frame[(frame["component"] == "job_total") & (frame["phase"] == "epoch")]
    assert sorted(epochs["index"]) == [0, 1, 2, 3]  # one sum per epoch, not one per node


def test_a_node_without_a_trace_makes_the_total_partial_and_is_named(tiny_corpus, tmp_path):
    energy, model = tmp_path / "energy", tmp_path / "model"
    recipe = replace(LONG, epochs=1, samples_per_epoch=16)
    assert wait_all(start_nodes(tmp_path, tiny_corpus, energy, model, recipe), timeout=300) == [0, 0]
    (energy / "node1" / TRACE).unlink()
    out = tmp_path / "joined.csv"
    run = subprocess.run(["svbench", "energy", "join", "--dir", str(energy), "--nodes", "2", "--out", str(out)],
                         env=_env(tmp_path, 0), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "node1" in run.stdout and "partial" in run.stdout
    frame = join_nodes(energy, 2)
    total = frame[(frame["component"] == "job_total") & (frame["phase"] == "job")].iloc[0]
    node0 = frame[(frame["node"] == "node0") & (frame["phase"] == "job") & (frame["component"] == "node")].iloc[0]
    assert total["partial"] and "node1" in total["notes"] and "no trace" in total["notes"]
    assert total["energy_j"] == pytest.approx(node0["energy_j"])  # node0's alone, labelled partial, never node1 = 0
    # a third node that never started at all: its folder is missing
    frame = join_nodes(energy, 3)
    total = frame[(frame["component"] == "job_total") & (frame["phase"] == "job")].iloc[0]
    assert total["partial"] and "node2" in total["notes"]


def test_one_node_killed_ends_the_job_everywhere_and_the_rerun_resumes_bit_exactly(
        tiny_corpus, one_node_two_processes, tmp_path):
    energy, model = tmp_path / "energy", tmp_path / "model"
    procs = start_nodes(tmp_path, tiny_corpus, energy, model)
    deadline = time.monotonic() + 240
    while not (model / "checkpoint.pt").exists():  # the first epoch is checkpointed: kill node1 now
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.05)
    os.killpg(procs[1].pid, signal.SIGKILL)  # node1's monitor, as if its node were lost
    killed_at = time.monotonic()
    statuses = wait_all(procs, timeout=120)
    assert time.monotonic() - killed_at < 90  # node0 did not wait forever for its peer
    assert statuses[0] != 0 and statuses[1] == -signal.SIGKILL
    assert not (model / "model.pt").exists(), "the training finished before the kill: the test proves nothing"
    deadline = time.monotonic() + 30  # nothing of the job lives on, on either node
    while left_running(model) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left_running(model)

    assert wait_all(start_nodes(tmp_path, tiny_corpus, energy, model), timeout=300) == [0, 0]
    a, b = weights(model), weights(one_node_two_processes)
    assert all(torch.equal(a[k], b[k]) for k in a)  # resumed from the checkpoint, bit-exactly
    frame = join_nodes(energy, 2)
    job = frame[(frame["phase"] == "job") & (frame["component"] == "node")]
    assert sorted(job[job["node"] == "node0"]["attempt"]) == [1, 2]  # both attempts kept, on both nodes
    assert sorted(job[job["node"] == "node1"]["attempt"]) == [1, 2]
    first = frame[(frame["component"] == "job_total") & (frame["phase"] == "job") & (frame["attempt"] == 1)].iloc[0]
    assert not first["complete"] and first["energy_j"] > 0  # the killed attempt's energy is kept
