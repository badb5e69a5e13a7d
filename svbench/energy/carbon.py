"""Carbon: operational CO2e = energy × PUE × grid intensity, and embodied carbon kept apart.

Every factor is a value with its source (``{"value": 1.2, "source": "…"}``), and may carry a range
(``low``/``high``, with ``low <= value <= high``) that the study's intervals propagate (a triangular
distribution with its mode at the value: :func:`svbench.uncertainty.draws.factor_draws`). Grid intensity is either
a constant or a time series (CSV with ``timestamp`` and ``gco2e_per_kwh`` columns, e.g. an hourly
export from the grid operator; a time is read at its offset, without one as UTC, one row per instant) averaged
over the time span of the energy it applies to; a series has no range (its values are taken as they are).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.errors import UserError


def _range(d: dict, value: float, key: str) -> tuple[float | None, float | None]:
    """A factor's ``low``/``high`` (None when not given); UserError naming the key when out of order."""
    low, high = d.get("low"), d.get("high")
    if low is None and high is None:
        return None, None
    low = value if low is None else float(low)
    high = value if high is None else float(high)
    if not low <= value <= high:
        raise UserError(f"config key {key}: low <= value <= high is needed, got low {low}, value {value}, "
                        f"high {high}")
    return low, high


@dataclass(frozen=True)
class Factor:
    value: float
    unit: str
    source: str
    low: float | None = None
    high: float | None = None
    key: str = field(default="", compare=False)  # the config key, for errors

    @classmethod
    def from_config(cls, d: dict, key: str, unit: str) -> Factor:
        if not isinstance(d, dict) or "value" not in d:
            raise UserError(f"config key {key}: expected {{value: ..., source: ...}}")
        if not d.get("source"):
            raise UserError(f"config key {key}.source: every carbon factor needs its source")
        value = float(d["value"])
        return cls(value, d.get("unit", unit), str(d["source"]), *_range(d, value, key), key=key)



OUTSIDE = ("error", "edge")  # carbon.intensity.outside: what a time outside the series gets


