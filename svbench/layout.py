"""Where every file of a study lives: the one spelling of the results layout.

The workflow's rules and the study code both name paths through a :class:`Layout`, so the layout is
written once. Every method takes plain strings, so Snakemake wildcards work as arguments:
``Layout().model("{arch}", "{seed}")`` is ``results/models/{arch}/seed{seed}/model.pt``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from svbench.errors import UserError
from svbench.instrument.nodes import MARKERS, SIDECAR, node_dirs

# The files of a job's folders, spelled once: Layout builds its paths from them, and a module that writes (or reads)
# one inside a folder it was given (a model folder, a feature store, an energy folder) uses the same name.
MODEL, SPEC, HISTORY = "model.pt", "spec.json", "history.csv"
CHECKPOINT, PREVIOUS_CHECKPOINT = "checkpoint.pt", "checkpoint.prev.pt"
METRICS, REPLICATES, INTERVALS = "metrics.json", "intervals.npz", "intervals.json"
FEATURE_INDEX = "index.tsv"
ENERGY = "energy.csv"


def embeddings_file(split: str) -> str:
    """``test.npz`` (the evaluation set's embeddings) or ``train.npz`` (the training mean and cohort)."""
    return f"{split}.npz"


# The study's files in results/study/, each NAME.EXT: the tables (NAME.csv, .html, .tex: svbench.study.tables) and
# the footprint's figure and sentence; their writers and the rules (Layout.study_file) both take the names from here.
SUMMARY, SUMMARY_BY_ARCH, PARETO, DIFFERENCES = "summary", "summary_by_arch", "pareto", "differences"
PHASES, CLOSURE, CARBON, PROVENANCE, PROVENANCE_JOBS = "phases", "closure", "carbon", "provenance", "provenance_jobs"
FOOTPRINT, FOOTPRINT_RULES, FOOTPRINT_JOBS = "footprint", "footprint_rules", "footprint_jobs"
STUDY_PAGE, FINDINGS, ENERGY_MODEL = "study", "findings", "energy_model"

STEPS = ("train", "embed", "score")  # the measured steps of a trained model
FINETUNE = "finetune"  # the large-margin fine-tuning: the measured step that makes a fine-tuned model
MEASURED_STEPS = ("train", FINETUNE, "embed", "score")
# The study's other measured work, one energy folder per job (energy/<step>/<job>): making the corpus (the synthetic
# speakers, or the VoxCeleb manifests), converting a batch of m4a files, extracting a feature shard, a model's
# speaker-bootstrap intervals, and the study's own analysis. Their jobs are named "synthetic" / "voxceleb",
# "batch00001", "train-shard0003", "ResNet34-seed0", "summary".
WORK_STEPS = ("corpus", "convert", "features", "intervals", "study")
TRAINED, LARGE_MARGIN = "trained", "large-margin fine-tuned"  # a model's stage, as the summary's stage column says
_LM_SUFFIX = "+lm"


@dataclass(frozen=True)
class Model:
    """A model of the study: a grid architecture (its backbone) at a stage, trained or large-margin fine-tuned.

    Its :attr:`name` (its folders, rows and points) is the backbone's, with "+lm" once fine-tuned; grid names cannot
    hold "+" (ArchSpec), so none collides, and :meth:`named` is the one reader of a name."""

    backbone: str
    stage: str = TRAINED

    def __post_init__(self) -> None:
        if self.stage not in (TRAINED, LARGE_MARGIN):
            raise ValueError(f"a model's stage is {TRAINED!r} or {LARGE_MARGIN!r}, got {self.stage!r}")

    @classmethod
    def named(cls, name: str) -> Model:
        """The model whose folders and rows are called ``name`` (``ResNet34``, ``ResNet34+lm``)."""
        name = str(name)
        return cls(name.removesuffix(_LM_SUFFIX), LARGE_MARGIN) if name.endswith(_LM_SUFFIX) else cls(name)

    @property
    def name(self) -> str:
        return self.backbone + (_LM_SUFFIX if self.fine_tuned else "")

    @property
    def fine_tuned(self) -> bool:
        return self.stage == LARGE_MARGIN

    @property
    def made_from(self) -> Model | None:
        """The model it is fine-tuned from (its trained backbone); None for a trained model."""
        return Model(self.backbone) if self.fine_tuned else None

    @property
    def steps(self) -> tuple[str, ...]:
        """Its own measured steps: a fine-tuned model is made by ``finetune`` from its trained backbone."""
        return (FINETUNE, *STEPS[1:]) if self.fine_tuned else STEPS

    def __str__(self) -> str:
        return self.name


def models_of(archs: Iterable[str], large_margin: bool = False) -> list[Model]:
    """The models of a grid in table order: each architecture, then (``large_margin``) its fine-tuned model."""
    stages = (TRAINED, LARGE_MARGIN) if large_margin else (TRAINED,)
    return [Model(arch, stage) for arch in archs for stage in stages]


@dataclass(frozen=True)
class Job:
    """One measured job of the study: a step of one model (an architecture, or its fine-tuned version) and
    seed, with its energy folder."""

    model: Model
    seed: int
    step: str
    energy_dir: str


@dataclass(frozen=True)
class WorkJob:
    """A measured job of :data:`WORK_STEPS`: its step, its name (its energy folder's), that folder, and its product
    (once it exists, the job's trace and markers are final)."""

    step: str
    name: str
    energy_dir: str
    output: str

    @property
    def energy(self) -> str:
        return f"{self.energy_dir}/{ENERGY}"


def _energy_file(name: str, what: str) -> Callable[[Layout, str, str, object], str]:
    """An accessor of one file of a job's energy folder."""

    def path(self: Layout, step: str, arch: str, seed: object) -> str:
        return f"{self.energy_dir(step, arch, seed)}/{name}"

    path.__doc__ = f"{name} of a job's energy folder: {what}."
    return path


@dataclass(frozen=True)
class Layout:
    """The paths of one study under ``root`` (a folder; "results" in the workflow)."""

    root: str = "results"

    def path(self, *parts: object) -> str:
        return "/".join([self.root.rstrip("/"), *map(str, parts)])

    # corpus and features
    def manifest(self, split: str) -> str:
        return self.path("corpus", f"{split}.tsv")

    def trials(self, name: str) -> str:
        return self.path("corpus", "trials", f"{name}.txt")

    def vox2_listing(self) -> str:
        """The sorted listing of the VoxCeleb2-dev tree (``svbench corpus list``)."""
        return self.path("corpus", "vox2_files.txt")

    def convert_report(self, batch: object) -> str:
        """What one m4a-to-wav conversion batch did, file by file."""
        return self.path("corpus", "convert", f"batch{batch}.tsv")

    def bad_audio(self) -> str:
        return self.path("corpus", "bad_audio.tsv")

    def features(self, split: str) -> str:
        """The folder of a split's feature store (shards and ``index.tsv``)."""
        return self.path("features", split)

    def feature_index(self, split: str) -> str:
        return self.path("features", split, FEATURE_INDEX)

    def feature_shard(self, split: str, shard: object, what: str) -> str:
        """One shard of a feature store: ``what`` is "npy" (the frames) or "index" (its rows)."""
        return self.path("features", split, f"shard{shard}.npy" if what == "npy" else f"shard{shard}.index.tsv")

    # models, embeddings, scores
    def model_dir(self, arch: str, seed: object) -> str:
        return self.path("models", arch, f"seed{seed}")

    def model(self, arch: str, seed: object) -> str:
        return f"{self.model_dir(arch, seed)}/{MODEL}"

    def spec(self, arch: str, seed: object) -> str:
        return f"{self.model_dir(arch, seed)}/{SPEC}"

    def history(self, arch: str, seed: object) -> str:
        return f"{self.model_dir(arch, seed)}/{HISTORY}"

    def embeddings_dir(self, arch: str, seed: object) -> str:
        return self.path("embeddings", arch, f"seed{seed}")

    def embeddings(self, arch: str, seed: object, split: str) -> str:
        return f"{self.embeddings_dir(arch, seed)}/{embeddings_file(split)}"

    def scores_dir(self, arch: str, seed: object) -> str:
        return self.path("scores", arch, f"seed{seed}")

    def scores(self, arch: str, seed: object, trials: str) -> str:
        return f"{self.scores_dir(arch, seed)}/{trials}.tsv"

    def metrics(self, arch: str, seed: object) -> str:
        return f"{self.scores_dir(arch, seed)}/{METRICS}"

    def replicates(self, arch: str, seed: object) -> str:
        """The speaker-bootstrap replicates of a job's metrics (``intervals.json`` beside: its intervals)."""
        return f"{self.scores_dir(arch, seed)}/{REPLICATES}"

    def intervals(self, arch: str, seed: object) -> str:
        return f"{self.scores_dir(arch, seed)}/{INTERVALS}"

    def step_output(self, step: str, arch: str, seed: object) -> str:
        """The product of a measured step: once it exists, the step's trace and markers are final."""
        products = {"train": self.model, FINETUNE: self.model, "embed": lambda a, s: self.embeddings(a, s, "test"),
                    "score": self.metrics}
        if step not in products:
            raise UserError(f"step: expected one of {', '.join(MEASURED_STEPS)}, got {step!r}")
        return products[step](arch, seed)

    # energy
    def energy_config(self) -> str:
        return self.path("energy", "config.json")

    def energy_dir(self, step: str, arch: str, seed: object) -> str:
        return self.path("energy", step, arch, f"seed{seed}")

    def work_energy_dir(self, step: str, job: str) -> str:
        """The energy folder of a job of :data:`WORK_STEPS` (data preparation, the study's analysis)."""
        return self.path("energy", step, job)

    def work_energy(self, step: str, job: str) -> str:
        return f"{self.work_energy_dir(step, job)}/{ENERGY}"

    # The measured jobs of WORK_STEPS, each named here once from its parts (its energy folder's name) with the file
    # that proves it done; the rules take their folders and products from these, and nothing parses a name back.
    def _work_job(self, step: str, name: str, output: str) -> WorkJob:
        return WorkJob(step, name, self.work_energy_dir(step, name), output)

    def corpus_job(self, kind: str) -> WorkJob:
        """Making the corpus: the synthetic speakers, or the VoxCeleb manifests (``corpus.kind``)."""
        return self._work_job("corpus", kind, self.manifest("test"))

    def convert_job(self, batch: object) -> WorkJob:
        """Converting one batch of VoxCeleb2's m4a files."""
        return self._work_job("convert", f"batch{batch}", self.convert_report(batch))

    def features_job(self, split: str, shard: object) -> WorkJob:
        """Extracting one feature shard."""
        return self._work_job("features", f"{split}-shard{shard}", self.feature_shard(split, shard, "index"))

    def intervals_job(self, arch: str, seed: object) -> WorkJob:
        """A model's speaker-bootstrap intervals (``arch``: the model's name, as the rules' wildcard)."""
        return self._work_job("intervals", f"{arch}-seed{seed}", self.replicates(arch, seed))

    def study_job(self, name: str) -> WorkJob:
        """The study's summary, or its figures (whose product is the last figure drawn,
        :func:`svbench.study.figures.make_figures`)."""
        products = {"summary": self.study_file(SUMMARY, "csv"), "figures": self.figure("power_timeline_score")}
        if name not in products:
            raise UserError(f"no measured study job {name!r} (known: {', '.join(products)})")
        return self._work_job("study", name, products[name])

    def node_dirs(self, step: str, arch: str, seed: object, nodes: int) -> list[str]:
        """The folder of each node of a job on ``nodes`` nodes (the energy folder itself on one node)."""
        return node_dirs(self.energy_dir(step, arch, seed), nodes)

    # the files of an energy folder, one accessor each: markers(step, arch, seed), sidecar(...), ...
    markers = _energy_file(MARKERS, "the job's phase markers")
    sidecar = _energy_file(SIDECAR, "the sensors used and the node")
    energy = _energy_file(ENERGY, "the joined energy per phase")
    emissions = _energy_file("emissions.csv", "the CodeCarbon-compatible emissions")
    emissions_svbench = _energy_file("emissions_svbench.csv", "the emissions with svbench's own columns")

    def sidecars(self) -> list[str]:
        """Globs of every job's ``sidecar.json`` (each node's, for a multi-node job), relative to the root."""
        return ["energy/*/*/seed*/sidecar.json", "energy/*/*/seed*/node*/sidecar.json"]

    # study outputs and logs
    def study(self, name: str = "") -> str:
        return self.path("study", name) if name else self.path("study")

    def study_file(self, name: str, ext: str) -> str:
        """``results/study/NAME.EXT``: a table (``study_file(SUMMARY, "csv")``), page or figure of the study."""
        return self.study(f"{name}.{ext}")

    def figure(self, name: str) -> str:
        return self.path("study", "figures", f"{name}.png")

    def report(self) -> str:
        return self.path("report.html")

    def log(self, *parts: str) -> str:
        """``log("train", "{arch}", "seed{seed}")`` is ``results/logs/train/{arch}/seed{seed}.log``."""
        return self.path("logs", *parts) + ".log"

    # the study's jobs
    def jobs(self, archs: Iterable[str], seeds: Iterable[object], large_margin: bool = False) -> Iterator[Job]:
        """Every (model, seed, step) of a grid, in the order the study's tables list them: each architecture's
        seeds, then (``large_margin``) those of its fine-tuned model."""
        seeds = list(seeds)
        for model in models_of(archs, large_margin):
            for seed in seeds:
                for step in model.steps:
                    yield Job(model, int(seed), step, self.energy_dir(step, model.name, seed))

    @classmethod
    def of(cls, results: str | os.PathLike | Layout) -> Layout:
        """A results folder, or a Layout as it is."""
        return results if isinstance(results, Layout) else cls(os.fspath(results))

    def root_of(self, path: str | os.PathLike, named: str) -> str:
        """The root of the study in which ``path`` is the file this layout calls ``named``: a rule's
        declared input (``root_of(input.test, layout.manifest("test"))``) gives the folder it lies in."""
        path, prefix = os.fspath(path), self.root.rstrip("/") + "/"
        if not named.startswith(prefix):
            raise UserError(f"{named}: not a path of the layout under {self.root}")
        relative = named[len(prefix):]
        if path != relative and not path.endswith("/" + relative):
            raise UserError(f"{path}: not a path ending in {relative}")
        return path[: len(path) - len(relative)].rstrip("/") or "."
