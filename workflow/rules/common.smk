# Shared by every rule: the grid, seeds, trial lists and the JSON handed to svbench commands.
import hashlib
import json
import math
import os
import re

from svbench.instrument.config import write_energy_config
# the layout, and the study's file names that its study_file takes
from svbench.layout import (
    CARBON,
    CLOSURE,
    DIFFERENCES,
    ENERGY_MODEL,
    FINDINGS,
    FINETUNE,
    FOOTPRINT,
    FOOTPRINT_JOBS,
    FOOTPRINT_RULES,
    PARETO,
    PHASES,
    PROVENANCE,
    STUDY_PAGE,
    SUMMARY,
    SUMMARY_BY_ARCH,
    WORK_STEPS,
    Layout,
    Model,
    WorkJob,
    models_of,
)
from svbench.study.catalog import FIGURES
from svbench.study.grid import specs_from_grid, training_layouts
from svbench.training.launch import process_launch, slurm_resources, srun_prefix

LAYOUT = Layout()  # every path of the results, spelled once
SPECS = {spec.name: spec for spec in specs_from_grid(config["grid"], n_mels=config["features"]["n_mels"])}
ARCHS = list(SPECS)
# large-margin fine-tuning: every architecture also as the model <arch>+lm, embedded and scored like the trained
LARGE_MARGIN = config["large_margin"]["enabled"]
MODELS = [model.name for model in models_of(ARCHS, LARGE_MARGIN)]  # what embed, score and energy take as {arch}
TUNED = [model.name for model in models_of(ARCHS, LARGE_MARGIN) if model.fine_tuned]
SEEDS = [int(s) for s in config["seeds"]]
CORPUS = config["corpus"]
# trial lists scored for every model: the synthetic list, or the configured VoxCeleb lists (vox1_o, vox1_e, ...)
TRIAL_LISTS = ["synthetic"] if CORPUS["kind"] == "synthetic" else list(CORPUS["voxceleb"]["trials"])
ENV = "../../environment.yml"  # used with --use-conda; svbench installs itself with pip -e


def one_of(names):
    """A wildcard constraint matching exactly these names ("+" of a fine-tuned model's name escaped)."""
    return "|".join(map(re.escape, names)) or "(?!)"


wildcard_constraints:
    arch=one_of(MODELS),
    seed=r"\d+",
    split="train|test",
    step="train|finetune|embed|score",
    shard=r"\d{4}",


# each architecture's training layout: nodes × processes per node (its grid entry's, else training's)
TRAINING_LAYOUTS = training_layouts(config["grid"], config["training"])


def training_layout(wildcards):
    """{"nodes": N, "processes": P} of a model's training job (a fine-tuned model trains like its backbone)."""
    return TRAINING_LAYOUTS[Model.named(wildcards.arch).backbone]


def training_nodes(wildcards):
    return training_layout(wildcards)["nodes"]


def step_nodes(wildcards):
    """The nodes a measured step's job ran on: a training's (or fine-tuning's) layout; embedding and scoring, one."""
    return training_nodes(wildcards) if wildcards.step in ("train", FINETUNE) else 1


def recipe_json(wildcards):
    """The training block with the model's own layout, as JSON (the layout changes the cost, not the model)."""
    return json.dumps(config["training"] | training_layout(wildcards))


def node_launch(wildcards):
    """`srun` with one task per node for a multi-node training job; nothing on one node."""
    return srun_prefix(**training_layout(wildcards))


def process_launch_of(wildcards):
    """`svbench launch` (torchrun) for a training job of several processes; nothing for one."""
    return process_launch(**training_layout(wildcards))


def training_resource(name):
    """One SLURM resource of a model's training job (svbench.training.launch.slurm_resources; None: unset)."""
    return lambda wildcards: slurm_resources(**training_layout(wildcards))[name]


def fine_tuned_from(wildcards):
    """The trained model a fine-tuned model starts from (its backbone's, same seed); none for a trained one."""
    made_from = Model.named(wildcards.arch).made_from
    return [LAYOUT.model(made_from.name, wildcards.seed)] if made_from else []


def fine_tuning_args(wildcards, input):
    """`--large-margin JSON --init MODEL` of a fine-tuned model's training (each quoted by `:q`); none otherwise."""
    if not Model.named(wildcards.arch).fine_tuned:
        return []
    init = input.init if isinstance(input.init, str) else input.init[0]  # the one model of fine_tuned_from
    return ["--large-margin", json.dumps(config["large_margin"]), "--init", init]


def arch_json(wildcards):
    """The architecture of a model, trained or fine-tuned, as JSON."""
    return json.dumps(SPECS[Model.named(wildcards.arch).backbone].to_dict())


