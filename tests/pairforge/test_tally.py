"""run_writers: progress per partition, rejects.jsonl, no input lost, empty output refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pairforge.pairs import REJECTS_NAME, NothingUsableError
from pairforge.runner import RunnerConfig
from pairforge.tally import run_writers


@dataclass
class Outcome:
    written: int
    rejects: list[dict[str, str]] = field(default_factory=list)


def read_rejects(folder: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in (folder / REJECTS_NAME).read_text(encoding="utf-8").splitlines()]


def write_even(keys: list[int]) -> Outcome:
    """A partition writer: 'writes' even keys, rejects odd ones."""
    odd = [{"path": f"/in/{key}.jpg", "reason": f"corrupt image: {key}"} for key in keys if key % 2]
    return Outcome(len(keys) - len(odd), odd)


def test_progress_counts_every_input_and_rejects_keep_their_order(tmp_path: Path) -> None:
    early = [{"path": "/in/notes.txt", "reason": "unsupported type: .txt"}]
    advanced: list[int] = []
    tasks = [[0, 1, 2], [3, 5], [6]]
    results, tally = run_writers(write_even, tasks, RunnerConfig(), tmp_path, 6, early, advanced.append)
    assert [result.written for result in results] == [2, 0, 1]
    assert sorted(advanced) == [1, 2, 3] and sum(advanced) == 6  # rejected inputs are progress too
    assert (tally.seen, tally.written) == (7, 3)
    assert tally.rejected == {"unsupported type": 1, "corrupt image": 3}
    assert [row["path"] for row in read_rejects(tmp_path)] == [
        "/in/notes.txt", "/in/1.jpg", "/in/3.jpg", "/in/5.jpg"]
    tally.require_some(tmp_path)


def test_nothing_written_is_refused_with_the_reasons(tmp_path: Path) -> None:
    _, tally = run_writers(write_even, [[1, 3]], RunnerConfig(), tmp_path, 2)
    with pytest.raises(NothingUsableError, match="corrupt image"):
        tally.require_some(tmp_path)
    assert len(read_rejects(tmp_path)) == 2


def test_a_writer_that_loses_an_input_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="lost inputs"):
        run_writers(lambda keys: Outcome(len(keys) - 1), [[0, 2]], RunnerConfig(), tmp_path, 2)
