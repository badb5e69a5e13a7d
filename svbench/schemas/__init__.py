"""The study config's schema, inside the package: the workflow validates a config against it (Snakemake's
``validate``) and ``svbench monitor --config`` its ``energy`` block, installed from a wheel or from a checkout.
:func:`config_schema` is its one reader (the typed config blocks, the README's tables, the instrument's energy
config)."""

import functools
from pathlib import Path

import yaml

CONFIG_SCHEMA = Path(__file__).with_name("config.schema.yaml")


@functools.cache
def config_schema() -> dict:
    """The schema, read once per process; a missing or unreadable file is a broken installation, not bad input."""
    try:
        return yaml.safe_load(CONFIG_SCHEMA.read_text())
    except OSError as exc:
        raise RuntimeError(f"{CONFIG_SCHEMA}: cannot read svbench's config schema ({exc.strerror})") from None
