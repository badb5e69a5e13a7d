"""The energy of a job on several nodes: each node joined on its own clock, then one honest total.

Each node's monitor wrote its own folder (:mod:`svbench.instrument.nodes`): its trace, on that node's monotonic
clock, and the markers of that node's first process, on the same clock. A node's samples are joined only
with its own markers (:func:`svbench.energy.join.join`), so no two nodes' samples ever meet in one series
and no clock is mapped onto another's. ``energy.csv`` then holds every node's rows (``node`` = node0, node1,
…) and, for every span of the job (phase, index, detail, attempt), one row ``node = all`` whose energy is the
sum over the nodes of each node's own total (:func:`svbench.energy.join.span_total`: that node's meter when
it covers its components, else its components). A node that left no trace, no markers or no reading makes
every such sum ``partial`` and is named in its ``notes``: its energy is not there, and never counts as zero.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.energy.carbon import Intensity
from svbench.energy.join import (
    COMPONENTS,
    ENERGY_COLUMNS,
    JOB_NODE,
    join,
    span_total,
    typed_columns,
    write_energy,
)
from svbench.errors import UserError
from svbench.instrument.markers import read_markers
from svbench.instrument.nodes import MARKERS, node_dirs, node_name, trace_path

SUM_KEYS = ["phase", "index", "detail", "attempt"]  # one span of the job, whatever node it ran on


def join_nodes(job_dir: Path, nodes: int = 1, out_path: Path | None = None,
               intensity: Intensity | None = None) -> pd.DataFrame:
    """Join every node of the job measured in ``job_dir`` and add the job's sums (node ``all``).

    On one node a missing or empty trace or markers file is an error naming it, as an empty table would read
    as a job that cost nothing; on several, such a node is named in the sums (``partial``), and it is an error
    only when no node has anything to join.
    """
    frames, missing = [], {}
    for rank, folder in enumerate(node_dirs(job_dir, nodes)):
        name = node_name(rank)
        try:
            frame = join(trace_path(folder), Path(folder) / MARKERS, None, intensity, name, nodes,
                         crosscheck=not frames)  # sacct's figure is the job's: once, from the first node joined
        except UserError as exc:
            if nodes == 1:
                raise
            missing[name] = str(exc)
            continue
        measured = frame[frame["component"].isin(("node", *COMPONENTS))]
        if not measured["energy_j"].notna().any():
            missing[name] = f"{folder}: no sensor reading in the trace"
        frames.append(frame)
    if not frames:
        raise UserError(f"{job_dir}: no node of this {nodes}-node job has a trace to join: "
                        + "; ".join(missing.values()))
    missing |= unmeasured_nodes(Path(node_dirs(job_dir, nodes)[0]) / MARKERS, nodes)
    frame = pd.concat(frames, ignore_index=True)
    frame = typed_columns(pd.concat([frame, job_sums(frame, nodes, missing)], ignore_index=True))
    if out_path is not None:
        write_energy(frame, Path(out_path))
    return frame


def unmeasured_nodes(markers: Path, nodes: int) -> dict[str, str]:
    """Nodes that the SLURM job ran on beyond the ``nodes`` measured: one ``svbench monitor`` in a 4-node job
    measures one node, and its figure is a quarter of the job's. From the job context of the first node's
    ``begin`` markers (the step's node count under srun, else the job's)."""
    allocated = nodes
    for begin in (m for m in read_markers(markers) if m.event == "begin"):
        job = begin.job or {}
        count = str(job.get("slurm_step_num_nodes") or job.get("slurm_job_num_nodes") or "")
        if count.isdigit():
            allocated = max(allocated, int(count))
    return {node_name(rank): f"not measured: the SLURM job ran on {allocated} nodes and svbench monitor measured "
                             f"{nodes} (one monitor per node: svbench monitor --nodes {allocated} under srun)"
            for rank in range(nodes, allocated)}


def job_sums(frame: pd.DataFrame, nodes: int, missing: dict[str, str]) -> pd.DataFrame:
    """One row per span of the job (node ``all``): the sum over nodes of each node's total of that span.

    ``partial`` when a node of the job has no total for the span: a node in ``missing`` (no trace, no
    markers, no reading, or never measured) or one whose own span has no measured energy (its sidecar
    stopped, or that attempt never reached it)."""
    measured = frame[frame["component"].isin(("node", *COMPONENTS))]
    expected = list(dict.fromkeys([*map(node_name, range(nodes)), *missing]))  # and those never measured
    rows = []
    for key, span in measured.groupby(SUM_KEYS, dropna=False, sort=False):
        totals, sources = {}, []
        for name, g in span.groupby("node", sort=True):
            c, _ = span_total(g)
            if not math.isnan(c.total_j):
                totals[name] = c.total_j
                sources.append(f"{name} from {c.total_from}")
        lacking = [name for name in expected if name not in totals]
        notes = [f"{name}: {missing.get(name, 'no measured energy in this span')}" for name in lacking]
        first = span.iloc[0]
        rows.append(dict(zip(SUM_KEYS, key, strict=True)) | {
            "complete": bool(span["complete"].all()),
            "t_start_wall_ns": int(span["t_start_wall_ns"].min()), "t_end_wall_ns": int(span["t_end_wall_ns"].max()),
            "seconds": float(span.groupby("node")["seconds"].max().max()),  # wall time: the nodes ran side by side
            "sensor": "nodes", "channel": f"{len(totals)} of {len(expected)}", "component": "job_total",
            "method": "sum over nodes of each node's total: " + (", ".join(sources) or "none"),
            "energy_j": sum(totals.values()) if totals else np.nan,
            "coverage": float(span["coverage"].min()), "resolved": bool(span["resolved"].all()),
            "estimated": bool(span["estimated"].any()), "samples": int(span["samples"].sum()),
            "intensity_g_per_kwh": np.nan, "idle_w": np.nan, "idle_j": np.nan, "dynamic_j": np.nan,
            "notes": ("partial: " + "; ".join(notes)) if notes else "",
            "node": JOB_NODE, "nodes": nodes, "partial": bool(lacking)} | {"index": first["index"]})
    return pd.DataFrame(rows, columns=ENERGY_COLUMNS)


def job_nodes(frame: pd.DataFrame) -> int:
    """The nodes a job ran on, as its join recorded them (1 for an energy.csv of an svbench without nodes)."""
    return int(frame["nodes"].max()) if "nodes" in frame and frame["nodes"].notna().any() else 1


def partial_nodes(frame: pd.DataFrame, phase: str) -> str:
    """What the job's sums of ``phase`` say is missing ("" when every node counted), for the summary."""
    if "partial" not in frame or not len(frame):
        return ""
    sums = frame[(frame["node"] == JOB_NODE) & (frame["phase"] == phase) & frame["partial"].astype(bool)]
    return "; ".join(dict.fromkeys(n.removeprefix("partial: ") for n in sums["notes"] if n))
