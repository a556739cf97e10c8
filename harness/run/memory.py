"""Peak resident memory of one cell, not of the whole process (whose high-water mark only ever rises)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

import psutil


def release_freed_memory() -> None:
    """Hand the heap pages that freed tensors left behind back to the OS (glibc's ``malloc_trim``), so that a
    cell's peak counts what it uses and not what the cells before it fragmented. Elsewhere a no-op."""
    if sys.platform != "linux" or not (libc := ctypes.util.find_library("c")):
        return
    trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)  # musl has none
    if trim is not None:
        trim(0)


class PeakMemory:
    """Samples this process's RSS in a daemon thread while the ``with`` block runs; ``peak_mb`` is the maximum."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakMemory:
        release_freed_memory()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
