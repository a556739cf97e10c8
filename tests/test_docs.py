"""The docs are checked against the code: a doc that drifts from the CLI is a bug.

For README.md and every page under docs/: each `bench …` command shown (in a code block, or inline in
backticks) names a subcommand that exists and only flags its `--help` lists, and the suite files it runs
exist; each `benchmarks/*.py` command uses only flags its script defines; each relative link reaches a file
(and a heading, when it names one); each repository path it names in backticks exists.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
IDS = [str(p.relative_to(REPO)) for p in DOCS]

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")  # one inline span, possibly wrapped onto a second line
LINK = re.compile(r"(?<!\\)\[[^\]]*\]\(([^)\s]+)\)")
# the flag column of a rich help panel: "│ --force  --no-force  <bool> …" or "│ *  --baseline  <path> …"
HELP_FLAGS = re.compile(r"^│\s*\*?\s*((?:--[\w-]+\s+)+)", re.M)
PREFIXES = ("bench ", ".venv/bin/bench ")
# repository paths a page may name in backticks; git-ignored outputs (results/, report/) are not checked
REPO_PATH = re.compile(r"^(?:harness|suites|benchmarks|tests|docs|\.github|\.ci)/[\w./-]*[\w]$")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def commands(text: str) -> list[str]:
    """Every command line the text shows: code-block lines, and inline spans that start like one."""
    found = []
    for block in FENCE.findall(text):
        found += [line.strip().removeprefix("$ ") for line in block.splitlines()]
    found += [" ".join(span.split()) for span in INLINE.findall(FENCE.sub("", text))]
    return [line for line in found if line]


def _words(line: str) -> list[str] | str:
    """The line split as a shell would (comments dropped), or why it cannot be."""
    try:
        return shlex.split(line, comments=True)
    except ValueError as e:
        return f"does not parse as a shell line ({e})"


@cache
def _help_flags(sub: str | None) -> frozenset[str] | None:
    """The flags `bench [sub] --help` lists, or None when there is no such subcommand (one call per subcommand)."""
    result = CliRunner().invoke(app, [sub, "--help"] if sub else ["--help"], env={"TERMINAL_WIDTH": "200"})
    if result.exit_code != 0:
        return None
    return frozenset(flag for column in HELP_FLAGS.findall(result.output) for flag in column.split())


def bench_problems(line: str) -> list[str]:
    """What is wrong with one `bench …` (or `make run SUITE=…`) command line against the CLI; [] when it runs."""
    words = _words(line)
    if isinstance(words, str):
        return [f"{line}: {words}"]
    if words[:2] == ["make", "run"]:  # the Makefile runs `bench run $(SUITE)`
        suites = [w.removeprefix("SUITE=") for w in words[2:] if w.startswith("SUITE=")]
        words = ["bench", "run", *suites]
    if not words or Path(words[0]).name != "bench":
        return []
    args = words[1:]
    sub = args[0] if args and not args[0].startswith("-") else None
    flags = _help_flags(sub)
    if flags is None:
        return [f"{line}: `bench {sub}` is no subcommand (bench --help lists them)"]
    problems = []
    for word in args[1 if sub else 0 :]:
        flag = word.split("=", 1)[0]
        if flag.startswith("--") and flag not in flags:
            problems.append(f"{line}: `bench {sub or ''} --help` has no {flag}")
        elif re.fullmatch(r"suites/[\w/.-]+\.ya?ml", word) and not (REPO / word).is_file():
            problems.append(f"{line}: no suite file {word}")
    return problems


def script_problems(line: str) -> list[str]:
    """A `benchmarks/<script>.py --flag …` line: the script exists and defines each flag (argparse, no run)."""
    words = _words(line)
    if isinstance(words, str):
        return []  # a prose span; bench_problems reports shell lines that do not parse
    at = next((i for i, w in enumerate(words) if re.fullmatch(r"benchmarks/\w+\.py", w)), None)
    if at is None:
        return []
    script = REPO / words[at]
    if not script.is_file():
        return [f"{line}: no script {words[at]}"]
    source = _text(script)
    return [
        f"{line}: {words[at]} defines no {flag}"
        for flag in (w.split("=", 1)[0] for w in words[at + 1 :])
        if flag.startswith("--") and f'"{flag}"' not in source
    ]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", _text(path))
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, re.M):
        slug, n = _slug(heading), 1
        while slug in found:  # GitHub numbers repeated headings: x, x-1, x-2 …
            slug, n = f"{_slug(heading)}-{n}", n + 1
        found.add(slug)
    return found


def link_problems(path: Path) -> list[str]:
    problems = []
    for target in LINK.findall(FENCE.sub("", _text(path))):
        if re.match(r"[a-z]+:", target):  # https:, mailto: … are not checked offline
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: {dest.name} has no heading #{anchor}")
    return problems


def path_problems(text: str) -> list[str]:
    spans = {" ".join(s.split()) for s in INLINE.findall(FENCE.sub("", text))}
    return sorted(f"`{s}`: no such file or folder" for s in spans if REPO_PATH.fullmatch(s) and not (REPO / s).exists())


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_bench_command_shown_parses(doc):
    lines = commands(_text(doc))
    problems = [p for line in lines if line.startswith((*PREFIXES, "make run")) for p in bench_problems(line)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_benchmark_command_uses_flags_its_script_defines(doc):
    problems = [p for line in commands(_text(doc)) for p in script_problems(line)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_relative_link_reaches_its_file(doc):
    problems = link_problems(doc)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_repository_path_named_exists(doc):
    problems = path_problems(_text(doc))
    assert not problems, "\n".join(problems)


def test_the_commands_are_found():
    """The checks above see the commands (an extractor that finds nothing would pass every page)."""
    shown = {name: [c for c in commands(_text(p)) if c.startswith(PREFIXES)] for name, p in zip(IDS, DOCS, strict=True)}
    assert len(shown["README.md"]) >= 10
    assert sum(map(len, shown.values())) >= 40


def test_the_readme_is_a_door():
    assert len(_text(REPO / "README.md").splitlines()) <= 250


def test_a_made_up_flag_is_reported():
    doc = "```bash\n.venv/bin/bench run suites/ner.yaml --no-such-flag   # comment\n```\n"
    doc += "see `bench check r --baselin b`"
    problems = [p for line in commands(doc) if line.startswith(PREFIXES) for p in bench_problems(line)]
    assert problems == [
        ".venv/bin/bench run suites/ner.yaml --no-such-flag   # comment: `bench run --help` has no --no-such-flag",
        "bench check r --baselin b: `bench check --help` has no --baselin",
    ]


def test_a_made_up_subcommand_suite_or_script_flag_is_reported():
    assert bench_problems("bench train suites/ner.yaml") == [
        "bench train suites/ner.yaml: `bench train` is no subcommand (bench --help lists them)"
    ]
    assert bench_problems("make run SUITE=suites/nope.yaml") == [
        "make run SUITE=suites/nope.yaml: no suite file suites/nope.yaml"
    ]
    assert script_problems(".venv/bin/python benchmarks/precision.py --seeds 1 --fast") == [
        ".venv/bin/python benchmarks/precision.py --seeds 1 --fast: benchmarks/precision.py defines no --fast"
    ]


def test_real_flags_and_negations_pass():
    assert bench_problems("bench run suites/smoke.yaml --no-tracking --force --seed 1 --only '*/lora/*'") == []
    assert bench_problems("bench check results/nightly --baseline=results/baselines/nightly.json") == []
    assert bench_problems("bench --help") == []


def test_a_broken_link_and_a_missing_heading_are_reported(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n## A `code` heading, too\n")
    page.write_text("[a](other.md#a-code-heading-too) [b](other.md#nope) [c](gone.md) [d](https://x.org/y)\n")
    assert link_problems(page) == ["other.md#nope: other.md has no heading #nope", "gone.md: no such file"]