# The energy config reaches `svbench monitor` as a file, never on its command line (ps shows every user every
# argv): rule energy_config writes it (energy.smk). Its digest is that rule's params, so that the file (and after it
# every measured job) is made again exactly when the energy config changes.
ENERGY_CONFIG = LAYOUT.energy_config()
ENERGY_DIGEST = hashlib.sha256(json.dumps(config["energy"], sort_keys=True).encode()).hexdigest()


def energy_dir(step):
    """The energy folder of a measured step's job (trace, markers, sidecar): not declared outputs, see train.smk."""
    return lambda wildcards: LAYOUT.energy_dir(step, wildcards.arch, wildcards.seed)


# The study's other work runs measured too (data preparation, bootstrap, the study's analysis): the same monitor,
# beside the command, into the job's energy folder (LAYOUT.work_energy_dir). Its energy config is `ancient`: a change
# of sensor settings measures the next jobs differently, it does not convert VoxCeleb again. No idle baseline
# (idle_baseline=False): energy.baseline_s is sampled before each model job; before each of VoxCeleb's hundreds of
# conversion batches and feature shards it would cost node-hours of idle sampling (their idle/dynamic split is
# left empty, never guessed).
def measured(command, idle_baseline=True):
    """A rule's shell command run under the monitor on one node (params.energy_dir, input.energy_config); without
    ``idle_baseline``, no idle sampling before it (--baseline 0). Training, on several nodes, has its own form."""
    baseline = "" if idle_baseline else " --baseline 0"
    return f"svbench monitor --out {{params.energy_dir:q}} --config {{input.energy_config:q}}{baseline} -- {command}"


def work_energy_dir(job):
    """A params function: the energy folder of a data-preparation or analysis job: ``job`` a WorkJob, or the Layout
    method that makes one from the rule's wildcards (LAYOUT.features_job takes {split} and {shard})."""
    return lambda wildcards: (job if isinstance(job, WorkJob) else job(**wildcards)).energy_dir


def input_folder(name):
    """A params function: the folder of the named input (a feature store's index gives the store)."""
    return lambda wildcards, input: os.path.dirname(getattr(input, name))


def output_folder(name):
    """A params function: the folder of the named output, where the command writes."""
    return lambda wildcards, output: os.path.dirname(getattr(output, name))


# each sensor's tolerance and its source (the energy intervals of the summary); its other settings stay
# out of every command line
SENSOR_TOLERANCES = {name: {key: config["energy"][name][key] for key in ("tolerance", "tolerance_source")}
                     for name in ("nvml", "rapl", "ipmi")}




def vox2_convert_batches():
    """The conversion batches of the VoxCeleb2 listing (a checkpoint): one per batch of m4a files, none for wav."""
    with open(checkpoints.corpus_list_vox2.get().output[0]) as f:
        n = sum(1 for line in f if line.rstrip().endswith(".m4a"))
    return [f"{k:05d}" for k in range(math.ceil(n / CORPUS["voxceleb"]["convert"]["batch_size"]))]


def vox2_convert_reports(wildcards):
    """One conversion report per batch of m4a files in the VoxCeleb2 listing; none when it is wav."""
    return [LAYOUT.convert_report(batch) for batch in vox2_convert_batches()]


def work_jobs(step=None):
    """Every measured job outside the models' steps (of ``step`` alone, if given): the corpus, its conversion batches
    (VoxCeleb; known once the listing, a checkpoint, exists), every feature shard, every model's speaker-bootstrap
    intervals, the study's summary and figures."""
    jobs = [LAYOUT.corpus_job(CORPUS["kind"])]
    if CORPUS["kind"] == "voxceleb" and step in (None, "convert"):
        jobs += [LAYOUT.convert_job(batch) for batch in vox2_convert_batches()]
    jobs += [LAYOUT.features_job(split, shard) for split in ("train", "test") for shard in SHARDS]
    jobs += [LAYOUT.intervals_job(model, seed) for model in MODELS for seed in SEEDS]
    jobs += [LAYOUT.study_job("summary"), LAYOUT.study_job("figures")]
    return [job for job in jobs if step in (None, job.step)]


def work_energy_files(wildcards):
    """The energy.csv of every measured job outside the models' steps (the footprint's inputs beside STUDY_ENERGY)."""
    return [job.energy for job in work_jobs()]


def work_product(wildcards):
    """The product of the measured job {step}/{job}: once it exists, the job's trace and markers are final."""
    products = {job.name: job.output for job in work_jobs(wildcards.step)}
    if wildcards.job not in products:
        raise ValueError(f"no measured job {wildcards.job!r} of step {wildcards.step!r} in this study")
    return products[wildcards.job]
