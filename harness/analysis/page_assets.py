"""The report page's inline CSS and script (``html`` puts both in the page: it opens without a network).

The script lets a reader sort a leaderboard by clicking a column header (numbers by value, "mean ± sd" by its
mean, an interval by its centre; numbers, then words, then "-" / "failed", which stay last in either direction;
a second click reverses) and filter its rows with the box above it (rows holding every word typed)."""

from __future__ import annotations

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 11px; margin-bottom: 1em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 4px; text-align: right; white-space: nowrap; }
th { white-space: normal; vertical-align: bottom; background: #f3f3f3; }
td:nth-child(-n+7), th:nth-child(-n+7) { text-align: left; }
td:nth-child(-n+7) { white-space: normal; min-width: 4em; }
.leaderboard th { cursor: pointer; user-select: none; }
.leaderboard th[aria-sort="ascending"]::after { content: " ▲"; }
.leaderboard th[aria-sort="descending"]::after { content: " ▼"; }
input.filter { font: inherit; font-size: 13px; width: 22em; margin: 0 0 0.5em; padding: 2px 4px; }
.findings td, .findings th { text-align: left; white-space: normal; }
b { color: #0a5; }
figure { margin: 1em 0 2em; } figcaption { font-size: 13px; color: #555; }
img { max-width: 100%; }
.summary { font-size: 14px; }
"""

SCRIPT = r"""
(() => {
  const MISSING = new Set(["", "-", "failed"]);
  const NUMBER = /^(?:<\s*)?([+\-−]?\d[\d,]*(?:\.\d+)?)(?:\s*±\s*\d[\d.]*)?(?:\s*!)?$/;
  const INTERVAL = /^\[([+\-−]?[\d.]+),\s*([+\-−]?[\d.]+)\]$/;
  const value = (text) => parseFloat(text.replace(/,/g, "").replace("−", "-"));

  // [group, value]: 0 a number, 1 a word, 2 missing
  function key(cell) {
    const text = cell.textContent.trim();
    if (MISSING.has(text)) return [2, 0];
    const interval = text.match(INTERVAL);
    if (interval) return [0, (value(interval[1]) + value(interval[2])) / 2];
    const number = text.match(NUMBER);
    return number ? [0, value(number[1])] : [1, text];
  }

  function compare(a, b, direction) {
    if (a[0] !== b[0]) return a[0] - b[0];
    if (a[0] === 2) return 0;
    return direction * (a[0] === 0 ? a[1] - b[1] : a[1].localeCompare(b[1], undefined, {numeric: true}));
  }

  function sort(table, header) {
    const direction = header.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    for (const other of header.parentNode.cells) other.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", direction === 1 ? "ascending" : "descending");
    const body = table.tBodies[0];
    const rows = [...body.rows].map((row, i) => [key(row.cells[header.cellIndex]), i, row]);
    rows.sort((a, b) => compare(a[0], b[0], direction) || a[1] - b[1]);
    body.append(...rows.map((entry) => entry[2]));
  }

  function filter(table, query) {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    for (const row of table.tBodies[0].rows) {
      const text = row.textContent.toLowerCase();
      row.hidden = !words.every((word) => text.includes(word));
    }
  }

  for (const table of document.querySelectorAll("table.leaderboard")) {
    for (const header of table.tHead.rows[0].cells) header.addEventListener("click", () => sort(table, header));
  }
  for (const box of document.querySelectorAll("input.filter")) {
    const table = document.getElementById(box.dataset.table);
    box.addEventListener("input", () => filter(table, box.value));
  }
})();
"""
