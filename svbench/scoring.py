"""Scoring back-ends on embeddings: cosine and adaptive symmetric normalisation (AS-norm).

Embeddings are rows of 2-D float arrays. Every back-end first subtracts the mean training
embedding (when given) and L2-normalises, so a cosine score is a plain dot product.
AS-norm follows WeSpeaker's ``score_norm.py``: the cohort (per-speaker mean training embeddings)
gets the same mean subtraction and normalisation; for each utterance the top-N cohort scores give
a mean and a (population) standard deviation; a trial's score is
½((s − μ_enroll)/σ_enroll + (s − μ_test)/σ_test).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svbench.errors import UserError
from svbench.fileio import write_text_atomic
from svbench.layout import METRICS, embeddings_file
from svbench.typed_config import parse_block, schema_default, schema_field

BACKENDS = ("cosine", "asnorm")
_CHUNK = 4096  # rows per block, bounds the memory of the utterance × cohort score matrix


TOP_N: int = schema_default("scoring.top_n")  # the AS-norm cohort size per side by default, every function's


@dataclass(frozen=True)
class ScoringSettings:
    """The config's ``scoring:`` block: the AS-norm cohort size per side."""

    top_n: int = schema_field("scoring.top_n")

    @classmethod
    def from_config(cls, block: dict) -> ScoringSettings:
        """The settings of a ``scoring:`` block (as JSON on the command line); UserError naming the key."""
        return parse_block(cls, block, "scoring")


def normalize(x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Subtract ``mean`` (if given) from each row and scale rows to unit L2 norm (float64)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise UserError(f"embeddings must be a 2-D array (rows = utterances), got shape {x.shape}")
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float64)
        if mean.shape != (x.shape[1],):
            raise UserError(f"mean has shape {mean.shape}, expected ({x.shape[1]},)")
        x = x - mean
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(norms > 0):
        rows = np.flatnonzero(norms[:, 0] <= 0)[:5].tolist()
        raise UserError(f"zero-length embedding(s) after mean subtraction at rows {rows}")
    return x / norms


