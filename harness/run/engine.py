"""Where a suite's tasks (cells, search workers) run: in this process one after another, or on a Dask cluster.

The runner submits ``Task``s and consumes their results as they finish; it never knows which engine it has.
A task is a plain function of picklable arguments that returns everything it produced, so the driver (this
process) stays the one writer of records, reports and the tracking store, and workers need no shared file
system with it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import BenchError

Log = Callable[[str], None]
TOPIC = "bench"  # worker -> driver events: log lines and "a task started"


@dataclass
class Task:
    """``fn(*args, log)`` to run; ``position`` orders tasks (lower first); ``about`` is the runner's own note."""

    key: str
    position: int
    fn: Callable[..., Any]
    args: tuple
    about: Any = None


@dataclass
class Counts:
    """What a Dask engine has seen, for the progress bar."""

    submitted: int = 0
    running: set[str] = field(default_factory=set)
    finished: int = 0


class SerialEngine:
    """Runs each task in this process when its result is asked for, lowest position first."""

    live_tracking = True  # tasks run here: they may log to the tracking store as they go
    remote = False
    workers = 1

    def __init__(self, log: Log, device: str) -> None:
        self.log, self.device = log, device
        self._queue: list[tuple[int, int, Task]] = []
        self._order = itertools.count()

    def submit(self, task: Task) -> None:
        heapq.heappush(self._queue, (task.position, next(self._order), task))

    def results(self) -> Iterator[tuple[Task, Any]]:
        while self._queue:
            _, _, task = heapq.heappop(self._queue)
            yield task, task.fn(*task.args, self.log)


class DaskEngine:
    """Submits tasks to a Dask cluster and yields their results as they finish. A task whose worker dies is
    rescheduled by Dask on another worker (up to ``distributed.scheduler.allowed-failures`` times, then its
    result is the ``KilledWorker`` error); a task that raises is not retried."""

    live_tracking = False

    def __init__(self, client: Any, cluster: Any, log: Log, device: str) -> None:
        from distributed import as_completed

        self.client, self.cluster, self.log, self.device = client, cluster, log, device
        self.on_change: Callable[[], None] = lambda: None
        self.counts = Counts()
        self._tasks: dict[str, Task] = {}
        self._pending = as_completed(loop=client.loop)
        self.workers = len(client.scheduler_info(n_workers=-1)["workers"])
        self.remote = any(host != socket.gethostname() for host in client.run(socket.gethostname).values())
        client.subscribe_topic(TOPIC, self._event)

    def _event(self, event: tuple[float, dict]) -> None:
        message = event[1]
        if message.get("started") and message["key"] in self._tasks:
            self.counts.running.add(message["key"])
            self.on_change()
        if "line" in message:  # a detail line (an epoch) names its task: cells run side by side
            line = message["line"]
            self.log(f"  [{message['key']}] {line.lstrip()}" if line.startswith(" ") else line)

    def submit(self, task: Task) -> None:
        future = self.client.submit(
            _on_worker, task.key, task.fn, *task.args, key=task.key, priority=-task.position, pure=False
        )
        self._tasks[task.key] = task
        self._pending.add(future)
        self.counts.submitted += 1

    def results(self) -> Iterator[tuple[Task, Any]]:
        from distributed import KilledWorker

        for future in self._pending:
            task = self._tasks.pop(future.key)
            try:
                result = future.result()
            except KilledWorker as error:
                result = error
            finally:
                future.release()
            self.counts.running.discard(task.key)
            self.counts.finished += 1
            self.on_change()
            yield task, result

    def close(self) -> None:
        """Cancel what is still queued or running, then stop the cluster if this engine started it."""
        try:
            self.client.cancel(list(self._pending.futures), force=True)
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


class WorkerLog:
    """A task's log on a Dask worker: each line goes to the driver as an event and is printed there."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, line: str) -> None:
        from distributed import get_worker

        get_worker().log_event(TOPIC, {"key": self.key, "line": line})


def _on_worker(key: str, fn: Callable[..., Any], *args: Any) -> Any:
    from distributed import get_worker
    from tqdm.std import tqdm

    # tqdm's default lock is a multiprocessing semaphore; a worker stopped mid-cell would leak it (and the
    # resource tracker complains at exit). A worker runs one task at a time: a thread lock is enough.
    tqdm.set_lock(threading.RLock())
    get_worker().log_event(TOPIC, {"key": key, "started": True})
    return fn(*args, WorkerLog(key))


def local_cluster(workers: int, threads: int | None = None, gpus: list[str] | None = None) -> Any:
    """``workers`` worker processes on 127.0.0.1 with the machine's cores split between them (torch's threads
    per worker via OMP_NUM_THREADS, one Dask thread each: a cell owns its worker). With ``gpus``, worker i
    sees only ``gpus[i]`` through CUDA_VISIBLE_DEVICES, so its ``cuda`` is its own GPU."""
    import dask
    from distributed import Nanny, Scheduler, SpecCluster

    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    specs = {}
    for i in range(workers):
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        options = {"nthreads": 1, "host": "127.0.0.1", "env": env, "memory_limit": 0, "silence_logs": logging.CRITICAL}
        specs[f"worker-{i}"] = {"cls": Nanny, "options": options}
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None, "dashboard": False}}
    # Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which pins glibc's mmap threshold low: every
    # large tensor allocation maps fresh pages. Measured here: a training step 1.5x slower than in a plain process.
    environ = dask.config.get("distributed.nanny.pre-spawn-environ")
    environ = {name: value for name, value in environ.items() if name != "MALLOC_TRIM_THRESHOLD_"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return SpecCluster(workers=specs, scheduler=scheduler, silence_logs=logging.CRITICAL, name="bench")


def dask_engine(
    log: Log,
    device: str,
    workers: int | None = None,
    scheduler: str | None = None,
    gpus: list[str] | None = None,
    timeout: float = 5,
) -> DaskEngine:
    """An engine on a new local cluster of ``workers`` processes, or on the running cluster at ``scheduler``."""
    from distributed import Client

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise BenchError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({e})") from None
        try:
            client.wait_for_workers(1, timeout=timeout * 6)
        except TimeoutError:
            client.close()
            raise BenchError(f"--scheduler {scheduler}: the scheduler has no workers") from None
        return DaskEngine(client, None, log, device)
    cluster = local_cluster(workers or 1, gpus=gpus)
    return DaskEngine(Client(cluster, set_as_default=False), cluster, log, device)
