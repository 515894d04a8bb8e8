"""Remote storage: fsspec URLs (``s3://``, ``gs://``, ``az://``, ``memory://``...) as dataset locations.

The one place pairforge talks to object storage. Everything else keeps local paths on
the code it always had and asks :func:`is_url` first; a URL goes through the few functions
here, each of which turns the protocol library's failures into one :class:`StorageError`
line naming the (sanitised) URL:

* an unknown protocol, or one whose package is missing (``pip install pairforge[s3]``);
* a missing bucket, refused credentials (never the secret), an unreachable server.

Credentials come from each library's own chain (environment, config files, instance roles);
an S3-compatible server (MinIO, moto) is named by ``AWS_ENDPOINT_URL``. A URL is recorded
(dataset.json, rejects, data cards, messages) only through :func:`safe_url`: no user-info,
no query string, no fragment.

Objects are written whole: :func:`upload` puts a finished local file (a multipart upload is
completed only at its end), so an object never appears half-written. Object stores have no
rename and no lock; see :func:`pairforge.outputs.own_output` for the lock rule.

Reading a shard set goes through :class:`Location`, the one seam between the shard reader
(:mod:`pairforge.shardset`, :func:`pairforge.tars.read_shard`, :func:`pairforge.tars.count_samples`,
:func:`pairforge.shards.verify_shard_set`) and storage: dataset.json, the stats files, the tars
(as byte streams), sizes, listings and sha256s. A local path is read with ``open``/``os.stat``;
an fsspec URL through the functions of this module; a ``pipe:`` command (what ``train`` has
always accepted) with WebDataset's ``gopen``, as a stream only.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from pairforge.errors import PairforgeError

EXTRAS = {
    "s3": "s3", "s3a": "s3",
    "gs": "gcs", "gcs": "gcs",
    "az": "azure", "abfs": "azure", "abfss": "azure", "adl": "azure",
}
"""Protocol -> the pairforge extra that installs its fsspec package (``pip install pairforge[EXTRA]``)."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class StorageError(PairforgeError):
    """Remote storage cannot be used: unknown protocol, missing bucket, refused credentials, no server.

    Raised instead of the protocol library's error (which may carry request details), with
    the URL as :func:`safe_url` writes it. Stops a run: it is not a per-sample reject (a reader
    that skips damaged shards re-raises it: a server that went away is not a damaged shard).

    Attributes:
        message: the one line (kept when a caller appends to ``args``, as WebDataset's
            handlers do).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_url(text: str | os.PathLike[str]) -> bool:
    """``scheme://...`` (any fsspec protocol, ``file://`` included); a local path otherwise."""
    return bool(_URL.match(os.fspath(text)))


def is_remote(text: str | os.PathLike[str]) -> bool:
    """Not a local path: an fsspec URL (:func:`is_url`) or a ``pipe:`` command (read as a stream)."""
    return is_url(text) or os.fspath(text).startswith("pipe:")


def safe_url(url: str | os.PathLike[str]) -> str:
    """``url`` without user-info (``key:secret@``), query string or fragment: the form pairforge records."""
    text = os.fspath(url)
    if not is_url(text):
        return text
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def join(base: str, *names: str) -> str:
    """``base/name/...`` for a URL (``/``-separated, never collapsing ``scheme://``)."""
    return "/".join([base.rstrip("/"), *(name.strip("/") for name in names)])


def parent(url: str) -> str:
    """The URL of the folder that holds ``url``."""
    scheme, _, path = url.partition("://")
    return f"{scheme}://{posixpath.dirname(path.rstrip('/'))}"


