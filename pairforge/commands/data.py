"""Data commands: ``combine`` (A and B folders -> pairs), ``shard`` (pairs -> shards), ``inspect``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from pairforge import kinds
from pairforge.commands.build import run_and_report
from pairforge.commands.common import (
    PathOrURL,
    command_line,
    print_shard_result,
    print_table,
    progress,
    resolve_workers,
    runner_options,
    shard_options,
    warn,
    warn_empty_splits,
)
from pairforge.pairs import IMAGE_FORMATS
from pairforge.pipelines.combine import SIZE_POLICIES
from pairforge.pipelines.geometry import FIT_MODES

log = logging.getLogger(__name__)


def _suffix_pair(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, str] | None:
    """``--suffix _A,_B`` -> ``("_A", "_B")``."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise click.BadParameter("expected two different suffixes like _A,_B")
    return parts[0], parts[1]


@click.command("combine")
@click.argument("a_dir", type=PathOrURL(exists=True, file_okay=False))
@click.argument("b_dir", type=PathOrURL(exists=True, file_okay=False))
@click.option("-o", "--output", type=PathOrURL(file_okay=False), default=Path("pairs"), show_default=True,
              help="Pair folder to write.")
@click.option("--suffix", "suffixes", default=None, metavar="_A,_B", callback=_suffix_pair,
              help="Match x_A.* with x_B.* (like the official --use_AB) instead of identical names.")
@click.option("--size-mismatch", type=click.Choice(SIZE_POLICIES), default="reject", show_default=True,
              help="When A and B differ in size: reject the pair, or resize B to A.")
@click.option("--size", type=click.IntRange(8, 16384), default=None,
              help="Output side in pixels, applied to A and B alike (see --fit) [default: keep the input size].")
@click.option("--fit", type=click.Choice(FIT_MODES), default="crop", show_default=True,
              help="With --size. crop: short side to SIZE, centre crop; pad: letterbox; stretch: ignore aspect; "
                   "none: short side to SIZE, keep aspect.")
@click.option("--shards", "shards_dir", type=PathOrURL(file_okay=False), default=None,
              help="Fused mode: write a shard set here in one pass (no pair files), as `pairforge shard` would.")
@click.option("--format", "image_format", type=click.Choice(IMAGE_FORMATS), default="png", show_default=True,
              help="Format of the AB files (JPEG quality: --quality).")
@click.option("--overwrite", is_flag=True, help="Replace a pair folder made by a different config (refused by default).")
@shard_options
@runner_options
def combine_command(a_dir: Path, b_dir: Path, suffixes: tuple[str, str] | None, size_mismatch: str, size: int | None,
                    fit: str, **options: Any) -> None:
    """Pair the images of A_DIR and B_DIR into the aligned AB layout (A left, B right).

    Files pair by name: the path below the split folder without extension,
    ignoring case (x.png pairs with X.jpg), or by suffix with --suffix _A,_B.
    train/, val/ and test/ subfolders are kept. Unmatched, ambiguous,
    unreadable and mismatched files are listed in rejects.jsonl. When nothing
    matches, nothing is written: the error suggests the --suffix the file names
    point to.
    """
    from pairforge.errors import DatasetError, PairforgeError
    from pairforge.outputs import PAIR_FOLDER, SHARD_FOLDER, check_output
    from pairforge.paths import ensure_output_dir
    from pairforge.pipelines.combine import CombineConfig, CombineStage, match_folders, suffix_hint
    from pairforge.pipelines.geometry import FitConfig

    stage_config = CombineConfig(size_mismatch=size_mismatch, fit=FitConfig(size=size, fit=fit))
    target = options["shards_dir"] or options["output"]
    what = SHARD_FOLDER if options["shards_dir"] else PAIR_FOLDER
    inputs = {a_dir: "A folder", b_dir: "B folder"}
    check_output(target, what, inputs)
    created = not isinstance(target, str) and not target.exists()  # a URL (str) has no folder to remove
    ensure_output_dir(target, what)  # before any work
    try:
        items, rejects = match_folders(a_dir, b_dir, suffixes)
        if not items:
            raise DatasetError(f"nothing matched: {len(rejects)} file(s) in {a_dir} and {b_dir} have no partner; "
                               f"{suffix_hint(a_dir, b_dir, suffixes)}")
    except PairforgeError:
        if created and not any(target.iterdir()):
            target.rmdir()  # nothing half-written
        raise
    run_and_report(CombineStage, stage_config, items, rejects, {**options, "photos": a_dir}, title="combine",
                   unmatched_hint=lambda: suffix_hint(a_dir, b_dir, suffixes), inputs=inputs)


@click.command("shard")
@click.argument("pairs_dir", type=PathOrURL(), default=Path("pairs"))
@click.option("-o", "--output", type=PathOrURL(file_okay=False), default=Path("shards"), show_default=True,
              help="Shard folder to write, or a URL (s3://bucket/shards); a rerun completes it, reusing finished "
                   "shards.")
@click.option("--force-ab", is_flag=True,
              help="Take every image of a folder without pairs.json as an AB pair (A left half, B right half), even "
                   "when it does not look like one (width = 2 x height).")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True,
              help="BtoA: the files hold B|A (the reference's facades, cityscapes, maps: photo|labels); the halves "
                   "are swapped here so A is the input, and dataset.json describes the swapped pair.")
