"""Streaming pairs from WebDataset shards: shard lists, decoding, corrupt-sample skipping, batching.

The train stream is endless and reproducible: for each epoch the shard list is shuffled with
``(seed, epoch)``, split by rank and DataLoader worker (by sample when there are fewer shards
than readers), read with WebDataset, shuffled (a uniform permutation of the epoch when a
reader's share fits in the shuffle buffer, else a seeded streaming buffer), decoded and batched
inside the worker. Each batch records the worker's raw stream position, so a resumed run skips the
consumed samples without decoding them and continues exactly.

Shard sets are opened, listed, verified and their tars opened by the core reader
(:mod:`pairforge.shardset`); WebDataset only expands the opened tars into samples here, so
the stream groups, orders and skips exactly as it always has.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import chain, count, islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import webdataset as wds
from webdataset.shardlists import expand_urls

from pairforge.errors import DatasetError, PairforgeError, SampleError
from pairforge.shards import DatasetInfo, ShardMismatch, decode_shard_sample
from pairforge.shardset import (
    check_shards as check_shards,  # these three are re-exported: the loop uses them
)
from pairforge.shardset import dataset_json_beside, open_shard_set, open_tar
from pairforge.shardset import recorded_shards as recorded_shards
from pairforge.shardset import verify_shards as verify_shards
from pairforge.storage import Location, StorageError
from pairforge.trainer.transforms import Encoding, a_to_stored

logger = logging.getLogger(__name__)
cv2.setNumThreads(1)


def load_dataset_info(shards: str, dataset_json: str | None = None, val_shards: str | None = None) -> DatasetInfo:
    """Read dataset.json and resolve the shard URLs of each split.

    Args:
        shards: a shard folder, a brace pattern of train shards, or a URL/``pipe:`` command.
        dataset_json: dataset.json to read when ``shards`` is not a folder (default: the
            dataset.json next to the first local shard).
        val_shards: validation shard pattern overriding dataset.json's val split.

    Raises:
        DatasetError: no dataset.json, an unknown format, or no train shards.
    """
    pattern_urls: tuple[str, ...] = ()
    meta_path: str | Path | None = dataset_json or None
    if not Location(shards).is_dir():
        pattern_urls = tuple(expand_urls(shards))
        if not dataset_json:
            meta_path = dataset_json_beside(pattern_urls[0]) if pattern_urls else None
        if meta_path is None:
            raise DatasetError(f"{shards}: not a local folder; pass --dataset-json with the shard set's dataset.json")
    info = open_shard_set(shards, dataset_json=meta_path, named=shards, verify=False).info
    splits = dict(info.splits)
    if pattern_urls:
        splits["train"] = pattern_urls
    if val_shards:
        splits["val"] = tuple(expand_urls(val_shards))
    if not splits.get("train"):
        raise DatasetError(f"{shards}: no train shards (dataset.json lists splits {sorted(splits)})")
    return replace(info, splits=splits)


ShardProblem = ShardMismatch
"""A shard that differs from dataset.json (:class:`pairforge.shards.ShardMismatch`)."""


def decode_pair(sample: dict[str, Any], encoding: Encoding) -> tuple[np.ndarray, np.ndarray]:
    """Decode one WebDataset sample into stored A and RGB B (swapped for ``--direction BtoA``).

    Returns:
        A ``(stored_a_channels, H, W)`` uint8 and B ``(3, H, W)`` uint8.

    Raises:
        SampleError: a missing member, an undecodable image or mismatched sizes.
    """
    # --direction BtoA: the stored B is the input, the stored A the target
    gray_a = encoding.a_channels == 1 and not encoding.label_a
    a, b = decode_shard_sample(sample, gray_a, swap=encoding.swapped)
    return a_to_stored(a, encoding), np.ascontiguousarray(b.transpose(2, 0, 1))


def collate(items: list[tuple[str, int, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Stack decoded pairs, padding to the largest size by edge replication.

    Returns:
        dict with ``a`` (B, Ca, H, W) uint8, ``b`` (B, 3, H, W) uint8, ``sizes`` (B, 2) int64,
        ``keys`` list[str], ``epochs`` (B,) int64.
    """
    height = max(item[2].shape[1] for item in items)
    width = max(item[2].shape[2] for item in items)

    def pad(array: np.ndarray) -> np.ndarray:
        extra_h, extra_w = height - array.shape[1], width - array.shape[2]
        if extra_h == 0 and extra_w == 0:
            return array
        return np.pad(array, ((0, 0), (0, extra_h), (0, extra_w)), mode="edge")

    return {
        "a": torch.from_numpy(np.stack([pad(item[2]) for item in items])),
        "b": torch.from_numpy(np.stack([pad(item[3]) for item in items])),
        "sizes": torch.tensor([item[2].shape[1:] for item in items], dtype=torch.int64),
        "keys": [item[0] for item in items],
        "epochs": torch.tensor([item[1] for item in items], dtype=torch.int64),
    }


