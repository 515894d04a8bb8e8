"""Known answers that pin the paper's recipe: losses, lr decay in the optimizer, flip/crop, lambda, conditioning,
split, FCN-score, resume without deterministic kernels, dropout in training, the paper's defaults, a detached D step.
Each test names the mutation it catches."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from pairforge.keys import assign_split
from pairforge.trainer import ddp, loop, run, step
from pairforge.trainer.augment import PairAugment
from pairforge.trainer.checkpoint import list_checkpoints
from pairforge.trainer.config import AugmentConfig
from pairforge.trainer.evaluation import segmentation_scores
from pairforge.trainer.loop import train
from pairforge.trainer.losses import discriminator_loss, generator_gan_loss
from pairforge.trainer.run import resume_config

LOG2 = math.log(2.0)


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


def test_vanilla_generator_loss_is_non_saturating() -> None:
    """-log D(G(z)) (softplus(-x)), not log(1 - D(G(z))): catches a saturating G loss."""
    assert generator_gan_loss(_t(0.0), "vanilla").item() == pytest.approx(LOG2, abs=1e-6)
    assert generator_gan_loss(_t(2.0), "vanilla").item() == pytest.approx(math.log1p(math.exp(-2.0)), abs=1e-6)
    assert generator_gan_loss(_t(-3.0), "vanilla").item() == pytest.approx(math.log1p(math.exp(3.0)), abs=1e-6)
    logits = _t(-4.0).requires_grad_()
    generator_gan_loss(logits, "vanilla").backward()
    assert logits.grad.item() == pytest.approx(-1 / (1 + math.exp(-4.0)), abs=1e-6)  # strong gradient when D wins


def test_discriminator_loss_is_halved() -> None:
    """0.5 * (BCE(real, 1) + BCE(fake, 0)): catches D loss not halved."""
    assert discriminator_loss(_t(0.0), _t(0.0), "vanilla").item() == pytest.approx(LOG2, abs=1e-6)
    assert discriminator_loss(_t(1.0), _t(-1.0), "vanilla").item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-6)
    assert discriminator_loss(_t(3.0), _t(1.0), "hinge").item() == pytest.approx(1.0, abs=1e-6)  # 0.5 * (0 + 2)


def test_lsgan_targets_are_one_and_zero() -> None:
    """LSGAN: (D(real) - 1)^2 and D(fake)^2, halved; G: (D(fake) - 1)^2. Catches a real target of 0.5."""
    assert discriminator_loss(_t(1.0), _t(0.0), "lsgan").item() == pytest.approx(0.0, abs=1e-7)
    assert discriminator_loss(_t(0.5), _t(0.5), "lsgan").item() == pytest.approx(0.5 * (0.25 + 0.25), abs=1e-7)
    assert discriminator_loss(_t(0.0), _t(1.0), "lsgan").item() == pytest.approx(1.0, abs=1e-7)
    assert generator_gan_loss(_t(1.0), "lsgan").item() == pytest.approx(0.0, abs=1e-7)
    assert generator_gan_loss(_t(0.5), "lsgan").item() == pytest.approx(0.25, abs=1e-7)


@pytest.mark.slow
def test_optimizers_use_the_decayed_learning_rate(edge_shards: Path, tiny_config, tmp_path: Path) -> None:
    """The lr each Adam step actually uses: 2 constant steps, then 1 - k/3 (catches decay never applied)."""
    used: list[tuple[int, float]] = []
    handle = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: used.append((id(optimizer), optimizer.param_groups[0]["lr"]))
    )
    try:
        train(tiny_config(edge_shards, tmp_path, steps=4, optim__epochs=1, optim__decay_epochs=1, optim__lr=0.3))
    finally:
        handle.remove()
    per_optimizer: dict[int, list[float]] = {}
    for key, lr in used:
        per_optimizer.setdefault(key, []).append(lr)
    assert len(per_optimizer) == 2  # generator and discriminator
    for lrs in per_optimizer.values():
        assert lrs == pytest.approx([0.3, 0.3, 0.3 * 2 / 3, 0.3 * 1 / 3], abs=1e-9)


def _ramp(size: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    return (x + 100.0 * y)[None, None]


def test_pix2pix_augment_crops_anywhere_and_flips_half_the_time() -> None:
    """Load 10 = source, crop 8: every output is an exact 8x8 window (maybe mirrored) at a random place.

    Catches always cropping at (0, 0) and never flipping."""
    augment = PairAugment(AugmentConfig(mode="pix2pix", load_size=10, crop_size=8))
    source = _ramp(10)
    rng = torch.Generator().manual_seed(0)
    offsets, flips = set(), 0
    for _ in range(60):
        a, b = augment(source, source.repeat(1, 3, 1, 1), torch.tensor([[10, 10]]), rng)
        out = a[0, 0]
        assert torch.equal(b[0, 0], out)  # one geometry for A and B
        flipped = bool(out[0, 0] > out[0, 1])
        window = out.flip(-1) if flipped else out
        corner = round(window[0, 0].item())
        y0, x0 = corner // 100, corner % 100
        assert torch.allclose(window, source[0, 0, y0 : y0 + 8, x0 : x0 + 8], atol=1e-3)
        offsets.add((y0, x0))
        flips += flipped
    assert len(offsets) == 9  # all 3 x 3 positions
    assert 15 <= flips <= 45


@pytest.mark.slow
def test_lambda_l1_scales_the_l1_gradient(edge_shards: Path, tiny_config, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The gradient reaching the L1 term is exactly lambda (0 removes it). Catches --lambda-l1 0 keeping L1."""
    for lambda_l1 in (0.0, 100.0, 7.0):
        grads: list[float] = []

        def recording_l1(output: torch.Tensor, target: torch.Tensor, grads: list[float] = grads) -> torch.Tensor:
            value = torch.nn.functional.l1_loss(output.float(), target.float())
            if value.requires_grad:
                value.register_hook(lambda grad: grads.append(float(grad)))
            return value

        monkeypatch.setattr(step, "l1_loss", recording_l1)
        train(tiny_config(edge_shards, tmp_path / str(lambda_l1), steps=2, loss__lambda_l1=lambda_l1))
        assert grads == [lambda_l1, lambda_l1]


