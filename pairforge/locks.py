"""One process owns an output folder: an OS file lock on ``<folder>/.pairforge.lock``.

A run folder, a shard set being written and a pair folder being built each have one
writer at a time. The lock is ``flock(2)`` on a file in the folder: the kernel releases it
when the holder exits in any way (a crash or ``kill -9`` included), so a stale lock never
needs cleaning by hand. The file records who holds it (pid, host, command, start time),
so the second process can say which one is in its way.

The file is removed on a clean release. A process that opened the file just before it was
removed would lock an orphaned inode, so :func:`hold` checks, after locking, that the path
still names the inode it locked, and retries otherwise.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pairforge.errors import PairforgeError
from pairforge.files import LOCK_NAME
from pairforge.paths import describe_path, os_reason


class FolderBusyError(PairforgeError):
    """Another process holds the folder's lock."""


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder``."""
    return Path(folder) / LOCK_NAME


def holder(folder: str | os.PathLike[str]) -> dict[str, object] | None:
    """What the lock file of ``folder`` says about its holder (None when absent or unreadable)."""
    try:
        return json.loads(lock_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _describe_holder(info: dict[str, object] | None) -> str:
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("since", 0))))
    where = "" if info.get("host") == socket.gethostname() else f" on {info.get('host')}"
    return f"process {info.get('pid')}{where} ({info.get('command')}, since {since})"


@contextmanager
def hold(folder: str | os.PathLike[str], what: str = "folder") -> Iterator[Path]:
    """Own ``folder`` (which must exist) for the duration of the ``with`` block.

    Args:
        folder: the output folder to own.
        what: how messages name it ("run folder", "shard set", "pair folder").

    Raises:
        FolderBusyError: another live process holds the lock; the message names it and
            what to do next.
    """
    path = lock_path(folder)
    handle = _acquire(path, what)
    try:
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        handle.close()  # releases the lock


def _acquire(path: Path, what: str) -> BinaryIO:
    while True:
        try:
            handle = open(path, "a+b")  # kept open while the lock is held
        except OSError as exc:
            raise FolderBusyError(f"cannot lock {what} {describe_path(path.parent)}: {os_reason(exc)}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderBusyError(f"cannot lock {what} {describe_path(path.parent)}: {os_reason(exc)}") from None
            raise FolderBusyError(
                f"{what} {describe_path(path.parent)} is in use by {_describe_holder(holder(path.parent))}; "
                "wait for it to finish or stop it, or choose another output folder"
            ) from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # the file was removed by its previous holder: lock the new one
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(["pairforge", *sys.argv[1:]]) if sys.argv else "pairforge",
        "since": time.time(),
    }
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(record).encode("utf-8", "backslashreplace") + b"\n")
    handle.flush()
    return handle
