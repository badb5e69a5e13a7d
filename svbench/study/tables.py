"""Tables as CSV (data), HTML (the Snakemake report renders only HTML, images and PDF) and LaTeX."""

from __future__ import annotations

import math
import re
from html import escape
from pathlib import Path

import pandas as pd

from svbench.fileio import write_text_atomic

STYLE = """<style>
table.svbench {border-collapse: collapse; font: 13px/1.4 system-ui, sans-serif; margin-bottom: 1.5em}
table.svbench th, table.svbench td {border: 1px solid #ccc; padding: 3px 8px; text-align: right}
table.svbench th {background: #f3f3f3} table.svbench caption {font-weight: bold; padding: 6px}
</style>"""


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"  # empty on purpose: not measured, never a zero
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def html_table(frame: pd.DataFrame, caption: str) -> str:
    """One ``<table class="svbench">`` with its caption; missing values shown as a dash."""
    shown = frame.map(_fmt) if len(frame) else frame
    html = shown.to_html(index=False, classes="svbench", border=0, escape=True)
    # pandas writes the border attribute or not depending on its version: match the tag, not its spelling
    return re.sub(r"<table[^>]*>", f'<table class="svbench"><caption>{escape(caption)}</caption>', html, count=1)


def write_table(frame: pd.DataFrame, stem: Path, caption: str, shown: pd.DataFrame | None = None,
                extra: list[tuple[pd.DataFrame, str]] = ()) -> None:
    """``stem.csv`` (the numbers of ``frame``), ``stem.html`` and ``stem.tex`` (``shown`` when given:
    the same rows as text, e.g. ``mean ± sd``). ``extra`` tables follow in the HTML and LaTeX only."""
    stem = Path(stem)
    write_text_atomic(stem.with_suffix(".csv"), frame.to_csv(index=False))
    shown = frame if shown is None else shown
    tables = [(shown, caption), *extra]
    html = "\n".join(html_table(t, c) for t, c in tables)
    write_text_atomic(stem.with_suffix(".html"), f"<!doctype html><meta charset='utf-8'>{STYLE}\n{html}\n"
            "<p>— : not measured (no sensor), never shown as zero.</p>\n")
    latex = "\n".join(t.map(_fmt).to_latex(index=False, caption=c, escape=True) for t, c in tables if len(t))
    write_text_atomic(stem.with_suffix(".tex"), latex)
