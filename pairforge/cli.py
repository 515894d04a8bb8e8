"""The ``pairforge`` command line: a thin Click layer over the core functions.

Heavy modules (torch, dask, kornia) are imported inside command bodies so that
``pairforge --help`` stays fast.
"""

from __future__ import annotations

import logging

import click

from pairforge import __version__
from pairforge.commands import build, check, data, demo, model, serve, train
from pairforge.commands.common import verbosity_options
from pairforge.errors import PairforgeError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """The error boundary: pairforge errors and file-system failures become one-line messages.

    A :class:`PairforgeError` already says what happened and what to do; an ``OSError``
    escaping a command (permissions, a full disk, a read-only or vanished folder) is reported
    with its path and cause. Either way the exit code is 1 and no traceback is printed
    (``-vv`` logs it).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["pairforge.argv"] = list(args)  # recorded in pairs.json / data cards as the exact command
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        from pairforge.commands.build import generated_builder_names

        generated = [f"make-{name}" for name in generated_builder_names(set(self.commands))]
        return sorted([*super().list_commands(ctx), *generated])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Hand-written commands, then ``make-<name>`` for a registered builder without one."""
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name.startswith("make-"):
            from pairforge.commands.build import builder_command

            command = builder_command(cmd_name.removeprefix("make-"))
            if command is not None:
                command = verbosity_options(command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PairforgeError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            logging.getLogger(__name__).debug("file-system error", exc_info=True)
            raise click.ClickException(_os_error_line(exc)) from exc


def _os_error_line(exc: OSError) -> str:
    from pairforge.paths import describe_path, os_reason

    paths = [describe_path(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(paths) if paths else "a file"
    return f"cannot access {where}: {os_reason(exc)}"


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="pairforge")
def cli() -> None:
    """Prepare paired image datasets and train pix2pix models on them.

    \b
    Typical flow:
      pairforge make-edges photos/        photos -> pairs/ (A = edges, B = photo)
      pairforge shard                     pairs/ -> shards/ (WebDataset tars)
      pairforge train shards/             shards/ -> runs/00001-.../
      pairforge predict runs/00001-... edges/ -o out/

    -v/--verbose and -q/--quiet work before or after any command.
    Run `pairforge demo` to see all of it on scikit-image's bundled photos.
    """


for _module in (data, build, train, model, demo, serve, check):
    for _command in _module.COMMANDS:
        cli.add_command(verbosity_options(_command))
verbosity_options(cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pairforge")


if __name__ == "__main__":
    main()
