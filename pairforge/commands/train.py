"""Click commands for this area (see pairforge/cli.py): ``pairforge train``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from pairforge.device import DEVICES
from pairforge.trainer.config import (  # torch-free: --help stays fast
    AUGMENT_MODES,
    COLORSPACES,
    DIRECTIONS,
    DISCRIMINATORS,
    GAN_MODES,
    GENERATORS,
    LABEL_INPUTS,
    NORMS,
    PRECISIONS,
    RESUME_SAFE_OPTIONS,
    option_flag,
)

COMMANDS: list[click.Command] = []

RESUME_HELP = (
    "Continue this run folder exactly, from its newest checkpoint (or from one of its checkpoints/step-* folders). "
    "An option given with it must equal the run's recorded value, except "
    + ", ".join(option_flag(name) for name in RESUME_SAFE_OPTIONS if name != "record_keys")
    + ", -q, -v (they change how it runs, not what it computes; recorded in config.json's history); --steps may only "
    "extend it."
)


def _interval_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--sample-every, --val-every, --checkpoint-every: steps between them, 0 = only at the end."""
    for name, default, what in (("checkpoint", 1000, "checkpoints"), ("val", 1000, "validation passes"),
                                ("sample", 500, "sample grids in samples/")):
        function = click.option(f"--{name}-every", type=click.IntRange(min=0), default=default, show_default=True,
                                help=f"Steps between {what} (0: only at the end).")(function)
    return function


# Every option's parameter name is the config field it sets (--no-flip -> flip=False), so the
# options go to TrainConfig.from_options unchanged.
@click.command("train")
@click.argument("shards", required=False)
@click.option("-o", "--output", default="runs", show_default=True, help="Parent folder of the numbered run folders.")
@click.option("--name", default="pix2pix", show_default=True, help="Run name (folder <00001>-<name>).")
@click.option("--resume", "resume", type=click.Path(exists=True, file_okay=False), help=RESUME_HELP)
@click.option("--init-from", "init_from", type=click.Path(exists=True, file_okay=False),
              help="Start a new run from the weights of this run or checkpoint folder (fine-tuning; also a run made by "
                   "`pairforge import`): the generator must fit, the discriminator is taken when it fits; optimizers, "
                   "schedule and data are the new run's. Recorded in config.json and the report.")
@click.option("--dataset-json", help="dataset.json for SHARDS given as a pattern or URL (pipe:, http://).")
@click.option("--val-shards", help="Validation shards (pattern/URL); default: the val split of dataset.json.")
@click.option("--label-input", type=click.Choice(LABEL_INPUTS), default="onehot", show_default=True,
              help="Labels datasets: feed the generator one channel per class, or the colour-coded map as RGB "
                   "(color: as the reference implementation feeds it).")
@click.option("--colorspace", type=click.Choice(COLORSPACES), default="rgb", show_default=True,
              help="lab: input L, output ab (colorization).")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True,
              help="BtoA: B is the input and A the output (the reference's facades, cityscapes and maps "
                   "folders hold photo|labels and train BtoA); recorded in the run.")
@click.option("--augment", type=click.Choice(AUGMENT_MODES), default="pix2pix", show_default=True,
              help="pix2pix: resize to --load-size, random crop --crop-size, flip (the paper's jitter); "
                   "strong: also a random resized crop and a small rotation; none: resize to --crop-size only.")
@click.option("--load-size", type=click.IntRange(min=8), default=286, show_default=True,
              help="Side the pair is resized to before the random crop (the paper: 286).")
@click.option("--crop-size", type=click.IntRange(min=8), default=256, show_default=True,
              help="Side of the random crop the networks train on (the paper: 256).")
@click.option("--no-flip", "flip", is_flag=True, flag_value=False, default=True, help="No random horizontal flip.")
@click.option("--generator", "generator", default="unet_256", show_default=True, type=click.Choice(GENERATORS),
              help="U-Net as in the paper (unet: depth from --crop-size), ResNet blocks, or encoder_decoder "
                   "(U-Net without skips, the paper's ablation).")
