"""BMC secrets (issue 25, class 7): no password or Kg key on a command line, and none echoed by any message."""

from __future__ import annotations

import pytest
import yaml
from support import REPO, snakemake

from svbench.errors import UserError
from svbench.instrument.config import EnergyConfig
from svbench.instrument.sensors.ipmi import IpmiSensor

SECRET = "hunter2Kg"


@pytest.mark.parametrize("args", [["-P", SECRET], [f"-P{SECRET}"], ["-k", SECRET], [f"-k{SECRET}"], ["-y", SECRET],
                                  [f"-y{SECRET}"]])
def test_a_password_or_kg_key_in_ipmitools_arguments_is_refused_unechoed(args):
    with pytest.raises(UserError) as err:
        EnergyConfig.from_dict({"ipmi": {"extra_args": ["-I", "lanplus", *args]}})
    assert "energy.ipmi.extra_args" in str(err.value) and SECRET not in str(err.value)
    assert "IPMI_KGKEY" in str(err.value)  # where a key goes instead (ipmitool -K)


@pytest.mark.parametrize("args", [["-p", SECRET], [f"--password={SECRET}"], ["--password", SECRET], ["-k", SECRET],
                                  [f"--k-g={SECRET}"], ["--k-g", SECRET]])
def test_freeipmis_secrets_are_refused_too(args):
    with pytest.raises(UserError) as err:
        EnergyConfig.from_dict({"ipmi": {"binary": "/usr/sbin/ipmi-dcmi", "extra_args": args}})
    assert SECRET not in str(err.value)


def test_the_sensor_applies_the_same_rule():
    from svbench.instrument.config import IpmiConfig

    with pytest.raises(Exception, match="energy.ipmi.extra_args") as err:
        IpmiSensor(IpmiConfig(extra_args=("-y", SECRET)))
    assert SECRET not in str(err.value)
    IpmiSensor(IpmiConfig(extra_args=("-K", "-I", "lanplus", "-p", "623")))  # -K: the key from IPMI_KGKEY; -p: port


def test_a_password_typed_into_password_env_is_echoed_nowhere(tmp_path):
    """Snakemake's own schema check printed the value; svbench's check runs first and does not."""
    tiny = yaml.safe_load((REPO / "tests/data/tiny.yaml").read_text())
    tiny["energy"] = {"ipmi": {"password_env": f"my {SECRET}!"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny))
    run = snakemake("-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile", str(tmp_path / "c.yaml"))
    assert run.returncode != 0 and "energy.ipmi.password_env" in run.stdout + run.stderr
    assert SECRET not in run.stdout + run.stderr
    for path in (tmp_path / ".snakemake").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
