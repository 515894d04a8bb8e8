"""Path rules shared by every command: absolute on the client, writable before work, lossless in JSON.

* :func:`absolute` is applied to every input and output folder before a Dask graph is
  built, so a worker started in another working folder (``dask worker`` elsewhere, or on
  another machine sharing the file system) reads and writes the same files.
* :func:`ensure_output_dir` creates an output folder and proves it is writable before any
  image is decoded, so a read-only or impossible folder is one clear error, not a traceback
  after minutes of work.
* :func:`relative_source` records where a sample came from relative to its input root, so
  identical data gives identical shard bytes however the input folder was spelled.
* File names that are not valid UTF-8 reach Python as ``str`` with lone surrogates
  (``surrogateescape``); :func:`text_for_json` keeps them losslessly (JSON ``\\udcXX``
  escapes, which :func:`os.fsencode` turns back into the original bytes).
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from pairforge.errors import PairforgeError
from pairforge.storage import is_remote, is_url, safe_url


class OutputError(PairforgeError):
    """An output folder that cannot be created or written."""


def absolute(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute against this process's working folder (symlinks kept); a URL as given."""
    text = os.fspath(path)
    return text if is_url(text) else os.path.abspath(text)


def ensure_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) and check that a file can be written in it.

    A URL (see :mod:`pairforge.storage`) has no folder to create: a probe object is written
    and deleted there instead, and the URL is returned as given (a ``str``).

    Raises:
        OutputError: naming the folder and the cause (permission, read-only file system,
            a parent that is a file, no space...).
        StorageError: a URL whose bucket is missing, whose credentials are refused or whose
            server cannot be reached.
    """
    if is_url(path):
        from pairforge.storage import check_writable

        check_writable(os.fspath(path), what)
        return os.fspath(path)  # type: ignore[return-value]  # a URL stays a str
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".pairforge-write-test-{uuid.uuid4().hex}"
        with open(probe, "wb") as handle:
            handle.write(b"ok")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to {what} {describe_path(folder)}: {os_reason(exc)}") from None
    return folder


def refuse_nested(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    input_what: str = "input folder",
    output_what: str = "output folder",
) -> None:
    """Refuse an output folder that is, or lies inside, the input folder, and the reverse.

    An output inside its input is read back as input on the next run (pairs built from
    their own pairs); an input inside its output can be changed or removed while it is read.
    Both are compared after resolving symbolic links, so ``ph/../ph`` or a link to the
    input counts too. Two URLs are compared as written (without user-info or query); a URL
    and a local path never nest.

    Raises:
        OutputError: naming both folders and what to do instead.
    """
    if is_url(input_dir) and is_url(output_dir):
        source_url, target_url = (safe_url(url).rstrip("/") + "/" for url in (input_dir, output_dir))
        same = source_url == target_url
        inside, contains = target_url.startswith(source_url), source_url.startswith(target_url)
    elif is_remote(os.fspath(input_dir)) or is_remote(os.fspath(output_dir)):
        return
    else:
        source, target = Path(os.path.realpath(input_dir)), Path(os.path.realpath(output_dir))
        same, inside, contains = source == target, source in target.parents, target in source.parents
    if same:
        raise OutputError(
            f"the {output_what} {describe_path(output_dir)} is the {input_what}: its outputs would be read "
            "back as input and its files overwritten; choose another output folder (-o)"
        )
    if inside:
        raise OutputError(
            f"the {output_what} {describe_path(output_dir)} is inside the {input_what} "
            f"{describe_path(input_dir)}: a rerun would read its outputs back as input; "
            "choose an output folder outside it (-o)"
        )
    if contains:
        raise OutputError(
            f"the {input_what} {describe_path(input_dir)} is inside the {output_what} "
            f"{describe_path(output_dir)}, which this command writes and cleans; "
            "choose an output folder that does not contain the input (-o)"
        )


def os_reason(exc: OSError) -> str:
    """The human part of an OSError: its strerror (or its errno name), without the Python wrapping."""
    reason = exc.strerror or (errno.errorcode.get(exc.errno or 0) if exc.errno else None) or str(exc)
    if isinstance(exc, FileExistsError) or exc.errno == errno.ENOTDIR:
        reason = f"{reason} (a file is in the way of the folder)"
    return reason


def describe_path(path: str | os.PathLike[str]) -> str:
    """A path for a message: non-UTF-8 bytes shown as ``\\xNN`` instead of failing to print; a URL
    without its user-info or query (:func:`pairforge.storage.safe_url`)."""
    if is_url(path):
        return safe_url(path)
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def relative_source(path: str, root: str | None) -> str:
    """``path`` relative to the input ``root`` (``/``-separated) when it lies inside it, else as given."""
    if not root:
        return path
    if is_url(root):
        base = safe_url(root).rstrip("/") + "/"
        return path[len(base):] if path.startswith(base) else path
    try:
        relative = os.path.relpath(path, root)
    except ValueError:  # another drive on Windows
        return path
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return path
    return relative.replace(os.sep, "/")


def has_surrogates(text: str) -> bool:
    """True for a ``str`` decoded from a non-UTF-8 file name."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
