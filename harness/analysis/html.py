"""The report as one self-contained HTML page: inline CSS and script (``page_assets``: sortable, filterable
leaderboards), tables, plots as embedded PNG (no network needed, no file beside it needed); the PNGs are also
written under ``plots/`` for papers and slides."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import jinja2
import matplotlib.pyplot as plt
import pandas as pd

from harness.analysis import plots
from harness.analysis.leaderboard import NOTE, rendered
from harness.analysis.page_assets import SCRIPT, STYLE
from harness.analysis.summary import task_summary
from harness.core.atomic import write_bytes_atomic
from harness.records.record import Record

PAGE = jinja2.Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>routebench: {{ suite }}</title>
<style>{{ style }}</style></head><body>
<h1>Leaderboard: {{ suite }}</h1>
<p>{{ note }} Best value per column in <b>bold green</b>. {{ records }} records. Click a column header to sort
the rows by it (again: the other way); the box above a table keeps the rows that hold every word typed in it.</p>
{% for task, lines, table in tables %}<h2>{{ task }}</h2>
<ul class="summary">{% for line in lines %}<li>{{ line }}</li>{% endfor %}</ul>
<input type="search" class="filter" data-table="board{{ loop.index }}" placeholder="filter rows, e.g. lora 16-shot"
 aria-label="filter the rows of {{ task }}">
<div class="scroll">{{ table }}</div>
{% endfor %}
{% for title, text, table in extra %}<h2>{{ title }}</h2>
<p>{{ text }}</p>
<div class="scroll findings">{{ table }}</div>
{% endfor %}
{% for title, caption, image in figures %}<figure><h2>{{ title }}</h2>
<img alt="{{ title }}" src="data:image/png;base64,{{ image }}"><figcaption>{{ caption }}</figcaption></figure>
{% endfor %}<script>{{ script }}</script></body></html>
""",
    autoescape=False,  # tables are escaped cell by cell; everything else is ours
)


def _png(figure: plt.Figure, path: Path) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
    return base64.b64encode(buffer.getvalue()).decode()


def render_html(
    suite: str,
    records: list[Record],
    tables: dict[str, pd.DataFrame],
    out: Path,
    extra: Sequence[tuple[str, str, pd.DataFrame]] = (),
) -> str:
    """The page; ``extra``: sections (title, note, table of text cells) after the leaderboards."""
    drawn = [
        ("Score against trainable parameters", "the red steps and rings mark the Pareto front", plots.pareto(tables)),
        ("Few-shot regimes", "mean ± sd over seeds per k; dots are single seeds", plots.few_shot(records)),
        (
            "Learning curves",
            "test score against training examples: mean over seeds with its 95 % t interval; dots are single seeds",
            plots.learning_curves(records),
        ),
        ("Expert load per layer", "share of tokens per expert, last training epoch", plots.expert_load(records)),
        (
            "Validation curves",
            "validation score against optimiser steps, one line per seed; a dot marks the state each cell kept",
            plots.validation_curves(records),
        ),
    ]
    figures = []
    for title, caption, figure in drawn:
        if figure is not None:
            name = title.lower().replace(" ", "_").replace("-", "_")
            figures.append((title, caption, _png(figure, out / "plots" / f"{name}.png")))
    shown = [
        (
            html.escape(task),
            [html.escape(line.removeprefix(f"{task} ")) for line in task_summary(task, table)],
            rendered(table, html.escape, ("<b>", "</b>")).to_html(
                index=False, escape=False, border=0, classes="leaderboard", table_id=f"board{i}"
            ),
        )
        for i, (task, table) in enumerate(tables.items(), 1)
    ]
    sections = [
        (html.escape(title), html.escape(text), table.to_html(index=False, escape=True, border=0))
        for title, text, table in extra
    ]
    return PAGE.render(
        suite=html.escape(suite),
        tables=shown,
        extra=sections,
        figures=figures,
        records=len(records),
        note=html.escape(NOTE),
        style=STYLE,
        script=SCRIPT,
    )