class Intensity:
    """Grid carbon intensity in gCO2e/kWh: constant, or a step series in time.

    A series covers its first timestamp to its last plus one step (its median spacing): the last value
    holds for one step, as an hourly export means. A time outside that is an error naming the series
    file, unless ``outside="edge"`` (config ``carbon.intensity.outside: edge``) asks for the nearest
    value; then ``edge_used`` is set and :attr:`label` says so.
    """

    key = "carbon.intensity"  # the config key, for errors

    def __init__(self, value: float | None = None, series: pd.Series | None = None, source: str = "",
                 path: Path | None = None, outside: str = "error", low: float | None = None,
                 high: float | None = None) -> None:
        if (value is None) == (series is None):
            raise ValueError("grid intensity needs exactly one of a value or a series")
        if outside not in OUTSIDE:
            raise UserError(f"config key carbon.intensity.outside: {outside!r} is not one of {', '.join(OUTSIDE)}")
        self.value, self.series, self.source, self.path, self.outside = value, series, source, path, outside
        self.low, self.high = low, high
        self.edge_used = False
        if series is not None:
            self._times = pd.DatetimeIndex(series.index).as_unit("ns").asi8  # ns since epoch, UTC
            self._values = series.to_numpy(dtype=np.float64)
            step = int(np.median(np.diff(self._times))) if len(self._times) > 1 else 3600 * 10**9
            self._end = int(self._times[-1]) + step

    @classmethod
    def from_config(cls, d: dict, key: str = "carbon.intensity") -> Intensity:
        if not d.get("source"):
            raise UserError(f"config key {key}.source: the grid intensity needs its source")
        outside = str(d.get("outside", "error"))
        if d.get("series"):
            if d.get("low") is not None or d.get("high") is not None:
                raise UserError(f"config key {key}.low/high: a range applies to a constant value; a series' "
                                "values are taken as they are (drop low/high, or give a constant value)")
            path = Path(d["series"])
            return cls(series=read_intensity_series(path), source=str(d["source"]), path=path, outside=outside)
        if "value" not in d:
            raise UserError(f"config key {key}: give a value (gCO2e/kWh) or a series (CSV path)")
        value = float(d["value"])
        low, high = _range(d, value, key)
        return cls(value=value, source=str(d["source"]), outside=outside, low=low, high=high)

    @property
    def label(self) -> str:
        """The source, and whether a time outside the series took its edge value."""
        return self.source + (" (edge value used outside the series)" if self.edge_used else "")

    def _check(self, start_ns: float, end_ns: float) -> None:
        if start_ns >= self._times[0] and end_ns <= self._end:
            return
        if self.outside == "edge":
            self.edge_used = True
            return
        span = f"{pd.Timestamp(int(self._times[0]), tz='UTC')} to {pd.Timestamp(self._end, tz='UTC')}"
        when = pd.Timestamp(int(start_ns if start_ns < self._times[0] else end_ns), tz="UTC")
        raise UserError(f"{self.path}: the grid intensity series covers {span}; energy was spent at {when}, "
                         "outside it (extend the series, or set carbon.intensity.outside: edge)")

    def at(self, t_ns: np.ndarray) -> np.ndarray:
        """The intensity in force at each wall-clock time (ns since the epoch)."""
        t_ns = np.asarray(t_ns, dtype=np.float64)
        if self.series is None:
            return np.full(t_ns.shape, float(self.value))
        if len(t_ns):
            self._check(float(t_ns.min()), float(t_ns.max()))
        k = np.clip(np.searchsorted(self._times, t_ns, side="right") - 1, 0, len(self._values) - 1)
        return self._values[k]

    def mean_over(self, start_ns: int, end_ns: int) -> float:
        """Time-weighted mean intensity over [start, end]; each series value holds until the next."""
        if self.series is None:
            return float(self.value)
        self._check(start_ns, end_ns)
        times, values = self._times, self._values
        if end_ns <= start_ns:
            k = max(np.searchsorted(times, start_ns, side="right") - 1, 0)
            return float(values[k])
        edges = np.concatenate(([start_ns], times[(times > start_ns) & (times < end_ns)], [end_ns]))
        idx = np.clip(np.searchsorted(times, edges[:-1], side="right") - 1, 0, len(values) - 1)
        return float(np.sum(values[idx] * np.diff(edges)) / (end_ns - start_ns))


def read_intensity_series(path: Path) -> pd.Series:
    """A CSV of ``timestamp,gco2e_per_kwh``: ISO 8601 times, each read at its own UTC offset (``+01:00``, ``Z``), one
    without an offset as UTC; two rows at one instant are an error naming both lines."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row with extra fields: not silently cut
            frame = pd.read_csv(path, dtype=str, index_col=False)
    except FileNotFoundError:
        raise UserError(f"{path}: grid intensity series not found "
                                "(config key carbon.intensity.series)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: not a timestamp,gco2e_per_kwh CSV ({exc})") from None
    missing = {"timestamp", "gco2e_per_kwh"} - set(frame.columns)
    if missing:
        raise UserError(f"{path}: missing column(s) {sorted(missing)}; expected timestamp,gco2e_per_kwh")
    if frame.empty:
        raise UserError(f"{path}: the grid intensity series has no rows")
    times = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce", format="ISO8601")
    values = pd.to_numeric(frame["gco2e_per_kwh"], errors="coerce")  # "n/a" or "12 g" is an error, not a crash
    bad = frame.index[times.isna() | values.isna() | (values < 0)]
    if len(bad):
        raise UserError(f"{path}:{bad[0] + 2}: unreadable timestamp or intensity "
                         f"{frame['timestamp'].iloc[bad[0]]!r},{frame['gco2e_per_kwh'].iloc[bad[0]]!r}")
    _refuse_duplicate_instants(path, frame["timestamp"], times)
    # pandas 3 parses to µs; mean_over works in ns since the epoch
    series = pd.Series(values.to_numpy(float), index=pd.DatetimeIndex(times).as_unit("ns")).sort_index()
    return series


def _refuse_duplicate_instants(path: Path, text: pd.Series, times: pd.Series) -> None:
    """UserError naming both lines when two rows name one instant (after their offsets): which value would hold
    then would depend on the rows' order."""
    repeated = times.duplicated(keep="first")
    if not repeated.any():
        return
    second = int(np.flatnonzero(repeated.to_numpy())[0])
    first = int(np.flatnonzero((times == times.iloc[second]).to_numpy())[0])
    instant = times.iloc[second].tz_convert(None).isoformat()
    raise UserError(f"{path}:{second + 2}: timestamp {text.iloc[second]!r} is the same instant as line {first + 2} "
                    f"({text.iloc[first]!r}), {instant} UTC; keep one row per instant (a time with an offset or Z "
                    "is read at that offset, a time without one as UTC)")