def _warn_and_continue(exc: Exception) -> bool:
    """Skip a damaged shard's rest with a warning; storage that cannot be reached stops the run."""
    if isinstance(exc, StorageError):
        raise StorageError(exc.message) from None
    logger.warning("skipping unreadable shard data: %s", exc)
    return True


def from_worker(exc: PairforgeError) -> PairforgeError:
    """A pairforge error as its one line again, after a DataLoader worker passed it on.

    PyTorch re-raises a worker's exception in the main process as the same type whose message
    is the worker's whole traceback; the last line holds the original message.
    """
    text = str(exc)
    if "\nOriginal Traceback" not in text:
        return exc
    last = text.rstrip().splitlines()[-1]
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    message = last[len(prefix):] if last.startswith(prefix) else last
    line = PairforgeError.__new__(type(exc))
    Exception.__init__(line, message)
    if isinstance(line, StorageError):
        line.message = message
    return line


def _opened(urls: list[str], handler: Callable[[Exception], bool]) -> Iterator[dict[str, Any]]:
    """``{"url", "stream"}`` per shard, opened by the core reader (:func:`pairforge.shardset.open_tar`),
    as WebDataset's ``url_opener`` hands them on; each stream is closed once its shard is read."""
    for url in urls:
        try:
            stream = open_tar(url)
        except Exception as exn:  # a URL's opener raises many kinds; the handler decides, as in WebDataset
            exn.args = (*exn.args, url)
            if handler(exn):
                continue
            break
        try:
            yield {"url": url, "stream": stream}
        finally:
            try:
                stream.close()
            except Exception as exn:  # a pipe: command's exit status, once its shard is read
                _warn_and_continue(exn)


def tar_samples(urls: list[str], handler: Callable[[Exception], bool] = _warn_and_continue) -> Iterator[dict[str, Any]]:
    """WebDataset samples (``__key__``, ``__url__``, one entry per field) of ``urls``, in order.

    The tars are opened by the core reader; WebDataset expands and groups them (its
    ``tarfile_to_samples`` with the opener replaced), and ``handler`` decides what an error does.
    """
    files = wds.tariterators.tar_file_expander(_opened(urls, handler), handler=handler)
    return wds.tariterators.group_by_keys(files, handler=handler)


@dataclass
class StreamState:
    """Where each logical worker of one rank stands (saved in checkpoints).

    Attributes:
        positions: raw samples consumed per logical worker.
        skipped: corrupt samples skipped per logical worker.
        batches: batches consumed by the training loop on this rank.
    """

    positions: list[int]
    skipped: list[int]
    batches: int = 0

    @classmethod
    def fresh(cls, workers: int) -> StreamState:
        return cls([0] * workers, [0] * workers, 0)

    def update(self, batch: dict[str, Any]) -> None:
        """Record a consumed batch."""
        self.positions[batch["worker"]] = int(batch["position"])
        self.skipped[batch["worker"]] = int(batch["skipped"])
        self.batches += 1

    def to_dict(self) -> dict[str, Any]:
        return {"positions": list(self.positions), "skipped": list(self.skipped), "batches": self.batches}


