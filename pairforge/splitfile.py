"""Split assignment files: which split each pair goes to, written by ``check --fix-splits``, read by ``shard --splits``.

```json
{"format": "pairforge.splits/1", "source": "pairs", "rule": "...",
 "assignments": [{"key": "k1", "from": "val", "split": "train"}, ...]}
```
A pair is identified by its key and the split it had before (its split folder,
or for flat folders the split ``shard`` gives it by hash of the key), because
official pix2pix datasets reuse file names across split folders.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pairforge.errors import DatasetError
from pairforge.files import read_regular
from pairforge.sources import SourceItem

SPLITS_FORMAT = "pairforge.splits/1"
SPLIT_PREFERENCE = ("train", "val", "test")
"""Tie-break when a duplicate cluster is split evenly: train first (the evaluation splits stay clean)."""


def cluster_split(splits: Sequence[str]) -> str:
    """The split a cluster of duplicates moves to: where most of it already is; ties go to train, then val."""
    counts: dict[str, int] = {}
    for split in splits:
        counts[split] = counts.get(split, 0) + 1
    rank = {name: index for index, name in enumerate(SPLIT_PREFERENCE)}
    return min(counts, key=lambda split: (-counts[split], rank.get(split, len(rank)), split))


@dataclass(frozen=True)
class SplitAssignment:
    """A loaded split file: ``(from split, key) -> split``."""

    mapping: dict[tuple[str, str], str]
    path: str
    sha256: str

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SplitAssignment:
        path = Path(path)
        try:
            raw = read_regular(path)
            data = json.loads(raw)
        except OSError as exc:
            raise DatasetError(f"cannot read split file {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise DatasetError(f"split file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != SPLITS_FORMAT:
            raise DatasetError(f"{path} is not a split file (expected format {SPLITS_FORMAT!r}; "
                               "write one with `pairforge check --fix-splits`)")
        mapping: dict[tuple[str, str], str] = {}
        for row in data.get("assignments", []):
            try:
                mapping[(str(row["from"]), str(row["key"]))] = str(row["split"])
            except (KeyError, TypeError):
                raise DatasetError(f"{path}: malformed assignment {row!r} (needs key, from, split)") from None
        return cls(mapping, str(path), hashlib.sha256(raw).hexdigest())

    def apply(self, items: Sequence[SourceItem]) -> tuple[list[SourceItem], int, int]:
        """Items with their assigned splits; returns (items, moved, not listed in the file)."""
        result, moved, unlisted = [], 0, 0
        for item in items:
            split = self.mapping.get((item.split, item.key))
            if split is None:
                unlisted += 1
                result.append(item)
                continue
            if split != item.split:
                moved += 1
            result.append(SourceItem(item.key, item.path, split, item.extras))
        return result, moved, unlisted

    def describe(self, moved: int, unlisted: int) -> dict[str, Any]:
        """What dataset.json records about the assignment."""
        return {"file": self.path, "sha256": self.sha256, "moved": moved, "not_listed": unlisted}


def write_split_file(path: str | os.PathLike[str], assignments: list[dict[str, str]], source: str,
                     rule: str) -> Path:
    """Write a split file (assignments sorted by from-split and key, so reruns are byte-identical)."""
    from pairforge.pairs import write_json

    rows = sorted(assignments, key=lambda row: (row["from"], row["key"]))
    write_json(path, {"format": SPLITS_FORMAT, "source": source, "rule": rule,
                      "moved": sum(1 for row in rows if row["from"] != row["split"]), "assignments": rows})
    return Path(path)
