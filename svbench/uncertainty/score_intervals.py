"""Score intervals: the speaker-bootstrap replicates of one job's scores (``svbench intervals``).

Per job (architecture, seed), :func:`bootstrap_scores` resamples the evaluation speakers of each trial list and
keeps, for every back-end and metric, the metric of each resample. The draws depend only on the list and the
study's bootstrap seed, never on the model, so resample ``b`` holds the same speakers for every job: the
difference of two jobs' replicates is a paired bootstrap of their difference, and replicates of several seeds
can be averaged resample by resample (:mod:`svbench.uncertainty.draws`).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.errors import UserError
from svbench.fileio import atomic_write, write_text_atomic
from svbench.metrics import compute_all
from svbench.typed_config import parse_block, schema_field
from svbench.uncertainty.bootstrap import (
    LEVEL,
    METHOD,
    METRICS,
    RESAMPLES,
    percentile_interval,
    resampled_metrics,
    sort_trials,
    speaker_counts,
)


@dataclass(frozen=True)
class UncertaintySettings:
    """The config's ``uncertainty:`` block."""

    resamples: int = schema_field("uncertainty.resamples")
    level: float = schema_field("uncertainty.level")
    seed: int = schema_field("uncertainty.seed")

    @classmethod
    def from_config(cls, block: dict) -> UncertaintySettings:
        """The settings of an ``uncertainty:`` block (as JSON on the command line); UserError naming the key."""
        return parse_block(cls, block, "uncertainty")


def _list_rng(seed: int, list_name: str) -> np.random.Generator:
    """The draws of one trial list: the same for every job of a study."""
    return np.random.default_rng([seed, zlib.crc32(list_name.encode())])


def read_scores(path: Path) -> pd.DataFrame:
    """A score file of ``svbench score``: label, enroll, test and one column per back-end."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, sep="\t", dtype={"enroll": str, "test": str}, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the score file is empty") from None
    missing = {"label", "enroll", "test"} - set(frame.columns)
    if missing or len(frame.columns) < 4:
        raise UserError(f"{path}: not a score file of svbench score (columns {list(frame.columns)})")
    if not len(frame):
        raise UserError(f"{path}: the score file has a header and no trial")
    for column in ["label", *frame.columns[3:]]:  # every cell a finite number, the label 0 or 1; the line named
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if column == "label":
            bad |= ~np.isin(values, (0.0, 1.0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            want = "0 or 1" if column == "label" else "a finite number"
            raise UserError(f"{path}:{row + 2}: column {column!r} must be {want}, got {frame[column].iloc[row]!r}")
        frame[column] = values.astype(np.int64) if column == "label" else values
    return frame


def bootstrap_scores(score_files: Mapping[str, Path], speakers: Mapping[str, str], out: Path,
                     resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> dict:
    """Replicates of every list x back-end x metric into ``out`` (npz); returns the intervals.

    ``speakers`` maps each utterance of the lists to its speaker (the evaluation manifest).
    """
    arrays: dict[str, np.ndarray] = {}
    summary: dict = {"resamples": resamples, "seed": seed, "level": level, "method": METHOD}
    for name, path in score_files.items():
        frame = read_scores(path)
        unknown = sorted(set(frame["enroll"]).union(frame["test"]) - set(speakers))
        if unknown:
            raise UserError(f"{path}: utterance {unknown[0]!r} is not in the evaluation manifest")
        enroll = frame["enroll"].map(speakers).to_numpy()
        test = frame["test"].map(speakers).to_numpy()
        labels = frame["label"].to_numpy()
        counts = None
        for backend in frame.columns[3:]:
            scores = frame[backend].to_numpy(dtype=np.float64)
            try:  # the metrics' own checks (both classes present, ...) name no file: this one does
                trials = sort_trials(scores, labels, enroll, test)
                if counts is None:
                    counts = speaker_counts(trials.n_speakers, resamples, _list_rng(seed, name))
                point, spread = compute_all(scores, labels), resampled_metrics(trials, counts)
            except ValueError as exc:
                raise UserError(f"{path}: {backend}: {exc}") from None
            for m in METRICS:
                arrays[f"{name}/{backend}/{m}"] = spread[m]
                low, high = percentile_interval(spread[m], level)
                summary.setdefault(name, {}).setdefault(backend, {})[m] = {"value": point[m], "low": low,
                                                                           "high": high}
    with atomic_write(out, "wb") as f:
        np.savez(f, **arrays)
    write_text_atomic(Path(out).with_suffix(".json"), json.dumps(summary, indent=2))
    return summary


def read_replicates(path: Path) -> dict[str, np.ndarray]:
    """The replicates of one job: ``{"list/backend/metric": array}``; UserError naming a missing, empty,
    truncated or damaged file (``svbench intervals`` writes it again)."""
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise UserError(f"{path}: no speaker-bootstrap replicates (run svbench intervals for this job)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"{path}: damaged speaker-bootstrap replicates ({type(exc).__name__}: {exc}); run svbench "
                        "intervals for this job again") from None


def bootstrap_job(score_files: Mapping[str, Path], manifest: Path, out: Path, settings: UncertaintySettings) -> dict:
    """``svbench intervals``: the replicates of one job's score files, speakers from the evaluation manifest."""
    from svbench.corpus.manifest import read_manifest

    speakers = {utt.utt: utt.speaker for utt in read_manifest(manifest)}
    return bootstrap_scores(score_files, speakers, out, settings.resamples, settings.seed, settings.level)