def cosine_scores(enroll: np.ndarray, test: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Cosine score of each pair of rows ``enroll[i]``, ``test[i]`` after mean subtraction."""
    e, t = normalize(enroll, mean), normalize(test, mean)
    if e.shape != t.shape:
        raise UserError(f"enroll and test differ in shape: {e.shape} vs {t.shape}")
    return np.einsum("ij,ij->i", e, t)


def speaker_means(embeddings: np.ndarray, speakers: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Per-speaker mean embeddings (an AS-norm cohort): (sorted speaker ids, matrix)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(speakers):
        raise UserError(f"need one speaker per embedding row: {len(speakers)} speakers, shape {x.shape}")
    names, inverse = np.unique(np.asarray(speakers), return_inverse=True)
    sums = np.zeros((names.size, x.shape[1]))
    np.add.at(sums, inverse, x)
    return names.tolist(), sums / np.bincount(inverse)[:, None]


def cohort_stats(x: np.ndarray, cohort: np.ndarray, top_n: int = TOP_N) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each row's top-N cosine scores against the cohort.

    Both ``x`` and ``cohort`` must already be mean-subtracted and normalised (see normalize).
    ``top_n`` is capped at the cohort size.
    """
    if top_n < 2:
        raise UserError(f"top_n must be at least 2 (a standard deviation needs two scores), got {top_n}")
    if cohort.shape[0] < 2:
        raise UserError(f"AS-norm needs a cohort of at least 2 embeddings, got {cohort.shape[0]}")
    if cohort.shape[1] != x.shape[1]:
        raise UserError(f"cohort dimension {cohort.shape[1]} differs from embeddings' {x.shape[1]}")
    n = min(top_n, cohort.shape[0])
    mu = np.empty(x.shape[0])
    sigma = np.empty(x.shape[0])
    for start in range(0, x.shape[0], _CHUNK):
        s = x[start : start + _CHUNK] @ cohort.T
        if n < s.shape[1]:
            # partition, not sort: only the set of the N largest matters for mean and std
            s = np.partition(s, s.shape[1] - n, axis=1)[:, -n:]
        mu[start : start + _CHUNK] = s.mean(axis=1)
        sigma[start : start + _CHUNK] = s.std(axis=1)
    return mu, sigma


def as_norm(
    enroll: np.ndarray,
    test: np.ndarray,
    cohort: np.ndarray,
    mean: np.ndarray | None = None,
    top_n: int = TOP_N,
) -> np.ndarray:
    """AS-norm score of each pair of rows ``enroll[i]``, ``test[i]``.

    ``cohort``: per-speaker mean training embeddings, raw (the same mean subtraction and
    normalisation is applied here). For trial lists, score_trials computes the cohort statistics
    once per distinct utterance instead of once per row.
    """
    e, t, c = normalize(enroll, mean), normalize(test, mean), normalize(cohort, mean)
    if e.shape != t.shape:
        raise UserError(f"enroll and test differ in shape: {e.shape} vs {t.shape}")
    raw = np.einsum("ij,ij->i", e, t)
    mu_e, sd_e = cohort_stats(e, c, top_n)
    mu_t, sd_t = cohort_stats(t, c, top_n)
    return 0.5 * ((raw - mu_e) / sd_e + (raw - mu_t) / sd_t)


def score_trials(
    embeddings: Mapping[str, np.ndarray] | tuple[Sequence[str], np.ndarray],
    trials: Iterable[Any],
    mean: np.ndarray | None = None,
    backend: str = "cosine",
    cohort: np.ndarray | None = None,
    top_n: int = TOP_N,
) -> np.ndarray:
    """Score every trial (objects with ``.enroll`` and ``.test`` utterance ids), in order.

    ``embeddings``: ``{utt: vector}`` or ``(utt_ids, matrix)``. ``backend``: "cosine" or
    "asnorm" (which needs ``cohort``, raw per-speaker mean training embeddings).
    Raises KeyError naming the first utterance that has no embedding.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown scoring backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "asnorm" and cohort is None:
        raise UserError("backend 'asnorm' needs a cohort (per-speaker mean training embeddings)")

    if isinstance(embeddings, Mapping):
        ids = list(embeddings)
        matrix = np.stack([np.asarray(embeddings[u]) for u in ids]) if ids else np.empty((0, 0))
    else:
        ids, matrix = list(embeddings[0]), np.asarray(embeddings[1])
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise UserError(f"{len(ids)} utterance ids but an embedding matrix of shape {matrix.shape}")
    row = {u: i for i, u in enumerate(ids)}
    if len(row) != len(ids):
        dup = next(u for i, u in enumerate(ids) if row[u] != i)
        raise UserError(f"utterance {dup!r} has more than one embedding")

    enroll_rows, test_rows = [], []
    for n, trial in enumerate(trials, start=1):
        for utt, rows in ((trial.enroll, enroll_rows), (trial.test, test_rows)):
            if utt not in row:
                raise UserError(f"trial {n}: no embedding for utterance {utt!r}")
            rows.append(row[utt])
    if not enroll_rows:
        return np.empty(0)

    # Normalise (and take cohort statistics of) each utterance once, however many trials use it.
    used, inverse = np.unique(np.concatenate([enroll_rows, test_rows]), return_inverse=True)
    x = normalize(matrix[used], mean)
    ei, ti = inverse[: len(enroll_rows)], inverse[len(enroll_rows) :]

    scores = np.empty(len(ei))
    for start in range(0, len(ei), _CHUNK * 16):
        sl = slice(start, start + _CHUNK * 16)
        scores[sl] = np.einsum("ij,ij->i", x[ei[sl]], x[ti[sl]])

    if backend == "asnorm":
        mu, sd = cohort_stats(x, normalize(cohort, mean), top_n)
        scores = 0.5 * ((scores - mu[ei]) / sd[ei] + (scores - mu[ti]) / sd[ti])
    return scores


def score_lists(embeddings_dir: Path, trial_lists: dict[str, Path], out_dir: Path, top_n: int = TOP_N,
                backends: Sequence[str] = BACKENDS) -> dict:
    """Score every trial list with every back-end; write ``{name}.tsv`` per list and ``metrics.json``.

    Each TSV has one row per trial: ``label enroll test`` and a score column per back-end.
    """
    from svbench.corpus.manifest import read_trials
    from svbench.instrument.markers import phase
    from svbench.metrics import compute_all

    embeddings_dir, out_dir = Path(embeddings_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    test = np.load(embeddings_dir / embeddings_file("test"))
    train = np.load(embeddings_dir / embeddings_file("train"))
    table = (test["ids"].tolist(), test["embeddings"])
    known = set(table[0])
    metrics: dict[str, Any] = {}
    for name, path in trial_lists.items():
        trials = read_trials(path, known_utts=known)
        labels = np.array([t.label for t in trials])
        columns = {}
        metrics[name] = {"trials": len(trials), "list": str(path)}
        for backend in backends:
            with phase("score", backend=backend, trials=name):
                scores = score_trials(table, trials, mean=train["mean"], backend=backend,
                                      cohort=train["cohort"] if backend == "asnorm" else None, top_n=top_n)
            columns[backend] = scores
            metrics[name][backend] = compute_all(scores, labels)
        lines = ["label\tenroll\ttest\t" + "\t".join(columns) + "\n"]
        for i, t in enumerate(trials):
            values = "\t".join(f"{columns[b][i]:.6f}" for b in columns)
            lines.append(f"{t.label}\t{t.enroll}\t{t.test}\t{values}\n")
        write_text_atomic(out_dir / f"{name}.tsv", "".join(lines))
    metrics["cohort_size"] = int(train["cohort"].shape[0])
    # embeddings written before the cohort had a kind were speaker means of random crops
    metrics["cohort_kind"] = str(train["cohort_kind"]) if "cohort_kind" in train else "crops"
    metrics["cohort_utts"] = int(train["cohort_utts"]) if "cohort_utts" in train else None
    metrics["top_n"] = top_n
    write_text_atomic(out_dir / METRICS, json.dumps(metrics, indent=2))
    return metrics
