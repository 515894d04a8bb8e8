"""Running partition writers with every input accounted for: seen == written + rejected.

The one orchestration under ``build_pairs`` (pair folders) and ``write_shard_set``
(shard sets): run the partitions on the runner with progress per partition,
gather the rejects (those found before the run first, then each partition's in
task order) into ``rejects.jsonl``, check that no input was lost, and refuse an
output in which nothing was written. A run stopped by SIGINT or SIGTERM removes the
temporaries of the partitions that were cut short and says, in one line, what was finished
and how to go on (:class:`RunInterrupted`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pairforge.errors import PairforgeError
from pairforge.files import is_temporary_name
from pairforge.pairs import REJECTS_NAME, NothingUsableError, reason_class, write_jsonl
from pairforge.paths import describe_path
from pairforge.runner import Interrupted, RunnerConfig, run_partitions, stop_on_signals
from pairforge.storage import child, is_url


class PartitionOutcome(Protocol):
    """What a partition writer reports: how many samples it wrote and the inputs it rejected."""

    @property
    def written(self) -> int: ...

    @property
    def rejects(self) -> list[dict[str, str]]: ...


T = TypeVar("T")
R = TypeVar("R", bound=PartitionOutcome)


class RunInterrupted(PairforgeError):
    """SIGINT or SIGTERM stopped a writer; the message says what was finished and how to go on."""


@dataclass
class Tally:
    """Every input of one run.

    Attributes:
        seen: inputs, those rejected before the run included.
        written: samples written.
        rejects: one row (path, reason) per input not used.
    """

    seen: int
    written: int
    rejects: list[dict[str, str]]

    @property
    def rejected(self) -> Counter:
        """Reject reason class -> count."""
        return Counter(reason_class(reject["reason"]) for reject in self.rejects)

    def require_some(self, out_dir: Path) -> None:
        """Raise :class:`NothingUsableError` (with the reasons) when nothing was written."""
        if self.written == 0:
            raise NothingUsableError(describe_path(out_dir) if is_url(out_dir) else str(out_dir), self.seen, self.rejected, child(out_dir, REJECTS_NAME))


def run_writers(
    function: Callable[[T], R],
    tasks: Sequence[T],
    runner: RunnerConfig,
    out_dir: Path,
    inputs: int,
    early_rejects: Sequence[dict[str, str]] = (),
    on_progress: Callable[[int], Any] | None = None,
    unit: str = "partitions",
    resume: str = "run the same command again to finish",
) -> tuple[list[R], Tally]:
    """Run partition writers over ``tasks`` and write ``out_dir/rejects.jsonl``.

    Args:
        function: the partition writer (see :func:`pairforge.runner.run_partitions`).
        tasks: its partitions, ``inputs`` items in all.
        runner: where the partitions run.
        out_dir: the output folder (already created).
        inputs: items in ``tasks``.
        early_rejects: inputs rejected before the run (unmatched, unsupported type...).
        on_progress: called with the number of inputs finished, as each partition completes.
        unit: what a task is, for the message of an interrupted run ("shards").
        resume: what the message of an interrupted run says to do next.

    Raises:
        RunInterrupted: SIGINT or SIGTERM arrived; the temporaries of unfinished partitions
            are removed first, what the finished ones wrote stays.

    Returns:
        The partition results in task order, and the tally (call :meth:`Tally.require_some`
        once the output's index is written).
    """
    done: list[R] = []

    def finished(result: R) -> None:
        done.append(result)
        if on_progress is not None:
            on_progress(result.written + len(result.rejects))

    try:
        with stop_on_signals():
            results = run_partitions(function, tasks, runner, on_result=finished)
    except Interrupted as stop:
        if not is_url(out_dir):  # a URL's temporaries are local files, removed by the writer itself
            remove_temporaries(out_dir)
        raise RunInterrupted(
            f"interrupted by {stop.name}: {len(done)} of {len(tasks)} {unit} finished "
            f"({sum(result.written for result in done)} samples written) in {describe_path(out_dir)}, "
            f"unfinished temporaries removed; {resume}"
        ) from None
    rejects = [*early_rejects, *(reject for result in results for reject in result.rejects)]
    tally = Tally(inputs + len(early_rejects), sum(result.written for result in results), rejects)
    assert tally.seen == tally.written + len(tally.rejects), "lost inputs"
    write_jsonl(child(out_dir, REJECTS_NAME), tally.rejects)
    return results, tally


def remove_temporaries(out_dir: Path) -> int:
    """Delete the writers' temporaries (``.<name>.tmp<pid>``) under ``out_dir``; returns how many."""
    removed = 0
    for directory, _, filenames in os.walk(out_dir):
        for name in filenames:
            if is_temporary_name(name):
                (Path(directory) / name).unlink(missing_ok=True)
                removed += 1
    return removed
