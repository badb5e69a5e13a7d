"""The key tables of config/README.md, rendered from the config schema: each key's default and meaning are written
once, in svbench/schemas/config.schema.yaml, and the README shows them.

A table stands between two markers in the README::

    <!-- keys: training -->
    | key | default | meaning |
    ...
    <!-- end keys -->

``training`` is a path into the schema (``energy.nvml``, or ``grid[]`` for a grid entry's keys). Every key under it
is a row, nested blocks flattened (``synthetic.seed``); a block is nested when it admits no other keys
(``additionalProperties: false``), and anything else (a carbon factor, a mapping of trial lists) is one row. A key
without a ``description`` is an error naming it: a key the README cannot explain is not added silently.
"""

from __future__ import annotations

import re
from pathlib import Path

from svbench.errors import UserError
from svbench.fileio import write_text_atomic
from svbench.schemas import CONFIG_SCHEMA
from svbench.typed_config import schema_node

_START = re.compile(r"^<!-- keys: (\S+) -->$")
_END = "<!-- end keys -->"
_HEADER = "| key | default | meaning |\n|---|---|---|"


def _is_block(node: dict) -> bool:
    return node.get("type") == "object" and node.get("additionalProperties") is False and "properties" in node


def _value(value: object) -> str:
    """A default as YAML writes it: ``null``, ``true``, ``0.1``, ``[nvml, rapl]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return str(value)


def _default(node: dict) -> str:
    """The default column: ``–`` for a key without one, a carbon factor as its value and source."""
    if "default" not in node:
        return "–"
    default = node["default"]
    if isinstance(default, dict) and set(default) == {"value", "source"}:
        return f"{default['value']!r} ({default['source']})"
    if isinstance(default, dict) and default:  # factors by name (carbon.embodied)
        return "; ".join(f"`{key}`: {_default({'default': factor})}" for key, factor in default.items())
    plain = default is None or isinstance(default, int | float | bool)
    return _value(default) if plain else f"`{_value(default)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _grid_entry_defaults() -> dict[str, object]:
    """A grid entry's defaults are ArchSpec's: the schema holds none, since Snakemake would write them into every
    entry (and a preset changed beyond its width needs a name)."""
    from dataclasses import MISSING, fields

    from svbench.models.spec import ArchSpec

    return {spec.name: spec.default for spec in fields(ArchSpec) if spec.default is not MISSING}


def key_rows(section: str) -> list[tuple[str, str, str]]:
    """(key, default, meaning) of every key under ``section``, in the schema's order, nested blocks flattened."""
    rows = []
    defaults = _grid_entry_defaults() if section == "grid[]" else {}

    def walk(node: dict, prefix: str) -> None:
        for name, child in node.get("properties", {}).items():
            key = prefix + name
            if _is_block(child):
                walk(child, key + ".")
                continue
            if not child.get("description"):
                raise UserError(f"{CONFIG_SCHEMA}: {section}.{key}: no description (the README's key tables are "
                                "made from it: add one)")
            if key in defaults and "default" not in child:
                child = child | {"default": defaults[key]}
            rows.append((f"`{key}`", _default(child), child["description"]))

    walk(schema_node(section), "")
    return rows


def key_table(section: str) -> str:
    """The markdown table of ``section``'s keys."""
    lines = [f"| {key} | {_cell(default)} | {_cell(meaning)} |" for key, default, meaning in key_rows(section)]
    return "\n".join([_HEADER, *lines])


def render_tables(text: str, where: str) -> str:
    """``text`` (a README) with every table between ``<!-- keys: SECTION -->`` and ``<!-- end keys -->`` made
    again from the schema; a marker left open or naming no section is a UserError naming ``where`` and the line."""
    out: list[str] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        start = _START.match(line)
        if start is None:
            continue
        opened = index
        while index < len(lines) and lines[index] != _END:
            index += 1
        if index == len(lines):
            raise UserError(f"{where}:{opened}: {line} has no {_END} after it")
        try:
            out.append(key_table(start.group(1)))
        except UserError as error:
            raise UserError(f"{where}:{opened}: {error}") from None
        out.append(_END)
        index += 1
    return "\n".join(out)


def update_tables(readme: Path, check: bool = False) -> bool:
    """Make ``readme``'s key tables again from the schema; whether they were already current. With ``check``
    the file is left as it is."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"{readme}: cannot read: {error.strerror}") from None
    rendered = render_tables(text, str(readme))
    if rendered != text and not check:
        write_text_atomic(readme, rendered)
    return rendered == text
