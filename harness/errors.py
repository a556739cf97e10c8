"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""


class BenchError(Exception):
    """Bad input (suite, data file, flag): the message names where and what was expected."""


class CellFailed(Exception):
    """A cell could not finish (e.g. the loss became NaN); the runner records it and moves on."""
