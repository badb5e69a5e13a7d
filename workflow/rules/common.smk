# Shared by every rule: the grid, seeds, trial lists and the JSON handed to svbench commands.
import json

from svbench.study.grid import specs_from_grid

SPECS = {spec.name: spec for spec in specs_from_grid(config["grid"])}
ARCHS = list(SPECS)
SEEDS = [int(s) for s in config["seeds"]]
TRIAL_LISTS = ["synthetic"]
ENV = "../../environment.yml"  # used with --use-conda; svbench installs itself with pip -e


wildcard_constraints:
    arch="|".join(ARCHS),
    seed=r"\d+",
    split="train|test",
    step="train|embed|score",
    shard=r"\d{4}",


def arch_json(wildcards):
    return json.dumps(SPECS[wildcards.arch].to_dict())


def energy_json():
    return json.dumps(config["energy"])


def monitor(step):
    """The prefix of a measured command: the sidecar samples sensors into the step's energy folder."""
    return (
        f"svbench monitor --out results/energy/{step}/{{wildcards.arch}}/seed{{wildcards.seed}} "
        f"--baseline {config['energy']['baseline_s']} --config {{params.energy:q}} --"
    )
