"""Files written whole or not at all, and file checksums.

Every pairforge writer (images, JSON, shard tars, reports) writes to a temporary
name next to the target and renames it into place, so a reader never sees half a
file and an interrupted writer leaves only a ``.<name>.tmp<pid>`` file, which
the pair-folder reader recognises and skips.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """The temporary a writer of ``path`` uses: ``.<name>.tmp<pid>`` in the same folder."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


_TEMPORARY = re.compile(r"^\.(pairforge-write-test-[0-9a-f]+|.+\.tmp(-?\d+)?)$")


def is_temporary_name(name: str) -> bool:
    """A file name pairforge's writers use while writing: :func:`temporary_name` (``.x.png.tmp12``;
    ``.t.tar.tmp-12`` from older versions) or the write probe of :func:`pairforge.paths.ensure_output_dir`."""
    return bool(_TEMPORARY.match(name))


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` (else it is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> int:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns the byte count."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
    return len(raw)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
