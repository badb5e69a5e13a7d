"""The energy config (``energy`` section, ``svbench monitor --config``), checked against the workflow's schema.

One schema for both: the ``energy`` block of ``svbench/schemas/config.schema.yaml``, which Snakemake also
checks at parse time. The checked dict becomes an :class:`EnergyConfig` (``EnergyConfig.from_dict``), the
typed form the sidecar builds its sensors from; the dataclasses' defaults are read from the schema
(``_default``; a test holds each field to its key), so a sensor built without a config section behaves as one
built from an empty one. The schema is package data (``svbench.schemas``): a wheel has it too.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import ValidationError, validators

from svbench.errors import UserError
from svbench.fileio import atomic_write
from svbench.schemas import config_schema

_TYPES = {"object": "an object", "array": "an array", "string": "a string", "number": "a number",
          "integer": "an integer", "boolean": "true or false", "null": "null"}


@functools.cache
def energy_schema() -> dict:
    """The ``energy`` sub-schema of the workflow's config schema (with its ``$schema``)."""
    full = config_schema()
    return {"$schema": full["$schema"], **full["properties"]["energy"]}


def _with_defaults(cls: type) -> type:
    """A validator class that also fills each object's missing keys from their schema defaults (copies)."""
    properties = cls.VALIDATORS["properties"]

    def fill(validator: Any, props: dict, instance: Any, schema: dict) -> Iterator[ValidationError]:
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from properties(validator, props, instance, schema)

    return validators.extend(cls, {"properties": fill})


def _key(path: Any) -> str:
    key = "energy"
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key


def _message(error: ValidationError) -> str:
    """``energy.rapl.interval_s: 0 is not > 0``: the key path, then what is wrong, in the schema's terms."""
    key, value, kind, limit = _key(error.absolute_path), error.instance, error.validator, error.validator_value
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        return f"{key}.{sorted(set(value) - set(known))[0]}: unknown key (known: {', '.join(known)})"
    if key.endswith(".password_env") and kind == "pattern":
        return f"{key}: must be the NAME of an environment variable holding the password (letters, digits, _)"
    secret = key.startswith("energy.ipmi.extra_args") or "password" in key  # not echoed: may be a password
    if kind == "type":
        types = [limit] if isinstance(limit, str) else limit
        return f"{key}: must be {' or '.join(_TYPES[t] for t in types)}" + ("" if secret else f", got {value!r}")
    ops = {"exclusiveMinimum": ">", "minimum": ">=", "exclusiveMaximum": "<", "maximum": "<="}
    if kind in ops:
        return f"{key}: {value!r} is not {ops[kind]} {limit!r}"
    if kind == "enum" and not secret:
        return f"{key}: {value!r} is not one of {', '.join(map(str, limit))}"
    return f"{key}: fails the schema's {kind!r} rule" if secret else f"{key}: {error.message}"


def is_secret_arg(arg: str, tool: str) -> bool:
    """A password or BMC (Kg) key in an argument: ipmitool -P, -k, -y (glued or not); FreeIPMI -p, --password,
    -k, --k-g (and their = forms). ipmitool's -K (the key from $IPMI_KGKEY) and -E are the safe forms."""
    if tool == "freeipmi":
        return (arg.startswith(("-p", "-k", "-P")) and not arg.startswith("--")) or arg in ("--password", "--k-g") \
            or arg.startswith(("--password=", "--k-g="))
    return arg.startswith(("-P", "-k", "-y")) and not arg.startswith("--")


SECRET_ARGS_MESSAGE = ("energy.ipmi.extra_args: a password or BMC key on the command line is visible to every user in "
                       "ps; use energy.ipmi.password_file (ipmitool -f FILE) or energy.ipmi.password_env (ipmitool "
                       "-E, the password in that variable), and for the Kg key ipmitool's -K, which reads it from "
                       "the variable IPMI_KGKEY")


def ipmi_tool(binary: str | None) -> str:
    """``freeipmi`` for FreeIPMI's ipmi-dcmi, else ``ipmitool``."""
    return "freeipmi" if os.path.basename(binary or "") == "ipmi-dcmi" else "ipmitool"


def _check_ipmi(ipmi: dict) -> None:
    """What the schema cannot say without echoing a secret: no password or key on the command line, one source."""
    if any(is_secret_arg(arg, ipmi_tool(ipmi.get("binary"))) for arg in ipmi["extra_args"]):
        raise UserError(SECRET_ARGS_MESSAGE)
    if ipmi["password_file"] is not None and ipmi["password_env"] is not None:
        raise UserError("energy.ipmi: give password_file or password_env, not both")


