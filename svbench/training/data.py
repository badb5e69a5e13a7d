"""What one training job reads: the crops of every epoch, in a deterministic order, sliced per rank.

Item i of epoch e is drawn from a generator seeded by (seed, e, i), and the order of epoch e is a
permutation seeded by (seed, e): the samples seen depend neither on a restart nor on the process count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from svbench.augment import SPEEDS, Augmenter, speed_segment
from svbench.corpus.manifest import read_manifest
from svbench.errors import UserError
from svbench.features import FbankConfig, FeatureStore, fbank

from .recipe import Recipe


class CropDataset(Dataset):
    """Random fixed-length crops; item i of epoch e always gives the same crop for a seed.

    Clean crops come from the memory-mapped feature store. With speed perturbation or an augmenter,
    a sample that draws a speed other than 1.0 or an augmentation is made from its wav instead
    (``svbench.augment``) and its fbank computed here, in the data-loader worker.
    """

    def __init__(self, store: FeatureStore, utts: list[str], labels: list[int], frames: int, seed: int,
                 wavs: list[Path] | None = None, speed_perturb: bool = False, augmenter: Augmenter | None = None,
                 n_speakers: int = 0) -> None:
        self.store, self.utts, self.labels, self.frames, self.seed = store, utts, labels, frames, seed
        self.wavs, self.speed_perturb, self.augmenter, self.n_speakers = wavs, speed_perturb, augmenter, n_speakers
        self.fbank = FbankConfig(n_mels=store.get(utts[0]).shape[1]) if utts else FbankConfig()

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        speed = int(rng.integers(0, len(SPEEDS))) if self.speed_perturb else 0
        augment = self.augmenter is not None and self.augmenter.wants(rng)
        if speed == 0 and not augment:
            return torch.from_numpy(self.store.crop(self.utts[i], self.frames, rng)), self.labels[i]
        hop = self.fbank.sample_rate * self.fbank.frame_shift_ms // 1000
        window = self.fbank.sample_rate * self.fbank.frame_length_ms // 1000
        audio = speed_segment(self.wavs[i], int((self.frames - 1) * hop + window), SPEEDS[speed], rng)
        if augment:
            audio = self.augmenter.apply(audio, rng)
        feats = fbank(audio, self.fbank.sample_rate, self.fbank)[: self.frames]
        crop = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
        return crop, self.labels[i] + speed * self.n_speakers  # each speed is a class of its own


def epoch_order(n_utts: int, samples: int, seed: int, epoch: int) -> list[tuple[int, int]]:
    """The (epoch, utterance index) keys of one epoch, in order."""
    rng = np.random.default_rng([seed, epoch, 1_000_003])
    reps = -(-samples // n_utts)
    order = np.concatenate([rng.permutation(n_utts) for _ in range(reps)])[:samples]
    return [(epoch, int(i)) for i in order]


def rank_batches(order: list, global_batch: int, rank: int, world_size: int) -> list[list]:
    """This rank's slice of every global batch (``global_batch`` // ``world_size`` samples per rank): the same
    global batches whatever the layout, so one node × 2 processes and 2 nodes × 1 train the same model."""
    share = global_batch // world_size
    return [order[start + rank * share: start + (rank + 1) * share]
            for start in range(0, len(order) - global_batch + 1, global_batch)]


@dataclass
class TrainingSet:
    """The training utterances as the loop needs them: the dataset and its class count."""

    dataset: CropDataset
    speakers: int
    n_classes: int  # speakers × speeds with speed perturbation

    @property
    def utterances(self) -> int:
        return len(self.dataset)


def _augmenter(recipe: Recipe) -> Augmenter | None:
    if recipe.musan is None and recipe.rir is None:
        return None
    return Augmenter(None if recipe.musan is None else Path(recipe.musan),
                     None if recipe.rir is None else Path(recipe.rir), recipe.aug_prob)


def load_training_set(features: Path, manifest: Path, recipe: Recipe, seed: int) -> TrainingSet:
    """The crops of the manifest's utterances; a UserError when one of them has no features."""
    augmenter = _augmenter(recipe)  # first: a wrong augmentation path is refused before the corpus is read
    store = FeatureStore(features)
    utts = read_manifest(manifest)
    speakers = sorted({u.speaker for u in utts})
    speaker_index = {s: k for k, s in enumerate(speakers)}
    missing = [u.utt for u in utts if u.utt not in store]
    if missing:
        raise UserError(f"{features}: {len(missing)} training utterances have no features, e.g. {missing[0]!r}")
    wavs = [u.path for u in utts] if recipe.speed_perturb or augmenter is not None else None
    dataset = CropDataset(store, [u.utt for u in utts], [speaker_index[u.speaker] for u in utts], recipe.crop_frames,
                          seed, wavs=wavs, speed_perturb=recipe.speed_perturb, augmenter=augmenter,
                          n_speakers=len(speakers))
    n_classes = len(speakers) * (len(SPEEDS) if recipe.speed_perturb else 1)
    return TrainingSet(dataset, len(speakers), n_classes)
