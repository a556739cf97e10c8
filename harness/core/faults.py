"""Named points at which a test stops ``bench run`` the way a pre-emption or Ctrl-C would.

``BENCH_STOP_AT=name[:n[:signal]]`` makes the process send itself ``signal`` (default SIGKILL) the ``n``-th time
(default 1) it reaches the point ``name``; several points may be given, separated by commas. The kill-anywhere
tests use it to stop a run at places a timed kill hits only by luck: inside store creation, between a trial's
last epoch and the study recording it, between a record and its tracking run, in the middle of a report.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

VARIABLE = "BENCH_STOP_AT"
_reached: Counter[str] = Counter()


def stop_point(name: str) -> None:
    """Stop here if ``BENCH_STOP_AT`` names this point (and this is its n-th time); otherwise do nothing."""
    wanted = os.environ.get(VARIABLE)
    if not wanted:
        return
    _reached[name] += 1
    for entry in wanted.split(","):
        point, _, rest = entry.strip().partition(":")
        nth, _, signame = rest.partition(":")
        if point == name and _reached[name] == int(nth or 1):
            os.kill(os.getpid(), getattr(signal, signame or "SIGKILL"))
