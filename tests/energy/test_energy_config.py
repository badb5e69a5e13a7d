"""The energy config: one schema (svbench/schemas/config.schema.yaml) for the workflow and `svbench monitor`."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import REPO

from svbench.errors import UserError
from svbench.instrument.config import (
    EnergyConfig,
    EstimateConfig,
    IpmiConfig,
    NvmlConfig,
    RaplConfig,
    json_ready,
    validate_energy_config,
)
from svbench.instrument.sensors import SENSORS

BIN = Path(sys.executable).parent
SCHEMA = yaml.safe_load((REPO / "svbench/schemas/config.schema.yaml").read_text())["properties"]["energy"]


SECTIONS = {"nvml": NvmlConfig, "rapl": RaplConfig, "ipmi": IpmiConfig, "estimate": EstimateConfig}


def _default(f: dataclasses.Field) -> object:
    value = f.default_factory() if f.default is dataclasses.MISSING else f.default
    return json_ready(value)


@pytest.mark.parametrize(("section", "cls"), SECTIONS.items())
def test_schema_has_every_key_the_sensors_read_with_their_defaults(section: str, cls: type) -> None:
    """The typed config and the schema agree: the same keys, the same defaults (a key without a default of
    its own, binary, root, password_*, falls back on its own: null in the schema)."""
    props = SCHEMA["properties"][section]["properties"]
    assert SCHEMA["properties"][section]["additionalProperties"] is False
    fields = {f.name: _default(f) for f in dataclasses.fields(cls)}
    assert set(fields) == set(props)
    for key, default in fields.items():
        assert props[key].get("default") == default, f"{section}.{key}"


def test_the_whole_energy_section_agrees_with_energy_config() -> None:
    top = {f.name: f for f in dataclasses.fields(EnergyConfig)}
    assert set(top) == set(SCHEMA["properties"])
    for name in ("sensors", "baseline_s"):
        assert SCHEMA["properties"][name]["default"] == _default(top[name]), name
    assert set(SENSORS) == set(SCHEMA["properties"]["sensors"]["items"]["enum"])  # the registry knows every name
    assert EnergyConfig.from_dict({}) == EnergyConfig()  # the schema's defaults are the dataclasses' defaults


def test_typed_config_round_trips_through_its_plain_form() -> None:
    config = EnergyConfig.from_dict({"rapl": {"interval_s": 1}, "ipmi": {"extra_args": ["-H", "bmc"]}})
    assert config.rapl.interval_s == 1.0 and isinstance(config.rapl.interval_s, float)
    assert config.ipmi.extra_args == ("-H", "bmc")
    assert EnergyConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UserError, match=r"energy\.nvml\.interval_s"):
        EnergyConfig.from_dict({"nvml": {"interval_s": 0}})


def test_defaults_are_filled_and_the_input_is_left_alone() -> None:
    given = {"rapl": {"interval_s": 1}}
    kept = copy.deepcopy(given)
    filled = validate_energy_config(given)
    assert given == kept
    tolerance = {"tolerance": RaplConfig.tolerance, "tolerance_source": RaplConfig.tolerance_source}
    assert filled["rapl"] == {"interval_s": 1, "root": None, "max_power_w": 1000} | tolerance
    tolerance = {"tolerance": NvmlConfig.tolerance, "tolerance_source": NvmlConfig.tolerance_source}
    assert filled["nvml"] == {"interval_s": 0.1, "context_interval_s": 1.0, "max_power_w": 1500} | tolerance
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
                                 "max_power_w, tolerance, tolerance_source)"),
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


def test_the_instrument_imports_nothing_of_svbench_but_errors_file_io_and_its_schema() -> None:
    """Issue 27: the instrument (what runs beside the job) stands apart from the accounting and the study."""
    import ast

    allowed = ("svbench.instrument", "svbench.errors", "svbench.fileio", "svbench.schemas")
    found = []
    for path in sorted((REPO / "svbench" / "instrument").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.name}: {n}" for n in names if n.startswith("svbench") and not n.startswith(allowed)]
    assert not found, found
