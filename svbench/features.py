"""Log-mel filterbanks and the on-disk feature store.

Features are 80-dim Kaldi-compatible fbanks (``torchaudio.compliance.kaldi.fbank``: 25 ms / 10 ms,
Hamming, waveform scaled by 32768, no dither) with per-utterance mean normalisation, stored as
float16. A split is written as shards (``shardNNNN.npy`` + ``shardNNNN.index.tsv``) that can be
computed by separate jobs; ``index.tsv`` (``utt shard offset frames``) joins them and marks the split
complete. Reading memory-maps the shards, so a training job touches only the crops it uses.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi
from tqdm import tqdm

from svbench.corpus.audio import read_wav
from svbench.corpus.manifest import Utterance, read_manifest
from svbench.errors import UserError
from svbench.fileio import atomic_write, write_text_atomic
from svbench.layout import FEATURE_INDEX
from svbench.typed_config import parse_block, schema_field

log = logging.getLogger("svbench.features")
PROGRESS_EVERY_S = 30.0  # how often a long shard logs its progress


@dataclass(frozen=True)
class FbankConfig:
    """How an fbank is computed; only ``n_mels`` is a config key (``features.n_mels``)."""

    n_mels: int = schema_field("features.n_mels")
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    sample_rate: int = 16000


@dataclass(frozen=True)
class FeaturesConfig:
    """Config section ``features``; its defaults and bounds are the schema's (``schema_field``)."""

    n_mels: int = schema_field("features.n_mels")
    shards: int = schema_field("features.shards")  # feature shards per split, one job each

    @classmethod
    def from_dict(cls, options: object, where: str = "features") -> FeaturesConfig:
        return parse_block(cls, options, where)

    @property
    def fbank(self) -> FbankConfig:
        return FbankConfig(n_mels=self.n_mels)


def fbank(samples: np.ndarray, sample_rate: int, cfg: FbankConfig = FbankConfig()) -> np.ndarray:
    """(frames, n_mels) float32 log-mel filterbank with the utterance mean removed."""
    if sample_rate != cfg.sample_rate:
        raise UserError(f"expected {cfg.sample_rate} Hz audio, got {sample_rate} Hz")
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0) * 32768.0
    feats = kaldi.fbank(wave, num_mel_bins=cfg.n_mels, frame_length=cfg.frame_length_ms,
                        frame_shift=cfg.frame_shift_ms, dither=0.0, sample_frequency=sample_rate,
                        window_type="hamming", energy_floor=0.0)
    feats = feats - feats.mean(dim=0, keepdim=True)
    return feats.numpy()


def shard_utterances(utts: list[Utterance], shard: int, num_shards: int) -> list[Utterance]:
    """The utterances of one shard: a contiguous slice, so shards stay balanced and stable."""
    if not 0 <= shard < num_shards:
        raise UserError(f"shard {shard} out of range for {num_shards} shards")
    bounds = np.linspace(0, len(utts), num_shards + 1).round().astype(int)
    return utts[bounds[shard]: bounds[shard + 1]]


def shard_name(shard: int) -> str:
    return f"shard{shard:04d}"


