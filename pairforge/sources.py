"""Where samples come from: an input item and the picklable readers that turn it into a pair.

A reader is called inside a partition, on whatever worker runs it. It reads the
files of one :class:`SourceItem` and returns a :class:`PairSample`, or raises
:class:`SampleError`. Two readers exist: one for existing AB files (``shard``)
and one that runs a pipeline stage on photos (``make-*``, ``combine``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pairforge import storage
from pairforge.errors import SampleError
from pairforge.imageio import DEFAULT_MAX_PIXELS, read_image, read_label_image
from pairforge.pairs import split_ab
from pairforge.registry import load_target
from pairforge.sample import PairSample
from pairforge.storage import StorageError, is_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceItem:
    """One input sample.

    Attributes:
        key: sanitised, unique sample key.
        path: the main input file (a photo, an A image, or an AB pair image).
        split: ``train`` | ``val`` | ``test`` | ... ; ``""`` when not decided yet.
        extras: ``(name, path, how)`` files passed to the stage as keyword
            ``name``; ``how`` is ``image`` (RGB uint8) or ``label`` (ids kept).
    """

    key: str
    path: str
    split: str = ""
    extras: tuple[tuple[str, str, str], ...] = ()

    def fingerprint(self) -> str:
        """Path, size and mtime (an object's size and ETag) of every file: changes when an input changes."""
        parts = []
        for path in (self.path, *(extra[1] for extra in self.extras)):
            if is_url(path):
                info = storage.stat(path)
                parts.append(f"{path}:{info.size}:{info.version}" if info else f"{path}:missing")
                continue
            try:
                stat = os.stat(path)
                parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
            except OSError:
                parts.append(f"{path}:missing")
        return "|".join([self.key, self.split, *parts])

    def input_bytes(self) -> int:
        """Size of the main file (0 when unreadable): used to plan shard sizes."""
        if is_url(self.path):
            info = storage.stat(self.path)
            return info.size if info else 0
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0


@dataclass(frozen=True)
class PairFileReader:
    """Reads an aligned AB file and splits it into A and B."""

    a_channels: int = 3
    kind: str = "generic"
    max_pixels: int = DEFAULT_MAX_PIXELS
    swap: bool = False
    """Read the file as B|A (``shard --direction BtoA``): the right half becomes A (RGB)."""

    def __call__(self, item: SourceItem) -> PairSample:
        if self.swap:
            left, right = split_ab(read_image(item.path, self.max_pixels), 3)
            return PairSample(item.key, right, left, {"source": item.path, "kind": self.kind})
        a, b = split_ab(read_image(item.path, self.max_pixels), self.a_channels)
        return PairSample(item.key, a, b, {"source": item.path, "kind": self.kind})


@dataclass(frozen=True)
class StageSpec:
    """A picklable recipe for a stage: ``module:Class`` and its config object.

    Workers build the stage once per process (weights load once) and reuse it.
    """

    target: str
    config: Any

    def build(self) -> Any:
        return self.stage_class()(self.config)

    def stage_class(self) -> type:
        """The stage class ``target`` names (imported, not built)."""
        return load_target(self.target)

    def cache_key(self) -> str:
        return hashlib.sha256(f"{self.target}|{self.config!r}".encode()).hexdigest()


_STAGE_CACHE: dict[str, Any] = {}


def cached_stage(spec: StageSpec) -> Any:
    """The stage for ``spec`` in this process, built on first use."""
    key = spec.cache_key()
    if key not in _STAGE_CACHE:
        _STAGE_CACHE[key] = spec.build()
    return _STAGE_CACHE[key]


@dataclass(frozen=True)
class StageReader:
    """Reads a photo (plus extras) and runs a pipeline stage on it."""

    spec: StageSpec
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __call__(self, item: SourceItem) -> PairSample:
        stage = cached_stage(self.spec)
        image = read_image(item.path, self.max_pixels)
        extras: dict[str, Any] = {}
        for name, path, how in item.extras:
            reader: Callable[..., Any] = read_label_image if how == "label" else read_image
            try:
                extras[name] = reader(path, self.max_pixels)
            except SampleError as exc:
                raise SampleError(exc.reason, f"{name} {path}" + (f": {exc.detail}" if exc.detail else "")) from None
        sample = stage(image, item.key, **extras)
        sample.meta.setdefault("source", item.path)
        sample.meta.setdefault("kind", stage.kind)
        return sample

    def read_batch(self, items: list[SourceItem]) -> list[PairSample | SampleError]:
        """Like calling the reader per item, but through the stage's ``call_batch`` when it has one."""
        stage = cached_stage(self.spec)
        if not hasattr(stage, "call_batch") or any(item.extras for item in items):
            return [capture(self, item) for item in items]
        results: list[PairSample | SampleError | None] = [None] * len(items)
        images: list[Any] = []
        positions: list[int] = []
        for position, item in enumerate(items):
            try:
                images.append(read_image(item.path, self.max_pixels))
                positions.append(position)
            except SampleError as exc:
                results[position] = exc
        keys = [items[position].key for position in positions]
        try:
            outcomes = stage.call_batch(images, keys) if images else []
        except Exception:  # one bad image must not lose the batch: retry one by one
            log.exception("batched stage call failed; retrying the batch image by image")
            outcomes = [capture(lambda pair: stage(*pair), pair) for pair in zip(images, keys, strict=True)]
        for position, outcome in zip(positions, outcomes, strict=True):
            if isinstance(outcome, PairSample):
                outcome.meta.setdefault("source", items[position].path)
                outcome.meta.setdefault("kind", stage.kind)
            results[position] = outcome
        return [result for result in results if result is not None]


def capture(reader: Callable[[Any], PairSample], item: Any) -> PairSample | SampleError:
    """Run a reader on one item; any failure becomes a :class:`SampleError` (a reject, not a crash)."""
    try:
        return reader(item)
    except SampleError as exc:
        return exc
    except StorageError:  # the bucket, not this sample: stop the run instead of rejecting every input
        raise
    except MemoryError:
        return SampleError("out of memory", "while processing this image")
    except Exception as exc:  # a stage bug or library failure on odd input: report, keep going
        log.warning("unexpected %s on %s", type(exc).__name__, getattr(item, "path", item), exc_info=True)
        return SampleError("unexpected error", f"{type(exc).__name__}: {exc}")


def iter_samples(
    reader: Callable[[SourceItem], PairSample], items: list[SourceItem], batch_size: int = 16
) -> Iterator[tuple[SourceItem, PairSample | SampleError]]:
    """Yield each item with its pair or its error, batched through the stage when possible.

    Memory stays bounded by ``batch_size`` decoded images whatever the partition size.
    """
    batch = getattr(reader, "read_batch", None)
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        outcomes = batch(chunk) if batch is not None else [capture(reader, item) for item in chunk]
        yield from zip(chunk, outcomes, strict=True)
