"""The energy config: one schema (workflow/schemas/config.schema.yaml) for the workflow and `svbench monitor`."""

from __future__ import annotations

import ast
import copy
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import REPO

from svbench.energy import sidecar
from svbench.energy.config import validate_energy_config
from svbench.energy.sensors import ipmi, nvml, rapl
from svbench.errors import UserError

BIN = Path(sys.executable).parent
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]["energy"]


def _reads(func: object, name: str) -> dict[str, object]:
    """{key: default} of every ``<name>.get("key", default)`` (or ``<name>.get("key") or default``) in ``func``."""
    module = sys.modules[func.__module__]

    def value(node: ast.expr | None) -> object:
        if node is None:
            return None
        return getattr(module, node.id) if isinstance(node, ast.Name) else ast.literal_eval(node)

    def is_get(node: ast.AST) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == name)

    found: dict[str, object] = {}
    tree = ast.parse(inspect.getsource(func))
    for node in ast.walk(tree):
        if is_get(node) and node.args[0].value not in found:
            found[node.args[0].value] = value(node.args[1] if len(node.args) > 1 else None)
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and is_get(node.values[0]):
            found[node.values[0].args[0].value] = value(node.values[1])
    return found


@pytest.mark.parametrize(("section", "func", "name"), [
    ("nvml", nvml.make, "config"), ("rapl", rapl.make, "config"), ("ipmi", ipmi.make, "config"),
    ("estimate", sidecar.open_sensors, "estimate_cfg"),
])
def test_schema_has_every_key_the_sensors_read_with_their_defaults(section: str, func: object, name: str) -> None:
    reads = _reads(func, name)
    props = SCHEMA["properties"][section]["properties"]
    assert SCHEMA["properties"][section]["additionalProperties"] is False
    assert set(reads) == set(props)
    for key, default in reads.items():
        if (section, key) == ("estimate", "source"):
            continue  # the sidecar's "" stands for "not given"; the schema names the model's source
        # a key read without a default (binary, root, password_*) falls back on its own: null in the schema
        assert props[key].get("default") == default, f"{section}.{key}"


def test_defaults_are_filled_and_the_input_is_left_alone() -> None:
    given = {"rapl": {"interval_s": 1}}
    kept = copy.deepcopy(given)
    filled = validate_energy_config(given)
    assert given == kept
    assert filled["rapl"] == {"interval_s": 1, "root": None, "max_power_w": 1000}
    assert filled["nvml"] == {"interval_s": 0.1, "context_interval_s": 1.0, "max_power_w": 1500}
    assert filled["ipmi"]["extra_args"] == [] and filled["ipmi"]["retries"] == 2
    assert filled["estimate"]["enabled"] is True and filled["sensors"] == ["nvml", "rapl", "ipmi"]
    assert validate_energy_config(filled) == filled  # what the workflow already filled passes unchanged
    filled["nvml"]["interval_s"] = 5  # the schema's defaults are copies, not shared
    assert validate_energy_config({})["nvml"]["interval_s"] == 0.1


@pytest.mark.parametrize(("config", "message"), [
    ({"rapl": {"interval_s": 0}}, "energy.rapl.interval_s: 0 is not > 0"),
    ({"nvml": {"interval_s": 0.001}}, "energy.nvml.interval_s: 0.001 is not >= 0.01"),
    ({"nvml": {"interval_s": "fast"}}, "energy.nvml.interval_s: must be a number, got 'fast'"),
    ({"nvml": {"interval_s": True}}, "energy.nvml.interval_s: must be a number, got True"),
    ({"estimate": {"interval_s": 0}}, "energy.estimate.interval_s: 0 is not > 0"),
    ({"nvml": {"intervl_s": 1}}, "energy.nvml.intervl_s: unknown key (known: context_interval_s, interval_s, "
                                 "max_power_w)"),
    ({"ipmi": {"retries": -1}}, "energy.ipmi.retries: -1 is not >= 0"),
    ({"ipmi": {"extra_args": "-H bmc"}}, "energy.ipmi.extra_args: must be an array"),
    ({"ipmi": {"extra_args": ["-H", 7]}}, "energy.ipmi.extra_args[1]: must be a string"),
    ({"ipmi": "yes"}, "energy.ipmi: must be an object, got 'yes'"),
    ({"sensors": ["nvml", "gpu"]}, "energy.sensors[1]: 'gpu' is not one of nvml, rapl, ipmi"),
    ({"rapl": {"root": 3}}, "energy.rapl.root: must be a string or null, got 3"),
    ({"ipmi": {"password_env": "BMC PASS"}}, "energy.ipmi.password_env: must be the NAME of an environment variable"),
    ({"colour": 1}, "energy.colour: unknown key"),
])
def test_bad_values_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(UserError) as info:
        validate_energy_config(config)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("ipmi_config", [
    {"extra_args": ["-H", "bmc", "-P", "s3cret"]},
    {"extra_args": ["-Ps3cret"]},
    {"binary": "/usr/sbin/ipmi-dcmi", "extra_args": ["--password=s3cret"]},
    {"binary": "ipmi-dcmi", "extra_args": ["-p", "s3cret"]},
])
def test_a_password_in_extra_args_is_refused_without_echoing_it(ipmi_config: dict) -> None:
    with pytest.raises(UserError) as info:
        validate_energy_config({"ipmi": ipmi_config})
    text = str(info.value)
    assert text.startswith("energy.ipmi.extra_args") and "password_file" in text and "password_env" in text
    assert "s3cret" not in text


def test_ipmitool_port_option_is_not_a_password() -> None:
    assert validate_energy_config({"ipmi": {"extra_args": ["-p", "623"]}})["ipmi"]["extra_args"] == ["-p", "623"]


def test_password_secrets_are_not_echoed_and_the_two_sources_exclude_each_other() -> None:
    with pytest.raises(UserError) as info:
        validate_energy_config({"ipmi": {"password_env": "hunter2!"}})  # the password itself, by mistake
    assert "hunter2" not in str(info.value)
    with pytest.raises(UserError, match="energy.ipmi: give password_file or password_env, not both"):
        validate_energy_config({"ipmi": {"password_file": "/etc/bmc", "password_env": "BMC_PASSWORD"}})
    ok = validate_energy_config({"ipmi": {"password_env": "BMC_PASSWORD", "extra_args": ["-H", "bmc", "-U", "me"]}})
    assert ok["ipmi"]["password_env"] == "BMC_PASSWORD" and ok["ipmi"]["password_file"] is None


@pytest.mark.parametrize(("block", "key"), [
    ({"nvml": {"intervl_s": 0.1}}, "intervl_s"),
    ({"rapl": {"interval_s": "fast"}}, "interval_s"),
    ({"ipmi": {"interval_s": 0}}, "interval_s"),
])
def test_workflow_refuses_a_bad_energy_block(block: dict, key: str, tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "tests/data/tiny.yaml").read_text()) | {"energy": block}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    run = subprocess.run([str(BIN / "snakemake"), "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                          "--configfile", str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert key in run.stdout + run.stderr and "energy" in run.stdout + run.stderr
