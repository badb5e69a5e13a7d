"""Carbon: operational CO2e = energy × PUE × grid intensity, and embodied carbon kept apart.

Every factor is a value with its source (``{"value": 1.2, "source": "…"}``). Grid intensity is either
a constant or a time series (CSV with ``timestamp`` and ``gco2e_per_kwh`` columns, e.g. an hourly
export from the grid operator) averaged over the time span of the energy it applies to.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Factor:
    value: float
    unit: str
    source: str

    @classmethod
    def from_config(cls, d: dict, key: str, unit: str) -> Factor:
        if not isinstance(d, dict) or "value" not in d:
            raise ValueError(f"config key {key}: expected {{value: ..., source: ...}}")
        if not d.get("source"):
            raise ValueError(f"config key {key}.source: every carbon factor needs its source")
        return cls(float(d["value"]), d.get("unit", unit), str(d["source"]))


class Intensity:
    """Grid carbon intensity in gCO2e/kWh: constant, or a step series in time."""

    def __init__(self, value: float | None = None, series: pd.Series | None = None, source: str = "") -> None:
        if (value is None) == (series is None):
            raise ValueError("grid intensity needs exactly one of a value or a series")
        self.value, self.series, self.source = value, series, source

    @classmethod
    def from_config(cls, d: dict, key: str = "carbon.intensity") -> Intensity:
        if not d.get("source"):
            raise ValueError(f"config key {key}.source: the grid intensity needs its source")
        if d.get("series"):
            return cls(series=read_intensity_series(Path(d["series"])), source=str(d["source"]))
        if "value" not in d:
            raise ValueError(f"config key {key}: give a value (gCO2e/kWh) or a series (CSV path)")
        return cls(value=float(d["value"]), source=str(d["source"]))

    def mean_over(self, start_ns: int, end_ns: int) -> float:
        """Time-weighted mean intensity over [start, end]; each series value holds until the next."""
        if self.series is None:
            return float(self.value)
        times = pd.DatetimeIndex(self.series.index).as_unit("ns").asi8  # ns since epoch, UTC
        values = self.series.to_numpy(dtype=np.float64)
        if end_ns <= start_ns:
            k = max(np.searchsorted(times, start_ns, side="right") - 1, 0)
            return float(values[k])
        edges = np.concatenate(([start_ns], times[(times > start_ns) & (times < end_ns)], [end_ns]))
        idx = np.clip(np.searchsorted(times, edges[:-1], side="right") - 1, 0, len(values) - 1)
        return float(np.sum(values[idx] * np.diff(edges)) / (end_ns - start_ns))


def read_intensity_series(path: Path) -> pd.Series:
    """A CSV of ``timestamp,gco2e_per_kwh`` (ISO times; naive times are taken as UTC)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row with extra fields: not silently cut
            frame = pd.read_csv(path, dtype=str, index_col=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: grid intensity series not found "
                                "(config key carbon.intensity.series)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path}: not a timestamp,gco2e_per_kwh CSV ({exc})") from None
    missing = {"timestamp", "gco2e_per_kwh"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected timestamp,gco2e_per_kwh")
    if frame.empty:
        raise ValueError(f"{path}: the grid intensity series has no rows")
    times = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce", format="ISO8601")
    values = pd.to_numeric(frame["gco2e_per_kwh"], errors="coerce")  # "n/a" or "12 g" is an error, not a crash
    bad = frame.index[times.isna() | values.isna() | (values < 0)]
    if len(bad):
        raise ValueError(f"{path}:{bad[0] + 2}: unreadable timestamp or intensity "
                         f"{frame['timestamp'].iloc[bad[0]]!r},{frame['gco2e_per_kwh'].iloc[bad[0]]!r}")
    # pandas 3 parses to µs; mean_over works in ns since the epoch
    series = pd.Series(values.to_numpy(float), index=pd.DatetimeIndex(times).as_unit("ns")).sort_index()
    return series


def operational_g(energy_j: float, start_ns: int, end_ns: int, pue: Factor, intensity: Intensity) -> float:
    """gCO2e of ``energy_j`` of IT energy spent between two wall-clock times."""
    return energy_j / 3.6e6 * pue.value * intensity.mean_over(start_ns, end_ns)


def gpu_count(energy: pd.DataFrame, sidecar: dict | None = None) -> int | None:
    """GPUs a job really used: its NVML channels in ``energy.csv`` (never assumed from a config).

    No NVML channel on a job that saw no GPU (no ``CUDA_VISIBLE_DEVICES``) is 0 GPUs; on a job that was
    given GPUs but could not read them it is unknown (None), and its embodied GPU carbon stays empty.
    """
    if len(energy) and "component" in energy:
        gpu = energy[(energy["component"] == "gpu") & (energy["sensor"] == "nvml")]
        if len(gpu):
            return int(gpu["channel"].nunique())
    visible = ((sidecar or {}).get("node", {}).get("environment", {}) or {}).get("CUDA_VISIBLE_DEVICES")
    return None if visible not in (None, "", "-1", "NoDevFiles") else 0


def embodied_g(hours: float, gpus: int | None, gpu_kg_per_hour: Factor | None,
               server_kg_per_hour: Factor | None) -> tuple[float, float]:
    """Embodied gCO2e (GPU share, server share) of ``hours`` of a job on ``gpus`` GPUs and one server.

    Kept apart from operational carbon (REFERENCE §8); an unknown GPU count or factor gives NaN.
    """
    nan = float("nan")
    gpu_g = nan if gpus is None or gpu_kg_per_hour is None else 1e3 * hours * gpus * gpu_kg_per_hour.value
    server_g = nan if server_kg_per_hour is None else 1e3 * hours * server_kg_per_hour.value
    return gpu_g, server_g


def factors_from_config(carbon: dict) -> dict[str, Factor | Intensity | None]:
    """PUE, intensity and the two embodied factors of a ``carbon`` config section, each with its source."""
    embodied = carbon.get("embodied", {}) or {}
    return {
        "pue": Factor.from_config(carbon["pue"], "carbon.pue", "ratio"),
        "intensity": Intensity.from_config(carbon["intensity"]),
        "gpu_kg_per_hour": Factor.from_config(embodied["gpu_kg_per_hour"], "carbon.embodied.gpu_kg_per_hour",
                                              "kgCO2e/h") if embodied.get("gpu_kg_per_hour") else None,
        "server_kg_per_hour": Factor.from_config(embodied["server_kg_per_hour"],
                                                 "carbon.embodied.server_kg_per_hour", "kgCO2e/h")
        if embodied.get("server_kg_per_hour") else None,
    }
