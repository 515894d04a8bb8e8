"""Data commands: ``combine`` (A and B folders -> pairs), ``shard`` (pairs -> shards), ``inspect``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from pairforge.commands.common import (
    command_line,
    print_table,
    progress,
    resolve_workers,
    runner_options,
)

log = logging.getLogger(__name__)


def shard_options(function):  # type: ignore[no-untyped-def]
    """Options of the shard layout, shared by ``shard`` and the fused ``make-* --shards`` mode."""
    options = [
        click.option("--samples-per-shard", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Samples per tar; each shard is one Dask task."),
        click.option("--max-shard-bytes", type=click.IntRange(min=1024), default=None,
                     help="Also cut a shard before its inputs exceed this many bytes."),
        click.option("--lossless", is_flag=True, help="Store B as PNG instead of JPEG quality --quality."),
        click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG quality of B."),
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


@click.command("combine")
@click.argument("a_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("b_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("pairs"), show_default=True,
              help="Pair folder to write.")
@click.option("--suffix", default=None, metavar="_A,_B",
              help="Match x_A.* with x_B.* (like the official --use_AB) instead of identical stems.")
@click.option("--size-mismatch", type=click.Choice(["reject", "resize-b"]), default="reject", show_default=True,
              help="When A and B differ in size: reject the pair, or resize B to A.")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="Format of the AB files.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG quality with --format jpg.")
@runner_options
def combine_command(a_dir: Path, b_dir: Path, output: Path, suffix: str | None, size_mismatch: str,
                    image_format: str, quality: int, workers: int | None, scheduler: str | None, max_pixels: int) -> None:
    """Pair the images of A_DIR and B_DIR into the aligned AB layout (A left, B right).

    Files match by name without extension (x.png pairs with x.jpg), or by
    suffix with --suffix _A,_B. train/, val/ and test/ subfolders are kept.
    Unmatched, unreadable and mismatched files are listed in rejects.jsonl.
    """
    from pairforge.build import PairFolderConfig, build_pairs
    from pairforge.pairs import PairsInfo
    from pairforge.pipelines.combine import CombineConfig, match_folders
    from pairforge.runner import RunnerConfig
    from pairforge.sources import StageReader, StageSpec

    suffixes = None
    if suffix is not None:
        parts = suffix.split(",")
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
            raise click.BadParameter("expected two different suffixes like _A,_B", param_hint="--suffix")
        suffixes = (parts[0], parts[1])
    stage_config = CombineConfig(size_mismatch=size_mismatch)
    items, rejects = match_folders(a_dir, b_dir, suffixes)
    reader = StageReader(StageSpec("pairforge.pipelines.combine:CombineStage", stage_config), max_pixels)
    info = PairsInfo(kind="generic", a_channels=3, stage={"stage": "combine", "size_mismatch": size_mismatch,
                     "suffix": suffix}, command=command_line())
    runner = RunnerConfig(workers=resolve_workers(workers), scheduler=scheduler)
    with progress(len(items), "combine") as advance:
        summary = build_pairs(items, reader, info, PairFolderConfig(str(output), image_format, quality), runner,
                              early_rejects=rejects, on_progress=advance)
    print_table(f"combine -> {output}", summary.as_rows())
    if sum(summary.rejected.values()):
        click.echo(f"rejected inputs and reasons: {output / 'rejects.jsonl'}")


@click.command("shard")
@click.argument("pairs_dir", type=click.Path(path_type=Path), default=Path("pairs"))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("shards"), show_default=True,
              help="Shard folder to write (a rerun completes it, reusing finished shards).")
@shard_options
@click.option("--splits", "splits_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Split file from `pairforge check --fix-splits` (keeps duplicate clusters in one split).")
@runner_options
def shard_command(pairs_dir: Path, output: Path, samples_per_shard: int, max_shard_bytes: int | None, lossless: bool,
                  quality: int, val_fraction: float, test_fraction: float, license_: str | None, source: str | None,
                  splits_file: Path | None, workers: int | None, scheduler: str | None, max_pixels: int) -> None:
    """Pack a pair folder (default pairs/) into WebDataset shards (default shards/).

    Reads pairforge pair folders and official pix2pix datasets alike (train/,
    val/, test/ folders of AB images). Every AB image is decoded and checked;
    A is stored as <key>.a.png (1 channel for edges and gray), B as <key>.b.jpg
    (or .png with --lossless). Writes dataset.json and DATA_CARD.md.
    """
    from pairforge.keys import unique_keys_per_split
    from pairforge.pairs import PairsInfo, discover
    from pairforge.shards import DatasetInfo, ShardConfig
    from pairforge.sources import PairFileReader, SourceItem

    if not pairs_dir.exists():
        raise click.ClickException(
            f"pair folder {pairs_dir} not found: make one with `pairforge make-edges PHOTOS` or "
            "`pairforge combine A_DIR B_DIR`, or pass an existing pix2pix dataset folder"
        )
    info = PairsInfo.read(pairs_dir) or PairsInfo(kind="generic", a_channels=3, command="(official pix2pix layout)")
    found, rejects = discover(pairs_dir)
    keys, collisions = unique_keys_per_split([(entry.split, entry.stem) for entry in found])
    for key, names in sorted(collisions.items()):
        click.echo(f"key collision: {', '.join(names)} -> {key}, {key}-2, ...", err=True)
    items = [SourceItem(key, entry.path, entry.split) for key, entry in zip(keys, found, strict=True)]
    reader = PairFileReader(a_channels=info.a_channels, kind=info.kind, max_pixels=max_pixels)
    config = ShardConfig(str(output), samples_per_shard, max_shard_bytes, lossless, quality, val_fraction, test_fraction,
                         str(splits_file) if splits_file else None)
    dataset_info = DatasetInfo(
        kind=info.kind,
        a_channels=info.a_channels,
        palette=info.palette,
        source={"kind": info.kind, "stage": info.stage, "command": info.command, "pairs_dir": str(pairs_dir)},
    )
    write_shards_with_card(items, reader, dataset_info, config, workers, scheduler, rejects,
                  commands=[c for c in (info.command, command_line()) if c], license_=license_, source=source,
                  collisions=len(collisions))


def write_shards_with_card(items, reader, dataset_info, config, workers, scheduler, rejects, commands, license_, source,  # type: ignore[no-untyped-def]
                  collisions: int = 0) -> None:
    """Run the shard writer with a progress bar, then write the data card and print the summary."""
    from pairforge.datacard import render_card, write_card
    from pairforge.runner import RunnerConfig
    from pairforge.shards import read_dataset, write_shard_set

    runner = RunnerConfig(workers=resolve_workers(workers), scheduler=scheduler)
    with progress(len(items), f"shard ({runner.describe()})") as advance:
        summary = write_shard_set(items, reader, dataset_info, config, runner, early_rejects=rejects, on_progress=advance)
    dataset = read_dataset(config.out_dir)
    card = render_card(dataset, summary.seen, dict(summary.rejected), commands, license=license_, source=source)
    card_path = write_card(config.out_dir, card)
    rows = summary.as_rows()
    if collisions:
        rows.append(("key collisions renamed", collisions))
    print_table(f"shard -> {config.out_dir}", rows)
    click.echo(f"dataset: {Path(config.out_dir) / 'dataset.json'}   card: {card_path}")
    if dataset.get("split_assignment"):
        click.echo("split file {file}: {moved} pairs moved, {not_listed} not listed".format(**dataset["split_assignment"]))
    if sum(summary.rejected.values()):
        click.echo(f"rejected inputs and reasons: {Path(config.out_dir) / 'rejects.jsonl'}")


@click.command("inspect")
@click.argument("shards_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("shards"))
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Contact sheet PNG to write [default: SHARDS_DIR/contact_sheet.png].")
@click.option("-n", "--count", type=click.IntRange(1, 1024), default=16, show_default=True, help="Samples on the sheet.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which random samples.")
def inspect_command(shards_dir: Path, sheet: Path | None, count: int, seed: int) -> None:
    """Print a shard set's summary and write a contact sheet of random A | B samples."""
    from pairforge.contact import contact_sheet, sample_pairs, write_contact_sheet
    from pairforge.shards import read_dataset

    dataset = read_dataset(shards_dir)
    rows: list[tuple[str, object]] = [("kind", dataset["kind"]), ("A channels", dataset["a_channels"]),
                                      ("B format", dataset.get("b_format") or "jpg")]
    rows += [(f"split {name}", entry["count"]) for name, entry in sorted(dataset["splits"].items())]
    rows += [("shards", len(dataset["shards"])), ("bytes", sum(s["bytes"] for s in dataset["shards"]))]
    if dataset.get("palette"):
        rows.append(("palette classes", len(dataset["palette"].get("classes", []))))
    command = dataset.get("source", {}).get("command")
    if command:
        rows.append(("made by", command))
    print_table(f"dataset {shards_dir}", rows)
    samples = sample_pairs(shards_dir, dataset, count, seed)
    if not samples:
        click.echo("no samples to draw")
        return
    path = write_contact_sheet(sheet or shards_dir / "contact_sheet.png", contact_sheet(samples))
    click.echo(f"contact sheet ({len(samples)} samples, A | B): {path}")
    log.debug("sampled keys: %s", json.dumps([key for key, _, _ in samples]))


COMMANDS: list[click.Command] = [combine_command, shard_command, inspect_command]
