"""Comparisons of two leaderboard rows read look by look: the suite's hypotheses (reproduced, contradicted or
undecided) and, when the suite declares none, each row against the baseline. The same replay tells the adaptive
run which rows still need seeds and the report why each row stopped.

A comparison with a row that has a cell which reached its training cap without converging gets no verdict but
``not converged``: such a row has not shown what its method can do, and no number of seeds changes that.

A look reads the seeds up to n (n = the plan's min, min + 1, …, max; one look at every seed without a plan) and
takes the t interval of the mean difference a − b (scores ×100) over the seeds both rows ran, paired by seed
(Welch's when they share fewer than two), at confidence 1 − alpha / looks. With Bonferroni over the planned looks
the intervals hold together, so stopping at the first look that decides keeps the stated error rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pandas as pd

from harness.analysis.leaderboard import AXES
from harness.analysis.stats import seed_test
from harness.analysis.summary import row_name
from harness.records.measures import ROUTER_METRICS
from harness.records.settings import Hypothesis, ReportSettings, RowRef, SeedPlan

LEVEL = 0.05  # alpha with fixed seeds (one look)
UNDECIDED = "undecided"
NOT_CONVERGED = "not converged"


@dataclass(frozen=True)
class Look:
    seed: int  # the last seed this look read (its look number in a seed plan)
    seeds_a: int
    seeds_b: int
    paired: bool
    difference: float
    low: float
    high: float
    p: float


@dataclass(frozen=True)
class Finding:
    """A comparison's outcome: the deciding look (or the last one), and which rows it needs more seeds of."""

    task: str
    name: str  # the hypothesis, or "<row> vs baseline"
    a: str
    b: str
    expect: str
    verdict: str  # reproduced | contradicted (hypotheses), differs | equivalent (baseline), undecided, not converged
    look: Look | None  # None: a side has fewer than two seeds
    keys: tuple[tuple[str, ...], tuple[str, ...]]  # each row's record keys (a row of a searched method has one)
    source: str = ""
    metric: str = "score"
    unconverged: tuple[str, ...] = ()  # the rows (a, b or both) with a cell that stopped at its cap


def seed_of(unit: str) -> int:
    return int(unit.split("/", 1)[0])


def _look(a: dict[str, float], b: dict[str, float], seed: int, confidence: float) -> Look | None:
    a = {u: v for u, v in a.items() if seed_of(u) <= seed}
    b = {u: v for u, v in b.items() if seed_of(u) <= seed}
    test = seed_test(a, b)
    if test is None:
        return None
    low, high = test.interval(confidence)
    read = max(seed_of(u) for u in [*a, *b])
    return Look(read, len(a), len(b), test.paired, test.difference, low, high, test.p)


def claim_verdict(expect: str, margin: float, low: float, high: float) -> str:
    """Reproduced when the interval of d = a − b lies inside the claim, contradicted when it lies outside."""
    if expect in ("a < b", "a <= b"):  # the mirror image: claims about b − a
        expect, low, high = expect.replace("<", ">"), -high, -low
    if expect == "a == b":
        if -margin < low and high < margin:
            return "reproduced"
        return "contradicted" if low >= margin or high <= -margin else UNDECIDED
    threshold = margin if expect == "a > b" else -margin  # a > b: d > margin; a >= b: d > −margin
    if low > threshold:
        return "reproduced"
    return "contradicted" if high < threshold else UNDECIDED


def baseline_verdict(margin: float, low: float, high: float) -> str:
    if low > 0 or high < 0:
        return "differs"
    return "equivalent" if -margin < low and high < margin else UNDECIDED


def _values(row: pd.Series, metric: str) -> dict[str, float]:
    if metric == "score":
        values = row["by_unit"]
    elif metric in ROUTER_METRICS:
        values = row["routing_by_unit"][metric]
    else:
        values = row["measures_by_unit"].get(metric, {})
    return {unit: value for unit, value in values.items() if value is not None and not math.isnan(value)}


