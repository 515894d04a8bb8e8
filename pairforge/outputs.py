"""Claiming an output folder: the one rule every command that writes a folder goes through.

:func:`own_output` refuses, before any work,

* an output folder that is (or lies inside) one of the command's input folders, or contains
  one (:func:`pairforge.paths.refuse_nested`): a rerun would read its own outputs back as
  input, or a cleanup would remove its input;
* a folder that holds what *another* command wrote (:func:`refuse_foreign`): a builder's
  ``-o`` onto a shard set, ``shard -o`` onto a pair folder, a check report into a run folder
  would overwrite or mix with files it does not own;
* a folder that cannot be written (:func:`pairforge.paths.ensure_output_dir`);

and then holds the folder's lock (:func:`pairforge.locks.hold`) until the command ends, so a
second command writing the same folder stops at once and names the first.

A URL output (``--shards s3://bucket/shards``, :mod:`pairforge.storage`) goes through the
same checks (nesting compared on the URLs, another command's marker objects, a probe object
written and deleted) but is not locked: an object store has no lock that its server releases
when the holder dies (a ``kill -9`` would leave a lock object for a person to delete), and a
shard set's objects are each written whole, so two writers of the same set never leave a
torn object. Only shard sets may be written to a URL so far.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pairforge import storage
from pairforge.locks import hold
from pairforge.paths import OutputError, describe_path, ensure_output_dir, is_remote, refuse_nested
from pairforge.storage import is_url

PAIR_FOLDER = "pair folder"
SHARD_FOLDER = "shard folder"
CHECK_FOLDER = "check folder"
RUN_FOLDER = "run folder"

MARKERS: tuple[tuple[str, str, str], ...] = (
    ("dataset.json", SHARD_FOLDER, "`pairforge shard` or a builder's --shards"),
    ("pairs.json", PAIR_FOLDER, "a builder (make-*, combine)"),
    ("manifest.jsonl", PAIR_FOLDER, "a builder (make-*, combine)"),
    ("check.json", CHECK_FOLDER, "`pairforge check`"),
    ("checkpoints", RUN_FOLDER, "`pairforge train`"),
)
"""``(file in the folder, what the folder is, which command writes it)``: how a folder says who made it."""


def made_by(folder: str | os.PathLike[str]) -> list[tuple[str, str, str]]:
    """The :data:`MARKERS` present in ``folder`` (a folder or a URL; none for one no pairforge command wrote)."""
    if is_url(folder):
        present = set(storage.names(os.fspath(folder)))
        return [marker for marker in MARKERS if marker[0] in present]
    folder = Path(folder)
    return [marker for marker in MARKERS if (folder / marker[0]).exists()]


def refuse_foreign(folder: str | os.PathLike[str], what: str) -> None:
    """Refuse to write a ``what`` into a folder that holds another command's output.

    Raises:
        OutputError: naming the folder, what it holds, the file that says so and what to do.
    """
    for marker, kind, command in made_by(folder):
        if kind != what:
            raise OutputError(
                f"{describe_path(folder)} is a {kind} ({marker}, written by {command}), not a {what}: writing "
                f"here would overwrite or mix with its files; choose another output folder"
            )


def check_output(
    folder: str | os.PathLike[str],
    what: str,
    inputs: Mapping[str | os.PathLike[str], str] | None = None,
) -> None:
    """The checks of :func:`own_output` without creating or locking anything (to fail before slow preparation).

    Raises:
        OutputError: ``folder`` is nested with an input or holds another command's output.
    """
    for source, source_what in (inputs or {}).items():
        refuse_nested(source, folder, source_what, what)
    if is_url(folder):
        if what != SHARD_FOLDER:
            raise OutputError(f"{describe_path(folder)}: a {what} cannot be written to a URL yet; write it to a "
                              "local folder (a builder's --shards and `pairforge shard -o` accept URLs)")
        refuse_foreign(folder, what)
    elif not is_remote(os.fspath(folder)):
        refuse_foreign(folder, what)


@contextmanager
def own_output(
    folder: str | os.PathLike[str],
    what: str,
    inputs: Mapping[str | os.PathLike[str], str] | None = None,
) -> Iterator[Path]:
    """Check ``folder`` against the rules above, create it, and own it for the ``with`` block.

    Args:
        folder: the output folder (created when missing).
        what: what the command writes there (:data:`PAIR_FOLDER`, :data:`SHARD_FOLDER`, ...).
        inputs: the command's input folders, each with how messages name it.

    Raises:
        OutputError: nested with an input, another command's output, or not writable.
        FolderBusyError: another process owns the folder.
    """
    check_output(folder, what, inputs)
    if is_url(folder):  # no lock on a bucket: see the module's docstring
        yield ensure_output_dir(folder, what)
        return
    if is_remote(os.fspath(folder)):
        yield Path(folder)
        return
    path = ensure_output_dir(folder, what)
    with hold(path, what):
        yield path
