"""The `bench` command line: load and validate a suite, then hand off to the runner or the report."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.core.errors import BenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="routebench: does random routing help fine-tuning?")
out = Console()
err = Console(stderr=True)

SuiteArg = Annotated[Path, typer.Argument(help="Suite YAML file, e.g. suites/ner.yaml.")]
ProfileOpt = Annotated[str | None, typer.Option(help="Budget profile from the suite (default: 'default' if defined).")]


def _load(suite_path: Path, profile: str | None):
    from harness.suite.expand import expand, load_suite

    suite = load_suite(suite_path)
    return suite, expand(suite, suite_path, profile)


def _log(quiet: bool):
    if quiet:
        return lambda _: None
    return lambda line: err.print(line, soft_wrap=True, markup=False, highlight=False)


def _print_report(paths: list[Path], done: str) -> None:
    """The leaderboard and what was done, then the summary (best row, baseline, rows beyond noise) and where the
    HTML page is: the last lines a user sees."""
    print(paths[0].read_text())
    out.print(done, markup=False, highlight=False, soft_wrap=True)
    print(paths[4].read_text(), end="")
    out.print(f"report: {paths[3]}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def validate(suite: SuiteArg, profile: ProfileOpt = None) -> None:
    """Check a suite without running it: schema, names, profile, and every data file it names (format, columns,
    labels, carved validation and few-shot samples); print what was read and the number of cells."""
    from harness.suite.expand import check_data

    loaded, cells = _load(suite, profile)
    for line in check_data(cells):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    plan = loaded.plan
    adaptive = (
        f" at most; {sum(c.seed <= plan.min for c in cells)} run seeds 1-{plan.min}, the rest only while undecided"
        if plan
        else ""
    )
    out.print(f"{suite}: ok, {len(cells)} cells{adaptive}", soft_wrap=True)


@app.command("list")
def list_known() -> None:
    """Show the known tasks, backbones, methods, routing strategies, probes and measures."""
    from harness.evaluation.probes import probes
    from harness.methods import methods
    from harness.models.backbones import backbones
    from harness.models.language_models import language_models
    from harness.records.measures import known_names
    from harness.routing import routers
    from harness.tasks import builtin_tasks, families

    out.print(f"tasks:      {', '.join(builtin_tasks)} (or any {'/'.join(families)} dataset given by files)")
    out.print(f"backbones:  {', '.join(backbones)} (or a hub id 'org/name' or a local folder)")
    out.print(f"methods:    {', '.join(methods)}")
    out.print(f"routing:    {', '.join(routers)}")
    out.print(f"prompt LMs: {', '.join(language_models)} (or a hub id or a local folder)")
    out.print(f"probes:     {', '.join(probes)} (evaluate: {{probes: [...]}})")
    out.print(f"metrics:    {known_names()} (hypotheses, bench check --metric)")


SaveWeightsOpt = Annotated[
    bool, typer.Option(help="Keep each cell's trained weights under <out>/weights/<config hash>.")
]
StorageOpt = Annotated[
    str | None,
    typer.Option(help="Optuna storage for searches: an RDB URL or a journal file (default: <out>/optuna.db)."),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI or server (default: sqlite:///<out>/mlflow.db)."
    ),
]
DeviceOpt = Annotated[
    str, typer.Option(help="Where cells compute: auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps.")
]
WorkersOpt = Annotated[
    int | None, typer.Option(min=1, help="Run cells in parallel on a local Dask cluster of this many worker processes.")
]
SchedulerOpt = Annotated[
    str | None, typer.Option(help="Run cells on the Dask cluster of this scheduler (tcp://HOST:PORT).")
]


@app.command()
def run(
    suite: SuiteArg,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Results folder (default: results/<suite>).")] = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="Report folder (default: report/<name of the results folder>).")
    ] = None,
    profile: ProfileOpt = None,
    seed: Annotated[list[int] | None, typer.Option(help="Run only this seed of the suite (repeatable).")] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only the cells whose label matches this glob, e.g. '*/lora/*' (repeatable)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Redo cells that are already done.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars or per-cell lines (for CI).")] = False,
    save_weights: SaveWeightsOpt = False,
    storage: StorageOpt = None,
    tracking_uri: TrackingUriOpt = None,
    tracking: Annotated[bool, typer.Option(help="Log runs to MLflow.")] = True,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Run every cell of a suite not yet done (searching hyperparameters first where the suite has a search
    block), then print and write the leaderboard."""
    from harness.run.runner import RunOptions
    from harness.run.suite_run import run_suite

    options = RunOptions(
        force=force,
        progress=not quiet,
        save_weights=save_weights,
        storage=storage,
        device=device,
        workers=workers,
        scheduler=scheduler,
    )
    summary, paths, results = run_suite(
        suite,
        options,
        profile=profile,
        seeds=seed,
        only=only,
        out_dir=out_dir,
        report_dir=report_dir,
        tracking_uri=tracking_uri if tracking else "",
        log=_log(quiet),
    )
    _print_report(
        paths,
        f"{summary.ran} cells run ({summary.failed} failed), {summary.skipped} skipped as done; "
        f"records in {results}/cells",
    )
    if summary.failed:
        raise typer.Exit(1)  # every record is written; the exit status tells CI that a cell failed