def _replay(
    a: pd.Series, b: pd.Series, plan: SeedPlan | None, judge: Callable[[float, float], str], metric: str = "score"
) -> tuple[str, Look | None]:
    """The first look's verdict that is not undecided, with that look; else undecided at the last look."""
    looks, alpha = (range(plan.min, plan.max + 1), plan.alpha / plan.looks) if plan else ([math.inf], LEVEL)
    last = None
    for seed in looks:
        look = _look(_values(a, metric), _values(b, metric), seed, 1 - alpha)
        if look is None:
            continue
        verdict, last = judge(look.low, look.high), look
        if verdict != UNDECIDED:
            return verdict, look
    return UNDECIDED, last


def _unconverged(*rows: pd.Series) -> tuple[str, ...]:
    return tuple(row_name(row) for row in rows if row["unconverged"])


def _picked(table: pd.DataFrame, ref: RowRef) -> pd.Series | None:
    rows = [row for _, row in table.iterrows() if ref.picks({axis: str(row[axis]) for axis in AXES})]
    return rows[0] if len(rows) == 1 and rows[0]["seeds"] > 0 else None


def findings(tables: dict[str, pd.DataFrame], settings: ReportSettings) -> list[Finding]:
    """Every hypothesis on every task that ran both its rows."""
    return [
        f
        for task, table in tables.items()
        for h in settings.hypotheses
        if (f := _hypothesis(task, table, h, settings.plan))
    ]


def driving(tables: dict[str, pd.DataFrame], settings: ReportSettings) -> list[Finding]:
    """The comparisons that decide how many seeds a row gets: the hypotheses, else each row against the baseline."""
    if settings.hypotheses:
        return findings(tables, settings)
    return [f for task, table in tables.items() for f in _against_baseline(task, table, settings.plan)]


def _hypothesis(task: str, table: pd.DataFrame, h: Hypothesis, plan: SeedPlan | None) -> Finding | None:
    a, b = _picked(table, h.a), _picked(table, h.b)
    if a is None or b is None or not (_values(a, h.metric) or _values(b, h.metric)):
        return None  # a measure neither row took on this task (a probe of entity words on a classifier)
    verdict, look = _replay(a, b, plan, partial(claim_verdict, h.expect, h.margin), h.metric)
    unconverged = _unconverged(a, b)
    expect = h.expect + (f" (margin {h.margin:g})" if h.margin else "")
    return Finding(
        task=task,
        name=h.name,
        a=row_name(a),
        b=row_name(b),
        expect=expect if h.metric == "score" else f"{h.metric}: {expect}",
        verdict=NOT_CONVERGED if unconverged else verdict,
        look=look,
        keys=(tuple(a["keys"]), tuple(b["keys"])),
        source=h.source,
        metric=h.metric,
        unconverged=unconverged,
    )


def _against_baseline(task: str, table: pd.DataFrame, plan: SeedPlan | None) -> list[Finding]:
    base = table[table["baseline"]]
    if base.empty:
        return []
    base_row, margin = base.iloc[0], plan.margin if plan else 0.0
    out = []
    for _, row in table[~table["baseline"] & (table["seeds"] > 0)].iterrows():
        verdict, look = _replay(row, base_row, plan, partial(baseline_verdict, margin))
        unconverged, keys = _unconverged(row, base_row), (tuple(row["keys"]), tuple(base_row["keys"]))
        verdict = NOT_CONVERGED if unconverged else verdict
        a, b = row_name(row), row_name(base_row)
        out.append(Finding(task, f"{a} vs baseline", a, b, "a != b", verdict, look, keys, unconverged=unconverged))
    return out


def open_keys(tables: dict[str, pd.DataFrame], settings: ReportSettings, extendable: set[str]) -> set[str]:
    """The record keys of rows in an undecided comparison whose two rows can both run another seed (a row without
    seeds, such as zero-shot, never can): the rows an adaptive run gives one more seed."""
    return {
        key
        for f in driving(tables, settings)
        if f.verdict == UNDECIDED and all(set(side) & extendable for side in f.keys)
        for side in f.keys
        for key in side
    }


