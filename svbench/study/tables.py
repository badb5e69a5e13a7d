"""Tables as CSV (data), HTML (the Snakemake report renders only HTML, images and PDF) and LaTeX."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

STYLE = """<style>
table.svbench {border-collapse: collapse; font: 13px/1.4 system-ui, sans-serif}
table.svbench th, table.svbench td {border: 1px solid #ccc; padding: 3px 8px; text-align: right}
table.svbench th {background: #f3f3f3} table.svbench caption {font-weight: bold; padding: 6px}
</style>"""


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"  # empty on purpose: not measured, never a zero
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_table(frame: pd.DataFrame, stem: Path, caption: str) -> None:
    """``stem.csv``, ``stem.html`` and ``stem.tex`` of one table."""
    stem = Path(stem)
    _atomic(stem.with_suffix(".csv"), frame.to_csv(index=False))
    shown = frame.map(_fmt) if len(frame) else frame
    html = shown.to_html(index=False, classes="svbench", border=0, escape=True)
    html = html.replace('<table border="0" class="dataframe svbench">',
                        f'<table class="svbench"><caption>{caption}</caption>')
    _atomic(stem.with_suffix(".html"), f"<!doctype html><meta charset='utf-8'>{STYLE}\n{html}\n"
            "<p>— : not measured (no sensor), never shown as zero.</p>\n")
    latex = shown.to_latex(index=False, caption=caption, escape=True) if len(frame) else ""
    _atomic(stem.with_suffix(".tex"), latex)
