"""The report page in a real browser (headless Chromium): a reader sorts a leaderboard by clicking a column header
and filters its rows with the box above it, and at a 1,400 px window the widest leaderboard fits without scrolling
sideways. Each test appends a probe script to a copy of the page, lets Chromium run both and reads the DOM it dumps.
Chromium is required: without it these tests fail and say how to install it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.analysis.report import write_report
from harness.records.record import Record
from harness.records.settings import ReportSettings

from .test_report import _record

LONG_LORA = {"name": "lora", "r": 16, "alpha": 32.0, "dropout": 0.05, "lr": 1e-4}
LONG_ADAPTER = {"name": "adapter", "style": "pfeiffer", "reduction": 8, "share_up": True}
LONG_SWITCH = {"strategy": "switch", "experts": 8, "capacity_factor": 2.0, "z_loss": 0.001, "aux_loss": 0.1}
LONG_TOPK = {"strategy": "topk", "experts": 8, "noise": 1.0, "aux_loss": 0.1}


def _costly(record: Record, params: int) -> Record:
    """The record with a real backbone's costs: numbers wide enough to need their digit groups."""
    cost = {"trainable_params": params, "train_seconds": 1234.5, "tokens_per_second": 123456.0, "peak_rss_mb": 12345.0}
    return record.model_copy(update={"cost": record.cost.model_copy(update=cost)})


def _sorting_records() -> list[Record]:
    """sst2: test means whose text order is not their numeric order (9 < 50.9 < 80 < 100), a failed row, and
    trainable parameters 0 < 9,000 < 150,000 < 22,713,216; conll: two rows the sst2 filter must leave alone."""
    return [
        *[_costly(_record("full", s, v), 22_713_216) for s, v in ((1, 0.80), (2, 0.805), (3, 0.795))],
        *[_costly(_record("lora", s, v), 9_000) for s, v in ((1, 0.09), (2, 0.095), (3, 0.085))],
        _costly(_record("adapter", 1, 1.0), 150_000),
        _costly(_record("majority", 1, 0.509), 0),
        _record("prompt_tuning", 1, 0.5, status="failed"),
        *[_record(method, 1, 0.7, task="conll") for method in ("full", "lora")],
    ]


def _wide_records() -> list[Record]:
    """Every column as wide as real suites make it: a real backbone's name, long method and routing descriptions, a
    searched row, few-shot rows, costs in the millions, a collapsed router's `!`, a failed row, a row whose cells
    reached their training cap."""
    few, collapsed = {"shots": 16, "split_seed": 1}, {"load_entropy": 0.012, "collapsed": True}
    records = []
    for task in ("sst2", "conll"):
        row = {"task": task, "backbone": "bert-base-multilingual-cased"}
        records += [_costly(_record("full", s, 0.757 + s / 1000, **row), 22_713_216) for s in (1, 2, 3)]
        records += [
            _costly(_record(LONG_LORA, s, 0.748, routing=LONG_SWITCH, converged=s == 1, **row), 1_234_567)
            for s in (1, 2)
        ]
        records += [_costly(_record("lora", s, 0.73, search={"lr": 3e-4, "method.r": 8}, **row), 9_999) for s in (1, 2)]
        records += [
            _costly(
                _record(LONG_ADAPTER, s, 0.57, regime=few, routing=LONG_TOPK, routing_stats=collapsed, **row), 10**6
            )
            for s in (1, 2)
        ]
        records += [_record("prompt_tuning", 1, 0.5, status="failed", **row), _record("majority", 1, 0.5437, **row)]
    return records


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("the report page's tests need headless Chromium: install it (`apt-get install chromium`)")
    return found


def _page(tmp_path: Path, records: list[Record]) -> Path:
    write_report(records, tmp_path / "report", ReportSettings())
    return tmp_path / "report" / "index.html"