def level(settings: ReportSettings) -> str:
    """The confidence each look's interval is taken at, and why."""
    plan = settings.plan
    if plan is None:
        return f"{1 - LEVEL:g}"
    return (
        f"{1 - plan.alpha / plan.looks:.4g} (1 − {plan.alpha:g}/{plan.looks}: Bonferroni over the {plan.looks} "
        f"looks of seeds {{min: {plan.min}, max: {plan.max}}})"
    )


def note(settings: ReportSettings) -> str:
    """What the findings' numbers are, for the page that shows them."""
    return (
        "Δ: mean over seeds of a − b (scores ×100; a router metric or a measure beyond accuracy in its own unit, "
        "docs/statistics-and-findings.md), paired by seed where both rows "
        f"ran it (else Welch); interval: its t interval at confidence {level(settings)}; p: the same t test, "
        "two-sided; verdict: reproduced when the interval lies inside the claim, contradicted when it lies outside "
        "it, else undecided at these seeds. Each hypothesis is tested at this level on its own (no adjustment "
        "across hypotheses). not converged: a row of the comparison has a cell that reached its training cap "
        "before its validation score stopped improving (patience), so the difference says what the budget allowed, "
        "not what the methods can do; it is shown, not judged, and no seeds are added for it."
    )


def _interval(f: Finding) -> tuple[str, str, str, str]:
    look, digits = f.look, 3 if f.metric in ROUTER_METRICS else 2  # a router's entropy or share is finer
    if look is None:
        return "-", "-", "-", "fewer than two seeds a side"
    seeds = f"{look.seeds_a}/{look.seeds_b}" + (" paired" if look.paired else " unpaired")
    return f"{look.difference:+.{digits}f}", f"[{look.low:.{digits}f}, {look.high:.{digits}f}]", _p(look.p), seeds


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def findings_table(found: list[Finding]) -> pd.DataFrame:
    rows = []
    for f in found:
        delta, interval, p, seeds = _interval(f)
        rows.append(
            {"task": f.task, "hypothesis": f.name, "a": f.a, "b": f.b, "expect": f.expect, "Δ (a − b)": delta,
             "interval": interval, "p": p, "seeds a/b": seeds, "verdict": verdict_text(f), "source": f.source or "-"}
        )  # fmt: skip
    return pd.DataFrame(rows)


def verdict_text(f: Finding) -> str:
    return f"{f.verdict} ({'; '.join(f.unconverged)})" if f.unconverged else f.verdict


def finding_line(f: Finding) -> str:
    delta, interval, _, seeds = _interval(f)
    return f"{f.task} hypothesis {f.name}: {verdict_text(f)} (expect {f.expect}; Δ {delta} {interval}; seeds {seeds})"


def seeds_table(tables: dict[str, pd.DataFrame], settings: ReportSettings) -> pd.DataFrame:
    """Per row of an adaptive run: how many seeds it took and why it stopped there."""
    plan, compared = settings.plan, driving(tables, settings)
    rows = []
    for task, table in tables.items():
        for _, row in table[table["seeds"] > 0].iterrows():
            mine = [f for f in compared if f.task == task and set(row["keys"]) & {k for side in f.keys for k in side}]
            rows.append({"task": task, "row": row_name(row), "seeds": row["seeds"], "stopped": _why(row, mine, plan)})
    return pd.DataFrame(rows)


def _why(row: pd.Series, mine: list[Finding], plan: SeedPlan | None) -> str:
    if not mine:
        return "in no comparison: the minimum"
    unconverged = [f.name for f in mine if f.verdict == NOT_CONVERGED]
    if unconverged:
        return "not converged, no seeds spent on: " + "; ".join(unconverged)
    undecided = [f.name for f in mine if f.verdict == UNDECIDED]
    if not undecided:
        return "decided: " + "; ".join(f"{f.name} {f.verdict} at seed {f.look.seed}" for f in mine)
    if plan and row["seeds"] >= plan.max:
        return f"max seeds ({plan.max}); undecided: " + "; ".join(undecided)
    return "undecided, but a row of the comparison runs no more seeds: " + "; ".join(undecided)
