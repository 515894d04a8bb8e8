"""The pair folder: the official pix2pix aligned layout plus pairforge's metadata.

```
pairs/
  train/<key>.png   A on the left, B on the right, same height
  val/<key>.png     (splits optional; a flat folder is one split)
  manifest.jsonl    one row per pair: key, source path, sizes, kind, sha256
  rejects.jsonl     one row per input that was not used: path, reason
  pairs.json        kind, channels, palette, the stage parameters and the command
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import numpy as np

from pairforge import __version__, storage
from pairforge.descriptions import upgrade
from pairforge.errors import DatasetError, SampleError, reject_row
from pairforge.files import atomic_path, is_own_file, read_regular, write_atomic
from pairforge.imageio import is_image_path
from pairforge.paths import absolute, has_surrogates
from pairforge.storage import is_url, safe_url
from pairforge.storage import walk as storage_walk

PAIRS_FORMAT = "pairforge.pairs/1"
MANIFEST_NAME = "manifest.jsonl"
REJECTS_NAME = "rejects.jsonl"
INFO_NAME = "pairs.json"
METADATA_NAMES = frozenset({MANIFEST_NAME, REJECTS_NAME, INFO_NAME})
IMAGE_FORMATS = ("png", "jpg")
"""Formats of the AB files (``--format``): PNG (lossless, the default) or JPEG."""


@dataclass(frozen=True)
class PairsInfo:
    """Contents of ``pairs.json``: what the pairs are and how they were made."""

    kind: str = "generic"
    a_channels: int = 3
    b_channels: int = 3
    palette: dict[str, Any] | None = None
    stage: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    created_by: str = f"pairforge {__version__}"
    format: str = PAIRS_FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PairsInfo:
        known = {name for name in cls.__dataclass_fields__}
        values = {name: value for name, value in data.items() if name in known}
        values["stage"] = upgrade(values.get("stage"), str(values.get("kind", "")))  # any pairforge version
        return cls(**values)

    @classmethod
    def read(cls, pairs_dir: str | os.PathLike[str]) -> PairsInfo | None:
        """Read ``pairs.json`` if present (official datasets have none); ``pairs_dir`` may be a URL."""
        if is_url(pairs_dir):
            path: Any = storage.join(os.fspath(pairs_dir), INFO_NAME)
            try:
                data = storage.read_bytes(path)
            except FileNotFoundError:
                return None
        else:
            path = Path(pairs_dir) / INFO_NAME
            if not path.exists():
                return None
            data = read_regular(path)
        try:
            return cls.from_json(json.loads(data.decode("utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
            raise DatasetError(f"{path} is not a valid pairs.json: {exc}") from None

    def write(self, pairs_dir: str | os.PathLike[str]) -> Path:
        path = Path(pairs_dir) / INFO_NAME
        write_json(path, self.to_json())
        return path


@dataclass(frozen=True)
class FoundFile:
    """A file discovered under an input folder."""

    path: str
    split: str
    """Split from a top-level ``train/``, ``val/``, ``test/``... folder; ``""`` for flat folders."""
    stem: str
    """Path relative to the split folder, without extension, ``/``-separated."""


def discover(root: str | os.PathLike[str], skip_metadata: bool = True) -> tuple[list[FoundFile], list[dict[str, str]]]:
    """Find every file under ``root``, recursively, in sorted order.

    When ``root`` has ``train/``, ``val/`` or ``test/`` subfolders, every top-level
    subfolder is a split and files directly in ``root`` are rejected; otherwise the
    folder is one flat split. Files without an image extension are rejected too, and
    so are hidden files (``.name``; a hidden folder is one reject row), so inputs
    seen = found + rejected. Paths are absolute (see :func:`pairforge.paths.absolute`),
    so any Dask worker resolves them alike.

    Returns:
        (image files, reject rows ``{"path", "reason"}``).
    """
    entries: list[tuple[str, PurePath, str]]
    if is_url(root):
        entries = _walk_url(os.fspath(root))
        subdirs = sorted({rel.parts[0] for _, rel, _ in entries if len(rel.parts) > 1})
    else:
        root = Path(absolute(root))
        if not root.exists():
            raise DatasetError(f"input folder {root} does not exist")
        if not root.is_dir():
            raise DatasetError(f"{root} is not a folder")
        subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        entries = [(str(path), path.relative_to(root), hidden) for path, hidden in _walk(root)]
    has_splits = any(name in ("train", "val", "test") for name in subdirs)
    found: list[FoundFile] = []
    rejects: list[dict[str, str]] = []
    for path, relative, hidden in entries:
        if skip_metadata and len(relative.parts) == 1 and relative.name in METADATA_NAMES:
            continue
        if hidden:
            rejects.append(_not_input(path, hidden))
            continue
        if has_splits:
            if len(relative.parts) == 1:
                rejects.append(reject_row(path, "outside split folders",
                                          "the folder has train/, val/ or test/; files beside them are not used"))
                continue
            split, inner = relative.parts[0], type(relative)(*relative.parts[1:])
        else:
            split, inner = "", relative
        if not is_image_path(path):
            rejects.append(reject_row(path, "unsupported file type", repr(relative.suffix or "(none)")))
            continue
        found.append(FoundFile(path, split, inner.with_suffix("").as_posix()))
    return found, rejects


def _walk_url(root: str) -> list[tuple[str, PurePath, str]]:
    """The objects under the URL ``root`` as :func:`_walk` sees files: ``(url, relative, hidden)``.

    Listed by the client only (no object is read); a hidden "folder" (a key component
    starting with ``.``) is one entry, pairforge's own temporaries are left out.
    """
    entries: list[tuple[str, PurePath, str]] = []
    hidden_folders: set[str] = set()
    base = safe_url(root).rstrip("/")
    for url, relative_text in storage_walk(root):
        relative = PurePosixPath(relative_text)
        if is_own_file(relative.name):
            continue
        folders = [index for index, part in enumerate(relative.parts[:-1]) if part.startswith(".")]
        if folders:
            folder = "/".join(relative.parts[: folders[0] + 1])
            if folder not in hidden_folders:
                hidden_folders.add(folder)
                entries.append((f"{base}/{folder}", PurePosixPath(folder), "hidden folder"))
            continue
        entries.append((url, relative, "hidden file" if relative.name.startswith(".") else ""))
    return entries


def list_images(root: str | os.PathLike[str], skip_metadata: bool = True) -> tuple[list[Any], list[dict[str, str]]]:
    """The images of ``root``, one file or a folder searched recursively, by :func:`discover`'s rule without splits.

    Hidden files and folders (``.name``) and files without an image extension are reject rows,
    pairforge's own files are left out, and a file given alone is judged as it would be in a
    folder. Nothing is opened here: a FIFO, a link loop or a broken file is listed, and the
    image reader turns it into a reject with its reason. So inputs seen = listed + rejected.
    (``predict`` reads its inputs this way: every subfolder is searched, none is a split.)

    A URL folder (``s3://bucket/inputs``) is listed through :mod:`pairforge.storage`; its
    images are URL strings, read later by the image reader.

    Returns:
        (absolute paths (URLs) of the image files in sorted order, reject rows ``{"path", "reason", "detail"}``).

    Raises:
        DatasetError: ``root`` does not exist.
        StorageError: a URL folder that holds no objects, or storage that cannot be used.
    """
    if is_url(root):
        urls, url_rejects = [], []
        for url, relative, hidden in _walk_url(os.fspath(root)):
            if skip_metadata and len(relative.parts) == 1 and relative.name in METADATA_NAMES:
                continue
            if hidden:
                url_rejects.append(_not_input(url, hidden))
            elif not is_image_path(url):
                url_rejects.append(reject_row(url, "unsupported file type", repr(relative.suffix or "(none)")))
            else:
                urls.append(url)
        return urls, url_rejects
    root = Path(absolute(root))
    if root.is_dir():
        entries: Iterable[tuple[Path, str]] = _walk(root)
    elif os.path.lexists(root):
        entries = [(root, "hidden file" if root.name.startswith(".") else "")]
    else:
        raise DatasetError(f"{root} does not exist")
    found: list[Path] = []
    rejects: list[dict[str, str]] = []
    for path, hidden in entries:
        if skip_metadata and path.parent == root and path.name in METADATA_NAMES:
            continue
        if hidden:
            rejects.append(_not_input(path, hidden))
        elif not is_image_path(path):
            rejects.append(reject_row(str(path), "unsupported file type", repr(path.suffix or "(none)")))
        else:
            found.append(path)
    return found, rejects


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """Files under ``root`` in sorted order, each with ``""`` or why it is not an input.

    The reason is ``"hidden file"``/``"hidden folder"`` (a hidden folder is yielded once, not
    entered) or ``"folder visited already"`` (a symbolic link to a folder this walk has entered, or
    will: a link loop, or two links to one folder, whose files would be read twice). Other links to
    folders are followed, so a folder of links to the real data is read as it looks. pairforge's own
    files (temporaries ``.<name>.tmp...``, ``.pairforge-...``, the folder's lock) are not inputs and
    are left out.
    """
    entered = {os.path.realpath(root)}
    for directory, dirnames, filenames in os.walk(root, followlinks=True):
        entries = [(name, "hidden folder") for name in dirnames if name.startswith(".")]
        visible = sorted(name for name in dirnames if not name.startswith("."))
        real = {name: os.path.realpath(os.path.join(directory, name)) for name in visible}
        dirnames[:] = []
        for name in visible:
            if real[name] in entered or os.path.islink(os.path.join(directory, name)) and any(
                    real[name] == real[other] for other in visible if other != name
                    and not os.path.islink(os.path.join(directory, other))):
                entries.append((name, "folder visited already"))
            else:
                entered.add(real[name])
                dirnames.append(name)
        entries += [(name, "hidden file" if name.startswith(".") else "")
                    for name in filenames if not is_own_file(name)]
        for name, reason in sorted(entries):
            yield Path(directory) / name, reason


def _not_input(path: Path, reason: str) -> dict[str, str]:
    """The reject row of a file or folder :func:`_walk` does not read."""
    if reason.startswith("hidden"):
        return reject_row(str(path), reason, "name starts with '.'")
    return reject_row(str(path), reason, f"{os.path.realpath(path)} is read once, through another path")


def split_ab(ab: np.ndarray, a_channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Split an aligned AB image into A (left half) and B (right half).

    Args:
        ab: ``(H, 2W, 3)`` uint8.
        a_channels: 1 returns A as ``(H, W)`` (its first channel).

    Raises:
        SampleError: odd width or empty halves.
    """
    height, width = ab.shape[:2]
    if width % 2:
        raise SampleError("odd width", f"{width} px: an AB image must be two halves of equal width")
    if height == 0 or width < 2:
        raise SampleError("empty halves", f"{width}x{height}")
    half = width // 2
    a, b = ab[:, :half], ab[:, half:]
    if a_channels == 1:
        a = np.ascontiguousarray(a[..., 0])
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def join_ab(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Place A left of B; single-channel A is replicated to RGB as the official layout expects."""
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.concatenate([a, b], axis=1)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically, pretty and with sorted keys (stable diffs)."""
    # ASCII escapes: names that are not valid UTF-8 (lone surrogates) survive as \udcXX
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines atomically; returns the row count.

    Rows are UTF-8 text; a row holding a file name that is not valid UTF-8 (a ``str`` with
    lone surrogates, as Python decodes such names) is written with ASCII escapes instead,
    which :func:`read_jsonl` turns back into the same ``str`` (and :func:`os.fsencode`
    into the original bytes): the name is kept losslessly.
    """
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            line = json.dumps(row, sort_keys=True, ensure_ascii=False)
            if has_surrogates(line):
                line = json.dumps(row, sort_keys=True)
            handle.write(line + "\n")
            count += 1
    return count


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file or object (none when it is missing)."""
    if is_url(path):
        try:
            data = storage.read_bytes(os.fspath(path))
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in read_regular(path).decode("utf-8").splitlines() if line.strip()]


def reason_class(reason: str) -> str:
    """Group reject reasons for summary tables: the text before the first colon."""
    return reason.split(":", 1)[0].strip()


class NothingUsableError(DatasetError):
    """No input gave a pair: the output would be an empty dataset.

    Args:
        out_dir: the folder that was written (manifests and rejects are there).
        seen: inputs seen.
        rejected: reject reason class -> count.
        rejects_file: where the reasons are listed one per input.
    """

    def __init__(self, out_dir: str, seen: int, rejected: dict[str, int], rejects_file: str | os.PathLike[str]) -> None:
        if seen == 0:
            detail = "no input files were found"
        else:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(rejected.items(), key=lambda kv: -kv[1]))
            detail = f"all {seen} inputs were rejected ({reasons}); one reason per input in {rejects_file}"
        super().__init__(f"nothing usable for {out_dir}: {detail}")


def summary_rows(seen: int, written: int, rejected: dict[str, int]) -> list[tuple[str, int]]:
    """Seen / written / rejected (then each reason, most common first) for summary tables."""
    rows = [("seen", seen), ("written", written), ("rejected", sum(rejected.values()))]
    return rows + [(f"  {reason}", count) for reason, count in sorted(rejected.items(), key=lambda kv: -kv[1])]
