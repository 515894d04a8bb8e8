"""Options, progress bars and summary tables shared by the commands."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pairforge.imageio import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from pairforge.packing import ShardSetResult

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


def shard_options(function: F) -> F:
    """Options of the shard layout, shared by ``shard`` and the fused ``make-* --shards`` mode."""
    options = [
        click.option("--samples-per-shard", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Samples per tar; each shard is one Dask task."),
        click.option("--max-shard-bytes", type=click.IntRange(min=1024), default=None,
                     help="Also cut a shard before its inputs exceed this many bytes."),
        click.option("--lossless", is_flag=True, help="Store B as PNG instead of JPEG quality --quality."),
        click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True,
                     help="JPEG quality of B in shards (and of AB files written with --format jpg)."),
        click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
                     help="Share of samples sent to val (by hash of the key) when the input has no split folders."),
        click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
                     help="Share of samples sent to test, likewise."),
        click.option("--license", "license_", default=None, help="Licence of the source images, for DATA_CARD.md."),
        click.option("--source", default=None, help="Where the source images come from, for DATA_CARD.md."),
    ]
    for option in reversed(options):
        function = option(function)
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


def warn(line: str) -> None:
    """A warning line on stderr (the ``warn`` callback of core functions)."""
    click.echo(line, err=True)


def echo_collisions(collisions: dict[str, list[str]]) -> None:
    """Warn on stderr about stems renamed ``key-2``, ``key-3``... because they sanitise to one key."""
    from pairforge.matching import collision_lines

    for line in collision_lines(collisions):
        warn(line)


def print_shard_result(result: ShardSetResult) -> None:
    """The closing table and lines of a shard run (``shard`` and the builders' fused ``--shards`` mode)."""
    from pairforge.storage import child

    config, summary, dataset = result.config, result.summary, result.dataset
    rows = summary.as_rows()
    if result.collisions:
        rows.append(("key collisions renamed", result.collisions))
    print_table(f"shard -> {config.out_dir}", rows)
    warn_empty_splits(summary.counts, config.val_fraction, config.test_fraction)
    click.echo(f"dataset: {child(config.out_dir, 'dataset.json')}   card: {result.card_path}")
    if dataset.get("split_assignment"):
        click.echo("split file {file}: {moved} pairs moved, {not_listed} not listed".format(**dataset["split_assignment"]))
    if sum(summary.rejected.values()):
        click.echo(f"rejected inputs and reasons: {child(config.out_dir, 'rejects.jsonl')}")


def warn_empty_splits(counts: dict[str, int], val_fraction: float | None = None, test_fraction: float = 0.0) -> None:
    """Warn on stderr when a split that training or evaluation reads is empty."""
    if not counts.get("train"):
        click.echo("warning: the train split is empty: `pairforge train` needs train samples", err=True)
    if not counts.get("val"):
        asked = f" (--val-fraction {val_fraction} gave none)" if val_fraction else ""
        click.echo(f"warning: the val split is empty{asked}: training skips validation and `evaluate --split val` "
                   "has nothing to read; add a val/ folder or more samples", err=True)
    if test_fraction and not counts.get("test"):
        click.echo(f"warning: the test split is empty (--test-fraction {test_fraction} gave none)", err=True)


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
