"""The Dask runner: the only code in pairforge that knows Dask.

Work arrives as a list of partition tasks (hundreds of samples each, never one
task per image) and one picklable function that processes a whole partition:
read -> stage -> write, with every :class:`~pairforge.errors.SampleError`
turned into a reject row inside the partition. The same function runs on a
local thread, local processes, or a ``dask.distributed`` cluster.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

from pairforge.errors import ConfigError, PairforgeError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


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
    """Cores available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


def run_partitions(
    function: Callable[[T], R],
    tasks: Sequence[T],
    config: RunnerConfig,
    on_result: Callable[[R], Any] | None = None,
) -> list[R]:
    """Run ``function`` on every task and return the results in task order.

    One worker runs the graph in this process (Dask's synchronous scheduler);
    N workers run it on Dask's local process pool; a scheduler address runs it
    on a dask.distributed cluster. The graph and the function are the same.

    Args:
        function: a picklable callable processing one partition; it must catch its
            own per-sample errors. An exception escaping it is a bug or an
            environment failure and stops the run.
        tasks: picklable partition descriptions.
        config: local or cluster execution.
        on_result: called in this process as each partition finishes (progress).
    """
    if not tasks:
        return []
    graph = {_key(index): (_call, function, _Opaque(task)) for index, task in enumerate(tasks)}
    keys = [_key(index) for index in range(len(tasks))]
    if config.scheduler:
        return _run_distributed(graph, keys, config.scheduler, on_result)
    return _run_local(graph, keys, config.workers, on_result)


class _Opaque:
    """Hides a task's contents from Dask's graph traversal (lists of items are not subtasks)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _call(function: Callable[[Any], Any], task: _Opaque) -> Any:
    return function(task.value)


def _key(index: int) -> str:
    return f"pairforge-partition-{index:06d}"


def _run_local(graph: dict[str, Any], keys: list[str], workers: int,
               on_result: Callable[[Any], Any] | None) -> list[Any]:
    import dask
    from dask.callbacks import Callback

    callbacks = [Callback(posttask=lambda key, result, *_: on_result(result))] if on_result else []
    if workers == 1:
        with ExitStack() as stack:
            for callback in callbacks:
                stack.enter_context(callback)
            return list(dask.get(graph, keys))
    import multiprocessing

    import dask.multiprocessing

    # A forkserver starts clean (no threads, no torch) and forks each worker with the
    # image libraries already imported: workers start in milliseconds, safely.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pairforge.sources", "pairforge.shards", "pairforge.build"])
    with ExitStack() as stack, context.Pool(workers) as pool:
        for callback in callbacks:
            stack.enter_context(callback)
        return list(dask.multiprocessing.get(graph, keys, pool=pool, num_workers=workers, chunksize=1))


def _run_distributed(graph: dict[str, Any], keys: list[str], address: str,
                     on_result: Callable[[Any], Any] | None) -> list[Any]:
    from dask.distributed import Client, as_completed

    _quiet_dask_logs()
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise PairforgeError(
            f"cannot reach the Dask scheduler at {address}: {exc}. "
            "Start one with `dask scheduler` and workers with `dask worker ADDRESS`."
        ) from None
    with client:
        log.debug("running %d partitions on %s", len(keys), address)
        futures = client.get(graph, keys, sync=False)
        index_of = {future.key: index for index, future in enumerate(futures)}
        results: list[Any] = [None] * len(keys)
        for future in as_completed(futures):
            result = future.result()
            results[index_of[future.key]] = result
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
