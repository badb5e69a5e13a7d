"""The energy config (``energy`` section, ``svbench monitor --config``), checked against the workflow's schema.

One schema for both: the ``energy`` block of ``workflow/schemas/config.schema.yaml``, which Snakemake also
checks at parse time. The schema is read from the repository the package lives in, as an editable install
(``pip install -e .``, what the project uses) has it; a non-editable install would have to ship the file.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import ValidationError, validators

from svbench.errors import UserError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
_TYPES = {"object": "an object", "array": "an array", "string": "a string", "number": "a number",
          "integer": "an integer", "boolean": "true or false", "null": "null"}


@functools.cache
def energy_schema() -> dict:
    """The ``energy`` sub-schema of the workflow's config schema (with its ``$schema``)."""
    try:
        full = yaml.safe_load(SCHEMA_PATH.read_text())
    except OSError as exc:
        raise RuntimeError(f"{SCHEMA_PATH}: cannot read the config schema ({exc.strerror}); svbench must be "
                           "installed from its repository with `pip install -e .`") from None
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


def _is_password(arg: str, tool: str) -> bool:
    """ipmitool -P PASS or -PPASS; FreeIPMI -p PASS, -pPASS, --password PASS, --password=PASS (and its -P prompt)."""
    if arg.startswith("-P"):
        return True
    return tool == "freeipmi" and (arg.startswith("-p") or arg == "--password" or arg.startswith("--password="))


def _check_ipmi(ipmi: dict) -> None:
    """What the schema cannot say without echoing a secret: no password on the command line, one source."""
    tool = "freeipmi" if os.path.basename(ipmi.get("binary") or "") == "ipmi-dcmi" else "ipmitool"
    if any(_is_password(arg, tool) for arg in ipmi["extra_args"]):
        raise UserError("energy.ipmi.extra_args: a password on the command line is visible to every user in ps; "
                        "use energy.ipmi.password_file (ipmitool -f FILE) or energy.ipmi.password_env (ipmitool -E, "
                        "the password in that variable) instead")
    if ipmi["password_file"] is not None and ipmi["password_env"] is not None:
        raise UserError("energy.ipmi: give password_file or password_env, not both")


def validate_energy_config(config: dict) -> dict:
    """A copy of ``config`` with the schema's defaults filled; UserError naming the first bad key."""
    schema = energy_schema()
    filled = copy.deepcopy(config)
    validator = _with_defaults(validators.validator_for(schema))(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise UserError(_message(errors[0]))
    _check_ipmi(filled["ipmi"])
    return filled