class PairStream(torch.utils.data.IterableDataset):
    """Endless, reproducible stream of uint8 batches for one rank.

    Args:
        urls: train shard URLs.
        encoding: how A is stored.
        batch_size: pairs per batch.
        seed: run seed (shard order, permutations and shuffle buffers derive from it and the epoch).
        rank: this process's rank; ``world_size``: number of processes.
        workers: DataLoader workers (0 counts as one logical worker).
        shuffle_buffer: samples each reader (rank x worker) holds to shuffle: a share of the
            epoch up to this size is permuted uniformly, a larger one streams through a buffer
            of this size.
        state: resume point (positions per logical worker and batches consumed).
        expected: shard URL -> samples dataset.json records in it; a shard that ends early
            (truncated) adds the samples it lost to the skipped count.
    """

    def __init__(
        self,
        urls: tuple[str, ...],
        encoding: Encoding,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        shuffle_buffer: int = 1000,
        state: StreamState | None = None,
        expected: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.urls = tuple(urls)
        self.encoding = encoding
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.logical_workers = max(1, workers)
        self.shuffle_buffer = shuffle_buffer
        self.state = state or StreamState.fresh(self.logical_workers)
        self.expected = dict(expected or {})

    def _logical_worker(self) -> int:
        info = torch.utils.data.get_worker_info()
        physical = info.id if info is not None else 0
        # DataLoader asks workers round-robin from worker 0; rotate so that the worker whose
        # turn was next when the checkpoint was written answers first.
        return (physical + self.state.batches) % self.logical_workers

    def _read(self, urls: list[str], lost: list[int], count_lost: bool) -> Iterator[dict[str, Any]]:
        """Raw samples of ``urls`` in order; samples a shard lacks against dataset.json go to ``lost[0]``."""
        for url in urls:
            read = 0
            for sample in tar_samples([url]):
                read += 1
                yield sample
            missing = self.expected.get(url, read) - read
            if missing > 0 and count_lost:
                logger.warning("shard %s ended after %d of %d samples (truncated?)", url, read, read + missing)
                lost[0] += missing

    def _raw_samples(self, slot: int, slots: int, lost: list[int] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        """(epoch, raw sample) pairs of this slot, epoch after epoch."""
        lost = lost if lost is not None else [0]
        for epoch in count():
            shard_order = list(self.urls)
            random.Random(f"{self.seed}/shards/{epoch}").shuffle(shard_order)
            if len(shard_order) >= slots:
                mine, by_sample = shard_order[slot::slots], False
            else:
                mine, by_sample = shard_order, True
            # shards split by sample are read by every slot: slot 0 alone counts their losses
            samples: Iterator[dict[str, Any]] = self._read(mine, lost, not by_sample or slot == 0)
            produced = 0
            for sample in self._shuffled(samples, epoch, slot, slots, by_sample):
                produced += 1
                yield epoch, sample
            if produced == 0:
                raise DatasetError(f"no samples for reader {slot} of {slots} in shards {mine[:3]}...")

    def _shuffled(
        self, samples: Iterator[dict[str, Any]], epoch: int, slot: int, slots: int, by_sample: bool
    ) -> Iterator[dict[str, Any]]:
        """This slot's samples of one epoch in a random order reproducible from ``(seed, epoch, slot)``.

        ``samples`` is what the slot reads: its own shards, or (``by_sample``: fewer shards than
        readers) every shard, of which it keeps every ``slots``-th sample. When that fits in the
        shuffle buffer the epoch is a uniform random permutation: of the slot's own samples, or,
        by sample, of all samples (the same permutation in every slot, each taking every
        ``slots``-th place, so which reader gets a sample changes from epoch to epoch too). No
        shard is read by more readers than without it. A larger share streams through the
        buffer: each sample is drawn from a window of ``shuffle_buffer`` samples, which is
        not a uniform shuffle of the epoch.
        """
        held = list(islice(samples, self.shuffle_buffer + 1))
        if len(held) <= self.shuffle_buffer:  # the whole share is in memory: permute it
            key = "all" if by_sample else str(slot)
            random.Random(f"{self.seed}/permutation/{epoch}/{key}").shuffle(held)
            yield from held[slot::slots] if by_sample else held
            return
        stream: Iterator[dict[str, Any]] = chain(held, samples)
        if by_sample:
            stream = (s for index, s in enumerate(stream) if index % slots == slot)
        rng = random.Random(f"{self.seed}/buffer/{epoch}/{slot}")
        yield from wds.shuffle(self.shuffle_buffer, min(100, self.shuffle_buffer), rng=rng)(stream)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        logical = self._logical_worker()
        slots = self.world_size * self.logical_workers
        slot = self.rank * self.logical_workers + logical
        position = 0
        resume_at = self.state.positions[logical]
        skipped = self.state.skipped[logical]
        pending: list[tuple[str, int, np.ndarray, np.ndarray]] = []
        lost = [0]  # samples missing from truncated shards, counted as skipped once past the resume point
        for epoch, sample in self._raw_samples(slot, slots, lost):
            position += 1
            if position <= resume_at:
                lost[0] = 0  # already in the resumed skipped count
                continue
            skipped, lost[0] = skipped + lost[0], 0
            key = str(sample.get("__key__", "?"))
            try:
                a, b = decode_pair(sample, self.encoding)
            except SampleError as exc:
                skipped += 1
                logger.warning("skipping corrupt sample %s in %s: %s", key, sample.get("__url__"), exc.reason)
                continue
            pending.append((key, epoch, a, b))
            if len(pending) == self.batch_size:
                batch = collate(pending)
                batch.update(worker=logical, position=position, skipped=skipped)
                pending = []
                yield batch


def default_num_workers(device: str) -> int:
    """DataLoader workers when the user does not say: none on the CPU, up to 8 for a GPU.

    On the CPU the training step already uses every core; a decoding process beside it
    steals more time than decoding costs in the loop (measured: 0.95x vs 1.01x of the
    official-style loop on 2 cores). A GPU needs the CPU to decode ahead of it.
    """
    import torch

    from pairforge.runner import default_workers

    uses_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if not uses_cuda:
        return 0
    return max(1, min(8, default_workers() - 1))


def make_loader(stream: PairStream, workers: int, pin_memory: bool) -> torch.utils.data.DataLoader:
    """DataLoader over a :class:`PairStream` (batching happens in the workers).

    The loader gets its own random generator: iterating it must not draw from the global
    torch RNG, whose state (dropout) is checkpointed for exact resume.
    """
    return torch.utils.data.DataLoader(
        stream,
        generator=torch.Generator().manual_seed(stream.seed),
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=workers > 0,
    )


def iterate_split(
    urls: tuple[str, ...], encoding: Encoding, batch_size: int, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """One ordered pass over a split (validation), in batches; corrupt samples are skipped.

    Yields:
        batches as :func:`collate` makes them.
    """
    samples = tar_samples(list(urls))
    pending: list[tuple[str, int, np.ndarray, np.ndarray]] = []
    seen = 0
    for sample in samples:
        if limit is not None and seen >= limit:
            break
        try:
            a, b = decode_pair(sample, encoding)
        except SampleError as exc:
            logger.warning("skipping corrupt sample %s: %s", sample.get("__key__"), exc.reason)
            continue
        seen += 1
        pending.append((str(sample["__key__"]), 0, a, b))
        if len(pending) == batch_size:
            yield collate(pending)
            pending = []
    if pending:
        yield collate(pending)
