"""A stand-in for nvidia-ml-py's ``pynvml`` with the same names, types and error classes as version 13.

Tests put this folder first on ``sys.path``, drop any cached ``pynvml`` and set the module state:
``GPUS`` (one dict per GPU, see ``add_gpu``) and ``INIT_ERROR`` (an NVML_ERROR_* code nvmlInit raises).
Field values are the real ``c_nvmlFieldValue_t`` layout, so the code reads them as it would on a GPU.
"""

from __future__ import annotations

from ctypes import (
    Structure,
    Union,
    c_double,
    c_int,
    c_int64,
    c_longlong,
    c_uint,
    c_uint32,
    c_ulong,
    c_ulonglong,
    c_ushort,
)

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15

NVML_VALUE_TYPE_DOUBLE = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
}


class NVMLError(Exception):
    """As in pynvml: ``NVMLError(code)`` builds the subclass for that code; ``str`` is its message."""

    _classes: dict[int, type] = {}

    def __new__(cls, value: int):
        if cls is NVMLError:
            cls = NVMLError._classes.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


def _subclass(name: str, code: int) -> type:
    cls = type(name, (NVMLError,), {"__new__": lambda c, *args: NVMLError.__new__(c, code)})
    NVMLError._classes[code] = cls
    return cls


NVMLError_Uninitialized = _subclass("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _subclass("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _subclass("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _subclass("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_NotFound = _subclass("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_DriverNotLoaded = _subclass("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _subclass("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_GpuIsLost = _subclass("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)


class c_nvmlValue_t(Union):
    _fields_ = [
        ("dVal", c_double),
        ("uiVal", c_uint),
        ("ulVal", c_ulong),
        ("ullVal", c_ulonglong),
        ("sllVal", c_longlong),
        ("siVal", c_int),
        ("usVal", c_ushort),
    ]


class c_nvmlFieldValue_t(Structure):
    _fields_ = [
        ("fieldId", c_uint32),
        ("scopeId", c_uint32),
        ("timestamp", c_int64),
        ("latencyUsec", c_int64),
        ("valueType", c_uint),
        ("nvmlReturn", c_uint),
        ("value", c_nvmlValue_t),
    ]


class c_nvmlMemory_t(Structure):
    _fields_ = [("total", c_ulonglong), ("free", c_ulonglong), ("used", c_ulonglong)]


class c_nvmlUtilization_t(Structure):
    _fields_ = [("gpu", c_uint), ("memory", c_uint)]


# --- state the tests set -----------------------------------------------------------------------
GPUS: list[dict] = []
INIT_ERROR: int | None = None
DRIVER_VERSION = "570.86.15"
calls = {"init": 0, "shutdown": 0}
_live = 0


def add_gpu(
    uuid: str,
    name: str = "NVIDIA H100 80GB HBM3",
    energy_mj: int | None = 1_000_000,
    instant_mw: int | None = 300_000,
    power_mw: int | None = 310_000,
    util: int = 50,
    mem_used: int = 2 << 30,
    mem_total: int = 80 << 30,
    power_limits_mw: tuple[int, int] | None = None,
) -> dict:
    """One GPU; ``None`` for a figure makes its call answer NVML_ERROR_NOT_SUPPORTED.

    ``energy_mj`` is the counter's value: a test sets ``GPUS[i]["energy_mj"]`` between reads to make
    it run, or drop (a driver reload resets it). ``power_limits_mw`` is (min, max) of the power limit.
    """
    gpu = dict(
        uuid=uuid,
        name=name,
        energy_mj=energy_mj,
        instant_mw=instant_mw,
        power_mw=power_mw,
        util=util,
        mem_used=mem_used,
        mem_total=mem_total,
        power_limits_mw=power_limits_mw,
        lost=False,
    )
    GPUS.append(gpu)
    return gpu


class _Handle:
    def __init__(self, index: int) -> None:
        self.index = index


def _check() -> None:
    if _live <= 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)


def _gpu(handle: _Handle) -> dict:
    _check()
    gpu = GPUS[handle.index]
    if gpu["lost"]:
        raise NVMLError(NVML_ERROR_GPU_IS_LOST)
    return gpu


def _value(gpu: dict, key: str):
    if gpu[key] is None:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return gpu[key]


# --- the API ---------------------------------------------------------------------------------
def nvmlInit() -> None:
    global _live
    calls["init"] += 1
    if INIT_ERROR is not None:
        raise NVMLError(INIT_ERROR)
    _live += 1


def nvmlShutdown() -> None:
    global _live
    _check()
    calls["shutdown"] += 1
    _live -= 1


def nvmlSystemGetDriverVersion() -> str:
    _check()
    return DRIVER_VERSION


def nvmlDeviceGetCount() -> int:
    _check()
    return len(GPUS)


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    _check()
    if not 0 <= index < len(GPUS):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return _Handle(index)


def nvmlDeviceGetHandleByUUID(uuid: str) -> _Handle:
    _check()
    for i, gpu in enumerate(GPUS):
        if gpu["uuid"] == uuid:
            return _Handle(i)
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetUUID(handle: _Handle) -> str:
    return _gpu(handle)["uuid"]


def nvmlDeviceGetName(handle: _Handle) -> str:
    return _gpu(handle)["name"]


def nvmlDeviceGetTotalEnergyConsumption(handle: _Handle) -> int:
    return _value(_gpu(handle), "energy_mj")


def nvmlDeviceGetPowerManagementLimitConstraints(handle: _Handle) -> list[int]:
    """[min, max] settable power limit in mW, as pynvml returns it."""
    return list(_value(_gpu(handle), "power_limits_mw"))


def nvmlDeviceGetPowerUsage(handle: _Handle) -> int:
    return _value(_gpu(handle), "power_mw")


def nvmlDeviceGetUtilizationRates(handle: _Handle) -> c_nvmlUtilization_t:
    return c_nvmlUtilization_t(gpu=_gpu(handle)["util"], memory=10)


def nvmlDeviceGetMemoryInfo(handle: _Handle, version=None) -> c_nvmlMemory_t:
    gpu = _gpu(handle)
    return c_nvmlMemory_t(total=gpu["mem_total"], free=gpu["mem_total"] - gpu["mem_used"], used=gpu["mem_used"])


def nvmlDeviceGetFieldValues(handle: _Handle, fieldIds: list):
    """Like the driver: the call succeeds, and each field carries its own nvmlReturn."""
    gpu = _gpu(handle)
    values = (c_nvmlFieldValue_t * len(fieldIds))()
    for i, field_id in enumerate(fieldIds):
        values[i].fieldId = field_id
        if field_id == NVML_FI_DEV_POWER_INSTANT and gpu["instant_mw"] is not None:
            values[i].valueType = NVML_VALUE_TYPE_UNSIGNED_INT
            values[i].value.uiVal = gpu["instant_mw"]
            values[i].nvmlReturn = NVML_SUCCESS
        else:
            values[i].nvmlReturn = NVML_ERROR_NOT_SUPPORTED
    return values