def name(url: str) -> str:
    """The last component of ``url``."""
    return posixpath.basename(url.rstrip("/"))


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system for ``url`` and the path inside it (``bucket/key``).

    Raises:
        StorageError: the protocol is unknown, or its package is not installed (names the extra).
    """
    import fsspec

    protocol = url.partition("://")[0].lower()
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError:
        extra = EXTRAS.get(protocol)
        how = f"`pip install pairforge[{extra}]`" if extra else "the fsspec package for it"
        raise StorageError(f"{safe_url(url)}: the {protocol}:// protocol needs a package that is not "
                           f"installed; install it with {how}") from None
    except ValueError:
        known = ", ".join(sorted({f"{p}://" for p in EXTRAS} | {"file://", "memory://"}))
        raise StorageError(f"{safe_url(url)}: unknown storage protocol {protocol!r}; use a local path or a "
                           f"URL fsspec knows ({known}, ...)") from None
    return fs, path


def _bucket(url: str) -> str:
    return url.partition("://")[2].split("/", 1)[0]


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError",
                         "ServerDisconnectedError", "ConnectionError", "ReadTimeoutError", "TimeoutError"})


def describe_failure(url: str, exc: BaseException, doing: str) -> str:
    """One line for a failure of the protocol library on ``url`` (no secrets, no request details)."""
    shown = safe_url(url)
    endpoint = os.environ.get("AWS_ENDPOINT_URL") if url.startswith(("s3://", "s3a://")) else None
    server = f" (server {safe_url(endpoint)})" if endpoint else ""
    if _is_connection_error(exc):
        return (f"cannot reach the storage server while {doing} {shown}{server}: {type(exc).__name__}; "
                "check that the server runs and its address (AWS_ENDPOINT_URL for S3-compatible servers), "
                "then run the command again")
    if isinstance(exc, PermissionError):
        return (f"access denied while {doing} {shown}: the credentials were refused or lack permission; "
                "check them (for S3: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)")
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"):
        return (f"no credentials found while {doing} {shown}: give them the way the storage library reads them "
                "(for S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials or an "
                "instance role; for a public bucket, anonymous access is not assumed)")
    text = str(exc)
    if isinstance(exc, FileNotFoundError) and "bucket" in text.lower():
        return f"bucket {_bucket(shown)!r} does not exist (while {doing} {shown}); create it or fix the URL"
    if isinstance(exc, FileNotFoundError):
        return f"{shown} does not exist (while {doing} it)"
    return f"storage error while {doing} {shown}: {type(exc).__name__}"


@contextmanager
def errors(url: str, doing: str) -> Iterator[None]:
    """Turn the protocol library's failures inside the block into one :class:`StorageError`."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # s3fs, gcsfs, adlfs and their HTTP clients raise their own types
        raise StorageError(describe_failure(url, exc, doing)) from None


@dataclass(frozen=True)
class ObjectInfo:
    """One object of a listing: its URL, size and a version token (ETag or mtime)."""

    url: str
    size: int
    version: str


_KNOWN: dict[str, ObjectInfo] = {}
"""Objects seen by :func:`walk` in this process: planning asks their size and version without a request each."""


def _info_of(url: str, info: dict[str, Any]) -> ObjectInfo:
    version = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime") or ""
    return ObjectInfo(url, int(info.get("size") or 0), str(version).strip('"'))


def walk(root: str) -> list[tuple[str, str]]:
    """Every object under the URL ``root``, sorted: ``(url, path relative to root)``.

    Raises:
        StorageError: no objects under ``root``, a missing bucket, refused credentials, no server.
    """
    fs, path = filesystem(root)
    base = safe_url(root).rstrip("/")
    with errors(root, "listing"):
        found = fs.find(path, detail=True)
    prefix = path.rstrip("/") + "/"
    entries = []
    for key, info in sorted(found.items()):
        if info.get("type") == "directory" or not key.startswith(prefix):
            continue
        relative = key[len(prefix):]
        url = f"{base}/{relative}"
        _KNOWN[url] = _info_of(url, info)
        entries.append((url, relative))
    if not entries:
        with errors(root, "listing"):
            fs.ls(path)  # a missing bucket or folder says so
        raise StorageError(f"input folder {base} does not exist or holds no objects")
    return entries


