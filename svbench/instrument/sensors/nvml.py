"""GPU energy and power from NVML, read through nvidia-ml-py (``import pynvml``).

Per GPU the job may use (``CUDA_VISIBLE_DEVICES``), channel ``gpuK`` (K = position in the job's
view) gives:

- ``energy`` (J, cumulative since ``open()``): ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since
  driver load, Volta and newer). The best figure; the join uses its deltas. The counter is 64-bit and
  never wraps, but a driver reload resets it: any drop, and any rise beyond what the GPU's largest
  power limit (``nvmlDeviceGetPowerManagementLimitConstraints``, else the configured ``max_power_w``)
  allows in the time, is a break, recorded as a ``counter_break`` row (see :mod:`.counter`).
- ``power`` (W): instant power from ``nvmlDeviceGetFieldValues([NVML_FI_DEV_POWER_INSTANT])``;
  where that field is not supported, ``nvmlDeviceGetPowerUsage`` instead (the only power there is).
- ``power_avg`` (W): ``nvmlDeviceGetPowerUsage`` when instant power exists too. On Ampere and newer
  (except A100) it is a 1-s average, so it is kept for context and never integrated.
- ``utilisation`` (%) and ``memory`` (bytes used), for context.

Energy and the integrated power are read every ``interval_s``; the context figures (``power_avg``,
``utilisation``, ``memory``) only every ``context_interval_s`` (default 1 s, and always on the first
read): NVML computes utilisation over its own 1/6-1 s window and the average power over 1 s, so
reading them ten times a second adds sidecar work, not information.

``pynvml`` is imported inside ``open()`` so that tests can put a fake module first on ``sys.path``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from svbench.instrument.config import NvmlConfig
from svbench.instrument.sensors.base import Reading, SensorUnavailable
from svbench.instrument.sensors.counter import CounterTracker, counter_readings

log = logging.getLogger("svbench.instrument.nvml")

# NVML refreshes its power and energy figures every ~20-100 ms depending on the GPU: two reads may see
# up to one refresh more than the time between them.
UPDATE_S = 0.1

# pynvml's NVML_VALUE_TYPE_* → member of the c_nvmlValue_t union holding the value.
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


@dataclass
class _Gpu:
    channel: str
    nvml_index: int
    handle: Any
    uuid: str
    name: str = ""
    energy_base_mj: int | None = None  # None: no energy counter (pre-Volta)
    tracker: CounterTracker | None = None  # with the energy counter
    max_power_w: float | None = None
    max_power_source: str = ""
    instant: bool = False
    average: bool = False
    utilisation: bool = False
    memory: bool = False
    notes: list[str] = field(default_factory=list)
    errors: int = 0  # failed reads (a lost GPU); the first is logged


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def field_value(fv: Any) -> float:
    """The number inside one nvmlFieldValue_t, picked by its ``valueType``."""
    return float(getattr(fv.value, _VALUE_MEMBERS[int(fv.valueType)]))


def select_devices(visible: str | None, uuids: list[str]) -> tuple[list[int], list[str]]:
    """NVML indices named by ``CUDA_VISIBLE_DEVICES`` (in the job's order), and notes on what was dropped.

    Follows CUDA: entries are indices or ``GPU-…`` UUIDs (a unique prefix is enough); parsing stops at
    the first entry that names no device. ``MIG-…`` instances are skipped: NVML's energy and power are
    those of the whole GPU. Unset means every GPU.
    """
    if visible is None:
        return list(range(len(uuids))), []
    chosen: list[int] = []
    notes: list[str] = []
    for token in (t.strip() for t in visible.split(",")):
        if re.fullmatch(r"\d+", token) and int(token) < len(uuids):
            index = int(token)
        elif token.startswith("GPU-") and len(matches := [i for i, u in enumerate(uuids) if u.startswith(token)]) == 1:
            index = matches[0]
        elif token.startswith("MIG-"):
            notes.append(f"{token}: MIG instance skipped (NVML reports whole-GPU energy)")
            continue
        else:
            if token:
                notes.append(f"{token!r} names no GPU: it and later entries ignored, as CUDA does")
            break
        if index not in chosen:
            chosen.append(index)
    return chosen, notes


class NvmlSensor:
    """NVML energy counter, instant and average power, utilisation and memory per visible GPU."""

    name = "nvml"

    def __init__(self, config: NvmlConfig | None = None) -> None:
        config = config or NvmlConfig()
        self.interval_s = config.interval_s
        self.context_interval_s = config.context_interval_s
        self.max_power_w: float | None = config.max_power_w  # for GPUs whose power limits NVML does not give
        self._context_due = -float("inf")
        self._nvml: Any = None
        self._gpus: list[_Gpu] = []
        self._meta: dict = {}

    def open(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise SensorUnavailable(f"pynvml not importable: {exc}") from exc
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:  # library not found, driver not loaded, ...
            raise SensorUnavailable(f"pynvml: nvmlInit failed: {exc}") from exc
        self._nvml = pynvml
        try:
            self._open_devices(pynvml)
        except SensorUnavailable:
            self.close()
            raise
        except pynvml.NVMLError as exc:
            self.close()
            raise SensorUnavailable(f"pynvml: {exc}") from exc

    def _open_devices(self, nv: Any) -> None:
        count = nv.nvmlDeviceGetCount()
        if count == 0:
            raise SensorUnavailable("pynvml: no GPU")
        # The _v2 count includes GPUs this job may not open (another job's, under SLURM's cgroups: NO_PERMISSION)
        # or that fell off the bus: such a GPU keeps its index, gets no UUID, and is never chosen.
        handles: list[Any] = []
        uuids: list[str] = []
        unreadable: dict[int, str] = {}
        for i in range(count):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                uuid = _text(nv.nvmlDeviceGetUUID(handle))
            except nv.NVMLError as exc:
                handle, uuid, unreadable[i] = None, "", str(exc)
            handles.append(handle)
            uuids.append(uuid)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        chosen, notes = select_devices(visible, uuids)
        notes += [f"NVML device {i}: {why}" for i, why in unreadable.items()]
        chosen = [i for i in chosen if i not in unreadable]
        if not chosen:
            raise SensorUnavailable(f"pynvml: CUDA_VISIBLE_DEVICES={visible!r} leaves no usable GPU")

        self._gpus = [self._probe(nv, f"gpu{k}", i, handles[i], uuids[i], self.max_power_w)
                      for k, i in enumerate(chosen)]
        if not any(g.energy_base_mj is not None or g.instant or g.average for g in self._gpus):
            raise SensorUnavailable("pynvml: no visible GPU reports energy or power")

        if visible and any(re.fullmatch(r"\d+", t.strip()) for t in visible.split(",")):
            if os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
                # CUDA numbers GPUs fastest-first by default, NVML by PCI bus: the same only on
                # nodes with identical GPUs. UUIDs in CUDA_VISIBLE_DEVICES avoid the question.
                notes.append("indices read in NVML (PCI bus) order; CUDA_DEVICE_ORDER is not PCI_BUS_ID")
        self._meta = {
            "driver_version": _text(nv.nvmlSystemGetDriverVersion()),
            "cuda_visible_devices": visible,
            "notes": notes,
            "devices": {
                g.channel: {
                    "uuid": g.uuid,
                    "name": g.name,
                    "nvml_index": g.nvml_index,
                    "energy_counter": g.energy_base_mj is not None,
                    "energy_at_open_mj": g.energy_base_mj,
                    "max_power_w": g.max_power_w,
                    "max_power_source": g.max_power_source,
                    "power_source": "field POWER_INSTANT"
                    if g.instant
                    else ("nvmlDeviceGetPowerUsage" if g.average else None),
                    "notes": g.notes,
                }
                for g in self._gpus
            },
        }

    @staticmethod
    def _probe(nv: Any, channel: str, index: int, handle: Any, uuid: str, fallback_w: float | None) -> _Gpu:
        """Find out once which figures this GPU offers, so read() asks only for those."""
        gpu = _Gpu(channel, index, handle, uuid, name=_text(nv.nvmlDeviceGetName(handle)))
        try:
            gpu.energy_base_mj = int(nv.nvmlDeviceGetTotalEnergyConsumption(handle))
        except nv.NVMLError as exc:  # NotSupported before Volta
            gpu.notes.append(f"energy counter: {exc}")
        if gpu.energy_base_mj is not None:
            gpu.max_power_w, gpu.max_power_source = _max_power(nv, handle, fallback_w, gpu.notes)
            gpu.tracker = CounterTracker(gpu.energy_base_mj, time.monotonic(), raw_per_j=1e3, range_raw=None,
                                         max_power_w=gpu.max_power_w, update_s=UPDATE_S)
        try:
            fv = nv.nvmlDeviceGetFieldValues(handle, [nv.NVML_FI_DEV_POWER_INSTANT])[0]
            gpu.instant = fv.nvmlReturn == nv.NVML_SUCCESS
            if not gpu.instant:
                gpu.notes.append(f"instant power: {nv.NVMLError(fv.nvmlReturn)}")
        except (nv.NVMLError, AttributeError) as exc:  # old driver, or an old pynvml without the field
            gpu.notes.append(f"instant power: {exc}")
        for attr, call in (
            ("average", nv.nvmlDeviceGetPowerUsage),
            ("utilisation", nv.nvmlDeviceGetUtilizationRates),
            ("memory", nv.nvmlDeviceGetMemoryInfo),
        ):
            try:
                call(handle)
                setattr(gpu, attr, True)
            except nv.NVMLError as exc:
                gpu.notes.append(f"{attr}: {exc}")
        return gpu

    def read(self) -> list[Reading]:
        nv = self._nvml
        out: list[Reading] = []
        now = time.monotonic()
        context = now + 0.5 * self.interval_s >= self._context_due  # half a period early rather than late
        if context:  # on a grid of context_interval_s, restarted from now after the first read or a stall
            due = self._context_due + self.context_interval_s
            self._context_due = due if due > now else now + self.context_interval_s
        failed: list[Exception] = []
        for g in self._gpus:
            try:
                out.extend(self._read_gpu(nv, g, now, context))
            except nv.NVMLError as exc:
                # one GPU lost (off the bus, reset) must not silence the others: its channel gets a gap
                failed.append(exc)
                g.errors += 1
                if g.errors == 1:
                    log.warning("NVML %s (%s) failed: %s; its readings become gaps", g.channel, g.uuid, exc)
                out.append(Reading(g.channel, "error", math.nan, "", "gpu"))
        if failed and len(failed) == len(self._gpus):
            raise failed[0]  # every GPU failed: the sidecar records one gap and says why
        return out

    @staticmethod
    def _read_gpu(nv: Any, g: _Gpu, now: float, context: bool) -> list[Reading]:
        out: list[Reading] = []
        h, ch = g.handle, g.channel
        if g.tracker is not None:
            step = g.tracker.update(int(nv.nvmlDeviceGetTotalEnergyConsumption(h)), now)
            out.extend(counter_readings(ch, "gpu", step))
        if g.instant:
            fv = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_POWER_INSTANT])[0]
            # A field carries its own return code; a failed one is a missing sample, not a reason
            # to drop this read's energy counters too.
            if fv.nvmlReturn == nv.NVML_SUCCESS:
                out.append(Reading(ch, "power", field_value(fv) / 1000.0, "W", "gpu"))
        if g.average and (context or not g.instant):  # without instant power it is the power integrated
            quantity = "power_avg" if g.instant else "power"
            out.append(Reading(ch, quantity, nv.nvmlDeviceGetPowerUsage(h) / 1000.0, "W", "gpu"))
        if context and g.utilisation:
            out.append(Reading(ch, "utilisation", float(nv.nvmlDeviceGetUtilizationRates(h).gpu), "%", "gpu"))
        if context and g.memory:
            out.append(Reading(ch, "memory", float(nv.nvmlDeviceGetMemoryInfo(h).used), "B", "gpu"))
        return out

    def metadata(self) -> dict:
        meta = dict(self._meta)
        if "devices" in meta:  # the break count as of now, the rest as found at open()
            meta["devices"] = {
                g.channel: meta["devices"][g.channel] | {"counter_breaks": g.tracker.breaks if g.tracker else 0,
                                                 "read_errors": g.errors}
                for g in self._gpus
            }
        return meta

    def close(self) -> None:
        nv, self._nvml, self._gpus = self._nvml, None, []
        if nv is not None:
            try:
                nv.nvmlShutdown()
            except nv.NVMLError:
                pass  # nothing left to release


def _max_power(nv: Any, handle: Any, fallback_w: float | None, notes: list[str]) -> tuple[float | None, str]:
    """The GPU's largest settable power limit (W), else the configured figure, and where it came from."""
    try:
        max_mw = int(nv.nvmlDeviceGetPowerManagementLimitConstraints(handle)[1])
        if max_mw > 0:
            return max_mw / 1000.0, "nvmlDeviceGetPowerManagementLimitConstraints"
        notes.append("power limit constraints: maximum is 0")
    except (nv.NVMLError, AttributeError) as exc:  # NotSupported on some boards, or an old pynvml
        notes.append(f"power limit constraints: {exc}")
    if fallback_w is not None:
        return fallback_w, "config energy.nvml.max_power_w"
    return None, "none (unbounded: a drop is still a break)"

