"""Networks, losses and schedule; every ablation flag combination builds and runs 2 steps."""

from __future__ import annotations

import json

import pytest
import torch

from pairforge.errors import ConfigError
from pairforge.trainer.config import ModelConfig, OptimConfig
from pairforge.trainer.loop import train
from pairforge.trainer.losses import discriminator_loss, generator_gan_loss
from pairforge.trainer.networks import build_discriminator, build_generator, unet_depth
from pairforge.trainer.schedule import lr_factor, make_schedule


@pytest.mark.parametrize(
    "generator, crop",
    [("unet_256", 256), ("unet_128", 128), ("unet", 64), ("unet", 96), ("resnet_9blocks", 64),
     ("resnet_6blocks", 64), ("encoder_decoder", 64)],
)
def test_generators_map_images_to_images(generator: str, crop: int) -> None:
    config = ModelConfig(generator=generator, in_channels=2, out_channels=3, generator_channels=4, crop_size=crop)
    network = build_generator(config)
    out = network(torch.randn(1, 2, crop, crop))
    assert out.shape == (1, 3, crop, crop) and out.abs().max() <= 1.0
    dropouts = sum(isinstance(m, torch.nn.Dropout) for m in network.modules())
    # as in the paper: dropout in the ResNet blocks and in U-Net levels between two 8x-wide levels
    assert (dropouts > 0) == (generator.startswith("resnet") or unet_depth(generator, crop) >= 6)


def test_unet_depth_and_skips() -> None:
    assert unet_depth("unet_256", 64) == 8 and unet_depth("unet", 64) == 6 and unet_depth("unet", 96) == 5
    with_skips = build_generator(ModelConfig(generator="unet", generator_channels=4, crop_size=64))
    without = build_generator(ModelConfig(generator="encoder_decoder", generator_channels=4, crop_size=64))
    assert sum(p.numel() for p in with_skips.parameters()) > sum(p.numel() for p in without.parameters())
    with pytest.raises(ConfigError, match="generator"):
        ModelConfig(generator="unet_256", crop_size=64)


@pytest.mark.parametrize("kind, n_layers, expected", [("patch", 3, (6, 6)), ("patch", 1, (30, 30)), ("pixel", 3, (64, 64)), ("global", 3, (1, 1))])
def test_discriminator_outputs(kind: str, n_layers: int, expected: tuple[int, int]) -> None:
    config = ModelConfig(discriminator=kind, n_layers=n_layers, discriminator_channels=4, crop_size=64, generator="unet")
    network = build_discriminator(config)
    assert network(torch.randn(2, 6, 64, 64)).shape == (2, 1, *expected)
    weights = torch.cat([m.weight.flatten() for m in network.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(weights.std().item() - 0.02) < 0.005


def test_patchgan_receptive_field_is_70() -> None:
    network = build_discriminator(ModelConfig(discriminator="patch", n_layers=3, discriminator_channels=4, crop_size=128, generator="unet", norm="none"))
    image = torch.zeros(1, 6, 128, 128, requires_grad=True)
    network(image)[0, 0, 7, 7].backward()
    rows = image.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    assert rows.max().item() - rows.min().item() + 1 == 70


def test_image_discriminator_is_the_papers_286_patchgan() -> None:
    """--discriminator image: receptive field 286x286, layers C64-C128-C256-C512-C512-C512 (paper appendix)."""
    network = build_discriminator(ModelConfig(discriminator="image", discriminator_channels=4, crop_size=256,
                                              generator="unet", norm="none"))
    widths = [m.out_channels for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [4, 8, 16, 32, 32, 32, 1]
    image = torch.zeros(1, 6, 576, 576, requires_grad=True)
    output = network(image)
    assert output.shape == (1, 1, 16, 16)
    output[0, 0, 8, 8].backward()
    rows = image.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    assert rows.max().item() - rows.min().item() + 1 == 286
    assert build_discriminator(ModelConfig(discriminator="image", crop_size=256, generator="unet",
                                           discriminator_channels=4))(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 6, 6)
    with pytest.raises(ConfigError, match="at least 96"):
        ModelConfig(discriminator="image", crop_size=64, generator="unet")


@pytest.mark.parametrize("mode", ["vanilla", "lsgan", "hinge"])
def test_gan_losses_prefer_the_right_answer(mode: str) -> None:
    good, bad = torch.full((4,), 3.0), torch.full((4,), -3.0)
    assert discriminator_loss(good, bad, mode) < discriminator_loss(bad, good, mode)
    assert generator_gan_loss(good, mode) < generator_gan_loss(bad, mode)


def test_schedule_is_constant_then_linear_to_near_zero() -> None:
    schedule = make_schedule(OptimConfig(epochs=2, decay_epochs=2), train_count=10, batch_size=5)
    assert schedule.steps_per_epoch == 2 and schedule.total_steps == 8
    factors = [lr_factor(step, schedule) for step in range(8)]
    assert factors[:4] == [1.0] * 4
    assert factors[4:] == pytest.approx([0.8, 0.6, 0.4, 0.2])
    by_steps = make_schedule(OptimConfig(steps=10, epochs=1, decay_epochs=1), train_count=10, batch_size=1)
    assert (by_steps.constant_steps, by_steps.decay_steps) == (5, 5)


ABLATIONS = {
    "L1": dict(loss__use_gan=False),
    "GAN": dict(loss__lambda_l1=0.0, model__conditional=False),
    "cGAN": dict(loss__lambda_l1=0.0),
    "L1+GAN": dict(model__conditional=False),
    "L1+cGAN": dict(),
    "lsgan-pixel": dict(loss__gan_mode="lsgan", model__discriminator="pixel"),
    "hinge-global": dict(loss__gan_mode="hinge", model__discriminator="global"),
    "patch1-instance": dict(model__n_layers=1, model__norm="instance"),
    "no-norm-no-dropout": dict(model__norm="none", model__dropout=False),
    "encoder-decoder": dict(model__generator="encoder_decoder"),
    "resnet6-strong": dict(model__generator="resnet_6blocks", augment__mode="strong"),
    "resnet9-none-ema": dict(model__generator="resnet_9blocks", augment__mode="none", optim__ema=0.999),
    "unet128": dict(model__generator="unet_128", augment__crop_size=128, model__generator_channels=4),
    "labels-onehot": dict(kind="labels", data__label_input="onehot"),
    "labels-color": dict(kind="labels", data__label_input="color"),
    "lab-colorization": dict(kind="gray", data__colorspace="lab"),
    "bf16-autocast": dict(precision="bf16"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ABLATIONS))
def test_each_ablation_runs_two_steps(name: str, shard_factory, tiny_config, tmp_path) -> None:
    options = dict(ABLATIONS[name])
    kind = options.pop("kind", "edges")
    size = 136 if options.get("augment__crop_size") == 128 else 72
    root = shard_factory(kind=kind, count=2, shards=1, val=1, size=size)
    result = train(tiny_config(root, tmp_path / "runs", steps=2, **options))
    assert result.steps == 2
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [row for row in rows if row.get("split") != "val"]
    assert len(train_rows) == 2 and all(torch.isfinite(torch.tensor(row["loss_g_l1"])) for row in train_rows)
    assert ("loss_d" in train_rows[0]) == options.get("loss__use_gan", True)
    assert (result.run_dir / "samples").is_dir() and (result.run_dir / "report.html").is_file()