@shard_options
@click.option("--splits", "splits_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Split file from `pairforge check --fix-splits` (keeps duplicate clusters in one split).")
@runner_options
def shard_command(pairs_dir: Path | str, output: Path, force_ab: bool, direction: str, samples_per_shard: int,
                  max_shard_bytes: int | None, lossless: bool, quality: int, val_fraction: float, test_fraction: float,
                  license_: str | None, source: str | None, splits_file: Path | None, workers: int | None,
                  scheduler: str | None, max_pixels: int) -> None:
    """Pack a pair folder (default pairs/) into WebDataset shards (default shards/).

    Reads pairforge pair folders and official pix2pix datasets alike (train/,
    val/, test/ folders of AB images). Every AB image is decoded and checked;
    A is stored as <key>.a.png (1 channel for edges and gray), B as <key>.b.jpg
    (or .png with --lossless). Writes dataset.json and DATA_CARD.md.

    A pair folder's manifest.jsonl decides what is packed (other files are
    listed as rejects). A folder without pairs.json is taken as AB pairs only
    when its images look like pairs (width = 2 x height); --force-ab overrides.
    """
    from pairforge.packing import CardFields, PairFolderInput, shard_pair_folder
    from pairforge.runner import RunnerConfig
    from pairforge.shards import ShardConfig

    config = ShardConfig(str(output), samples_per_shard, max_shard_bytes, lossless, quality, val_fraction, test_fraction,
                         str(splits_file) if splits_file else None)
    result = shard_pair_folder(pairs_dir, config, PairFolderInput(direction, force_ab, max_pixels),
                               RunnerConfig(workers=resolve_workers(workers), scheduler=scheduler),
                               card=CardFields(license_, source), command=command_line(), progress=progress, warn=warn)
    print_shard_result(result)


@click.command("inspect")
@click.argument("shards_dir", type=PathOrURL(exists=True, file_okay=False), default=Path("shards"))
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Contact sheet PNG to write [default: SHARDS_DIR/contact_sheet.png; for a shard set at a URL, "
                   "contact_sheet.png in the current folder].")
@click.option("-n", "--count", type=click.IntRange(1, 1024), default=16, show_default=True, help="Samples on the sheet.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which random samples.")
@click.option("--allow-modified-shards", is_flag=True,
              help="Inspect shards that differ from dataset.json as they are (refused by default).")
def inspect_command(shards_dir: Path | str, sheet: Path | None, count: int, seed: int, allow_modified_shards: bool) -> None:
    """Print a shard set's summary and write a contact sheet of random A | B samples.

    The shards are first compared with dataset.json (size, sample count, stats file), as
    train, evaluate and check do: a modified set is refused unless --allow-modified-shards.
    """
    from pairforge.contact import check_sheet_path, contact_sheet, sample_pairs, write_contact_sheet
    from pairforge.shardset import open_shard_set

    shard_set = open_shard_set(shards_dir, allow_modified=allow_modified_shards)
    dataset, modified = shard_set.dataset, shard_set.modified
    if sheet is None:
        sheet = Path("contact_sheet.png") if isinstance(shards_dir, str) else shards_dir / "contact_sheet.png"
    check_sheet_path(sheet, shards_dir, dataset)
    for mismatch in modified:
        click.echo(f"warning: {mismatch.used_as_is()}", err=True)
    rows: list[tuple[str, object]] = [("kind", dataset["kind"]), ("A channels", dataset["a_channels"]),
                                      ("B format", dataset.get("b_format") or "jpg")]
    rows += [(f"split {name}", entry["count"]) for name, entry in sorted(dataset["splits"].items())]
    rows += [("shards", len(dataset["shards"])), ("bytes", sum(s["bytes"] for s in dataset["shards"]))]
    if modified:
        rows.append(("modified shards (used as they are)", len(modified)))
    if dataset.get("palette"):
        rows.append(("palette classes", len(dataset["palette"].get("classes", []))))
    command = dataset.get("source", {}).get("command")
    if command:
        rows.append(("made by", command))
    print_table(f"dataset {shards_dir}", rows)
    warn_empty_splits({name: entry["count"] for name, entry in dataset["splits"].items()})
    found = {mismatch.name: mismatch.samples for mismatch in modified if mismatch.samples is not None}
    shards = [{**shard, "count": found.get(shard["name"], shard["count"])} for shard in dataset["shards"]]
    drawn = sample_pairs(shards_dir, {**dataset, "shards": shards}, count, seed)  # what the tars hold
    for line in drawn.skipped:
        click.echo(f"warning: {line}", err=True)
    unreadable = f"; {drawn.unreadable} drawn samples unreadable, skipped" if drawn.unreadable else ""
    if not drawn.samples:
        click.echo(f"no samples to draw{unreadable}")
        return
    palette = dataset.get("palette") if kinds.of(dataset.get("kind")).palette else None
    path = write_contact_sheet(sheet, contact_sheet(drawn.samples, palette=palette))
    click.echo(f"contact sheet ({len(drawn.samples)} samples, A | B, captioned key (split){unreadable}): {path}")
    log.debug("sampled keys: %s", json.dumps([sample.key for sample in drawn.samples]))


COMMANDS: list[click.Command] = [combine_command, shard_command, inspect_command]
