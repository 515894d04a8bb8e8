"""The ``pairforge`` command line: a thin Click layer over the core functions.

Heavy modules (torch, dask, kornia) are imported inside command bodies so that
``pairforge --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys

import click

from pairforge import __version__
from pairforge.commands import build, check, data, demo, model, train
from pairforge.errors import PairforgeError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """Turns pairforge errors into one-line messages instead of tracebacks."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["pairforge.argv"] = list(args)  # recorded in pairs.json / data cards as the exact command
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PairforgeError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="pairforge")
@click.option("-v", "--verbose", count=True, help="Log progress details (-vv: debug, including Dask).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings, errors and the final summary.")
def cli(verbose: int, quiet: bool) -> None:
    """Prepare paired image datasets and train pix2pix models on them.

    \b
    Typical flow:
      pairforge make-edges photos/        photos -> pairs/ (A = edges, B = photo)
      pairforge shard                     pairs/ -> shards/ (WebDataset tars)
      pairforge train shards/             shards/ -> runs/00001-.../
      pairforge predict runs/00001-... edges/ -o out/

    Run `pairforge demo` to see all of it on scikit-image's bundled photos.
    """
    level = logging.WARNING if quiet or not verbose else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("distributed", "bokeh", "tornado", "fsspec", "PIL"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


for _module in (data, build, train, model, demo, check):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pairforge")


if __name__ == "__main__":
    main()