@click.option("--discriminator", type=click.Choice(DISCRIMINATORS), default="patch",
              show_default=True, help="patch: PatchGAN (--n-layers); pixel: 1x1 PixelGAN; image: the paper's 286x286 "
                                      "ImageGAN (a 5-layer PatchGAN); global: one logit per image.")
@click.option("--n-layers", type=click.IntRange(min=1), default=3, show_default=True, help="PatchGAN depth (3 = 70x70).")
@click.option("--norm", type=click.Choice(NORMS), default="batch", show_default=True,
              help="Normalisation layers of both networks.")
@click.option("--generator-channels", type=click.IntRange(min=1), default=64, show_default=True,
              help="Filters of the generator's first layer (ngf in the reference code).")
@click.option("--discriminator-channels", type=click.IntRange(min=1), default=64, show_default=True,
              help="Filters of the discriminator's first layer (ndf).")
@click.option("--no-dropout", "dropout", is_flag=True, flag_value=False, default=True,
              help="Turn off the generator's dropout noise.")
@click.option("--gan-mode", type=click.Choice(GAN_MODES), default="vanilla", show_default=True,
              help="GAN objective: vanilla (the paper's cross-entropy), lsgan (least squares) or hinge.")
@click.option("--lambda-l1", type=click.FloatRange(min=0), default=100.0, show_default=True,
              help="Weight of the L1 term (0 = GAN only).")
@click.option("--no-gan", "use_gan", is_flag=True, flag_value=False, default=True, help="L1 only.")
@click.option("--unconditional", "conditional", is_flag=True, flag_value=False, default=True,
              help="The discriminator sees only B.")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Initial Adam learning rate of both networks.")
@click.option("--beta1", type=float, default=0.5, show_default=True, help="Adam beta1 (beta2 is 0.999).")
@click.option("--epochs", type=click.IntRange(min=0), default=100, show_default=True, help="Epochs at the initial lr.")
@click.option("--decay-epochs", type=click.IntRange(min=0), default=100, show_default=True,
              help="Epochs of linear lr decay.")
@click.option("--steps", type=click.IntRange(min=1), help="Total steps (overrides epochs; extends a resumed run).")
@click.option("--ema", type=float, default=0.0, show_default=True, help="Generator EMA decay (0.999; 0 = off).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Pairs per step per GPU/process (the paper: 1, with batch norm acting as instance norm).")
@click.option("--num-workers", type=click.IntRange(min=0), default=None,
              help="DataLoader decoding processes [default: 0 on the CPU, up to 8 with a GPU]. Fixed for a run: each "
                   "reads its own shards, so their number sets the order of the samples.")
@click.option("--shuffle-buffer", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples each reader (process x DataLoader worker) holds to shuffle. A split whose share "
                   "fits (the paper's small sets) is shuffled uniformly each epoch, reproducibly from --seed; a "
                   "larger one streams through a buffer of this size (each sample drawn from a window of "
                   "N: not a uniform shuffle of the epoch; raise N, memory allowing, for a better mix).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="auto: CUDA when available, else the CPU.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="auto: bf16 on CUDA, fp32 on CPU.")
@click.option("--compile", "compile", is_flag=True, help="torch.compile the networks.")
@click.option("--deterministic", is_flag=True, help="Deterministic kernels (exact resume).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of weights, shuffling, augmentation, dropout.")
@click.option("--log-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Steps between rows of metrics.jsonl.")
@_interval_options
@click.option("--keep-checkpoints", type=click.IntRange(min=1), default=3, show_default=True,
              help="Step checkpoints kept (the newest); older ones are deleted.")
@click.option("--max-val-samples", type=click.IntRange(min=0), default=64, show_default=True,
              help="Validation pairs scored per pass (0: no validation).")
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard events (if installed).")
@click.option("--record-keys", is_flag=True, hidden=True, help="Write keys.jsonl of the trained samples.")
@click.option("--verify", is_flag=True,
              help="Hash every shard against dataset.json's sha256 before training (sizes, sample counts and stats "
                   "files are always compared).")
@click.option("--allow-modified-shards", is_flag=True,
              help="Train on shards that differ from dataset.json as they are (refused by default; recorded in "
                   "the run's config.json).")
