"""A CodeCarbon ``emissions.csv`` for one measured job, from its ``energy.csv``.

For people who already collect CodeCarbon files: the columns are exactly CodeCarbon 3.x's
``EmissionsData`` (3.3.0, ``codecarbon/output_methods/emissions_data.py``), in its order and units:
durations in s, energies in kWh (PUE applied, as CodeCarbon does), emissions in kg CO2e, emissions_rate
in kg/s, powers in W (mean over the run). One row per attempt of the job (a preempted job resumed is a
new run). Columns svbench cannot fill honestly (software versions of the job's machine, utilisation,
water) are left empty, never guessed. The location is what CodeCarbon's offline tracker writes: the
3-letter ``country_iso_code`` from the carbon config (``carbon.country_iso_code``, upper-cased, and
``carbon.country_name``), empty when the config has none (CodeCarbon's online tracker would fall back to
Canada: a guess); ``on_cloud`` is ``N`` with empty cloud fields, CodeCarbon's value off the cloud.

svbench's own fields (``energy_basis``: measured or estimated) go to ``emissions_svbench.csv`` beside it,
keyed by ``run_id``: an extra column would make CodeCarbon's file handler see another format.

``energy_consumed`` is svbench's job energy: the node meter when there is one (it then exceeds
``cpu + gpu + ram``, the rest of the node), else the sum of the components.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from svbench.energy.carbon import Factor, Intensity, factors_from_config, gpu_count, rows_g
from svbench.energy.join import energy_basis, node_rows, total_rows
from svbench.fileio import atomic_write

# CodeCarbon 3.3.0 EmissionsData, field order (mlco2/codecarbon tag 3.3.0, commit 4dde6e30)
COLUMNS = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
]
SVBENCH_COLUMNS = ["run_id", "energy_basis"]  # emissions_svbench.csv
COMPONENT_COLUMN = {"cpu": "cpu", "gpu": "gpu", "dram": "ram"}


def _gpu_model(sidecar: dict) -> str:
    for s in sidecar.get("sensors", []):
        if s.get("name") == "nvml" and s.get("available"):
            names = [d.get("name", "") for d in s.get("metadata", {}).get("devices", {}).values()]
            if names:
                return " + ".join(f"{names.count(n)} x {n}" for n in dict.fromkeys(names))
    return ""


def emissions_frame(energy: pd.DataFrame, sidecar: dict, pue: Factor, intensity: Intensity,
                    project_name: str, carbon: dict | None = None) -> pd.DataFrame:
    """One CodeCarbon row per attempt of the job (its ``job`` phase rows in ``energy.csv``): the
    columns of ``COLUMNS``, then svbench's own (``SVBENCH_COLUMNS``)."""
    job = node_rows(energy[energy["phase"] == "job"]) if len(energy) else energy
    node = sidecar.get("node", {})
    carbon = carbon or {}
    iso = str(carbon.get("country_iso_code") or "").upper()  # CodeCarbon's GeoMetadata upper-cases it
    rows = []
    for attempt, g in job.groupby("attempt", sort=True):
        used = total_rows(g)
        start, end = int(g["t_start_wall_ns"].min()), int(g["t_end_wall_ns"].max())
        seconds = float(g["seconds"].max())
        row: dict = {c: "" for c in COLUMNS + SVBENCH_COLUMNS}
        row |= {
            "timestamp": datetime.fromtimestamp(end / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "project_name": project_name,
            # a stable id per job and attempt: rerunning the conversion gives the same file
            "run_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"svbench:{project_name}:{attempt}:{start}")),
            "duration": seconds, "pue": pue.value, "tracking_mode": "machine",
            "cpu_count": node.get("logical_cpus", ""), "cpu_model": node.get("cpu_model", ""),
            "ram_total_size": node["memory_bytes"] / 2**30 if node.get("memory_bytes") else "",
            "gpu_model": _gpu_model(sidecar),
            "country_iso_code": iso, "country_name": str(carbon.get("country_name") or "") if iso else "",
            "on_cloud": "N",  # cloud_provider and cloud_region stay empty, as CodeCarbon writes them off the cloud
        }
        gpus = gpu_count(g, sidecar)
        row["gpu_count"] = "" if gpus is None else gpus
        for component, col in COMPONENT_COLUMN.items():
            part = g[g["component"] == component]
            if len(part):  # a component without a sensor stays empty, never 0
                kwh = float(part["energy_j"].sum(min_count=1)) / 3.6e6
                row[f"{col}_energy"] = kwh * pue.value
                row[f"{col}_power"] = kwh * 3.6e6 / seconds if seconds > 0 else ""
        if len(used):
            joules = float(used["energy_j"].sum(min_count=1))
            kg = rows_g(used, pue, intensity) / 1e3
            row |= {"energy_consumed": joules / 3.6e6 * pue.value, "emissions": kg,
                    "emissions_rate": kg / seconds if seconds > 0 else ""}
        row["energy_basis"] = energy_basis(used)
        if len(used) and used["estimated"].astype(bool).any():
            row["tracking_mode"] = "process"  # the estimate follows the job's process tree, not the machine
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS + SVBENCH_COLUMNS[1:])


def svbench_path(out: Path) -> Path:
    """Where svbench's own fields go beside ``emissions.csv``: ``emissions_svbench.csv``."""
    out = Path(out)
    return out.with_name(out.stem + "_svbench" + out.suffix)


def _write_csv(frame: pd.DataFrame, out: Path) -> None:
    with atomic_write(out) as f:
        frame.to_csv(f, index=False)


def write_emissions(energy_csv: Path, sidecar_json: Path | None, carbon: dict, project_name: str,
                    out: Path, svbench_out: Path | None = None) -> pd.DataFrame:
    """Read a job's ``energy.csv`` (and ``sidecar.json`` when present) and write its ``emissions.csv``
    (CodeCarbon's columns only) and ``svbench_out`` (default :func:`svbench_path`): run_id + svbench's fields."""
    factors = factors_from_config(carbon)
    energy = pd.read_csv(energy_csv)
    sidecar = json.loads(Path(sidecar_json).read_text()) if sidecar_json and Path(sidecar_json).exists() else {}
    frame = emissions_frame(energy, sidecar, factors["pue"], factors["intensity"], project_name, carbon)
    out = Path(out)
    _write_csv(frame[COLUMNS], out)
    _write_csv(frame[SVBENCH_COLUMNS], Path(svbench_out) if svbench_out is not None else svbench_path(out))
    return frame