@pytest.mark.slow
@pytest.mark.parametrize("conditional", [True, False])
def test_unconditional_changes_what_the_discriminator_sees(edge_shards: Path, tiny_config, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, conditional: bool) -> None:
    """cGAN: D sees (A, B) -- 1 + 3 channels for edges; GAN (--unconditional): only B's 3 channels, in [-1, 1]."""
    seen: list[torch.Tensor] = []
    build = run.build_discriminator

    def recording_build(config):  # type: ignore[no-untyped-def]
        network: nn.Module = build(config)
        network.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
        return network

    monkeypatch.setattr(run, "build_discriminator", recording_build)
    train(tiny_config(edge_shards, tmp_path, steps=1, model__conditional=conditional))
    assert len(seen) == 3  # real, fake (for D), fake (for G)
    assert {x.shape[1] for x in seen} == ({4} if conditional else {3})
    real, fake = seen[0], seen[1]
    if conditional:
        assert torch.equal(real[:, :1], fake[:, :1])  # the same A next to the real and the fake B
        assert set(real[:, :1].unique().tolist()) <= {-1.0, 1.0} or real[:, :1].abs().max() <= 1.0
    assert not torch.equal(real[:, -3:], fake[:, -3:])


def test_split_by_key_known_answers() -> None:
    """sha256 of the key, stable across processes and machines (catches a per-process salted hash)."""
    expected = {"img_000": "train", "img_001": "val", "img_003": "test", "img_004": "test", "img_005": "val",
                "img_019": "test", "img_023": "val", "astronaut": "train", "coffee": "val", "shoe_12345": "val"}
    assert {key: assign_split(key, 0.3, 0.1) for key in expected} == expected


def test_fcn_score_with_a_class_absent_from_the_ground_truth() -> None:
    """Class 2 is predicted but never true: it counts in pixel accuracy's total, not in the class means."""
    confusion = np.array([[3, 1, 0],   # true 0: 3 right, 1 as class 1
                          [0, 2, 2],   # true 1: 2 right, 2 as class 2
                          [0, 0, 0]])  # class 2 absent from the truth
    scores = segmentation_scores(confusion)
    assert scores["pixel_accuracy"] == pytest.approx(5 / 8)
    assert scores["class_accuracy"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    # IoU: class 0: 3 / (4 + 3 - 3) = 3/4; class 1: 2 / (4 + 3 - 2) = 2/5; class 2 left out
    assert scores["class_iou"] == pytest.approx((3 / 4 + 2 / 5) / 2)


@pytest.mark.slow
def test_resume_is_exact_with_default_nondeterministic_kernels(edge_shards: Path, tiny_config, tmp_path: Path) -> None:
    """deterministic=False (the default): CPU resume still continues exactly."""
    straight = train(tiny_config(edge_shards, tmp_path / "straight", steps=4))
    first = train(tiny_config(edge_shards, tmp_path / "split", steps=4), stop_at=2)
    resumed = train(resume_config(first.run_dir), resume=first.run_dir)
    assert not resume_config(first.run_dir).deterministic
    for name in ("generator", "discriminator"):
        expected = load_file(str(list_checkpoints(straight.run_dir)[-1] / f"{name}.safetensors"))
        actual = load_file(str(list_checkpoints(resumed.run_dir)[-1] / f"{name}.safetensors"))
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=f"{name}.{key}")


