"""The job's energy over its nodes (svbench.energy.node_join) where a node is missing: never a silent share."""

from __future__ import annotations

from svbench.energy.node_join import join_nodes


def _one_monitor_in_a_slurm_job(node, tmp_path, job_nodes: int):
    """One monitor with a BMC, in a SLURM job of ``job_nodes`` nodes: the joined frame."""
    node.with_ipmi()
    node.monkeypatch.setenv("SLURM_JOB_ID", "4242")
    node.monkeypatch.setenv("SLURM_JOB_NUM_NODES", str(job_nodes))
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    return join_nodes(out, 1)


def test_one_monitor_in_a_four_node_slurm_job_is_a_partial_figure(node, tmp_path):
    """The issue's user: a 4-node job launched by hand under one `svbench monitor` measured one node, and its
    total read as the job's at 100 % coverage. Now the job context says 4 nodes and the sums name the rest."""
    frame = _one_monitor_in_a_slurm_job(node, tmp_path, 4)
    job = frame[(frame["phase"] == "job") & (frame["node"] == "all") & (frame["component"] == "job_total")].iloc[0]
    assert job["partial"] and job["channel"] == "1 of 4"
    assert all(f"node{k}: not measured: the SLURM job ran on 4 nodes" in job["notes"] for k in (1, 2, 3))
    measured = frame[(frame["phase"] == "job") & (frame["node"] == "node0") & (frame["component"] == "node")]
    assert job["energy_j"] == measured["energy_j"].iloc[0]  # node0's energy, labelled as a part


def test_a_one_node_job_in_a_one_node_allocation_is_whole(node, tmp_path):
    frame = _one_monitor_in_a_slurm_job(node, tmp_path, 1)
    job = frame.query("phase == 'job' and node == 'all' and component == 'job_total'").iloc[0]
    assert not job["partial"] and job["notes"] == "" and job["channel"] == "1 of 1"


def test_a_node_whose_trace_has_no_reading_is_named(tmp_path):
    """node1's sidecar started (a session row, begin and end markers) but read no sensor at all."""
    import json

    from fakes.study import T0, write_job

    write_job(tmp_path / "node0", 100.0, 10.0, T0, ["epoch"])
    node1 = tmp_path / "node1"
    node1.mkdir()
    (node1 / "trace.csv").write_text("t_wall_ns,t_mono_ns,sensor,channel,quantity,value,unit,component,estimated\n"
                                     f"{T0},5,sidecar,s1,session,0.0,,other,0\n")
    (node1 / "markers.jsonl").write_text("".join(json.dumps(m) + "\n" for m in (
        {"event": "begin", "t_wall_ns": T0, "t_mono_ns": 10, "session": "s1"},
        {"event": "end", "t_wall_ns": T0 + 10**10, "t_mono_ns": 10 + 10**10, "status": 0})))
    frame = join_nodes(tmp_path, 2)
    job = frame.query("phase == 'job' and component == 'job_total'").iloc[0]
    assert job["partial"] and "node1" in job["notes"] and "no sensor reading" in job["notes"]
    node0 = frame.query("phase == 'job' and node == 'node0' and component in ('cpu', 'dram')")
    assert job["energy_j"] == node0["energy_j"].sum()
