"""Architecture specs: a ResNet is data (block type, stage depths, widths), not a class per model."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from svbench.errors import UserError
from svbench.typed_config import schema_field

# MACs are counted on one 2-s input, 200 frames of 10 ms (the convention of WeSpeaker's tables); every table and
# figure of the study says so through the model's spec.json ("macs_frames").
MACS_FRAMES = 200
BLOCKS = ("basic", "bottleneck")
POOLINGS = ("tstp", "asp")
FIELDS = ("name", "block", "stages", "width", "widths", "embedding", "pooling", "n_mels")
# Names become path components (results/models/{arch}/...), so keep them path- and wildcard-safe.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ArchSpec:
    """One ResNet speaker-embedding backbone.

    `width` is the base channel count m; stages get m, 2m, 4m, 8m unless `widths` lists them
    explicitly (then the stem also uses widths[0] and `width` is not used). Bottleneck blocks output
    4x their stage width.
    """

    name: str
    block: str
    stages: tuple[int, int, int, int]
    width: int = 32
    widths: tuple[int, int, int, int] | None = None
    embedding: int = 256
    pooling: str = "tstp"
    n_mels: int = schema_field("features.n_mels")  # the feature store's bins

    def __post_init__(self) -> None:
        # Validate direct construction too, and normalise lists to tuples / names to lower case.
        clean = _validate({f: getattr(self, f) for f in FIELDS}, where="ArchSpec")
        for key, value in clean.items():
            object.__setattr__(self, key, value)

    @property
    def stage_widths(self) -> tuple[int, int, int, int]:
        if self.widths is not None:
            return self.widths
        m = self.width
        return (m, 2 * m, 4 * m, 8 * m)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "block": self.block,
            "stages": list(self.stages),
            "width": self.width,
            "widths": None if self.widths is None else list(self.widths),
            "embedding": self.embedding,
            "pooling": self.pooling,
            "n_mels": self.n_mels,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "architecture") -> ArchSpec:
        """Build a spec from a config mapping, either complete or `{"preset": ..., overrides...}`.

        Errors are UserError (a ValueError) naming `where` and the offending key, e.g.
        "config key grid[2].stages: expected 4 positive integers, got [3, 4]".
        """
        if not isinstance(d, dict):
            raise UserError(f"{where}: expected a mapping, got {d!r}")
        unknown = [k for k in d if k not in FIELDS and k != "preset"]
        if unknown:
            raise UserError(f"{where}.{unknown[0]}: unknown key (known: preset, {', '.join(FIELDS)})")
        values = dict(d)
        if "preset" in values:
            base_name = values.pop("preset")
            if not isinstance(base_name, str) or base_name.lower() not in _PRESET_KEYS:
                raise UserError(f"{where}.preset: unknown preset {base_name!r} (known: {', '.join(PRESETS)})")
            width = values.get("width", _default("width"))
            _check_positive_int(width, f"{where}.width")
            base = preset(base_name, width).to_dict()
            # A preset's name only describes it when nothing but the width changed.
            changed = [k for k in values if k not in ("name", "width")]
            if changed and "name" not in values:
                raise UserError(f"{where}.name: required when preset {base_name!r} is modified ({', '.join(changed)})")
            values = {**base, **values}
        for key in ("name", "block", "stages"):
            if key not in values:
                raise UserError(f"{where}.{key}: missing (or give a 'preset')")
        return cls(**_validate(values, where))


def _default(name: str) -> Any:
    """ArchSpec's default of a field, as the class states it."""
    return ArchSpec.__dataclass_fields__[name].default


def _check_positive_int(value: Any, key: str) -> int:
    # bool is an int subclass; True is not a width.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{key}: expected a positive integer, got {value!r}")
    return value


def _check_four(value: Any, key: str) -> tuple[int, int, int, int]:
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    )
    if not ok:
        shown = list(value) if isinstance(value, tuple) else value
        raise UserError(f"{key}: expected 4 positive integers, got {shown!r}")
    return tuple(value)


def _check_choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise UserError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value.lower()


def _validate(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Check every field; return the normalised values (tuples, lower-case choices)."""
    name = values["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserError(
            f"{where}.name: expected letters, digits, '_', '.', '-' (starting with a letter or digit), got {name!r}"
        )
    widths = values.get("widths")
    return {
        "name": name,
        "block": _check_choice(values["block"], f"{where}.block", BLOCKS),
        "stages": _check_four(values["stages"], f"{where}.stages"),
        "width": _check_positive_int(values.get("width", _default("width")), f"{where}.width"),
        "widths": None if widths is None else _check_four(widths, f"{where}.widths"),
        "embedding": _check_positive_int(values.get("embedding", _default("embedding")), f"{where}.embedding"),
        "pooling": _check_choice(values.get("pooling", _default("pooling")), f"{where}.pooling", POOLINGS),
        "n_mels": _check_positive_int(values.get("n_mels", _default("n_mels")), f"{where}.n_mels"),
    }


# WeSpeaker's depths (wespeaker/models/resnet.py), at the default width m = 32.
PRESETS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("ResNet18", "basic", (2, 2, 2, 2)),
        ArchSpec("ResNet34", "basic", (3, 4, 6, 3)),
        ArchSpec("ResNet50", "bottleneck", (3, 4, 6, 3)),
        ArchSpec("ResNet101", "bottleneck", (3, 4, 23, 3)),
        ArchSpec("ResNet152", "bottleneck", (3, 8, 36, 3)),
        ArchSpec("ResNet221", "bottleneck", (6, 16, 48, 3)),
        ArchSpec("ResNet293", "bottleneck", (10, 20, 64, 3)),
    )
}
_PRESET_KEYS = {k.lower(): k for k in PRESETS}


def preset(name: str, width: int | None = None) -> ArchSpec:
    """A named ResNet (case-insensitive), at ``width`` (None: its own, ArchSpec's default); its name gets a
    `_w{width}` suffix at another width."""
    key = _PRESET_KEYS.get(name.lower()) if isinstance(name, str) else None
    if key is None:
        raise UserError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    if width is None or _check_positive_int(width, "width") == PRESETS[key].width:
        return PRESETS[key]
    return replace(PRESETS[key], name=f"{key}_w{width}", width=width)
