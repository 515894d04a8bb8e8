"""``pairforge check``: misaligned pairs, duplicates and split leakage, broken samples; report and split fix."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pairforge import kinds
from pairforge.commands.common import (
    PathOrURL,
    print_table,
    progress,
    resolve_workers,
    runner_options,
)

if TYPE_CHECKING:
    from pairforge.check import DatasetSource, MeasureConfig

log = logging.getLogger(__name__)

HED_NOTE = ("edges made by HED: B's edges come from Canny (a proxy, ~1 ms per pair) instead of HED "
            "(~160 ms per pair on a CPU core); --edge-recipe dataset runs the dataset's own HED")


@click.command("check")
@click.argument("dataset_dir", metavar="PAIRS_OR_SHARDS", type=PathOrURL(), default=Path("pairs"))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("check"), show_default=True,
              help="Folder for report.html, check.json, flagged.jsonl (and splits.json).")
@click.option("--strict", is_flag=True, help="Exit with status 1 when anything is flagged (for CI).")
@click.option("--fix-splits", is_flag=True,
              help="Write OUTPUT/splits.json keeping every duplicate cluster in one split; apply it with "
                   "`pairforge shard PAIRS --splits OUTPUT/splits.json`.")
@click.option("--max-shift", type=click.FloatRange(0, 100, min_open=True), default=1.5, show_default=True,
              help="Flag pairs whose A and B structures are shifted by more than this many pixels.")
@click.option("--near-distance", type=click.IntRange(0, 24), default=10, show_default=True,
              help="Near-duplicates: largest pHash Hamming distance (of 64 bits).")
@click.option("--edge-recipe", type=click.Choice(["auto", "canny", "dataset"]), default="auto", show_default=True,
              help="Edges datasets: how B's edges are made for the agreement score. auto = the dataset's own "
                   "recipe when it is Canny, Canny as a proxy when it is HED; dataset = always the dataset's recipe.")
@click.option("--gallery", type=click.IntRange(min=0), default=500, show_default=True,
              help="Flagged pairs drawn in the report.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
              help="Flat pair folders: the split `shard` will give each pair (by hash of the key), as in shard.")
@click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Likewise for test.")
@click.option("--allow-modified-shards", is_flag=True,
              help="Check a shard set whose shards differ from dataset.json as it is (refused by default; "
                   "recorded in check.json).")
@runner_options
def check_command(dataset_dir: Path | str, output: Path, strict: bool, fix_splits: bool, max_shift: float,
                  near_distance: int, edge_recipe: str, gallery: int, val_fraction: float, test_fraction: float,
                  allow_modified_shards: bool, workers: int | None, scheduler: str | None, max_pixels: int) -> None:
    """Check a pair folder or shard set before training: alignment, duplicates, content.

    \b
    Every pair is read once (on the Dask runner, like the builders) and measured:
      alignment   shift between A's and B's structure (phase correlation; labels:
                  a search over shifts of how well the label map explains B), and an
                  agreement score fit to the kind (edge F1, lightness correlation,
                  label boundaries vs B's edges); flags shift > --max-shift when the
                  shift explains B clearly better than no shift (misaligned) or only
                  a little (alignment uncertain), and agreement outliers
      duplicates  exact (decoded pixels) and near (pHash of B and of crops of it,
                  verified by a finer dHash); a cluster spanning train and val/test
                  is leakage
      content     near-constant or empty A/B, colours outside the palette, classes
                  never in val, size and aspect outliers
    Writes OUTPUT/report.html, check.json and flagged.jsonl, prints a summary.

    \b
    Examples:
      pairforge check pairs/                 # then open check/report.html
      pairforge check shards/ --strict       # exit status 1 when anything is flagged
      pairforge check pairs/ --fix-splits    # + check/splits.json for `shard --splits`
      pairforge check s3://bucket/shards     # a shard set in a bucket (report stays local)
    """
    from pairforge.check import CheckConfig, open_source, run_check, write_outputs, write_report
    from pairforge.outputs import CHECK_FOLDER, check_output, own_output
    from pairforge.runner import RunnerConfig

    if isinstance(dataset_dir, Path) and not dataset_dir.exists():
        raise click.ClickException(f"{dataset_dir} not found: pass a pair folder (make-*, combine) or a shard set (shard)")
    check_output(output, CHECK_FOLDER, {dataset_dir: "dataset folder"})
    config = CheckConfig(out_dir=str(output), max_shift=max_shift, near_distance=near_distance, gallery=gallery,
                         val_fraction=val_fraction, test_fraction=test_fraction)
    runner = RunnerConfig(workers=resolve_workers(workers), scheduler=scheduler)
    source = open_source(dataset_dir, config, runner.partition_size, allow_modified=allow_modified_shards)
    for mismatch in source.modified:
        click.echo(f"warning: {mismatch.used_as_is()}", err=True)
    if source.expected == 0:
        raise click.ClickException(f"{dataset_dir}: no pairs to check (no images in a pair folder, or an empty shard "
                                   "set); make pairs with `pairforge make-edges PHOTOS` or `pairforge combine`")
    measure = _measure_config(source, edge_recipe)
    # an unwritable or busy output fails now, not after the measuring
    with own_output(output, CHECK_FOLDER, {dataset_dir: "dataset folder"}):
        with progress(source.expected, f"check ({runner.describe()})", unit="pair") as advance:
            result = run_check(source, config, runner, measure, max_pixels, on_progress=advance)
        paths = write_outputs(result)
        report = write_report(result, runner)
        split_file = None
        if fix_splits:
            from pairforge.check import fix_splits as assign
            from pairforge.splitfile import write_split_file

            rows, moved = assign(result)
            split_file = write_split_file(output / "splits.json", rows, str(dataset_dir), "each duplicate cluster "
                                          "goes to the split holding most of it (ties: train, val, test)")
    print_table(f"check {dataset_dir} ({source.layout}, kind {source.kind})", result.summary_rows())
    click.echo(f"report: {report}   flagged: {paths['flagged']}   summary: {paths['json']}")
    if split_file is not None:
        click.echo(f"split assignment: {split_file} ({moved} pairs moved); apply it with "
                   f"`pairforge shard {source.pairs_dir or dataset_dir} --splits {split_file}`")
    if strict and result.flagged:
        click.echo(f"--strict: {len(result.flagged)} problems flagged", err=True)
        raise SystemExit(1)


def _measure_config(source: DatasetSource, edge_recipe: str) -> MeasureConfig:
    """Measures fit to the dataset; resolves the edge recipe (HED runs only when asked for)."""
    from pairforge.check import EdgeRecipe, measure_config_for

    if not kinds.of(source.kind).edge_map or edge_recipe == "canny":
        return measure_config_for(source)
    detector = source.stage.get("config", {}).get("detector")
    if detector in (None, "canny"):
        if detector is None:
            log.warning("this edges dataset did not record its detector: using Canny for B's edges")
        return measure_config_for(source)
    if edge_recipe == "auto":
        click.echo(HED_NOTE, err=True)
        return measure_config_for(source)
    from pairforge.pipelines.rebuild import stage_from_description
    from pairforge.sources import StageSpec

    stage = stage_from_description("edges", source.stage, keep_size=True)
    spec = StageSpec(f"{type(stage).__module__}:{type(stage).__name__}", stage.config)  # type: ignore[attr-defined]
    return measure_config_for(source, EdgeRecipe("dataset", spec))


COMMANDS: list[click.Command] = [check_command]
