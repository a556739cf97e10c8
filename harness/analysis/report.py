"""The report of a results folder: the leaderboards (``leaderboard``) as Markdown, CSV (raw numbers), LaTeX and a
self-contained HTML page with plots (``html``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.analysis.beyond import beyond_note, beyond_table
from harness.analysis.findings import Finding, finding_line, findings, findings_table, level, note, seeds_table
from harness.analysis.html import render_html
from harness.analysis.leaderboard import NOT_RAW, NOTE, leaderboards, rendered
from harness.analysis.summary import summary, task_summary
from harness.core.atomic import remove_temporaries, write_text_atomic
from harness.core.faults import stop_point
from harness.records.record import Record
from harness.records.settings import ReportSettings


def _latex_escape(text: str) -> str:
    for char, replacement in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, replacement)
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("<", r"$<$")


def default_report_dir(results: Path) -> Path:
    """``report/<the results folder's name>``: results/ner → report/ner; a run into ``--out results/ner-full``
    reports to report/ner-full, so a partial run kept apart never overwrites the suite's own report."""
    return Path("report") / results.resolve().name


def write_report(records: list[Record], out: Path, settings: ReportSettings | None = None) -> list[Path]:
    """``leaderboard.md``, ``.csv``, ``.tex``, ``index.html`` (self-contained, plots embedded) and ``summary.txt``
    (best row, baseline, rows beyond noise) under ``out``."""
    for folder in (out, out / "plots"):
        if folder.is_dir():
            remove_temporaries(folder)  # of a report killed while being written
    for stale in (out / "plots").glob("*.png"):  # a plot these records no longer draw must not outlive them
        stale.unlink()
    tables = leaderboards(records, settings)
    suite = (settings and settings.suite) or (records[0].suite if records else "")
    sections = [f"# Leaderboard: {suite}\n\n{NOTE}\n"]
    latex = []
    for task, table in tables.items():
        shown = rendered(table, str, ("**", "**"))
        lines = "".join(f"- {line.removeprefix(f'{task} ')}\n" for line in task_summary(task, table))
        sections.append(f"## {task}\n\n{lines}\n{shown.to_markdown(index=False)}\n")
        body = rendered(table, _latex_escape, (r"\textbf{", "}"))
        latex.append(f"% {task}\n" + body.to_latex(index=False, escape=False, column_format="l" * body.shape[1]))
    settings = settings or ReportSettings()
    found = findings(tables, settings)
    extra = _extra_sections(tables, settings, found)
    sections += [
        f"## {title}\n\n{text}\n\n{table.to_markdown(index=False, disable_numparse=True)}\n"
        for title, text, table in extra
    ]
    md, csv, tex = out / "leaderboard.md", out / "leaderboard.csv", out / "leaderboard.tex"
    write_text_atomic(md, "\n".join(sections))
    stop_point("report")
    write_text_atomic(tex, "\n".join(latex))
    raw = [t.drop(columns=NOT_RAW).assign(task=task) for task, t in tables.items()]
    write_text_atomic(csv, (pd.concat(raw) if raw else pd.DataFrame()).to_csv(index=False))
    html, brief = out / "index.html", out / "summary.txt"
    write_text_atomic(html, render_html(suite, records, tables, out, extra))
    write_text_atomic(brief, summary(tables) + "".join(finding_line(f) + "\n" for f in found))
    return [md, csv, tex, html, brief]


def _extra_sections(
    tables: dict[str, pd.DataFrame], settings: ReportSettings, found: list[Finding]
) -> list[tuple[str, str, pd.DataFrame]]:
    """The findings (when the suite states hypotheses) and the seeds each row took (when its seeds are adaptive)."""
    extra = []
    if note_text := beyond_note(tables):
        extra.append(("Beyond the clean score", note_text, beyond_table(tables)))
    if found:
        extra.append(("Findings", note(settings), findings_table(found)))
    if settings.plan is not None:
        why = (
            "a row got another seed while a comparison it is part of (the hypotheses, else each row against the "
            "baseline: decided when the interval of the difference excludes 0, or lies within ±margin) was undecided; "
            f"each look reads the paired t interval of the per-seed difference at confidence {level(settings)}"
        )
        extra.append(("Seeds", why, seeds_table(tables, settings)))
    return extra
