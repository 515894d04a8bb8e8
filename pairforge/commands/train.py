"""Click commands for this area (see pairforge/cli.py): ``pairforge train``."""

from __future__ import annotations

import json

import click

COMMANDS: list[click.Command] = []


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter(f"{value} is not >= 1", ctx=ctx, param=param)
    return value


@click.command("train")
@click.argument("shards", required=False)
@click.option("-o", "--output", default="runs", show_default=True, help="Parent folder of the numbered run folders.")
@click.option("--name", default="pix2pix", show_default=True, help="Run name (folder <00001>-<name>).")
@click.option("--resume", "resume", type=click.Path(exists=True, file_okay=False), help="Continue this run folder exactly.")
@click.option("--dataset-json", help="dataset.json for SHARDS given as a pattern or URL (pipe:, http://).")
@click.option("--val-shards", help="Validation shards (pattern/URL); default: the val split of dataset.json.")
@click.option("--label-input", type=click.Choice(["onehot", "color"]), default="onehot", show_default=True)
@click.option("--colorspace", type=click.Choice(["rgb", "lab"]), default="rgb", show_default=True,
              help="lab: input L, output ab (colorization).")
@click.option("--augment", type=click.Choice(["none", "pix2pix", "strong"]), default="pix2pix", show_default=True)
@click.option("--load-size", type=int, default=286, show_default=True)
@click.option("--crop-size", type=int, default=256, show_default=True)
@click.option("--no-flip", is_flag=True, help="No random horizontal flip.")
@click.option("--generator", "generator", default="unet_256", show_default=True,
              type=click.Choice(["unet_256", "unet_128", "unet", "resnet_9blocks", "resnet_6blocks", "encoder_decoder"]))
@click.option("--discriminator", type=click.Choice(["patch", "pixel", "image"]), default="patch", show_default=True)
@click.option("--n-layers", type=int, default=3, show_default=True, help="PatchGAN depth (3 = 70x70).")
@click.option("--norm", type=click.Choice(["batch", "instance", "none"]), default="batch", show_default=True)
@click.option("--generator-channels", type=int, default=64, show_default=True)
@click.option("--discriminator-channels", type=int, default=64, show_default=True)
@click.option("--no-dropout", is_flag=True, help="Turn off the generator's dropout noise.")
@click.option("--gan-mode", type=click.Choice(["vanilla", "lsgan", "hinge"]), default="vanilla", show_default=True)
@click.option("--lambda-l1", type=float, default=100.0, show_default=True)
@click.option("--no-gan", is_flag=True, help="L1 only.")
@click.option("--unconditional", is_flag=True, help="The discriminator sees only B.")
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--beta1", type=float, default=0.5, show_default=True)
@click.option("--epochs", type=int, default=100, show_default=True, help="Epochs at the initial lr.")
@click.option("--decay-epochs", type=int, default=100, show_default=True, help="Epochs of linear lr decay.")
@click.option("--steps", type=int, callback=_positive, help="Total steps (overrides epochs; extends a resumed run).")
@click.option("--ema", type=float, default=0.0, show_default=True, help="Generator EMA decay (0.999; 0 = off).")
@click.option("--batch-size", type=int, default=1, show_default=True, callback=_positive)
@click.option("--num-workers", type=click.IntRange(min=0), default=None,
              help="DataLoader decoding processes [default: 0 on the CPU, up to 8 with a GPU].")
@click.option("--shuffle-buffer", type=int, default=1000, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
              help="auto: bf16 on CUDA, fp32 on CPU.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the networks.")
@click.option("--deterministic", is_flag=True, help="Deterministic kernels (exact resume).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--log-every", type=int, default=10, show_default=True, callback=_positive)
@click.option("--sample-every", type=int, default=500, show_default=True)
@click.option("--val-every", type=int, default=1000, show_default=True)
@click.option("--checkpoint-every", type=int, default=1000, show_default=True)
@click.option("--keep-checkpoints", type=click.IntRange(min=1), default=3, show_default=True,
              help="Step checkpoints kept (the newest); older ones are deleted.")
