"""The Dask runner: task order, per-partition progress, errors, the same code on a cluster."""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass

import cloudpickle
import pytest

from pairforge.errors import PairforgeError
from pairforge.runner import RunnerConfig, default_workers, run_partitions
from pairforge.sources import SourceItem

# pytest imports test modules by path (--import-mode=importlib): worker processes cannot
# import this module by name, so its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass(frozen=True)
class Summarise:
    """A partition function: where it ran, and the keys it saw (in order).

    Attributes:
        slow: the partition starting with this key sleeps 1.5 s first.
        broken: the partition starting with this key raises.
    """

    slow: str = ""
    broken: str = ""

    def __call__(self, items: list[SourceItem]) -> tuple[int, list[str]]:
        assert isinstance(items, list) and all(isinstance(item, SourceItem) for item in items)
        if items[0].key == self.slow:
            time.sleep(1.5)
        if items[0].key == self.broken:
            raise ValueError(f"partition {self.broken} broke")
        return os.getpid(), [item.key for item in items]


def partitions(count: int) -> list[list[SourceItem]]:
    """Lists of items, as the pair builders pass them: Dask must pass them as they are."""
    return [[SourceItem(f"p{p}-{i}", f"/x/{p}/{i}.jpg", "train") for i in range(3)] for p in range(count)]


def keys(results: list[tuple[int, list[str]]]) -> list[list[str]]:
    return [seen for _, seen in results]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_results_in_task_order_and_progress_per_partition(workers: int) -> None:
    tasks = partitions(5)
    finished: list[tuple[int, list[str]]] = []
    function = Summarise(slow="p0-0" if workers > 1 else "")
    results = run_partitions(function, tasks, RunnerConfig(workers=workers), on_result=finished.append)
    assert keys(results) == [[item.key for item in task] for task in tasks]
    assert sorted(keys(finished)) == sorted(keys(results))  # once per partition, nothing else
    pids = {pid for pid, _ in results}
    if workers == 1:
        assert pids == {os.getpid()}  # in-process
    else:
        assert os.getpid() not in pids
        # progress as each partition finishes, not in task order at the end: the slow first one comes last
        assert keys(finished)[-1] == keys(results)[0], keys(finished)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_escaping_the_function_stops_the_run(workers: int) -> None:
    with pytest.raises(ValueError, match="partition p2-0 broke"):
        run_partitions(Summarise(broken="p2-0"), partitions(4), RunnerConfig(workers=workers))


def test_no_tasks_runs_nothing() -> None:
    assert run_partitions(Summarise(), [], RunnerConfig(scheduler="tcp://127.0.0.1:1")) == []


def test_one_core_count() -> None:
    assert default_workers() == len(os.sched_getaffinity(0))


def test_unreachable_scheduler_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setattr("pairforge.runner._CONNECT_TIMEOUT", "1s")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PairforgeError, match=rf"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}.*dask scheduler"):
        run_partitions(Summarise(), partitions(1), RunnerConfig(scheduler=f"tcp://127.0.0.1:{port}"))


@pytest.mark.slow
def test_the_same_partitions_run_on_a_distributed_cluster() -> None:
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        config = RunnerConfig(scheduler=cluster.scheduler_address)
        tasks = partitions(4)
        finished: list[tuple[int, list[str]]] = []
        results = run_partitions(Summarise(slow="p0-0"), tasks, config, on_result=finished.append)
        assert keys(results) == [[item.key for item in task] for task in tasks]
        assert sorted(keys(finished)) == sorted(keys(results)) and keys(finished)[-1] == keys(results)[0]
        with pytest.raises(ValueError, match="partition p1-0 broke"):
            run_partitions(Summarise(broken="p1-0"), tasks, config)


def test_loader_workers_follow_the_one_core_count(monkeypatch) -> None:
    data = pytest.importorskip("pairforge.trainer.data")
    monkeypatch.setattr("pairforge.runner.default_workers", lambda: 5)
    assert data.default_num_workers("cuda") == 4  # one core left to the training loop
    assert data.default_num_workers("cpu") == 0
