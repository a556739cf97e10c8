"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""


class BenchError(Exception):
    """Bad input (suite, data file, flag): the message names where and what was expected."""


class CellFailed(Exception):
    """A cell could not finish (e.g. the loss became NaN); the runner records it and moves on."""


def dependency_error(what: str, error: BaseException, advice: str) -> BenchError:
    """A library's failure at the boundary of a store or file, as one line: what failed, its first line, advice."""
    lines = str(error).strip().splitlines()
    return BenchError(f"{what}: {type(error).__name__}: {lines[0] if lines else ''}; {advice}")