def test_fcn_class_accuracy_is_not_pixel_accuracy_with_unequal_class_counts() -> None:
    """10 pixels of class 0 (8 right), 2 of class 1 (1 right): the three FCN-scores all differ.

    Catches class accuracy computed as pixel accuracy (equal counts hide it) and IoU as class accuracy."""
    scores = segmentation_scores(np.array([[8, 2], [1, 1]]))
    assert scores["pixel_accuracy"] == pytest.approx(9 / 12)  # 0.75
    assert scores["class_accuracy"] == pytest.approx((8 / 10 + 1 / 2) / 2)  # 0.65
    # IoU: class 0: 8 / (10 + 9 - 8) = 8/11; class 1: 1 / (2 + 3 - 1) = 1/4
    assert scores["class_iou"] == pytest.approx((8 / 11 + 1 / 4) / 2)


def test_every_dropout_layer_is_on_in_every_training_step(edge_shards: Path, tiny_config, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropout is pix2pix's noise: in each train_step every dropout layer of G is in training mode and
    zeroes about half of its activations. The tiny 64-px U-Net has one (the 8x-wide middle level).

    Catches dropout switched off during training (the layers put in eval mode, or p = 0)."""
    in_step: list[bool] = [False]
    modes: list[bool] = []
    zeroed: list[float] = []
    layers: list[nn.Dropout] = []
    build, original_step = run.build_generator, loop.train_step

    def recording_build(config):  # type: ignore[no-untyped-def]
        network: nn.Module = build(config)
        for module in network.modules():
            if isinstance(module, nn.Dropout):
                layers.append(module)
                module.register_forward_pre_hook(lambda m, args: modes.append(m.training) if in_step[0] else None)
                module.register_forward_hook(
                    lambda m, args, out: zeroed.append(float(((out == 0) & (args[0] != 0)).float().mean()))
                    if in_step[0] else None)
        return network

    def recording_step(*args, **kwargs):  # type: ignore[no-untyped-def]
        in_step[0] = True
        try:
            return original_step(*args, **kwargs)
        finally:
            in_step[0] = False

    monkeypatch.setattr(run, "build_generator", recording_build)
    monkeypatch.setattr(loop, "train_step", recording_step)
    train(tiny_config(edge_shards, tmp_path, steps=3))
    assert len(layers) >= 1 and all(layer.p == 0.5 for layer in layers)  # the paper's rate
    assert modes == [True] * (3 * len(layers))  # one G forward per step, every layer in training mode
    assert all(0.3 < share < 0.7 for share in zeroed), zeroed


PAPER = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "lambda_l1": 100.0, "load_size": 286, "crop_size": 256,
         "augment": "pix2pix", "flip": True, "epochs": 100, "decay_epochs": 100, "batch_size": 1,
         "generator": "unet_256", "discriminator": "patch", "n_layers": 3, "norm": "batch", "dropout": True,
         "gan_mode": "vanilla", "use_gan": True, "conditional": True}
"""The paper's recipe (Isola et al. 2017, sec. 3.3 and appendix 6.2; the reference's train defaults)."""


def _recipe(config) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {"lr": config.optim.lr, "beta1": config.optim.beta1, "beta2": config.optim.beta2,
            "lambda_l1": config.loss.lambda_l1, "load_size": config.augment.load_size,
            "crop_size": config.augment.crop_size, "augment": config.augment.mode, "flip": config.augment.flip,
            "epochs": config.optim.epochs, "decay_epochs": config.optim.decay_epochs,
            "batch_size": config.data.batch_size, "generator": config.model.generator,
            "discriminator": config.model.discriminator, "n_layers": config.model.n_layers,
            "norm": config.model.norm, "dropout": config.model.dropout, "gan_mode": config.loss.gan_mode,
            "use_gan": config.loss.use_gan, "conditional": config.model.conditional}


def _cli_default_config():  # type: ignore[no-untyped-def]
    """The TrainConfig `pairforge train shards/` builds with no options (as the command does)."""
    from pairforge.commands.train import train_command
    from pairforge.trainer.config import TrainConfig

    options = train_command.make_context("train", ["shards"]).params
    for name in ("resume", "dry_run", "verify"):
        options.pop(name)
    options["num_workers"] = 0 if options["num_workers"] is None else options["num_workers"]
    return TrainConfig.from_options(**options)


def test_the_papers_recipe_is_the_default_of_the_config_and_the_cli() -> None:
    """Catches a changed default (beta1 0.9, lambda 10, load 256, ...) in the dataclasses or the CLI."""
    from pairforge.trainer.config import TrainConfig

    assert _recipe(TrainConfig()) == PAPER
    assert _recipe(_cli_default_config()) == PAPER


def test_build_models_gives_adam_with_the_papers_settings() -> None:
    """The optimizers as built (not only the config): Adam, lr 2e-4, betas (0.5, 0.999), no weight decay,
    each over all of its network's parameters. Catches betas or lr not passed from the config."""
    config = _cli_default_config()
    small = dataclasses.replace(config.model, generator="unet", crop_size=32, generator_channels=4,
                                discriminator_channels=4)
    models = run.build_models(dataclasses.replace(config, model=small,
                                                   augment=dataclasses.replace(config.augment, crop_size=32)),
                               torch.device("cpu"))
    for optimizer, network in ((models.optimizer_g, models.generator), (models.optimizer_d, models.discriminator)):
        assert type(optimizer) is torch.optim.Adam
        (group,) = optimizer.param_groups
        assert group["lr"] == 2e-4 and group["betas"] == (0.5, 0.999)
        assert group["weight_decay"] == 0 and group["eps"] == 1e-8 and not group["amsgrad"]
        assert {id(p) for p in group["params"]} == {id(p) for p in network.parameters()}