def operational_g(energy_j: float, start_ns: int, end_ns: int, pue: Factor, intensity: Intensity) -> float:
    """gCO2e of ``energy_j`` of IT energy spent between two wall-clock times."""
    return energy_j / 3.6e6 * pue.value * intensity.mean_over(start_ns, end_ns)


def rows_g(rows: pd.DataFrame, pue: Factor, intensity: Intensity) -> float:
    """Operational gCO2e of energy.csv rows (those of a total): each row's energy at its own intensity,
    the one weighted by energy over its samples where the join had the series (``intensity_g_per_kwh``),
    else the time-weighted mean over its span (exact for a constant). NaN when no row has energy."""
    grams = []
    for r in rows.itertuples():
        level = getattr(r, "intensity_g_per_kwh", math.nan)
        if level is None or math.isnan(level):
            level = intensity.mean_over(int(r.t_start_wall_ns), int(r.t_end_wall_ns))
        grams.append(r.energy_j / 3.6e6 * pue.value * level)
    return float(pd.Series(grams, dtype=float).sum(min_count=1))


def gpu_count(energy: pd.DataFrame, sidecar: dict | None = None) -> int | None:
    """GPUs a job really used: its NVML channels in ``energy.csv`` (never assumed from a config).

    Without an NVML channel: ``CUDA_VISIBLE_DEVICES`` naming GPUs means GPUs were given but not read:
    unknown (None), and the job's embodied GPU carbon stays empty. Unset, it means every GPU of the node,
    as CUDA reads it: the node's GPU device count the sidecar recorded (``node.gpu_devices``; 0 on a node
    without any), unknown when it recorded none. Set to nothing, ``-1`` or ``NoDevFiles``: no GPU.
    """
    if len(energy) and "component" in energy:
        gpu = energy[(energy["component"] == "gpu") & (energy["sensor"] == "nvml")]
        if len(gpu):  # per node: two nodes' first GPUs may share a channel name
            return int(len(gpu.drop_duplicates([c for c in ("node", "channel") if c in gpu])))
    node = (sidecar or {}).get("node", {}) or {}
    visible = (node.get("environment", {}) or {}).get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        devices = node.get("gpu_devices")
        return 0 if devices == 0 else None
    return None if visible not in ("", "-1", "NoDevFiles") else 0


def embodied_g(hours: float, gpus: int | None, gpu_kg_per_hour: Factor | None,
               server_kg_per_hour: Factor | None, servers: int = 1) -> tuple[float, float]:
    """Embodied gCO2e (GPU share, server share) of ``hours`` of a job on ``gpus`` GPUs (of all its nodes) and
    ``servers`` nodes.

    Kept apart from operational carbon (REFERENCE §8); an unknown GPU count or factor gives NaN.
    """
    nan = float("nan")
    gpu_g = nan if gpus is None or gpu_kg_per_hour is None else 1e3 * hours * gpus * gpu_kg_per_hour.value
    server_g = nan if server_kg_per_hour is None else 1e3 * hours * servers * server_kg_per_hour.value
    return gpu_g, server_g


def factors_from_config(carbon: dict) -> dict[str, Factor | Intensity | None]:
    """PUE, intensity and the two embodied factors of a ``carbon`` config section, each with its source; a section
    or a required factor that is missing is a UserError naming the key."""
    if not isinstance(carbon, dict):
        raise UserError("carbon: missing from the config (pue and intensity, each with its source)")
    for key in ("pue", "intensity"):
        if carbon.get(key) is None:
            raise UserError(f"carbon.{key}: missing from the config (a value with its source, e.g. "
                            f"{{value: {1.2 if key == 'pue' else 56}, source: ...}})")
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
