"""Embeddings of whole utterances (evaluation) and of training crops (mean and AS-norm cohort).

Evaluation utterances are embedded whole; utterances of exactly equal length are batched together so
that no padding ever enters the pooling. Training utterances give the mean training embedding that
cosine scoring subtracts and the per-speaker means that AS-norm uses as its cohort.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from svbench.corpus.manifest import read_manifest
from svbench.features import FeatureStore
from svbench.fileio import atomic_write
from svbench.instrument.markers import phase
from svbench.layout import embeddings_file
from svbench.models.loading import device_sync, load_model, resolve_device
from svbench.scoring import speaker_means
from svbench.typed_config import parse_block, schema_field

log = logging.getLogger("svbench.embedding")



@dataclass(frozen=True)
class EmbeddingSettings:
    """The config's ``embedding:`` block: the crop of the training mean and cohort, and the device."""

    crop_frames: int = schema_field("embedding.crop_frames")
    device: str = schema_field("embedding.device")
    # WeSpeaker's AS-norm cohort (local/score_norm.sh): one mean embedding of whole utterances per training
    # speaker; "crops": one random crop of each of up to max_crop_utts training utterances, then speaker means
    cohort: str = schema_field("embedding.cohort")
    # speaker_mean: 0 = every utterance of the speaker
    cohort_utts_per_speaker: int = schema_field("embedding.cohort_utts_per_speaker")
    max_crop_utts: int = schema_field("embedding.max_crop_utts")  # crops

    @classmethod
    def from_config(cls, block: dict) -> EmbeddingSettings:
        """The settings of an ``embedding:`` block (as JSON on the command line); UserError naming the key."""
        return parse_block(cls, block, "embedding")


@torch.no_grad()
def embed_utterances(model: torch.nn.Module, store: FeatureStore, utts: list[str], device: torch.device,
                     max_batch_frames: int = 20000, progress: bool = True) -> np.ndarray:
    """(len(utts), dim) float32 embeddings of whole utterances, in the order given."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, utt in enumerate(utts):
        by_length[store.frames(utt)].append(i)
    out: np.ndarray | None = None
    bar = tqdm(total=len(utts), desc="embed", unit="utt", disable=not progress, mininterval=2.0)
    for frames, idx in sorted(by_length.items()):
        per_batch = max(1, max_batch_frames // max(frames, 1))
        for k in range(0, len(idx), per_batch):
            chunk = idx[k: k + per_batch]
            x = torch.from_numpy(np.stack([np.asarray(store.get(utts[i]), np.float32) for i in chunk])).to(device)
            emb = model(x).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(utts), emb.shape[1]), np.float32)
            out[chunk] = emb
            bar.update(len(chunk))
    bar.close()
    return out if out is not None else np.zeros((0, 0), np.float32)


@torch.no_grad()
def embed_crops(model: torch.nn.Module, store: FeatureStore, utts: list[str], frames: int, seed: int,
                device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Embeddings of one random ``frames``-long crop of each utterance."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(0, len(utts), batch_size):
        x = np.stack([store.crop(u, frames, rng) for u in utts[k: k + batch_size]])
        rows.append(model(torch.from_numpy(x).to(device)).float().cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def embed(model_path: Path, test_features: Path, test_manifest: Path, train_features: Path, train_manifest: Path,
          out_dir: Path, settings: EmbeddingSettings | None = None, seed: int = 0) -> None:
    """Write ``test.npz`` (ids, embeddings) and ``train.npz`` (mean, cohort speakers, cohort, its kind and the
    number of training utterances behind it). ``settings.cohort``: "speaker_mean" (whole utterances, every one or up
    to ``cohort_utts_per_speaker`` per speaker) or "crops" (one ``crop_frames`` crop of up to ``max_crop_utts``);
    ``seed`` draws them (the model's seed)."""
    settings = settings or EmbeddingSettings()
    cohort = settings.cohort
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(settings.device)
    model, _ = load_model(model_path, dev)
    sync = device_sync(dev)
    with phase("embed_test", sync=sync):
        store = FeatureStore(test_features)
        ids = [u.utt for u in read_manifest(test_manifest)]
        emb = embed_utterances(model, store, ids, dev)
        _save_npz(out_dir / embeddings_file("test"), ids=np.array(ids), embeddings=emb)
    with phase("embed_train", sync=sync):
        store = FeatureStore(train_features)
        rng = np.random.default_rng(seed)
        train = cohort_utterances(read_manifest(train_manifest), cohort, settings.cohort_utts_per_speaker,
                                  settings.max_crop_utts, rng)
        utts = [u.utt for u in train]
        emb = (embed_utterances(model, store, utts, dev) if cohort == "speaker_mean"
               else embed_crops(model, store, utts, settings.crop_frames, seed, dev))
        speakers, means = speaker_means(emb, [u.speaker for u in train])
        _save_npz(out_dir / embeddings_file("train"), mean=emb.mean(axis=0), speakers=np.array(speakers), cohort=means,
                  cohort_kind=np.array(cohort), cohort_utts=np.array(len(train)))
    log.info("embedded %d test utterances and %d training utterances (%s cohort of %d speakers)", len(ids),
             len(train), cohort, len(speakers))


def cohort_utterances(train: list, cohort: str, per_speaker: int, max_utts: int, rng: np.random.Generator) -> list:
    """The training utterances behind the mean and the cohort: every one, or up to ``per_speaker`` of each speaker
    (speaker_mean: every speaker keeps a mean); a random ``max_utts`` of them (crops), in manifest order."""
    if cohort == "crops":
        if len(train) > max_utts:
            return [train[i] for i in sorted(rng.choice(len(train), max_utts, replace=False))]
        return train
    if not per_speaker:
        return train
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(train):
        by_speaker[u.speaker].append(i)
    keep = [i for rows in by_speaker.values()
            for i in (rows if len(rows) <= per_speaker else rng.choice(rows, per_speaker, replace=False))]
    return [train[i] for i in sorted(keep)]
