"""Options, progress bars and summary tables shared by the commands."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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
        help="Local worker processes [default: all cores; 1 for make-edges with HED, which uses every core "
             "through torch].",
    )(function)
    return function


def resolve_workers(workers: int | None) -> int:
    from pairforge.runner import default_workers

    return workers if workers is not None else default_workers()


NOISY_LOGGERS = ("distributed", "bokeh", "tornado", "fsspec", "PIL", "matplotlib", "urllib3")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests and tqdm swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def set_verbosity(verbose: int = 0, quiet: bool = False) -> None:
    """Log levels for ``-v`` (pairforge debug logs), ``-vv`` (also Dask's) and ``-q`` (warnings only).

    The options are accepted before and after the subcommand; this is called for each occurrence
    and keeps the most verbose (or quiet) request seen so far in the Click context's ``meta``.
    """
    context = click.get_current_context(silent=True)
    meta = context.meta if context is not None else {}
    meta["pairforge.verbose"] = max(int(meta.get("pairforge.verbose", 0)), verbose)
    meta["pairforge.quiet"] = bool(meta.get("pairforge.quiet", False)) or quiet
    verbose, quiet = meta["pairforge.verbose"], meta["pairforge.quiet"]
    level = logging.WARNING if quiet or not verbose else logging.DEBUG
    root = logging.getLogger()
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 1 and not quiet else logging.WARNING)
    for name in ("pairforge", "__main__"):
        logging.getLogger(name).setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 and not quiet else logging.WARNING)


def is_quiet() -> bool:
    """True when ``-q`` was given (before or after the subcommand): progress bars are hidden."""
    context = click.get_current_context(silent=True)
    return bool(context and context.meta.get("pairforge.quiet"))


def _verbosity_callback(ctx: click.Context, param: click.Parameter, value: object) -> None:
    if param.name == "verbose":
        set_verbosity(verbose=int(value or 0))
    elif value:
        set_verbosity(quiet=True)


def verbosity_options(command: click.Command) -> click.Command:
    """Add ``-v/--verbose`` and ``-q/--quiet`` to a command (and its subcommands), so they work after it too."""
    names = {name for param in command.params for name in param.opts}
    if "-v" not in names:
        command.params.append(click.Option(
            ["-v", "--verbose"], count=True, expose_value=False, callback=_verbosity_callback,
            help="Debug logs of pairforge (-vv: also Dask's)."))
    if "-q" not in names:
        command.params.append(click.Option(
            ["-q", "--quiet"], is_flag=True, expose_value=False, callback=_verbosity_callback,
            help="No progress bars or info: warnings, errors and the final summary only."))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            verbosity_options(sub)
    return command


def _bar(**options: Any) -> Any:
    """The one tqdm bar style: stderr, terminal width, hidden by ``-q``."""
    from tqdm import tqdm

    return tqdm(dynamic_ncols=True, file=sys.stderr, mininterval=0.5, disable=is_quiet(), **options)


@contextmanager
def progress(total: int, description: str, unit: str = "img") -> Iterator[Callable[..., None]]:
    """A tqdm bar on stderr (hidden by ``-q``); yields ``advance(n, **postfix)`` (postfix: values shown beside it)."""
    bar = _bar(total=total, desc=description, unit=unit)

    def advance(count: int = 1, **postfix: str) -> None:
        bar.update(count)
        if postfix:
            bar.set_postfix(postfix, refresh=False)

    try:
        yield advance
    finally:
        bar.close()


@contextmanager
def train_progress(description: str) -> Iterator[Callable[[int, int, dict[str, Any]], None]]:
    """A bar of training steps (hidden by ``-q``): yields the ``progress(step, total, row)`` callback of ``train``.

    The bar opens at the first call, so a resumed run starts at its step; a logged row sets the
    speed, the L1 loss and the data-wait fraction beside it.
    """
    bars: list[Any] = []

    def update(step: int, total: int, row: dict[str, Any]) -> None:
        if not bars:
            bars.append(_bar(total=total, initial=step - 1, desc=description, unit="step"))
        bars[0].update(step - bars[0].n)
        if row:
            bars[0].set_postfix({"img/s": f"{row.get('images_per_s', 0):.1f}", "L1 loss": f"{row.get('loss_g_l1', 0):.3f}",
                                 "wait": f"{row.get('data_wait_fraction', 0):.0%}"}, refresh=False)

    try:
        yield update
    finally:
        if bars:
            bars[0].close()


def note_scale(run_config: dict[str, Any], scale: str) -> None:
    """Warn (stderr) when ``--scale train`` shrinks inputs well below the scale the run trained at."""
    from pairforge.trainer.inference import scale_hint

    hint = scale_hint(run_config) if scale == "train" else None
    if hint:
        click.echo(f"note: {hint}", err=True)


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """A two-column summary table on stdout."""
    width = max([len(title)] + [len(str(name)) for name, _ in rows])
    click.echo(f"\n{title}")
    click.echo("-" * (width + 12))
    for name, value in rows:
        click.echo(f"{str(name).ljust(width)}  {value:>10}" if isinstance(value, int) else f"{str(name).ljust(width)}  {value}")


def command_line() -> str:
    """The command as the user typed it (recorded in pairs.json and data cards), URLs without
    user-info or query strings (:func:`pairforge.storage.safe_url`)."""
    import shlex

    from pairforge.storage import safe_url

    context = click.get_current_context(silent=True)
    argv = context.meta.get("pairforge.argv") if context else None
    if argv is None:
        argv = sys.argv[1:]
    return " ".join(["pairforge", *(shlex.quote(safe_url(arg)) for arg in argv)])


class PathOrURL(click.ParamType):
    """A local path (checked as :class:`click.Path` with the same options, given as a ``Path``) or an
    fsspec URL such as ``s3://bucket/photos`` (given as a ``str``; checked when it is used).

    A URL is taken without user-info and query string (:func:`pairforge.storage.safe_url`):
    credentials come from the environment, where every Dask worker finds them too, and never
    travel in a URL that pairforge records.
    """

    name = "path"

    def __init__(self, **path_options: Any) -> None:
        self.path = click.Path(path_type=Path, **path_options)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from pairforge.storage import is_url, safe_url

        if isinstance(value, str) and is_url(value):
            return safe_url(value)
        return self.path.convert(value, param, ctx)
