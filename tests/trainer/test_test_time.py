"""Test-time behaviour of the generator: per-image batch-norm statistics, one definition, scale."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pairforge.errors import ConfigError
from pairforge.trainer.augment import PairAugment
from pairforge.trainer.config import ModelConfig
from pairforge.trainer.data import iterate_split, load_dataset_info
from pairforge.trainer.inference import (
    InferenceConfig,
    Predictor,
    load_checked_generator,
    model_scale_size,
)
from pairforge.trainer.loop import train
from pairforge.trainer.networks import PerImageNorm, build_generator, inference_generator
from pairforge.trainer.run import resume_config
from pairforge.trainer.transforms import Encoding, encode_input, encode_target
from tests.trainer.conftest import make_tiny_config, write_shards


def _generator_with_far_running_stats(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    generator = build_generator(ModelConfig(generator="unet", in_channels=1, out_channels=3, generator_channels=8,
                                            crop_size=64))
    for layer in generator.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.fill_(3.0)
            layer.running_var.fill_(0.01)
    return generator


CONFIG = {"dataset": {"kind": "edges", "a_channels": 1, "b_channels": 3, "palette": None},
          "data": {}, "augment": {"crop_size": 64},
          "model": {"generator": "unet", "crop_size": 64}}


def test_per_image_norm_is_training_mode_batch_norm_at_batch_one() -> None:
    """Known answer: the test-time network equals the training-mode network (dropout off) on one image."""
    generator = _generator_with_far_running_stats()
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    reference = generator.train()
    for layer in reference.modules():
        if isinstance(layer, nn.Dropout):
            layer.eval()
    with torch.no_grad():
        expected = reference(x)
        produced = inference_generator(generator)(x)
        running = inference_generator(generator, "running")(x)
    assert torch.allclose(produced, expected, atol=1e-5)
    assert (running - expected).abs().max() > 0.1  # the running averages give another network
    assert generator.training  # the original keeps its mode
    shared = inference_generator(generator)
    assert any(isinstance(m, PerImageNorm) for m in shared.modules())
    assert shared.state_dict().keys() <= generator.state_dict().keys()
    first = next(generator.parameters())
    assert any(p is first for p in shared.parameters())  # parameters shared, not copied


def test_batch_of_n_equals_n_batches_of_one() -> None:
    generator = _generator_with_far_running_stats(1)
    rng = np.random.default_rng(0)
    images = [np.where(rng.random((64, 64)) > p, 0, 255).astype(np.uint8) for p in (0.5, 0.9, 0.99)]
    batched = Predictor(generator, CONFIG, InferenceConfig(dropout=False, batch_size=3, scale="native"))
    single = Predictor(generator, CONFIG, InferenceConfig(dropout=False, batch_size=1, scale="native"))
    together = batched.predict(images)
    alone = [single.predict([image])[0] for image in images]
    for joint, solo in zip(together, alone, strict=True):
        assert np.abs(joint.astype(int) - solo.astype(int)).max() <= 1
    # and with dropout on, seeded, one image's output does not depend on its neighbours' content
    noisy = Predictor(generator, CONFIG, InferenceConfig(dropout=True, batch_size=3, scale="native"))
    swapped = noisy.predict([images[0], images[2], images[1]])
    again = noisy.predict([images[0], images[1], images[2]])
    assert np.array_equal(swapped[0], again[0])


def test_norm_stats_option_validated() -> None:
    with pytest.raises(ConfigError, match="norm_stats"):
        InferenceConfig(norm_stats="batch")
    with pytest.raises(ConfigError, match="scale"):
        InferenceConfig(scale="full")


def test_training_scale_runs_at_crop_size_and_returns_input_size() -> None:
    assert model_scale_size(600, 600, 256) == (256, 256)
    assert model_scale_size(1600, 2560, 256) == (256, 410)
    seen: list[tuple[int, ...]] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape[-2:]))
            return torch.zeros(x.shape[0], 3, *x.shape[-2:])

    config = {**CONFIG, "model": {"generator": "resnet_6blocks", "crop_size": 64}}
    predictor = Predictor(Probe(), config, InferenceConfig(dropout=False))
    [out] = predictor.predict([np.zeros((300, 200), np.uint8)])
    assert out.shape == (300, 200, 3) and seen == [(96, 64)]
    seen.clear()
    native = Predictor(Probe(), config, InferenceConfig(dropout=False, scale="native"))
    native.predict([np.zeros((300, 200), np.uint8)])
    assert seen == [(300, 200)]


@pytest.mark.slow
def test_validation_uses_per_image_statistics(tmp_path: Path) -> None:
    """The loop's validation score is the test-time network's as predict runs it (per-image statistics,
    dropout on, its noise seeded with predict's default seed 0 before each batch), recomputed here."""
    shards = write_shards(tmp_path / "shards", kind="edges", count=4, size=72, shards=1, val=2)
    result = train(make_tiny_config(shards, tmp_path / "runs", steps=2))
    config = resume_config(result.run_dir)
    document = json.loads((Path(result.run_dir) / "config.json").read_text())
    generator, _ = load_checked_generator(result.run_dir)
    encoding = Encoding.from_config(document)
    info = load_dataset_info(str(shards))
    augment = PairAugment(config.augment, nearest_a=False)
    per_image = inference_generator(generator, dropout=True)
    running = inference_generator(generator, "running", dropout=True)
    l1s, l1s_running = [], []
    with torch.no_grad():
        for batch in iterate_split(info.splits["val"], encoding, 8):
            a, b = augment(batch["a"].float(), batch["b"].float(), batch["sizes"], train=False)
            x, y = encode_input(a, encoding, b), encode_target(b, encoding)
            torch.manual_seed(0)
            l1s.append((per_image(x) - y).abs().mean(dim=(1, 2, 3)))
            torch.manual_seed(0)
            l1s_running.append((running(x) - y).abs().mean(dim=(1, 2, 3)))
    expected = float(torch.cat(l1s).mean()) / 2  # val_l1 is on [0, 1] RGB, the network's range is [-1, 1]
    assert result.validation["val_l1"] == pytest.approx(expected, abs=1e-5)
    assert abs(float(torch.cat(l1s_running).mean()) - expected) > 1e-4


def test_scale_hint_only_when_crops_are_much_smaller_than_the_load_size() -> None:
    from pairforge.trainer.inference import scale_hint

    def config(load: int, crop: int, mode: str = "pix2pix") -> dict:
        return {"augment": {"mode": mode, "load_size": load, "crop_size": crop}, "model": {"crop_size": crop}}

    assert scale_hint(config(286, 256)) is None  # the paper's recipe: the reference's test scale fits
    assert scale_hint(config(143, 128)) is None
    assert scale_hint(config(128, 64, "none")) is None  # no crop: trained at the crop size
    hint = scale_hint(config(128, 64))
    assert hint is not None and "64-px crops" in hint and "0.5x" in hint and "--scale native" in hint