def extract_shard(manifest: Path, out_dir: Path, shard: int = 0, num_shards: int = 1,
                  cfg: FbankConfig = FbankConfig(), progress: bool = True) -> Path:
    """Compute one shard of a split; an existing finished shard is kept as it is."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = shard_name(shard)
    npy, index = out_dir / f"{name}.npy", out_dir / f"{name}.index.tsv"
    if npy.exists() and index.exists():
        log.info("%s already complete: kept", index)
        return index
    utts = shard_utterances(read_manifest(manifest), shard, num_shards)
    # one thread per shard job: parallelism comes from shards, and torch's intra-op threads make
    # kaldi.fbank on varying lengths many times slower on small machines
    torch.set_num_threads(1)
    arrays, rows, offset, audio_s = [], [], 0, 0.0
    t0 = last = time.monotonic()
    for n, utt in enumerate(tqdm(utts, desc=f"fbank {name}", unit="utt", disable=not progress, mininterval=2.0), 1):
        samples, sr = read_wav(utt.path)
        feats = fbank(samples, sr, cfg).astype(np.float16)
        arrays.append(feats)
        rows.append(f"{utt.utt}\t{shard}\t{offset}\t{len(feats)}\n")
        offset += len(feats)
        audio_s += len(samples) / sr
        if time.monotonic() - last >= PROGRESS_EVERY_S:  # a plain log line: tqdm bars are unreadable in SLURM logs
            last = time.monotonic()
            log.info("%s: %d/%d utterances, %.1f s of audio (%.0f x real time)", name, n, len(utts), audio_s,
                     audio_s / (last - t0))
    data = np.concatenate(arrays) if arrays else np.zeros((0, cfg.n_mels), np.float16)
    # write data first, index last: the index is what says "this shard is complete"
    with atomic_write(npy, "wb") as stream:
        np.save(stream, data)
    write_text_atomic(index, "utt\tshard\toffset\tframes\n" + "".join(rows))
    elapsed = max(time.monotonic() - t0, 1e-9)
    log.info("%s: %d utterances, %.1f s of audio in %.1f s (%.0f x real time)", name, len(utts), audio_s, elapsed,
             audio_s / elapsed)
    return index


def merge_index(out_dir: Path, num_shards: int) -> Path:
    """Join the shard indexes into ``index.tsv``; fails naming any shard that is missing."""
    out_dir = Path(out_dir)
    missing = [shard_name(k) for k in range(num_shards) if not (out_dir / f"{shard_name(k)}.index.tsv").exists()]
    if missing:
        raise UserError(f"{out_dir}: shards not extracted yet: {', '.join(missing)}")
    lines = ["utt\tshard\toffset\tframes\n"]
    for k in range(num_shards):
        lines += (out_dir / f"{shard_name(k)}.index.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[1:]
    write_text_atomic(out_dir / FEATURE_INDEX, "".join(lines))
    return out_dir / FEATURE_INDEX


class FeatureStore:
    """Memory-mapped read access to a split's features by utterance id."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        index = self.directory / FEATURE_INDEX
        if not index.exists():
            raise UserError(f"{index}: feature index missing (run `svbench features` first)")
        self._where: dict[str, tuple[int, int, int]] = {}
        for n, line in enumerate(index.read_text(encoding="utf-8").splitlines()[1:], 2):
            try:
                utt, shard, offset, frames = line.split("\t")
                self._where[utt] = (int(shard), int(offset), int(frames))
            except ValueError as exc:
                raise UserError(f"{index}:{n}: expected 'utt shard offset frames', got {line!r}") from exc
        self._shards: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, utt: str) -> bool:
        return utt in self._where

    @property
    def utterances(self) -> list[str]:
        return list(self._where)

    def frames(self, utt: str) -> int:
        return self._where[utt][2]

    def _shard(self, k: int) -> np.ndarray:
        if k not in self._shards:  # opened lazily: each DataLoader worker maps its own view
            self._shards[k] = np.load(self.directory / f"{shard_name(k)}.npy", mmap_mode="r")
        return self._shards[k]

    def get(self, utt: str) -> np.ndarray:
        """(frames, n_mels) float16 view of one utterance."""
        try:
            shard, offset, frames = self._where[utt]
        except KeyError:
            raise UserError(f"utterance {utt!r} is not in the feature store {self.directory}") from None
        return self._shard(shard)[offset: offset + frames]

    def crop(self, utt: str, frames: int, rng: np.random.Generator) -> np.ndarray:
        """A random ``frames``-long float32 crop; short utterances are tiled to length."""
        feats = self.get(utt)
        n = len(feats)
        if n >= frames:
            start = int(rng.integers(0, n - frames + 1))
            return np.asarray(feats[start: start + frames], dtype=np.float32)
        reps = -(-frames // max(n, 1))
        return np.asarray(np.tile(feats, (reps, 1))[:frames], dtype=np.float32)

    def __getstate__(self) -> dict:
        # memmaps are not pickled into DataLoader workers; each worker reopens them
        return {**self.__dict__, "_shards": {}}
