"""The tiny study through real `sbatch` on the local test cluster (tests/slurm/start.sh).

Skipped when no cluster answers, unless SVBENCH_REQUIRE_SLURM=1 (CI), where a missing cluster fails.
Every Snakemake call runs under a timeout so a hung status query fails the test, not CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import REPO

BIN = Path(sys.executable).parent
PROFILE = REPO / "tests/slurm/profile"


def _cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and any(s.startswith(("idle", "mix", "alloc")) for s in out.stdout.split())


if not _cluster_up():
    if os.environ.get("SVBENCH_REQUIRE_SLURM") == "1":
        raise RuntimeError("SVBENCH_REQUIRE_SLURM=1 but no SLURM cluster answers: run tests/slurm/start.sh")
    pytest.skip("no SLURM cluster (start one with tests/slurm/start.sh)", allow_module_level=True)

pytestmark = pytest.mark.slurm


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


def sacct(since: float, *fields: str) -> list[list[str]]:
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 5))
    out = subprocess.run(["sacct", "-a", "-X", "-n", "-P", "-S", start, "-o", ",".join(fields)],
                         capture_output=True, text=True, timeout=30, check=True)
    return [line.split("|") for line in out.stdout.splitlines() if line]


def _metrics(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): json.loads(p.read_text())
            for p in sorted((root / "results/scores").glob("*/seed*/metrics.json"))}


def one_architecture(training: str = "") -> str:
    """tests/data/tiny.yaml with tinyA alone: every rule still runs, and each job on the one-node cluster
    (exclusive measured jobs run one at a time, each ~10 s of submission and start-up) runs once."""
    config = (REPO / "tests/data/tiny.yaml").read_text()
    second = "  - {name: tinyB, block: basic, stages: [1, 1, 1, 1], width: 8}\n"
    assert second in config
    return config.replace(second, "") + training


@pytest.fixture(scope="module")
def local_and_slurm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    local, cluster = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    for d in (local, cluster):
        (d / "tiny.yaml").write_text(one_architecture())
    run = snakemake(local, "--configfile", str(local / "tiny.yaml"), "-c2")
    assert run.returncode == 0, run.stderr[-3000:]
    started = time.time()
    run = snakemake(cluster, "--configfile", str(cluster / "tiny.yaml"), "--profile", str(PROFILE))
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    return local, cluster, started


def test_tiny_study_through_sbatch_matches_a_local_run(local_and_slurm) -> None:
    local, cluster, _ = local_and_slurm
    files = lambda root: sorted(p.relative_to(root).as_posix() for p in (root / "results").rglob("*")  # noqa: E731
                                if p.is_file() and "logs" not in p.parts)
    assert files(cluster) == files(local)
    assert _metrics(cluster) == _metrics(local)  # same seeds, same CPU: identical scores


def test_gpu_rules_were_submitted_with_a_gpu(local_and_slurm) -> None:
    _, cluster, started = local_and_slurm
    rows = sacct(started, "JobID", "JobName", "Comment", "AllocTRES", "State")
    # the plugin's comment is rule_<rule>_wildcards_<values>: only this run's tiny architectures
    train = [r for r in rows if r[2].startswith("rule_train_wildcards_tiny")]
    score = [r for r in rows if r[2].startswith("rule_score_wildcards_tiny")]
    assert train and all("gres/gpu=1" in r[3] for r in train), rows
    assert score and all("gres/gpu" not in r[3] for r in score), rows
    assert all(r[4] == "COMPLETED" for r in train + score)
    # each measured job records the SLURM job that ran it
    meta = json.loads(next((cluster / "results/energy/train").glob("*/seed0/sidecar.json")).read_text())
    assert meta["node"]["environment"]["SLURM_JOB_ID"]
    # training asked for --exclusive: its recorded job context says the node was its own
    begin = json.loads(next((cluster / "results/energy/train").glob("*/seed0/markers.jsonl")).read_text()
                       .splitlines()[0])
    assert begin["job"]["slurm_job_id"] and begin["job"]["exclusive"] is True, begin["job"]


def run_preempted(tmp_path: Path, config: str) -> None:
    """The tiny study's training (and the join of its energy: what the preemption tests are about, without the rest
    of the study's jobs) through sbatch with one retry, sent SIGTERM (`scancel --full`) once its first checkpoint
    exists; it must then resume and finish."""
    (tmp_path / "preempt.yaml").write_text(config)
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    target = "results/energy/train/tinyA/seed0/energy.csv"
    run = subprocess.Popen([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                            "--configfile", str(tmp_path / "preempt.yaml"), "--profile", str(PROFILE),
                            "--retries", "1", target], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    model_dir = tmp_path / "results/models/tinyA/seed0"
    try:
        deadline = time.time() + 400
        while not (model_dir / "checkpoint.pt").exists():  # the first epoch is done: preempt now
            assert run.poll() is None and time.time() < deadline, "training never checkpointed"
            time.sleep(0.5)
        jobs = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True, timeout=30).stdout
        train_job = next(line.split()[0] for line in jobs.splitlines() if "rule_train_wildcards_tinyA" in line)
        subprocess.run(["scancel", "--signal=TERM", "--full", train_job], check=True, timeout=30)
        output, _ = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output[-5000:]


def test_preempted_training_resumes_and_keeps_every_attempts_energy(tmp_path: Path) -> None:
    config = one_architecture("\ntraining: {epochs: 6, batch_size: 8, crop_frames: 50, samples_per_epoch: 160,"
                              " warmup_epochs: 0, margin_start_epoch: 1, margin_end_epoch: 2, threads: 1}\n")
    run_preempted(tmp_path, config)
    markers = [json.loads(line) for line in (tmp_path / "results/energy/train/tinyA/seed0/markers.jsonl")
               .read_text().splitlines()]
    # two attempts; the first ended on the signal: with 143 after its checkpoint, or killed by SLURM
    # before its end marker (scancel --full also signals the batch shell and Snakemake's job step)
    assert sum(m["event"] == "begin" for m in markers) == 2
    ends = [m["status"] for m in markers if m["event"] == "end"]
    assert ends in ([143, 0], [0]), ends
    history = (tmp_path / "results/models/tinyA/seed0/history.csv").read_text().splitlines()
    assert len(history) == 7  # header + 6 epochs, each once
    import pandas as pd

    energy = pd.read_csv(tmp_path / "results/energy/train/tinyA/seed0/energy.csv")
    job = energy[(energy["phase"] == "job") & (energy["component"] == "cpu")]
    assert sorted(job["attempt"]) == [1, 2] and (job["energy_j"] > 0).all()
    assert not job[job["attempt"] == 1]["complete"].any() and job[job["attempt"] == 2]["complete"].all()


# --- training on two nodes (issue 24) -------------------------------------------------------------------------

NODE_WATTS = {"d1": 150, "d2": 350}  # each node's fake BMC, exported to its tasks by the cluster's TaskProlog
TWO_NODES = ("\ntraining: {nodes: 2, epochs: 2, batch_size: 8, crop_frames: 50, warmup_epochs: 0,"
             " margin_start_epoch: 1, margin_end_epoch: 2, threads: 1}"
             "\nenergy: {ipmi: {interval_s: 0.2, timeout_s: 2, retries: 0}, baseline_s: 1}\n")


@pytest.fixture
def node_sensors(tmp_path: Path):
    """A fake ipmitool per node at its own power, through tests/slurm's per-node environment files."""
    env_dir = Path(os.environ.get("SVBENCH_SLURM_STATE", "/tmp/svbench-slurm")) / "node-env"
    tool = tmp_path / "bin" / "ipmitool"
    tool.parent.mkdir()
    shutil.copy(REPO / "tests/fakes/ipmitool", tool)
    tool.chmod(0o755)
    written = []
    try:
        for node, watts in NODE_WATTS.items():
            path = env_dir / node
            path.write_text(f"export SVBENCH_IPMITOOL={tool}\nexport FAKE_IPMI_WATTS={watts}\n")
            written.append(path)
        yield NODE_WATTS
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def _node_begins(folder: Path) -> dict[str, list[dict]]:
    return {node.name: [json.loads(line) for line in (node / "markers.jsonl").read_text().splitlines()
                        if '"begin"' in line] for node in sorted(folder.glob("node*"))}


