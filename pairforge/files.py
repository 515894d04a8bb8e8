"""Files written whole or not at all, and file checksums.

Every pairforge writer (images, JSON, shard tars, reports) writes to a temporary
name next to the target and renames it into place, so a reader never sees half a
file and an interrupted writer leaves only a ``.<name>.tmp<pid>`` file, which
the pair-folder reader recognises and skips.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pairforge.errors import PairforgeError
from pairforge.paths import describe_path
from pairforge.storage import is_url, stream_sha256, upload

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(PairforgeError, OSError):
    """No space (or quota) left while writing a file: names the file and the free space.

    Also an :class:`OSError` (``errno`` ENOSPC or EDQUOT), so code that handles I/O errors
    still handles it; the CLI reports it as one line.
    """

    def __init__(self, path: str | os.PathLike[str], code: int = errno.ENOSPC, needed: int | None = None) -> None:
        path = Path(path)
        free = free_bytes(path.parent)
        what = "quota exceeded" if code == errno.EDQUOT else "no space left on the device"
        message = f"{what} while writing {describe_path(path)}"
        if free is not None:
            message += f" ({format_bytes(free)} free in {describe_path(path.parent)}"
            message += f", {format_bytes(needed)} needed)" if needed else ")"
        message += "; free some space or write elsewhere, then run the command again"
        super().__init__(message)
        self.errno = code
        self.filename = os.fspath(path)
        self.needed = needed
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, int, int | None]]:  # survives pickling across processes
        return (type(self), (self.filename, self.errno, self.needed))


def is_disk_full(exc: BaseException) -> bool:
    """True for an OSError saying the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Bytes free to this user on ``folder``'s file system (None when it cannot be asked)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def format_bytes(count: int) -> str:
    """``1536 -> '1.5 KiB'``: a byte count for a message."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def temporary_name(path: Path) -> Path:
    """The temporary a writer of ``path`` uses: ``.<name>.tmp<pid>`` in the same folder."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


_TEMPORARY = re.compile(r"^\.(pairforge-write-test-[0-9a-f]+|.+\.tmp(-?\d+)?)$")


def is_temporary_name(name: str) -> bool:
    """A file name pairforge's writers use while writing: :func:`temporary_name` (``.x.png.tmp12``;
    ``.t.tar.tmp-12`` from older versions) or the write probe of :func:`pairforge.paths.ensure_output_dir`."""
    return bool(_TEMPORARY.match(name))


LOCK_NAME = ".pairforge.lock"
"""The lock file of a folder a pairforge command owns (:mod:`pairforge.locks`)."""


def is_own_file(name: str) -> bool:
    """A file pairforge keeps in a folder for its own use (a temporary or the folder's lock): never an input."""
    return name == LOCK_NAME or is_temporary_name(name)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` (else it is removed).

    ``path`` may be a URL: the temporary is then a local file (in the temp folder,
    ``TMPDIR``), uploaded to the URL once the block succeeds.

    Raises:
        DiskFullError: the disk filled up while writing (the temporary is removed, ``path``
            is untouched).
        StorageError: the upload of a URL target failed (nothing appears at the URL).
    """
    if is_url(path):
        with _uploaded(os.fspath(path)) as tmp:
            yield tmp
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(path, exc.errno) from None
        raise


@contextmanager
def _uploaded(url: str) -> Iterator[Path]:
    """A local temporary that is uploaded to ``url`` when the block succeeds, and removed in any case."""
    handle, name = tempfile.mkstemp(prefix=".pairforge-upload-", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        upload(tmp, url)
    except BaseException as exc:
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(tmp, exc.errno) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> int:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns the byte count."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
    return len(raw)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file (or an object at a URL), read in 1 MiB blocks."""
    if is_url(path):
        from pairforge.storage import sha256

        return sha256(os.fspath(path))
    with open(path, "rb") as stream:
        return stream_sha256(stream)


def file_type(mode: int) -> str:
    """What a file that is not a regular file is (from its ``st_mode``), for messages."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return f"file mode {stat.filemode(mode)}"


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a metadata file (pairs.json, manifest.jsonl, dataset.json, a split or palette file).

    Opened without blocking and read only when it is a regular file, so a FIFO or device
    put in its place is an error instead of a read that waits forever.

    Raises:
        OSError: the file cannot be opened, or is not a regular file (``EINVAL``, naming what it is).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({file_type(mode)})", os.fspath(path))
        return handle.read()