@click.option("--dry-run", is_flag=True,
              help="Print the resolved config (device, precision, steps, epochs, lr schedule) and exit.")
def train_command(shards: str | None, resume: str | None, steps: int | None, dry_run: bool, verify: bool,
                  **options: Any) -> None:
    """Train pix2pix on the shard set SHARDS (a folder with dataset.json, a brace pattern or a URL).

    \b
    Examples:
      pairforge train shards/
      pairforge train shards/ --generator resnet_9blocks --gan-mode lsgan --ema 0.999
      pairforge train --resume runs/00001-pix2pix --steps 20000
      pairforge train my_edges/ --init-from runs/edges2shoes --epochs 5 --decay-epochs 5
      torchrun --nproc_per_node 4 -m pairforge train shards/
    """
    import dataclasses
    import os

    from pairforge.commands.common import train_progress
    from pairforge.trainer.config import TrainConfig
    from pairforge.trainer.data import default_num_workers
    from pairforge.trainer.loop import train
    from pairforge.trainer.run import resume_config

    if resume is not None:
        if options["init_from"] is not None:
            raise click.UsageError("--resume continues a run and --init-from starts a new one from a run's weights: "
                                   "give one of them")
        given = {name: value for name, value in options.items() if _given(name)}
        if shards:
            given["shards"] = shards
        config = resume_config(resume, steps, given)
    else:
        if not shards:
            raise click.UsageError("give SHARDS (a shard folder) or --resume RUN_DIR")
        if options["num_workers"] is None:
            options["num_workers"] = default_num_workers(options["device"])
        config = TrainConfig.from_options(shards=shards, steps=steps, **options)
    if dry_run:
        _dry_run(config, resume)
        return

    with train_progress("train") as progress:
        result = train(config, resume=resume, progress=progress, verify=verify)
    if os.environ.get("RANK", "0") == "0":
        _summary(dataclasses.asdict(result))


def _given(name: str) -> bool:
    """Whether the user gave the option ``name`` (on the command line or in its environment variable), not its default."""
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source(name)
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _summary(values: dict[str, object]) -> None:
    """The one-screen summary printed at the end of a run."""
    click.echo("")
    click.echo(f"run        {values['run_dir']}")
    click.echo(f"steps      {values['steps']} / {values['total_steps']} in {values['elapsed_s']:.1f} s")
    if values["images_per_s"] > 0:
        click.echo(f"speed      {values['images_per_s']:.1f} images/s, data wait {values['data_wait_fraction']:.1%}")
    else:
        click.echo(f"speed      - (nothing left to do: the run is at step {values['steps']} of "
                   f"{values['total_steps']}; --resume RUN --steps N with N > {values['steps']} extends it)")
    click.echo(f"skipped    {values['skipped_samples']} corrupt or missing samples"
               + (f", {values['skipped_shards']} damaged shards ({values['skipped_bytes']} bytes short)"
                  if values.get("skipped_shards") else ""))
    losses = values["last_losses"] or {}
    if losses:
        click.echo("losses     " + ", ".join(f"{k}={v:.4f}" for k, v in losses.items()))
    validation = values["validation"] or {}
    if validation:
        click.echo("validation " + ", ".join(f"{k}={v:.4f}" for k, v in validation.items()))
    click.echo(f"checkpoint {values['checkpoint']}")
    click.echo(f"report     {values['run_dir']}/report.html")


def _dry_run(config: Any, resume: str | None) -> None:
    """Print the resolved config as JSON (stdout) and what it implies as warnings (stderr)."""
    from pairforge.trainer.plan import describe_plan

    document, warnings = describe_plan(config, resume)
    click.echo(json.dumps(document, indent=2, sort_keys=True))
    facts = document["resolved"]
    click.echo(f"device {facts['device']}, precision {facts['precision']}; {facts['total_steps']} steps = "
               f"{facts['total_epochs']:g} epochs of {facts['steps_per_epoch']} steps (batch "
               f"{document['data']['batch_size']} x {facts['world_size']} process(es), {facts['train_samples']} train pairs); "
               f"{facts['lr_schedule']}", err=True)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


COMMANDS.append(train_command)
