"""svbench launch: the torchrun command of each node, the rendezvous from SLURM's view of the job, the node rank."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import BIN

from svbench.errors import UserError
from svbench.instrument.nodes import node_dir, node_dirs, node_rank
from svbench.training.launch import first_host, launch_command, rendezvous_port, slurm_resources, srun_prefix

CMD = ["svbench", "train", "--out", "a folder"]


def test_one_process_runs_the_command_itself_and_one_node_standalone() -> None:
    assert launch_command(CMD, 1, 1) == CMD
    assert launch_command(CMD, 1, 4) == ["torchrun", "--standalone", "--nproc-per-node", "4", "--no-python", *CMD]


def test_each_node_gets_its_rank_and_the_static_rendezvous_at_the_first_node() -> None:
    argv = launch_command(CMD, 4, 2, rank=3, host="10.0.0.7", port=21234)
    assert argv[:argv.index("--no-python")] == [
        "torchrun", "--nnodes", "4", "--node-rank", "3", "--nproc-per-node", "2", "--rdzv-backend", "static",
        "--master-addr", "10.0.0.7", "--master-port", "21234"]
    assert argv[-len(CMD):] == CMD  # the argument with a space stays one argument


def test_the_node_rank_comes_from_the_monitor_else_srun_and_is_checked() -> None:
    assert node_rank(1, env={}) == 0
    assert node_rank(2, env={"SVBENCH_NODE_RANK": "1", "SLURM_NODEID": "0"}) == 1  # the monitor's rank wins
    assert node_rank(2, env={"SLURM_NODEID": "1"}) == 1
    assert node_rank(2, given=0, env={"SLURM_NODEID": "1"}) == 0
    with pytest.raises(UserError, match="needs this node's rank"):
        node_rank(2, env={})
    with pytest.raises(UserError, match="SLURM_NODEID: node rank 5 is outside 0..3"):
        node_rank(4, env={"SLURM_NODEID": "5"})
    with pytest.raises(UserError, match="--node-rank: 'x'"):
        node_rank(2, given="x", env={})


def test_node_folders_are_the_job_folder_on_one_node_and_node_k_on_several() -> None:
    assert node_dir("results/energy/train/a/seed0", 0, 1) == "results/energy/train/a/seed0"
    assert node_dirs("results/energy/train/a/seed0/", 2) == ["results/energy/train/a/seed0/node0",
                                                            "results/energy/train/a/seed0/node1"]


def test_the_rendezvous_address_is_the_first_nodes_node_addr(tmp_path: Path, monkeypatch) -> None:
    """A SLURM node name need not resolve (the two-node test cluster's d1, d2 do not): NodeAddr is asked for."""
    fake = tmp_path / "scontrol"
    fake.write_text("#!/bin/sh\n"
                    'if [ "$1 $2" = "show hostnames" ]; then printf "gpu17\\ngpu18\\n"; exit 0; fi\n'
                    'if [ "$1 $2 $4" = "show node gpu17" ]; then echo "NodeName=gpu17 NodeAddr=10.1.2.3 State=IDLE"; '
                    "exit 0; fi\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert first_host({"SLURM_JOB_NODELIST": "gpu[17-18]"}) == "10.1.2.3"
    assert first_host({"SLURM_JOB_NODELIST": "gpu[17-18]", "MASTER_ADDR": "head"}) == "head"
    assert first_host({}) == "127.0.0.1"
    assert rendezvous_port({"SLURM_JOB_ID": "123456"}) == 20000 + 123456 % 20000
    assert rendezvous_port({"MASTER_PORT": "4000"}) == 4000


def test_slurm_resources_and_the_srun_step_of_a_multi_node_job() -> None:
    one = slurm_resources(1, 4)
    assert one["gpu"] == 4 and one["mpi"] is None and one["gres"] is None and srun_prefix(1, 4) == []
    four = slurm_resources(4, 2)
    assert four == {"gpu": None, "nodes": 4, "gres": "gpu:2", "mpi": "srun", "tasks": 4, "tasks_per_gpu": 0}
    assert srun_prefix(4, 2)[:4] == ["srun", "--nodes=4", "--ntasks=4", "--ntasks-per-node=1"]
    assert "--kill-on-bad-exit=1" in srun_prefix(4, 2)


def test_the_cli_refuses_a_job_on_several_nodes_without_a_rank() -> None:
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "launch", "--nodes", "2", "--", "true"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 2 and "needs this node's rank" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "launch", "--", "sh", "-c", "exit 7"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 7  # one process: the command itself, its status unchanged
