"""The job's energy over its nodes (svbench.energy.node_join) where a node is missing: never a silent share."""

from __future__ import annotations

from svbench.energy.node_join import join_nodes


def test_one_monitor_in_a_four_node_slurm_job_is_a_partial_figure(node, tmp_path):
    """The issue's user: a 4-node job launched by hand under one `svbench monitor` measured one node, and its
    total read as the job's at 100 % coverage. Now the job context says 4 nodes and the sums name the rest."""
    node.with_ipmi()
    node.monkeypatch.setenv("SLURM_JOB_ID", "4242")
    node.monkeypatch.setenv("SLURM_JOB_NUM_NODES", "4")
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    frame = join_nodes(out, 1)
    job = frame[(frame["phase"] == "job") & (frame["node"] == "all") & (frame["component"] == "job_total")].iloc[0]
    assert job["partial"] and job["channel"] == "1 of 4"
    assert all(f"node{k}: not measured: the SLURM job ran on 4 nodes" in job["notes"] for k in (1, 2, 3))
    measured = frame[(frame["phase"] == "job") & (frame["node"] == "node0") & (frame["component"] == "node")]
    assert job["energy_j"] == measured["energy_j"].iloc[0]  # node0's energy, labelled as a part


def test_a_one_node_job_in_a_one_node_allocation_is_whole(node, tmp_path):
    node.with_ipmi()
    node.monkeypatch.setenv("SLURM_JOB_ID", "4243")
    node.monkeypatch.setenv("SLURM_JOB_NUM_NODES", "1")
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    job = join_nodes(out, 1).query("phase == 'job' and node == 'all' and component == 'job_total'").iloc[0]
    assert not job["partial"] and job["notes"] == "" and job["channel"] == "1 of 1"
