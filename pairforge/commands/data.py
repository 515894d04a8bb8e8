"""Data commands: ``combine`` (A and B folders -> pairs), ``shard`` (pairs -> shards), ``inspect``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from pairforge.commands.common import (
    PathOrURL,
    command_line,
    print_table,
    progress,
    resolve_workers,
    runner_options,
)
from pairforge.pairs import IMAGE_FORMATS
from pairforge.pipelines.combine import SIZE_POLICIES
from pairforge.pipelines.geometry import FIT_MODES
from pairforge.storage import child

log = logging.getLogger(__name__)


def shard_options(function):  # type: ignore[no-untyped-def]
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
    from pairforge.commands.build import run_and_report
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
@click.argument("pairs_dir", type=click.Path(path_type=Path), default=Path("pairs"))
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
def shard_command(pairs_dir: Path, output: Path, force_ab: bool, direction: str, samples_per_shard: int,
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
    from pairforge.matching import source_items
    from pairforge.outputs import SHARD_FOLDER, own_output
    from pairforge.pairs import PairsInfo, discover
    from pairforge.shards import DatasetInfo, ShardConfig
    from pairforge.sources import PairFileReader

    if not pairs_dir.exists():
        raise click.ClickException(
            f"pair folder {pairs_dir} not found: make one with `pairforge make-edges PHOTOS` or "
            "`pairforge combine A_DIR B_DIR`, or pass an existing pix2pix dataset folder"
        )
    with own_output(output, SHARD_FOLDER, {pairs_dir: "pair folder"}):  # before any work; one writer
        read_info = PairsInfo.read(pairs_dir)
        info = read_info or PairsInfo(kind="generic", a_channels=3, command="(official pix2pix layout)")
        found, rejects = discover(pairs_dir)
        if read_info is not None:
            found, unlisted = _manifest_listed(pairs_dir, found)
            rejects += unlisted
            if unlisted:
                click.echo(f"warning: {len(unlisted)} files in {pairs_dir} are not in its manifest.jsonl (left from an "
                           "earlier build?); not packed, listed in rejects.jsonl", err=True)
        elif not force_ab:
            _require_ab_layout(pairs_dir, [entry.path for entry in found])
        items, collisions = source_items(found)
        echo_collisions(collisions)
        reader = PairFileReader(a_channels=info.a_channels, kind=info.kind, max_pixels=max_pixels)
        config = ShardConfig(str(output), samples_per_shard, max_shard_bytes, lossless, quality, val_fraction, test_fraction,
                             str(splits_file) if splits_file else None)
        dataset_info = DatasetInfo(
            kind=info.kind,
            a_channels=info.a_channels,
            palette=info.palette,
            source={"kind": info.kind, "stage": info.stage, "command": info.command},
            root=str(pairs_dir),
        )
        if direction == "BtoA":  # A is now the right half: no longer what the recorded stage made
            reader = PairFileReader(a_channels=3, kind="generic", max_pixels=max_pixels, swap=True)
            dataset_info = DatasetInfo(kind="generic", a_channels=3, palette=None, source={
                "kind": "generic", "stage": {}, "command": info.command, "pairs_dir": str(pairs_dir),
                "direction": "BtoA", "swapped_from_kind": info.kind})
        write_shards_with_card(items, reader, dataset_info, config, workers, scheduler, rejects,
                      commands=[c for c in (info.command, command_line()) if c], license_=license_, source=source,
                      collisions=len(collisions))


def echo_collisions(collisions: dict[str, list[str]]) -> None:
    """Warn on stderr about stems renamed ``key-2``, ``key-3``... because they sanitise to one key."""
    from pairforge.paths import describe_path

    for key, names in sorted(collisions.items()):
        shown = ", ".join(describe_path(name) for name in names)  # names may not be valid UTF-8
        click.echo(f"key collision: {shown} -> {key}, {key}-2, ...", err=True)


def _manifest_listed(pairs_dir: Path, found: list[Any]) -> tuple[list[Any], list[dict[str, str]]]:
    """Split found files into those manifest.jsonl lists and reject rows for the rest."""
    from pairforge.errors import reject_row
    from pairforge.pairs import MANIFEST_NAME, read_jsonl
    from pairforge.paths import absolute

    manifest = pairs_dir / MANIFEST_NAME
    if not manifest.exists():
        return found, []
    listed = {row["path"] for row in read_jsonl(manifest) if "path" in row}
    root = Path(absolute(pairs_dir))
    kept, rejects = [], []
    for entry in found:
        if Path(entry.path).relative_to(root).as_posix() in listed:
            kept.append(entry)
        else:
            rejects.append(reject_row(entry.path, "not in manifest",
                                      f"not listed in {MANIFEST_NAME}: not made by the build that wrote it"))
    return kept, rejects


def _require_ab_layout(folder: Path, paths: list[str]) -> None:
    """Refuse a folder whose images mostly do not look like AB pairs (width = 2 x height), saying what to run instead.

    Every reference pix2pix dataset (facades, edges2shoes, maps...) is 2:1; ordinary photos
    and label maps are not, and cutting them in two makes nonsense pairs.
    """
    from pairforge.errors import SampleError
    from pairforge.imageio import read_image_size

    sizes = []
    for path in paths:
        try:
            sizes.append(read_image_size(path))  # header only; a FIFO or device is never opened for reading
        except SampleError:  # rejected with its reason during the run
            continue
    odd = [size for size in sizes if size[0] != 2 * size[1]]
    if 2 * len(odd) <= len(sizes):  # mostly pairs: the odd ones are rejected one by one with their reason
        return
    children = {p.name for p in folder.iterdir() if p.is_dir()}
    if {"photos", "labels"} <= children:
        instead = f"`pairforge make-labels {folder / 'photos'} --labels {folder / 'labels'}`"
        if (folder / "palette.json").exists():
            instead += f" --palette {folder / 'palette.json'}"
    else:
        instead = f"`pairforge make-edges {folder}`, `pairforge make-gray {folder}`, or `pairforge combine A_DIR B_DIR`"
    width, height = odd[0]
    raise click.ClickException(
        f"{folder} has no pairs.json and {len(odd)} of its {len(sizes)} images do not look like AB pairs "
        f"(width = 2 x height; e.g. {width}x{height}): they look like photos or label maps, and packing them would cut "
        f"each in two. To make pairs from them run {instead}; to pack them as AB pairs anyway pass --force-ab."
    )


def write_shards_with_card(items, reader, dataset_info, config, workers, scheduler, rejects, commands, license_, source,  # type: ignore[no-untyped-def]
                  collisions: int = 0) -> None:
    """Run the shard writer with a progress bar, then write the data card and print the summary."""
    from pairforge.build import shard_with_card
    from pairforge.runner import RunnerConfig

    runner = RunnerConfig(workers=resolve_workers(workers), scheduler=scheduler)
    summary, dataset, card_path = shard_with_card(items, reader, dataset_info, config, runner, rejects, commands,
                                                  license_, source, "", progress)
    print_shard_result(summary, dataset, card_path, config, collisions)


def print_shard_result(summary, dataset, card_path, config, collisions: int = 0) -> None:  # type: ignore[no-untyped-def]
    """The closing table and lines of a shard run (``shard`` and the builders' fused ``--shards`` mode)."""
    rows = summary.as_rows()
    if collisions:
        rows.append(("key collisions renamed", collisions))
    print_table(f"shard -> {config.out_dir}", rows)
    warn_empty_splits(summary.counts, config.val_fraction, config.test_fraction)
    click.echo(f"dataset: {child(config.out_dir, 'dataset.json')}   card: {card_path}")
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


@click.command("inspect")
@click.argument("shards_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("shards"))
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Contact sheet PNG to write [default: SHARDS_DIR/contact_sheet.png].")
@click.option("-n", "--count", type=click.IntRange(1, 1024), default=16, show_default=True, help="Samples on the sheet.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which random samples.")
@click.option("--allow-modified-shards", is_flag=True,
              help="Inspect shards that differ from dataset.json as they are (refused by default).")
def inspect_command(shards_dir: Path, sheet: Path | None, count: int, seed: int, allow_modified_shards: bool) -> None:
    """Print a shard set's summary and write a contact sheet of random A | B samples.

    The shards are first compared with dataset.json (size, sample count, stats file), as
    train, evaluate and check do: a modified set is refused unless --allow-modified-shards.
    """
    from pairforge.contact import check_sheet_path, contact_sheet, sample_pairs, write_contact_sheet
    from pairforge.shards import read_dataset, verify_shard_set

    dataset = read_dataset(shards_dir)
    modified = verify_shard_set(dataset, shards_dir, allow_modified=allow_modified_shards)
    sheet = sheet or shards_dir / "contact_sheet.png"
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
    palette = dataset.get("palette") if dataset.get("kind") == "labels" else None
    path = write_contact_sheet(sheet, contact_sheet(drawn.samples, palette=palette))
    click.echo(f"contact sheet ({len(drawn.samples)} samples, A | B, captioned key (split){unreadable}): {path}")
    log.debug("sampled keys: %s", json.dumps([sample.key for sample in drawn.samples]))


COMMANDS: list[click.Command] = [combine_command, shard_command, inspect_command]
