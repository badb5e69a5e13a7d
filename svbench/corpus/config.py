"""The corpus configuration (config section ``corpus``): typed, validated fields with their defaults.

The dataclasses hold the defaults; svbench/schemas/config.schema.yaml states the same fields, bounds and
defaults (a test checks both). A rule passes a block as one JSON value and the CLI parses it here, so an
error names the config key (``corpus.synthetic.trials``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svbench.errors import UserError
from svbench.typed_config import bounded, parse_block

CORPUS_KINDS = ("synthetic", "voxceleb")
BAD_AUDIO_CHOICES = ("stop", "skip")


@dataclass(frozen=True)
class SyntheticConfig:
    """``corpus.synthetic``: the built-in synthetic speakers."""

    train_speakers: int = bounded(48, ge=2)
    test_speakers: int = bounded(16, ge=2)
    utts_per_speaker: int = bounded(12, ge=2)
    sessions_per_speaker: int = bounded(3, ge=1)
    min_seconds: float = bounded(2.0, gt=0)
    max_seconds: float = bounded(4.0, gt=0)
    trials: int = bounded(2000, ge=2)
    seed: int = 0

    @classmethod
    def from_dict(cls, options: object, where: str = "corpus.synthetic") -> SyntheticConfig:
        return parse_block(cls, options, where)


@dataclass(frozen=True)
class ConvertConfig:
    """``corpus.voxceleb.convert``: the m4a to wav conversion jobs."""

    batch_size: int = bounded(5000, ge=1)  # m4a files per conversion job
    threads: int = bounded(8, ge=1)  # ffmpeg processes per conversion job
    ffmpeg: str = "ffmpeg"

    @classmethod
    def from_dict(cls, options: object, where: str = "corpus.voxceleb.convert") -> ConvertConfig:
        return parse_block(cls, options, where)


def trial_lists(options: object, where: str) -> dict[str, str]:
    """``corpus.voxceleb.trials``: trial-list names to paths, both non-empty strings."""
    if not isinstance(options, dict):
        raise UserError(f"{where}: must be a mapping of trial-list names to paths, got {options!r}")
    for name, path in options.items():
        if not isinstance(path, str) or not path:
            raise UserError(f"{where}.{name}: must be a non-empty path, got {path!r}")
    return dict(options)


@dataclass(frozen=True)
class VoxcelebConfig:
    """``corpus.voxceleb``: VoxCeleb trees on disk."""

    vox2_dev: str | None = None  # VoxCeleb2-dev root (m4a, or wav converted already)
    vox1: str | None = None  # VoxCeleb1 root (wav)
    trials: dict[str, str] = field(default_factory=dict)  # trial lists by name
    converted_root: str = "results/corpus/vox2_wav"
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    check_threads: int = bounded(8, ge=1)  # parallel header checks while building manifests

    @classmethod
    def from_dict(cls, options: object, where: str = "corpus.voxceleb") -> VoxcelebConfig:
        return parse_block(cls, options, where, {"convert": ConvertConfig.from_dict, "trials": trial_lists})


@dataclass(frozen=True)
class CorpusConfig:
    """``corpus``: where the audio comes from and what to do with bad files."""

    kind: str = bounded("synthetic", choices=CORPUS_KINDS)
    on_bad_audio: str = bounded("stop", choices=BAD_AUDIO_CHOICES)
    voxceleb: VoxcelebConfig = field(default_factory=VoxcelebConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    @classmethod
    def from_dict(cls, options: object, where: str = "corpus") -> CorpusConfig:
        return parse_block(cls, options, where, {"voxceleb": VoxcelebConfig.from_dict,
                                                 "synthetic": SyntheticConfig.from_dict})
