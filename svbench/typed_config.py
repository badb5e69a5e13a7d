"""Typed config blocks: dataclass fields with their defaults and bounds, checked with errors naming the key.

A block is a dataclass whose fields are declared with ``schema_field("training.lr")``: the default and the bounds
(minimum, exclusiveMinimum, maximum, enum, pattern) as svbench/schemas/config.schema.yaml states them, written once
there; its annotation gives the type (``int``, ``float``, ``bool``, ``str``, optionally ``| None``), and a test holds
every annotation to the schema's type. Used by the training recipe, the corpus, features, embedding, scoring and
uncertainty blocks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import Field, field, fields
from typing import Any, TypeVar

from svbench.errors import UserError
from svbench.schemas import CONFIG_SCHEMA, config_schema

Block = TypeVar("Block")

_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
_BOUND_OPERATORS = (("ge", ">="), ("gt", ">"), ("le", "<="))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)  # bool is an int to Python, not here


def _has_type(kind: str, value: object) -> bool:
    """Whether ``value`` is of the annotation ``kind`` (int, float, bool, str); a float must be finite."""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if not _is_number(value):
        return False
    return isinstance(value, int) if kind == "int" else math.isfinite(value)


def _accepts(kind: str, limits: dict, value: object) -> bool:
    """Whether ``value`` has the type ``kind`` and lies within ``limits``."""
    if not _has_type(kind, value):
        return False
    if "choices" in limits and value not in limits["choices"]:
        return False
    if "pattern" in limits and re.match(limits["pattern"], value) is None:
        return False
    if _is_number(value):
        return (value >= limits.get("ge", -math.inf) and value > limits.get("gt", -math.inf)
                and value <= limits.get("le", math.inf))
    return True


def _wanted(kind: str, limits: dict, nullable: bool) -> str:
    """What a field accepts, in words: "an integer >= 1 or null"."""
    if "choices" in limits:
        want = f"one of {', '.join(limits['choices'])}"
    elif "pattern" in limits:
        want = f"a string matching {limits['pattern']}"
    else:
        bounds = [f"{op} {limits[name]}" for name, op in _BOUND_OPERATORS if name in limits]
        want = _TYPE_NAMES[kind] + ((" " + " and ".join(bounds)) if bounds else "")
    return want + (" or null" if nullable else "")


def check_field(spec: Field, value: object, key: str) -> object:
    """``value`` if it has the field's type (its annotation) and bounds, else a UserError naming ``key``;
    an int becomes a float where a float is expected."""
    kinds = spec.type.replace(" ", "").split("|")
    nullable = "None" in kinds
    if value is None and nullable:
        return None
    kind, limits = kinds[0], {name: limit for name, limit in spec.metadata.items() if name != "key"}
    if _accepts(kind, limits, value):
        return float(value) if kind == "float" else value
    raise UserError(f"{key}: must be {_wanted(kind, limits, nullable)}, got {value!r}")


_LIMITS = (("minimum", "ge"), ("exclusiveMinimum", "gt"), ("maximum", "le"))


def schema_node(key: str) -> dict:
    """The schema of a config key or section (``"energy.nvml"``; ``"grid[]"`` is a grid entry); UserError naming
    the key when the schema has none."""
    node: dict | None = config_schema()
    for part in key.split("."):
        node = node.get("properties", {}).get(part.removesuffix("[]"))
        if node is not None and part.endswith("[]"):
            node = node.get("items")
        if node is None:
            raise UserError(f"{CONFIG_SCHEMA}: no config key {key!r}")
    return node


def schema_default(key: str) -> Any:
    """The schema's default of a config key (``"uncertainty.resamples"``), for what is not a typed block's field
    (a command-line default, a module constant)."""
    return schema_node(key)["default"]


def section_defaults(section: str) -> dict[str, object]:
    """The default of every key of a config section (``"large_margin"``), as the schema states them."""
    return {name: node["default"] for name, node in schema_node(section)["properties"].items()}


def schema_field(key: str) -> Any:
    """The field of a config key (``"training.lr"``) as the schema states it: its default and its bounds
    (minimum, exclusiveMinimum, maximum, enum, pattern), written once there. A number's integer default is a float
    (``checkpoint_minutes: 10`` is 10.0). The field's metadata names its key too, for the test of its type."""
    node = schema_node(key)
    limits: dict[str, object] = {name: node[word] for word, name in _LIMITS if word in node}
    if "enum" in node:
        limits["choices"] = tuple(choice for choice in node["enum"] if choice is not None)
    if "pattern" in node:
        limits["pattern"] = node["pattern"]
    default = node["default"]
    kinds = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
    if "number" in kinds and isinstance(default, int) and not isinstance(default, bool):
        default = float(default)
    return field(default=tuple(default) if isinstance(default, list) else default, metadata={"key": key, **limits})


def check_fields(block: object, where: str) -> None:
    """Check every field of a dataclass instance in place (from ``__post_init__``); UserError naming the first
    bad one as ``where.name``."""
    for spec in fields(block):
        object.__setattr__(block, spec.name, check_field(spec, getattr(block, spec.name), f"{where}.{spec.name}"))


def parse_block(cls: type[Block], options: object, where: str,
                nested: Mapping[str, Callable[[Any, str], Any]] | None = None) -> Block:
    """``cls`` from a config mapping: unknown keys, wrong types and values out of bounds are a UserError naming
    the key (``where.name``); the fields in ``nested`` are parsed by their own function instead."""
    nested = nested or {}
    if not isinstance(options, dict):
        raise UserError(f"{where}: must be a mapping, got {options!r}")
    specs = {spec.name: spec for spec in fields(cls)}
    unknown = sorted(set(options) - set(specs))
    if unknown:
        raise UserError(f"{where}.{unknown[0]}: unknown option (known: {', '.join(sorted(specs))})")
    values = {}
    for name, value in options.items():
        key = f"{where}.{name}"
        values[name] = nested[name](value, key) if name in nested else check_field(specs[name], value, key)
    return cls(**values)