def validate_energy_config(config: dict) -> dict:
    """A copy of ``config`` with the schema's defaults filled; UserError naming the first bad key."""
    schema = energy_schema()
    filled = copy.deepcopy(config)
    validator = _with_defaults(validators.validator_for(schema))(schema)
    _check_finite(config, "energy")  # the schema's bounds let NaN (no comparison holds) and infinity through
    errors = sorted(validator.iter_errors(filled), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise UserError(_message(errors[0]))
    _check_ipmi(filled["ipmi"])
    return filled


def write_energy_config(config: dict, path: Path | str) -> None:
    """The workflow's energy config as the file ``svbench monitor --config`` reads (checked first; JSON, keys
    sorted), its owner's alone: it names the BMC user and the tool's arguments, and argv or a world-readable
    file would show them to every user."""
    validate_energy_config(config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, private=True) as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _check_finite(value: object, key: str) -> None:
    """UserError naming the first number of ``value`` (nested) that is NaN or infinite: a NaN interval would
    stop a sensor's thread while sidecar.json says the sensor is available."""
    if isinstance(value, dict):
        for name, item in value.items():
            _check_finite(item, f"{key}.{name}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{key}: must be a finite number, got {value!r}")


def _default(key: str, kind: type | None = None) -> Any:
    """A key's default as the schema states it (``"nvml.interval_s"``): the schema is where a default of the energy
    config is written, once; the dataclasses below take theirs from it. ``kind`` converts (1500 to 1500.0, a list to
    a tuple); None stays None."""
    node = energy_schema()
    for part in key.split("."):
        node = node["properties"][part]
    value = node["default"]
    return value if kind is None or value is None else kind(value)


@dataclass(frozen=True)
class NvmlConfig:
    """``energy.nvml``: energy and power every ``interval_s``, context figures every ``context_interval_s``;
    ``max_power_w`` bounds a GPU whose power limits NVML does not give (above the 1000-1400 W of the
    largest boards sold today, B200/B300; only used to question a counter that rises faster)."""

    interval_s: float = _default("nvml.interval_s", float)
    context_interval_s: float = _default("nvml.context_interval_s", float)
    max_power_w: float | None = _default("nvml.max_power_w", float)  # None: unbounded, a drop is still a break
    tolerance: float = _default("nvml.tolerance", float)
    tolerance_source: str = _default("nvml.tolerance_source")


@dataclass(frozen=True)
class RaplConfig:
    """``energy.rapl``: ``root`` None reads ``$SVBENCH_POWERCAP_ROOT`` or ``/sys/class/powercap``; ``max_power_w``
    bounds a zone without constraint files (about twice the largest package limits sold today)."""

    interval_s: float = _default("rapl.interval_s", float)
    root: str | None = _default("rapl.root")
    max_power_w: float | None = _default("rapl.max_power_w", float)  # None: unbounded, every drop counts as one wrap
    tolerance: float = _default("rapl.tolerance", float)
    tolerance_source: str = _default("rapl.tolerance_source")


@dataclass(frozen=True)
class IpmiConfig:
    """``energy.ipmi``: ``binary`` None is ``$SVBENCH_IPMITOOL`` or ``ipmitool`` (a basename ``ipmi-dcmi`` selects
    FreeIPMI); the password comes from ``password_file`` or the variable named ``password_env``, never argv."""

    interval_s: float = _default("ipmi.interval_s", float)
    binary: str | None = _default("ipmi.binary")
    timeout_s: float = _default("ipmi.timeout_s", float)
    retries: int = _default("ipmi.retries")
    extra_args: tuple[str, ...] = _default("ipmi.extra_args", tuple)
    persistent: bool = _default("ipmi.persistent")
    password_file: str | None = _default("ipmi.password_file")
    password_env: str | None = _default("ipmi.password_env")
    tolerance: float = _default("ipmi.tolerance", float)
    tolerance_source: str = _default("ipmi.tolerance_source")




@dataclass(frozen=True)
class EstimateConfig:
    """``energy.estimate``: the labelled stand-in used when no RAPL sensor covers the CPU."""

    enabled: bool = _default("estimate.enabled")
    interval_s: float = _default("estimate.interval_s", float)
    watts_per_core: float = _default("estimate.watts_per_core", float)
    watts_per_gib: float = _default("estimate.watts_per_gib", float)
    source: str = _default("estimate.source")
    tolerance: float = _default("estimate.tolerance", float)
    tolerance_source: str = _default("estimate.tolerance_source")


@dataclass(frozen=True)
class EnergyConfig:
    """The whole ``energy`` section, typed."""

    sensors: tuple[str, ...] = _default("sensors", tuple)
    baseline_s: float = _default("baseline_s", float)
    nvml: NvmlConfig = field(default_factory=NvmlConfig)
    rapl: RaplConfig = field(default_factory=RaplConfig)
    ipmi: IpmiConfig = field(default_factory=IpmiConfig)
    estimate: EstimateConfig = field(default_factory=EstimateConfig)

    @classmethod
    def from_dict(cls, config: dict) -> EnergyConfig:
        """Check ``config`` (UserError naming the first bad key), fill the schema's defaults, and type it."""
        filled = validate_energy_config(config)
        return cls(sensors=tuple(filled["sensors"]), baseline_s=float(filled["baseline_s"]),
                   **{name: section(**_typed(section, filled[name])) for name, section in _SECTIONS.items()})

    def to_dict(self) -> dict:
        """The plain form (JSON/YAML), which ``from_dict`` reads back unchanged."""
        return json_ready(dataclasses.asdict(self))


_SECTIONS: dict[str, type] = {"nvml": NvmlConfig, "rapl": RaplConfig, "ipmi": IpmiConfig,
                              "estimate": EstimateConfig}


def _typed(cls: type, values: dict) -> dict:
    """A section's checked values as its dataclass's types: JSON's 1 for a float field, lists as tuples."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = values[f.name]
        if isinstance(value, list):
            value = tuple(str(v) for v in value)
        elif f.type in ("float", "float | None") and value is not None:
            value = float(value)
        out[f.name] = value
    return out


def json_ready(value: Any) -> Any:
    """Tuples as lists, recursively: what json and the schema's arrays expect."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value
