"""The one shard reader: open a set, list its shards, read their samples, all through one byte seam."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pairforge import storage
from pairforge.cli import cli
from pairforge.errors import DatasetError
from pairforge.pairs import PairsInfo
from pairforge.shards import ModifiedShardsError
from pairforge.shardset import check_shards, list_shards, open_shard_set
from pairforge.storage import Location
from pairforge.tars import ShardReading, read_shard


@pytest.fixture()
def shard_set(tmp_path: Path, make_ab_folder) -> Path:  # type: ignore[no-untyped-def]
    """10 gray pairs in 3-sample shards, written by `pairforge shard` (the real writer)."""
    pairs = tmp_path / "pairs"
    make_ab_folder(pairs, 10, size=32)
    PairsInfo(kind="gray", a_channels=1).write(pairs)
    out = tmp_path / "shards"
    result = CliRunner().invoke(cli, ["shard", str(pairs), "-o", str(out), "-j", "1", "--samples-per-shard", "3",
                                      "--val-fraction", "0.3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_open_list_and_read_a_shard_set(shard_set: Path) -> None:
    opened = open_shard_set(shard_set)
    assert opened.modified == () and opened.location.url == str(shard_set)
    entries = opened.shards()
    assert [e.name for e in entries] == [s["name"] for s in opened.dataset["shards"]]
    for split, urls in opened.info.splits.items():
        assert tuple(e.url for e in opened.shards(split)) == urls  # the trainer's lists are the reader's
        assert sum(e.expected for e in opened.shards(split)) == opened.info.counts[split]
    keys = []
    for entry in entries:
        reading = entry.reading()
        keys += [key for key, fields in read_shard(reading) if {"a.png", "b.jpg", "json"} <= fields.keys()]
        assert reading.samples == entry.expected and reading.problem() == ""
    assert len(keys) == len(set(keys)) == 10


def test_a_modified_set_is_refused_unless_allowed(shard_set: Path) -> None:
    victim = shard_set / "train-000000.tar"
    victim.write_bytes(victim.read_bytes()[:3000])
    with pytest.raises(ModifiedShardsError, match="train-000000.tar"):
        open_shard_set(shard_set)
    opened = open_shard_set(shard_set, allow_modified=True)
    assert [m.name for m in opened.modified] == ["train-000000.tar"]
    assert open_shard_set(shard_set, verify=False).modified == ()
    with pytest.raises(DatasetError, match="dataset.json not found"):
        open_shard_set(shard_set / "nowhere")


def test_a_stream_that_cannot_seek_reads_the_same_samples(shard_set: Path, tmp_path: Path) -> None:
    """A ``pipe:`` shard (what train and evaluate accept) goes through the same reader as a file."""
    entry = open_shard_set(shard_set).shards("train")[0]
    local = list(read_shard(entry.reading()))
    piped_reading = ShardReading(f"pipe:cat {entry.url}", entry.expected)
    assert list(read_shard(piped_reading)) == local and piped_reading.problem() == ""
    cut = tmp_path / "cut.tar"
    data = Path(entry.url).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    reading = ShardReading(f"pipe:cat {cut}", entry.expected)
    got = [key for key, _ in read_shard(reading)]  # no exception: the loss is recorded
    assert got == [key for key, _ in local][: len(got)] and reading.missing == entry.expected - len(got) > 0
    assert reading.problem().startswith(f"shard pipe:cat {cut}: ")
    check_shards((f"pipe:cat {entry.url}",))


def test_locations_join_like_paths_and_urls() -> None:
    assert Location("shards/").child("a.tar").url == "shards/a.tar" == str(Path("shards") / "a.tar")
    assert Location("s3://bucket/set/").child("a.tar").url == "s3://bucket/set/a.tar"
    assert Location("s3://bucket/set/a.tar").parent.url == "s3://bucket/set"
    assert Location("s3://bucket/set/a.tar").name == "a.tar" and Location("s3://b/x").remote
    command = Location("pipe:cat shards/a.tar")  # a command's output: a stream, nothing more
    assert command.remote and command.pipe and not command.is_file() and command.list() == []
    with pytest.raises(OSError, match="has no size"):
        command.stat()
    assert str(Location("s3://key:secret@bucket/set?x=1")) == "s3://bucket/set"  # never a credential in a message


def test_every_byte_of_a_shard_set_is_read_through_the_seam(shard_set: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Open, verify (with sha256), list, count, read and pre-check a set: no file of it is touched
    except by :class:`pairforge.storage.Location` (where remote storage plugs in)."""
    from pairforge.trainer.data import load_dataset_info, tar_samples, verify_shards

    inside = [0]
    touched: list[str] = []
    folder = os.path.realpath(shard_set)

    def guard(function):  # type: ignore[no-untyped-def]
        def guarded(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if not inside[0] and isinstance(path, str | os.PathLike) and \
                    os.path.realpath(os.fspath(path)).startswith(folder):
                touched.append(f"{function.__name__} {path}")
            return function(path, *args, **kwargs)
        return guarded

    def seam(method):  # type: ignore[no-untyped-def]
        def through(*args, **kwargs):  # type: ignore[no-untyped-def]
            inside[0] += 1
            try:
                return method(*args, **kwargs)
            finally:
                inside[0] -= 1
        return through

    for name in ("open", "stat", "read_bytes", "is_file", "is_dir", "list", "sha256"):
        monkeypatch.setattr(storage.Location, name, seam(getattr(storage.Location, name)))
    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    for name in ("open", "stat", "listdir", "scandir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))

    opened = open_shard_set(shard_set)
    info = load_dataset_info(str(shard_set))
    urls = info.splits["train"]
    assert verify_shards(info, urls, full=True) == []
    check_shards(urls)
    assert sum(1 for entry in opened.shards() for _ in read_shard(entry.reading())) == 10
    assert sum(1 for _ in tar_samples(list(urls))) == info.counts["train"]
    assert touched == []
    list_shards(opened.dataset, shard_set)  # listing needs no file at all
    assert touched == []
