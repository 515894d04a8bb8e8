"""Options, progress bars and summary tables shared by the commands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from pairforge.imageio import DEFAULT_MAX_PIXELS

F = TypeVar("F", bound=Callable[..., Any])


def runner_options(function: F) -> F:
    """``--workers``, ``--scheduler``, ``--max-pixels``."""
    function = click.option(
        "--max-pixels",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_PIXELS,
        show_default=True,
        help="Reject images whose header claims more pixels than this (read before decoding).",
    )(function)
    function = click.option(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        default=None,
        help="Run on a dask.distributed cluster (start one with `dask scheduler` + `dask worker`).",
    )(function)
    function = click.option(
        "-j",
        "--workers",
        type=click.IntRange(min=1, max=1024),
        default=None,
        help="Local worker processes [default: all cores].",
    )(function)
    return function


def resolve_workers(workers: int | None) -> int:
    from pairforge.runner import default_workers

    return workers if workers is not None else default_workers()


@contextmanager
def progress(total: int, description: str, unit: str = "img") -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr (hidden when not a terminal and quiet); yields an ``advance(n)`` function."""
    from tqdm import tqdm

    context = click.get_current_context(silent=True)
    quiet = bool(context and context.find_root().params.get("quiet"))
    bar = tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True, file=sys.stderr, mininterval=0.5,
               disable=quiet)
    try:
        yield bar.update
    finally:
        bar.close()


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """A two-column summary table on stdout."""
    width = max([len(title)] + [len(str(name)) for name, _ in rows])
    click.echo(f"\n{title}")
    click.echo("-" * (width + 12))
    for name, value in rows:
        click.echo(f"{str(name).ljust(width)}  {value:>10}" if isinstance(value, int) else f"{str(name).ljust(width)}  {value}")


def command_line() -> str:
    """The command as the user typed it (recorded in pairs.json and data cards)."""
    import shlex

    context = click.get_current_context(silent=True)
    argv = context.meta.get("pairforge.argv") if context else None
    if argv is None:
        argv = sys.argv[1:]
    return " ".join(["pairforge", *(shlex.quote(arg) for arg in argv)])