def test_the_default_schedule_is_constant_then_linear_to_zero() -> None:
    """facades at the defaults (400 pairs, batch 1): 100 epochs at 2e-4, then 100 epochs falling linearly to 0
    (the last step still learns at 1/(decay + 1), as the reference's last decay epoch). Catches a missing
    constant phase, a decay that does not reach 0, or a non-linear one."""
    from pairforge.trainer.config import OptimConfig
    from pairforge.trainer.schedule import lr_factor, make_schedule

    schedule = make_schedule(OptimConfig(), train_count=400, batch_size=1)
    assert (schedule.constant_steps, schedule.decay_steps) == (40_000, 40_000)
    assert lr_factor(0, schedule) == lr_factor(39_999, schedule) == 1.0
    decay = [lr_factor(step, schedule) for step in range(40_000, 80_000)]
    assert decay[0] == pytest.approx(1 - 1 / 40_001) and decay[-1] == pytest.approx(1 / 40_001)
    assert np.allclose(np.diff(decay), -1 / 40_001)  # a straight line
    assert lr_factor(80_000, schedule) == 0.0


def test_the_d_step_leaves_the_generators_gradients_untouched(edge_shards: Path, tiny_config, tmp_path: Path) -> None:
    """D learns from G(A) detached: between D's first forward and D's optimizer step, G's gradients do not
    change (None on the first step, the previous G step's values on the second).

    Catches a D step whose loss reaches G (fake not detached), whether or not autograd crashes later."""
    config = run.resolve_config(tiny_config(edge_shards, tmp_path))[0]
    torch.manual_seed(0)
    models = run.build_models(config, torch.device("cpu"))
    assert models.discriminator is not None and models.optimizer_d is not None
    handles = run.training_handles(models, False, ddp.Distributed(), torch.device("cpu"))
    latest: list[list[torch.Tensor | None]] = []
    seen: list[tuple[list[torch.Tensor | None], list[str]]] = []

    def grads() -> list[torch.Tensor | None]:
        return [None if p.grad is None else p.grad.detach().clone() for p in models.generator.parameters()]

    def snapshot(module: nn.Module, args: object) -> None:
        if next(module.parameters()).requires_grad:  # D's own step (D is frozen while it judges for G)
            latest[:] = [grads()]

    def compare(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        before, names = latest[0], [name for name, _ in models.generator.named_parameters()]
        touched = [name for name, old, new in zip(names, before, grads(), strict=True)
                   if (old is None) != (new is None) or (old is not None and not torch.equal(old, new))]
        seen.append((before, touched))
        assert not touched, f"the D step changed G's gradients: {touched[:3]}..."

    models.discriminator.register_forward_pre_hook(snapshot)
    models.optimizer_d.register_step_post_hook(compare)
    x = torch.rand(2, config.model.in_channels, 64, 64) * 2 - 1
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    for _ in range(2):
        loop.train_step(models, handles, x, y, config.loss, True, contextlib.nullcontext())
    assert [touched for _, touched in seen] == [[], []]
    assert all(g is None for g in seen[0][0]) and all(g is not None for g in seen[1][0])