ResultsArg = Annotated[Path, typer.Argument(help="A results folder written by `bench run`.")]


def _stored(results: Path):
    """The results folder's store and its records (at least one)."""
    from harness.records.store import ResultStore

    store = ResultStore(results)
    records = store.records()
    if not records:
        raise BenchError(f"{results}: no records in {results}/cells")
    return store, records


@app.command()
def report(
    results: ResultsArg,
    to: Annotated[Path | None, typer.Option(help="Report folder (default: report/<name of RESULTS>).")] = None,
) -> None:
    """Write the report of a results folder (Markdown, CSV, LaTeX, HTML with plots) and print its Markdown."""
    from harness.analysis.report import default_report_dir, write_report

    store, records = _stored(results)
    paths = write_report(records, to or default_report_dir(results), store.settings())
    _print_report(paths, f"report in {paths[0].parent}: {', '.join(p.name for p in paths)}")


@app.command()
def baseline(
    results: ResultsArg,
    to: Annotated[Path | None, typer.Option(help="Baseline file (default: results/baselines/<suite>.json).")] = None,
) -> None:
    """Write the baseline that `bench check` compares later runs with (per-row test scores of every seed)."""
    from harness.analysis.check import make_baseline, write_baseline

    store, records = _stored(results)
    made = make_baseline(records, store.settings().check)
    path = to or Path("results") / "baselines" / f"{made.suite}.json"
    write_baseline(made, path)
    out.print(f"baseline of {len(made.rows)} rows in {path} (rule: {made.rule.model_dump()})")


@app.command()
def check(
    results: ResultsArg,
    baseline_file: Annotated[Path, typer.Option("--baseline", help="A file written by `bench baseline`.")],
    metric: Annotated[
        str,
        typer.Option(help="What to compare: the test score, or a measure beyond it (ece, robust.<probe>.drop, …)."),
    ] = "score",
) -> None:
    """Compare a run with a baseline: exit 1 if any row regressed, is missing or failed; 0 otherwise."""
    from tabulate import tabulate

    from harness.analysis.check import check as compare
    from harness.analysis.check import read_baseline, row_level, table
    from harness.records.measures import known_names, measure

    if metric != "score" and measure(metric) is None:
        raise BenchError(f"--metric: unknown metric {metric!r} (known: {known_names()})")
    reference = read_baseline(baseline_file)
    verdicts = compare(_stored(results)[1], reference, metric)
    print(tabulate(table(verdicts), headers="keys", tablefmt="github", disable_numparse=True))
    rule, kind = reference.rule, measure(metric)
    unit = "points" if kind is None else kind.unit
    floor = rule.min_tolerance if unit == "points" else 0
    compared = sum(v.verdict in ("ok", "REGRESSED") for v in verdicts)
    bad = [v for v in verdicts if v.bad]
    out.print(
        f"{len(verdicts)} rows, {compared} compared; {len(bad)} regressed, missing or failed. Rule: a row regresses "
        f"when its {metric} gets worse by more than max({floor}, t·se) {unit}, a one-sided t-test (paired by seed "
        f"where the seeds match, else Welch) at level {rule.false_alarm} / {compared} = "
        f"{row_level(rule, compared):.4f} per row, so a run with no real change raises a false alarm with "
        f"probability ≤ {rule.false_alarm:.0%}"
    )
    if bad:
        raise typer.Exit(1)


@app.command()
def upgrade(results: ResultsArg) -> None:
    """Rewrite a results folder's records written by an older routebench (schema 1) in the current schema."""
    from harness.run.upgrade import upgrade_folder

    done, current = upgrade_folder(results)
    out.print(f"{results}: {done} records upgraded, {current} already current")


def main() -> None:
    """Entry point: user mistakes print as ``error: ...`` lines with exit code 2, never a traceback."""
    # SIGINT always stops a run cleanly, also when the shell that started it ignored SIGINT for its children
    # (a background job of a script: `bench run … &`, then `kill -INT`), which Python would otherwise inherit
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # Without standalone mode, typer returns (not raises) the code of `typer.Exit`, Ctrl-C included (130).
        code = app(standalone_mode=False)
    except BenchError as e:
        for line in str(e).splitlines():
            err.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        code = 130
    except typer.TyperException as e:  # usage errors: unknown option, missing argument, bad value
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    if code == 130:
        err.print("interrupted: finished cells are recorded; run the same command again to resume", markup=False)
    sys.exit(code if isinstance(code, int) else 0)
