"""Running partition writers with every input accounted for: seen == written + rejected.

The one orchestration under ``build_pairs`` (pair folders) and ``write_shard_set``
(shard sets): run the partitions on the runner with progress per partition,
gather the rejects (those found before the run first, then each partition's in
task order) into ``rejects.jsonl``, check that no input was lost, and refuse an
output in which nothing was written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pairforge.pairs import REJECTS_NAME, NothingUsableError, reason_class, write_jsonl
from pairforge.runner import RunnerConfig, run_partitions


class PartitionOutcome(Protocol):
    """What a partition writer reports: how many samples it wrote and the inputs it rejected."""

    @property
    def written(self) -> int: ...

    @property
    def rejects(self) -> list[dict[str, str]]: ...


T = TypeVar("T")
R = TypeVar("R", bound=PartitionOutcome)


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
            raise NothingUsableError(str(out_dir), self.seen, self.rejected, out_dir / REJECTS_NAME)


def run_writers(
    function: Callable[[T], R],
    tasks: Sequence[T],
    runner: RunnerConfig,
    out_dir: Path,
    inputs: int,
    early_rejects: Sequence[dict[str, str]] = (),
    on_progress: Callable[[int], Any] | None = None,
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

    Returns:
        The partition results in task order, and the tally (call :meth:`Tally.require_some`
        once the output's index is written).
    """
    finished = (lambda result: on_progress(result.written + len(result.rejects))) if on_progress else None
    results = run_partitions(function, tasks, runner, on_result=finished)
    rejects = [*early_rejects, *(reject for result in results for reject in result.rejects)]
    tally = Tally(inputs + len(early_rejects), sum(result.written for result in results), rejects)
    assert tally.seen == tally.written + len(tally.rejects), "lost inputs"
    write_jsonl(out_dir / REJECTS_NAME, tally.rejects)
    return results, tally