@click.option("--max-val-samples", type=int, default=64, show_default=True)
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard events (if installed).")
@click.option("--record-keys", is_flag=True, hidden=True, help="Write keys.jsonl of the trained samples.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def train_command(shards: str | None, resume: str | None, steps: int | None, dry_run: bool, **options: object) -> None:
    """Train pix2pix on the shard set SHARDS (a folder with dataset.json, a brace pattern or a URL).

    \b
    Examples:
      pairforge train shards/
      pairforge train shards/ --generator resnet_9blocks --gan-mode lsgan --ema 0.999
      pairforge train --resume runs/00001-pix2pix --steps 20000
      torchrun --nproc_per_node 4 -m pairforge train shards/
    """
    import dataclasses
    import os

    from pairforge.trainer.config import (
        AugmentConfig,
        DataConfig,
        LossConfig,
        ModelConfig,
        OptimConfig,
        TrainConfig,
    )
    from pairforge.trainer.data import default_num_workers
    from pairforge.trainer.loop import resolve_config, resume_config, train

    if resume is not None:
        config = resume_config(resume, steps)
    else:
        if not shards:
            raise click.UsageError("give SHARDS (a shard folder) or --resume RUN_DIR")
        o = options
        config = TrainConfig(
            data=DataConfig(
                shards=shards, dataset_json=o["dataset_json"], val_shards=o["val_shards"],
                label_input=o["label_input"], colorspace=o["colorspace"], batch_size=o["batch_size"],
                num_workers=o["num_workers"] if o["num_workers"] is not None else default_num_workers(o["device"]),
                shuffle_buffer=o["shuffle_buffer"],
                max_val_samples=o["max_val_samples"], record_keys=o["record_keys"],
            ),
            augment=AugmentConfig(mode=o["augment"], load_size=o["load_size"], crop_size=o["crop_size"], flip=not o["no_flip"]),
            model=ModelConfig(
                generator=o["generator"], discriminator=o["discriminator"], n_layers=o["n_layers"], norm=o["norm"],
                generator_channels=o["generator_channels"], discriminator_channels=o["discriminator_channels"],
                dropout=not o["no_dropout"], crop_size=o["crop_size"], conditional=not o["unconditional"],
            ),
            loss=LossConfig(gan_mode=o["gan_mode"], lambda_l1=o["lambda_l1"], use_gan=not o["no_gan"]),
            optim=OptimConfig(lr=o["lr"], beta1=o["beta1"], epochs=o["epochs"], decay_epochs=o["decay_epochs"], steps=steps, ema=o["ema"]),
            output=o["output"], name=o["name"], seed=o["seed"], device=o["device"], precision=o["precision"],
            compile=o["compile_"], deterministic=o["deterministic"], log_every=o["log_every"],
            sample_every=o["sample_every"], val_every=o["val_every"], checkpoint_every=o["checkpoint_every"],
            keep_checkpoints=o["keep_checkpoints"],
            tensorboard=o["tensorboard"],
        )
    if dry_run:
        resolved, info, _ = resolve_config(config)
        document = resolved.to_dict()
        document["dataset"] = info.to_dict()
        click.echo(json.dumps(document, indent=2, sort_keys=True))
        return

    from tqdm import tqdm

    bar: list[tqdm] = []

    def progress(step: int, total: int, row: dict[str, object]) -> None:
        if not bar:
            bar.append(tqdm(total=total, initial=step - 1, unit="step", dynamic_ncols=True))
        bar[0].update(step - bar[0].n)
        if row:
            bar[0].set_postfix(
                {"img/s": f"{row.get('images_per_s', 0):.1f}", "L1": f"{row.get('loss_g_l1', 0):.3f}",
                 "wait": f"{row.get('data_wait_fraction', 0):.0%}"}, refresh=False
            )

    result = train(config, resume=resume, progress=progress)
    if bar:
        bar[0].close()
    if os.environ.get("RANK", "0") == "0":
        _summary(result, dataclasses.asdict(result))


def _summary(result: object, values: dict[str, object]) -> None:
    """The one-screen summary printed at the end of a run."""
    click.echo("")
    click.echo(f"run        {values['run_dir']}")
    click.echo(f"steps      {values['steps']} / {values['total_steps']} in {values['elapsed_s']:.1f} s")
    click.echo(f"speed      {values['images_per_s']:.1f} images/s, data wait {values['data_wait_fraction']:.1%}")
    click.echo(f"skipped    {values['skipped_samples']} corrupt samples")
    losses = values["last_losses"] or {}
    if losses:
        click.echo("losses     " + ", ".join(f"{k}={v:.4f}" for k, v in losses.items()))
    validation = values["validation"] or {}
    if validation:
        click.echo("validation " + ", ".join(f"{k}={v:.4f}" for k, v in validation.items()))
    click.echo(f"checkpoint {values['checkpoint']}")
    click.echo(f"report     {values['run_dir']}/report.html")


COMMANDS.append(train_command)
