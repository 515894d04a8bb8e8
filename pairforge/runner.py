"""The Dask runner: the only code in pairforge that knows Dask.

Work arrives as a list of partition tasks (hundreds of samples each, never one
task per image) and one picklable function that processes a whole partition:
read -> stage -> write, with every :class:`~pairforge.errors.SampleError`
turned into a reject row inside the partition. Each task becomes one
``dask.delayed`` call; the same delayed calls run on this thread, on Dask's
local process pool, or on a ``dask.distributed`` cluster.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from pairforge.errors import ConfigError, PairforgeError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Imported once by the forkserver, so each local worker process starts with them loaded.
_WORKER_PRELOAD = ["pairforge.sources", "pairforge.shards", "pairforge.build"]
_CONNECT_TIMEOUT = "10s"  # to reach a --scheduler


@dataclass(frozen=True)
class RunnerConfig:
    """Where partitions run.

    Attributes:
        workers: local worker processes (1 runs in-process on one thread).
        scheduler: ``tcp://HOST:PORT`` of a running dask.distributed scheduler;
            overrides ``workers``.
        partition_size: samples per partition task (pair builders; shards use
            their own shard size).
    """

    workers: int = 1
    scheduler: str | None = None
    partition_size: int = 256

    def __post_init__(self) -> None:
        if self.workers < 1 or self.workers > 1024:
            raise ConfigError("workers", self.workers, "an integer from 1 to 1024")
        if self.scheduler is not None and "://" not in self.scheduler:
            raise ConfigError("scheduler", self.scheduler, "an address like tcp://HOST:8786")
        if self.partition_size < 1:
            raise ConfigError("partition_size", self.partition_size, "a positive integer")

    def describe(self) -> str:
        if self.scheduler:
            return f"dask cluster at {self.scheduler}"
        return "1 worker (in-process)" if self.workers == 1 else f"{self.workers} local processes"


def default_workers() -> int:
    """Cores available to this process: the one core count of pairforge (runner, loaders, benchmarks)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


class Interrupted(BaseException):  # noqa: N818 - a signal, like KeyboardInterrupt
    """SIGINT or SIGTERM arrived while partitions ran (see :func:`stop_on_signals`).

    A ``BaseException``, as ``KeyboardInterrupt``: the per-sample ``except Exception`` of a
    partition (which turns a failure into a reject) must not swallow it.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise :class:`Interrupted` in this thread on SIGINT or SIGTERM while the block runs.

    The caller says what was finished and removes what was not (a writer's temporaries).
    Only installed in the main thread (signal handlers cannot be set elsewhere); the
    previous handlers are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(number: int, frame: object) -> None:
        raise Interrupted(signal.Signals(number).name)

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_partitions(
    function: Callable[[T], R],
    tasks: Sequence[T],
    config: RunnerConfig,
    on_result: Callable[[R], Any] | None = None,
) -> list[R]:
    """Run ``function`` on every task and return the results in task order.

    Each task is one ``dask.delayed`` call of ``function``. One worker computes them
    in this process (Dask's synchronous scheduler), N workers on Dask's local process
    pool, a scheduler address on a dask.distributed cluster (``Client.compute``).

    Args:
        function: a picklable callable processing one partition; it must catch its
            own per-sample errors. An exception escaping it is a bug or an
            environment failure and stops the run.
        tasks: picklable partition descriptions (passed to ``function`` as they are).
        config: local or cluster execution.
        on_result: called in this process as each partition finishes (progress).
    """
    if not tasks:
        return []
    import dask

    run = f"pairforge-{uuid.uuid4().hex[:8]}"  # unique per run: a cluster may be shared
    call = dask.delayed(function, pure=False, traverse=False)
    partitions = [
        # traverse=False: a task is data (its items are not unpacked into subtasks)
        call(dask.delayed(task, traverse=False, name=f"{run}-task-{index:06d}"),
             dask_key_name=f"{run}-partition-{index:06d}")
        for index, task in enumerate(tasks)
    ]
    if config.scheduler:
        return _compute_on_cluster(partitions, config.scheduler, on_result)
    return _compute_locally(partitions, config.workers, on_result)


def _compute_locally(partitions: list[Any], workers: int, on_result: Callable[[Any], Any] | None) -> list[Any]:
    """Dask's synchronous scheduler (1 worker) or its process pool; ``on_result`` as a Dask callback."""
    import dask
    from dask.callbacks import Callback

    keys = {partition.key for partition in partitions}  # the tasks' data keys pass the callback too

    def finished(key: Any, result: Any, *_: Any) -> None:
        if key in keys:
            on_result(result)

    # Schedulers named by their get functions: a name ("sync") makes dask.compute import
    # dask.distributed to look for a default client (0.16 s of start-up per command).
    with Callback(posttask=finished) if on_result else nullcontext():
        if workers == 1:
            return list(dask.compute(*partitions, scheduler=dask.get))
        import dask.multiprocessing

        with _process_pool(workers) as pool:
            # one partition per submission: partitions are already large, and balanced
            return list(dask.compute(*partitions, scheduler=dask.multiprocessing.get, pool=pool, chunksize=1))


def _process_pool(workers: int) -> Any:
    """A pool forked from a clean forkserver (no threads, no torch) that has already imported
    the image code: workers start in about half the time of Dask's default spawned pool
    (benchmarks/bench_runner.py). The pool is terminated on exit, so an error stops the run at once.
    """
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_WORKER_PRELOAD)
    return context.Pool(workers)


def _compute_on_cluster(partitions: list[Any], address: str, on_result: Callable[[Any], Any] | None) -> list[Any]:
    """``Client.compute`` the partitions; collect each as it completes."""
    from dask.distributed import Client, as_completed

    _quiet_dask_logs()
    try:
        client = Client(address, timeout=_CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise PairforgeError(
            f"cannot reach the Dask scheduler at {address}: {exc}. "
            "Start one with `dask scheduler` and workers with `dask worker ADDRESS`."
        ) from None
    with client:
        log.debug("running %d partitions on %s", len(partitions), address)
        futures = client.compute(partitions)
        index_of = {future.key: index for index, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        for future in as_completed(futures):
            results[index_of[future.key]] = result = future.result()
            if on_result is not None:
                on_result(result)
            future.release()
        return results


def _quiet_dask_logs() -> None:
    """dask.distributed logs every worker start at INFO; keep that for ``-vv`` (debug) only."""
    if logging.getLogger(__name__).getEffectiveLevel() <= logging.DEBUG:
        return
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.WARNING)
