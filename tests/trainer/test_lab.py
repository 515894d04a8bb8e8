"""Colorization: the input is the photo's L, the output the photo's L plus the predicted ab; one Lab definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pairforge import lab
from pairforge.pipelines.geometry import FitConfig
from pairforge.pipelines.gray import GrayConfig, GrayStage, lab_lightness
from pairforge.trainer import metrics
from pairforge.trainer.inference import InferenceConfig, Predictor
from pairforge.trainer.transforms import (
    Encoding,
    a_lightness,
    encode_target,
    lab_to_rgb,
    output_to_rgb,
    prepare_input,
    rgb_to_lab,
)
from tests.conftest import sample_photos


def _psnr(output: np.ndarray, target: np.ndarray) -> float:
    to = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0  # noqa: E731
    return float(metrics.psnr(to(output), to(target))[0])


@pytest.fixture(scope="module")
def gray_pairs() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    pairs = {}
    for space in ("lab", "luma"):
        stage = GrayStage(GrayConfig(space=space, fit=FitConfig(size=96)))
        pairs[space] = [(s.a, s.b) for s in (stage(photo, f"p{i}") for i, photo in enumerate(sample_photos()))]
    return pairs


def _encoding(space: str) -> Encoding:
    return Encoding(kind="gray", a_channels=1, colorspace="lab", gray_space=space)


def test_numpy_and_torch_lab_are_one_definition() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    reference = lab.rgb_to_lab(rgb)
    produced = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0)[0].permute(1, 2, 0).numpy()
    assert np.abs(produced - reference).max() < 1e-3
    back = lab_to_rgb(torch.from_numpy(reference).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
    assert np.abs(back * 255 - rgb).max() < 0.05
    assert np.abs(lab.lab_to_rgb(reference) * 255 - rgb).max() < 1e-6
    # known answers: white is L=100, a=b=0; sRGB red is L=53.24, a=80.09, b=67.20 (CIE, D65)
    assert np.allclose(lab.rgb_to_lab(np.array([255, 255, 255], np.uint8)), [100, 0, 0], atol=1e-6)
    assert np.allclose(lab.rgb_to_lab(np.array([255, 0, 0], np.uint8)), [53.24, 80.09, 67.20], atol=0.05)
    # make-gray --space lab uses the same L
    assert np.abs(lab_lightness(rgb).astype(float) - reference[..., 0] * 255 / 100).max() <= 0.5


@pytest.mark.parametrize("space", ["lab", "luma"])
def test_datasets_own_ab_reconstructs_b(gray_pairs: dict, space: str) -> None:
    """Feeding B's own ab as the prediction gives B back (>= 45 dB), whatever make-gray stored in A."""
    encoding = _encoding(space)
    for a, b in gray_pairs[space]:
        photo = torch.from_numpy(b).permute(2, 0, 1)[None].float()
        x = prepare_input(a, encoding, photos=b)
        ab = encode_target(photo, encoding)
        rgb = output_to_rgb(ab, encoding, x)[0]
        assert _psnr(rgb, b) >= 45.0


def test_predictor_takes_l_from_the_photo_and_combines_full_resolution_l(gray_pairs: dict) -> None:
    """A generator that returns B's ab (at the training scale) gives B back through predict."""
    a, b = gray_pairs["luma"][0]
    encoding = _encoding("luma")
    target_ab = encode_target(torch.from_numpy(b).permute(2, 0, 1)[None].float(), encoding)
    inputs: list[torch.Tensor] = []

    class Oracle(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            inputs.append(x)
            return nn.functional.interpolate(target_ab, size=x.shape[-2:], mode="bilinear", antialias=True)

    config = {"dataset": {"kind": "gray", "a_channels": 1, "b_channels": 3, "palette": None,
                          "source": {"stage": {"space": "luma"}}},
              "data": {"colorspace": "lab"}, "augment": {"crop_size": 32},
              "model": {"generator": "resnet_6blocks", "crop_size": 32}}
    native = Predictor(Oracle(), config, InferenceConfig(dropout=False, scale="native"))
    [rgb] = native.predict([a], photos=[b])
    assert _psnr(rgb, b) >= 45.0
    photo_l = rgb_to_lab(torch.from_numpy(b).permute(2, 0, 1)[None].float() / 255.0)[:, :1] / 50 - 1
    assert torch.allclose(inputs[-1], photo_l, atol=1e-5)
    # training scale: ab predicted at 32 px, upsampled, with the photo's full-resolution L: still sharp
    scaled = Predictor(Oracle(), config, InferenceConfig(dropout=False))
    [rgb_scaled] = scaled.predict([a], photos=[b])
    assert inputs[-1].shape[-2:] == (32, 32) and rgb_scaled.shape == b.shape
    assert _psnr(rgb_scaled, b) > 30.0
    # without the photo, L is read from A (a luma image as neutral gray) -- no longer exact
    [from_a] = native.predict([a])
    assert _psnr(from_a, b) < _psnr(rgb, b)


def test_lab_a_maps_back_to_the_photos_l(gray_pairs: dict) -> None:
    """A stored by make-gray --space lab is L*·255/100: read back as L*, within the 8-bit step."""
    a, b = gray_pairs["lab"][0]
    light = a_lightness(torch.from_numpy(a)[None, None].float(), _encoding("lab"))[0, 0].numpy()
    assert np.abs(light - lab.lightness(b)).max() <= 100 / 255 / 2 + 1e-4
    neutral = a_lightness(torch.from_numpy(a)[None, None].float(), _encoding("luma"))[0, 0].numpy()
    assert np.abs(neutral - lab.lightness(b)).max() > 1.0  # what the old code did to lab datasets


def test_training_input_is_the_photos_l(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """In a --colorspace lab run the generator's input is L of B (not of the stored gray A)."""
    import json

    import cv2

    from pairforge.trainer import loop, run
    from tests.trainer.conftest import make_tiny_config, write_shards

    shards = write_shards(tmp_path / "shards", kind="gray", count=2, size=64, shards=1, val=0)
    seen: list[torch.Tensor] = []
    build = run.build_generator

    def recording_build(config):  # type: ignore[no-untyped-def]
        network = build(config)
        network.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
        return network

    monkeypatch.setattr(run, "build_generator", recording_build)
    loop.train(make_tiny_config(shards, tmp_path / "runs", steps=1, data__colorspace="lab", augment__mode="none",
                                augment__load_size=64))
    dataset = json.loads((shards / "dataset.json").read_text())
    assert dataset["kind"] == "gray"
    import webdataset as wds

    photos = [cv2.cvtColor(cv2.imdecode(np.frombuffer(s["b.png"], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
              for s in wds.tarfile_to_samples()(iter([{"url": str(shards / "train-000000.tar")}]))]
    expected = [torch.from_numpy(lab.lightness(p)).float() / 50 - 1 for p in photos]
    for x in seen[0]:
        assert min(float((x[0] - e).abs().max()) for e in expected) < 1e-3
