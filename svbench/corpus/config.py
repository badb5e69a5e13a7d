"""The corpus configuration (config section ``corpus``): typed, validated fields with their defaults.

The defaults and bounds are the schema's (svbench/schemas/config.schema.yaml, read by ``schema_field``). A rule
passes a block as one JSON value and the CLI parses it here, so an error names the config key
(``corpus.synthetic.trials``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svbench.errors import UserError
from svbench.typed_config import parse_block, schema_field

CORPUS_KINDS = ("synthetic", "voxceleb")
BAD_AUDIO_CHOICES = ("stop", "skip")


@dataclass(frozen=True)
class SyntheticConfig:
    """``corpus.synthetic``: the built-in synthetic speakers."""

    train_speakers: int = schema_field("corpus.synthetic.train_speakers")
    test_speakers: int = schema_field("corpus.synthetic.test_speakers")
    utts_per_speaker: int = schema_field("corpus.synthetic.utts_per_speaker")
    sessions_per_speaker: int = schema_field("corpus.synthetic.sessions_per_speaker")
    min_seconds: float = schema_field("corpus.synthetic.min_seconds")
    max_seconds: float = schema_field("corpus.synthetic.max_seconds")
    trials: int = schema_field("corpus.synthetic.trials")
    seed: int = schema_field("corpus.synthetic.seed")

    @classmethod
    def from_dict(cls, options: object, where: str = "corpus.synthetic") -> SyntheticConfig:
        return parse_block(cls, options, where)


@dataclass(frozen=True)
class ConvertConfig:
    """``corpus.voxceleb.convert``: the m4a to wav conversion jobs."""

    batch_size: int = schema_field("corpus.voxceleb.convert.batch_size")  # m4a files per conversion job
    threads: int = schema_field("corpus.voxceleb.convert.threads")  # ffmpeg processes per conversion job
    ffmpeg: str = schema_field("corpus.voxceleb.convert.ffmpeg")

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

    # VoxCeleb2-dev root (m4a, or wav converted already)
    vox2_dev: str | None = schema_field("corpus.voxceleb.vox2_dev")
    vox1: str | None = schema_field("corpus.voxceleb.vox1")  # VoxCeleb1 root (wav)
    trials: dict[str, str] = field(default_factory=dict)  # trial lists by name
    converted_root: str = schema_field("corpus.voxceleb.converted_root")
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    # parallel header checks while building manifests
    check_threads: int = schema_field("corpus.voxceleb.check_threads")

    @classmethod
    def from_dict(cls, options: object, where: str = "corpus.voxceleb") -> VoxcelebConfig:
        return parse_block(cls, options, where, {"convert": ConvertConfig.from_dict, "trials": trial_lists})


@dataclass(frozen=True)
class CorpusConfig:
    """``corpus``: where the audio comes from and what to do with bad files."""

    kind: str = schema_field("corpus.kind")
    on_bad_audio: str = schema_field("corpus.on_bad_audio")
    voxceleb: VoxcelebConfig = field(default_factory=VoxcelebConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    @classmethod
    def from_dict(cls, options: object, where: str = "corpus") -> CorpusConfig:
        return parse_block(cls, options, where, {"voxceleb": VoxcelebConfig.from_dict,
                                                 "synthetic": SyntheticConfig.from_dict})
