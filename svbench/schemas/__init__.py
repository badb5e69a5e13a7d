"""The study config's schema, inside the package: the workflow validates a config against it (Snakemake's
``validate``) and ``svbench monitor --config`` its ``energy`` block, installed from a wheel or from a checkout."""

from pathlib import Path

CONFIG_SCHEMA = Path(__file__).with_name("config.schema.yaml")
