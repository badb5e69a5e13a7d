"""Argument types shared by the command modules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def json_object(text: str) -> dict:
    """A JSON object given on the command line (settings a rule passes as one value)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def named_path(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` (a trial list and its file)."""
    name, sep, path = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)