def stat(url: str) -> ObjectInfo | None:
    """Size and version of the object at ``url`` (None when there is none)."""
    if url in _KNOWN:
        return _KNOWN[url]
    fs, path = filesystem(url)
    try:
        with errors(url, "reading"):
            return _info_of(url, fs.info(path))
    except StorageError:
        if not exists(url):
            return None
        raise


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    with errors(url, "reading"):
        return bool(fs.exists(path))


def read_bytes(url: str) -> bytes:
    """The whole object (FileNotFoundError when there is none; other failures: :class:`StorageError`)."""
    fs, path = filesystem(url)
    try:
        with fs.open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        if "bucket" in str(exc).lower():
            raise StorageError(describe_failure(url, exc, "reading")) from None
        raise FileNotFoundError(safe_url(url)) from None
    except Exception as exc:
        raise StorageError(describe_failure(url, exc, "reading")) from None


def stream_sha256(stream: BinaryIO) -> str:
    """Hex sha256 of what is left in a binary ``stream``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256(url: str) -> str:
    """Hex sha256 of an object, streamed in 1 MiB blocks."""
    fs, path = filesystem(url)
    with errors(url, "reading"), fs.open(path, "rb") as handle:
        return stream_sha256(handle)


def upload(local: str | os.PathLike[str], url: str) -> None:
    """Put a finished local file at ``url`` (the object appears only once complete)."""
    fs, path = filesystem(url)
    with errors(url, "writing"):
        fs.put_file(os.fspath(local), path)


def remove(url: str) -> None:
    """Delete the object at ``url`` if there is one."""
    fs, path = filesystem(url)
    with errors(url, "deleting"):
        if fs.exists(path):
            fs.rm_file(path)
    _KNOWN.pop(url, None)


def names(folder: str) -> list[str]:
    """Names of the objects directly in the URL ``folder`` (empty when there are none)."""
    fs, path = filesystem(folder)
    with errors(folder, "listing"):
        try:
            entries = fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError as exc:
            if "bucket" in str(exc).lower():
                raise
            return []
    return sorted(posixpath.basename(entry.rstrip("/")) for entry in entries)


def check_writable(folder: str, what: str) -> None:
    """Write and delete a probe object in ``folder``: a missing bucket or refused credentials fail here.

    Raises:
        StorageError: naming the folder and the cause.
    """
    import uuid

    probe = join(folder, f".pairforge-write-test-{uuid.uuid4().hex}")
    fs, path = filesystem(probe)
    with errors(folder, f"writing the {what}"):
        fs.pipe_file(path, b"ok")
        fs.rm_file(path)


def child(folder: str | os.PathLike[str], entry: str) -> Any:
    """``folder/entry``: a :class:`~pathlib.Path` for a local folder, a URL ``str`` for a URL."""
    from pathlib import Path

    return join(os.fspath(folder), entry) if is_url(folder) else Path(folder) / entry


@dataclass(frozen=True)
class Location:
    """A file or folder of a shard set, named by a location string: a local path, an fsspec URL
    (:func:`is_url`) or a ``pipe:`` command.

    Attributes:
        url: the location as the user or dataset.json named it (``str(location)`` gives it back).
    """

    url: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", os.fspath(self.url))

    def __str__(self) -> str:
        return safe_url(self.url)

    @property
    def remote(self) -> bool:
        """Not a local path: an fsspec URL or a ``pipe:`` command."""
        return is_remote(self.url)

    @property
    def pipe(self) -> bool:
        """A ``pipe:`` command: readable as a stream only (no size, listing or seeking)."""
        return self.url.startswith("pipe:")

    @property
    def name(self) -> str:
        from pathlib import Path

        return self.url.rstrip("/").rsplit("/", 1)[-1] if self.remote else Path(self.url).name

    @property
    def parent(self) -> Location:
        if self.remote:
            return Location(self.url.rstrip("/").rsplit("/", 1)[0])
        from pathlib import Path

        return Location(str(Path(self.url).parent))

    def child(self, name: str) -> Location:
        """``name`` inside this folder (local paths joined as :class:`pathlib.Path` joins them)."""
        from pathlib import Path

        if self.remote:
            return Location(f"{self.url.rstrip('/')}/{name}")
        return Location(str(Path(self.url) / name))

    def is_dir(self) -> bool:
        if self.pipe:
            return False
        if self.remote:
            fs, path = filesystem(self.url)
            with errors(self.url, "reading"):
                return bool(fs.isdir(path))
        return os.path.isdir(self.url)

    def is_file(self) -> bool:
        if self.pipe:
            return False
        if self.remote:
            return stat(self.url) is not None
        return os.path.isfile(self.url)

    def stat(self) -> os.stat_result:
        """Size and kind of a file (follows links; an object is a regular file of its size).

        Raises:
            OSError: missing or unreadable, or a ``pipe:`` command (no size to tell).
            StorageError: the storage cannot be reached (a URL).
        """
        if self.pipe:
            raise OSError(f"{self.url}: a command's output has no size")
        if self.remote:
            import stat as stat_module

            info = stat(self.url)
            if info is None:
                raise FileNotFoundError(safe_url(self.url))
            return os.stat_result((stat_module.S_IFREG | 0o444, 0, 0, 1, 0, 0, info.size, 0, 0, 0))
        return os.stat(self.url)

    def list(self) -> list[str]:
        """Names in this folder, sorted (a ``pipe:`` command: none)."""
        if self.pipe:
            return []
        if self.remote:
            return names(self.url)
        return sorted(os.listdir(self.url))

    def read_bytes(self) -> bytes:
        """The whole file: a metadata file (dataset.json, a stats file).

        A local file must be a regular file (:func:`pairforge.files.read_regular`: a FIFO in its
        place is an error, not a read that waits forever).

        Raises:
            OSError: missing, unreadable or not a regular file.
            StorageError: the storage cannot be reached (a URL).
        """
        if self.pipe:
            with self.open() as stream:
                return stream.read()
        if self.remote:
            return read_bytes(self.url)
        from pairforge.files import read_regular

        return read_regular(self.url)

    def open(self, buffering: int = -1) -> BinaryIO:
        """A binary read stream; a local file's or an object's is seekable, a command's is not.

        Raises:
            OSError: the file cannot be opened.
            StorageError: the storage cannot be reached (a URL).
        """
        if self.pipe:
            from webdataset import gopen  # imports torch: only for commands

            return gopen(self.url, "rb")
        if self.remote:
            fs, path = filesystem(self.url)
            try:
                return _Guarded(fs.open(path, "rb"), self.url)
            except FileNotFoundError:
                raise FileNotFoundError(safe_url(self.url)) from None
            except Exception as exc:
                raise StorageError(describe_failure(self.url, exc, "reading")) from None
        return open(self.url, "rb", buffering=buffering)  # noqa: SIM115 (the caller closes it)

    def sha256(self) -> str:
        """Hex sha256 of the whole file, read in 1 MiB blocks."""
        if self.pipe:
            with self.open() as stream:
                return stream_sha256(stream)
        if self.remote:
            return sha256(self.url)
        from pairforge.files import file_sha256

        return file_sha256(self.url)


class _Guarded:
    """An object's read stream whose failures (the server went away mid-read) are :class:`StorageError`
    lines naming the URL, not the protocol library's errors, which a tar reader would take for a
    damaged shard."""

    def __init__(self, stream: Any, url: str) -> None:
        self._stream, self._url = stream, url

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._stream, attribute)

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._stream, method)(*args)
        except Exception as exc:
            raise StorageError(describe_failure(self._url, exc, "reading")) from None

    def read(self, size: int = -1) -> bytes:
        return self._call("read", size)

    def readinto(self, buffer: Any) -> int:
        return self._call("readinto", buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._call("seek", offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