def test_a_two_node_training_is_measured_on_both_nodes(tmp_path: Path, node_sensors) -> None:
    import pandas as pd

    (tmp_path / "two.yaml").write_text(one_architecture(TWO_NODES))
    started = time.time()
    run = snakemake(tmp_path, "--configfile", str(tmp_path / "two.yaml"), "--profile", str(PROFILE), timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    rows = sacct(started, "JobID", "Comment", "NNodes", "NodeList", "State")
    train = [r for r in rows if r[1].startswith("rule_train_wildcards_tinyA")]
    assert len(train) == 1 and train[0][2] == "2" and train[0][4] == "COMPLETED", rows
    embed = [r for r in rows if r[1].startswith("rule_embed_wildcards_tinyA")]
    assert embed and embed[0][2] == "1"  # only the training asks for two nodes

    folder = tmp_path / "results/energy/train/tinyA/seed0"
    begins = _node_begins(folder)
    assert sorted(begins) == ["node0", "node1"]
    hosts = {b["job"].get("slurm_job_nodelist") for bs in begins.values() for b in bs}
    assert hosts == {"d[1-2]"}, hosts
    # each node's markers: its own clock (d2's is 100,000 s ahead) and every epoch once
    assert abs(begins["node1"][0]["t_mono_ns"] - begins["node0"][0]["t_mono_ns"]) > 90_000e9
    for node in ("node0", "node1"):
        lines = (folder / node / "markers.jsonl").read_text().splitlines()
        epochs = [json.loads(line)["index"] for line in lines if '"start"' in line and '"epoch"' in line]
        assert epochs == [0, 1], (node, epochs)
    energy = pd.read_csv(folder / "energy.csv")
    job = energy[(energy["phase"] == "job") & (energy["component"] == "node")].set_index("node")
    by_rank = {"node0": NODE_WATTS["d1"], "node1": NODE_WATTS["d2"]}  # srun's node 0 is d1
    for node, watts in by_rank.items():
        assert job.loc[node, "energy_j"] == pytest.approx(watts * job.loc[node, "seconds"], rel=0.05)
    total = energy[(energy["component"] == "job_total") & (energy["phase"] == "job")].iloc[0]
    assert not total["partial"]
    assert total["energy_j"] == pytest.approx(job["energy_j"].sum(), rel=1e-9)
    summary = pd.read_csv(tmp_path / "results/study/summary.csv").iloc[0]
    assert summary["train_nodes"] == 2 and summary["train_energy_kwh"] == pytest.approx(
        total["energy_j"] / 3.6e6, rel=0.01)
    history = (tmp_path / "results/models/tinyA/seed0/history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs: one training, not one per node


def test_a_preempted_two_node_training_keeps_both_attempts_on_both_nodes(tmp_path: Path, node_sensors) -> None:
    import pandas as pd

    config = one_architecture(TWO_NODES.replace("epochs: 2,", "epochs: 6, samples_per_epoch: 160,"))
    run_preempted(tmp_path, config)
    folder = tmp_path / "results/energy/train/tinyA/seed0"
    begins = _node_begins(folder)
    assert {node: len(b) for node, b in begins.items()} == {"node0": 2, "node1": 2}
    history = (tmp_path / "results/models/tinyA/seed0/history.csv").read_text().splitlines()
    assert len(history) == 7  # header + 6 epochs, each once
    energy = pd.read_csv(folder / "energy.csv")
    job = energy[(energy["phase"] == "job") & (energy["component"] == "node")]
    for node in ("node0", "node1"):
        rows = job[job["node"] == node]
        assert sorted(rows["attempt"]) == [1, 2] and (rows["energy_j"] > 0).all()
    totals = energy[(energy["component"] == "job_total") & (energy["phase"] == "job")].set_index("attempt")
    assert sorted(totals.index) == [1, 2] and not totals["partial"].any()
    assert not totals.loc[1, "complete"] and totals.loc[2, "complete"]