def _dom(page: Path, probe: str) -> str:
    """The DOM Chromium dumps, in a 1,400 px wide window, once the page's own script and then ``probe`` (appended to
    a copy of the page) have run."""
    copy = page.with_name("probe.html")
    copy.write_text(page.read_text().replace("</body>", f"<script>{probe}</script></body>"))
    args = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={page.parent / 'chromium'}"]
    args += ["--window-size=1400,2200", "--virtual-time-budget=2000", "--dump-dom", copy.as_uri()]
    result = subprocess.run([_chromium(), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-2000:]
    return result.stdout


class _Leaderboards(HTMLParser):
    """Per leaderboard table of a page: its header and its body rows, each as (hidden, cell texts)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: list[list[tuple[bool, list[str]]]] = []
        self.inside, self.cell = False, None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self.inside = "leaderboard" in (found.get("class") or "").split()
            self.tables += [[]] if self.inside else []
        elif self.inside and tag == "tr":
            self.tables[-1].append(("hidden" in found, []))
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1][1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def _column(table: list[tuple[bool, list[str]]], header: str, visible_only: bool = False) -> list[str]:
    (_, headers), *rows = table
    at = headers.index(header)
    return [cells[at] for hidden, cells in rows if not (visible_only and hidden)]


def _clicks(header: str, times: int) -> str:
    """A probe that clicks the sst2 leaderboard's ``header`` cell ``times`` times (tasks in name order: conll first)."""
    return (
        "const th = [...document.querySelectorAll('table.leaderboard')[1].tHead.rows[0].cells]"
        f".find((cell) => cell.textContent.trim() === {json.dumps(header)});"
        f"for (let i = 0; i < {times}; i++) th.click();"
    )


@pytest.fixture(scope="module")
def sorting_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _page(tmp_path_factory.mktemp("sorting"), _sorting_records())


@pytest.mark.parametrize(
    ("header", "times", "expected"),
    [
        ("test", 1, ["9.00 ± 0.50", "50.90", "80.00 ± 0.50", "100.00", "failed"]),
        ("test", 2, ["100.00", "80.00 ± 0.50", "50.90", "9.00 ± 0.50", "failed"]),
        ("trainable params", 1, ["0", "9,000", "150,000", "22,713,216", "-"]),
        ("method", 1, ["adapter", "full", "lora", "majority", "prompt_tuning"]),
    ],
    ids=["test-ascending", "test-descending", "params-ascending", "method-ascending"],
)
def test_a_header_click_sorts_numbers_by_value_means_by_mean_and_missing_last(sorting_page, header, times, expected):
    conll, sst2 = _Leaderboards(_dom(sorting_page, _clicks(header, times))).tables
    assert _column(sst2, header) == expected
    assert _column(conll, "method") == ["full", "lora"]  # only the clicked table moves


def test_the_box_above_a_table_keeps_the_rows_holding_every_word(sorting_page):
    probe = (
        "const box = document.querySelectorAll('input.filter')[1];"
        "box.value = 'LORA  9,000'; box.dispatchEvent(new Event('input'));"
    )
    conll, sst2 = _Leaderboards(_dom(sorting_page, probe)).tables
    assert _column(sst2, "method", visible_only=True) == ["lora"]
    assert len(_column(sst2, "method")) == 5  # hidden, not removed
    assert _column(conll, "method", visible_only=True) == ["full", "lora"]


def test_the_widest_leaderboard_fits_a_1400_px_window(tmp_path):
    """Nothing of a leaderboard hides behind a sideways scroll bar at 1,400 px; every column is still there."""
    page = _page(tmp_path, _wide_records())
    probe = (
        "document.body.dataset.overflow = JSON.stringify("
        "[...document.querySelectorAll('.scroll')].map((d) => d.scrollWidth - d.clientWidth));"
    )
    dom = _dom(page, probe)
    overflow = json.loads(re.search(r'data-overflow="([^"]*)"', dom).group(1))
    assert overflow and all(extra <= 0 for extra in overflow), overflow
    (_, headers), *_ = _Leaderboards(dom).tables[0]
    assert len(headers) == 20 and "1/2 (cap)" in dom
    assert "lora r=16 alpha=32 dropout=0.05 lr=0.0001" in dom and " !" in dom
