"""predict: any input size, tiling, --from-photos, dropout seeds, bad inputs, safe checkpoint loading."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.pipelines.edges import EdgesConfig, EdgesStage
from pairforge.pipelines.geometry import FitConfig
from pairforge.trainer.checkpoint import CheckpointError
from pairforge.trainer.inference import (
    InferenceConfig,
    InputMismatchError,
    Predictor,
    load_checked_generator,
    reflect_pad,
    tile_starts,
)

SIZE = 64


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    from tests.conftest import sample_photos

    return sample_photos()


@pytest.fixture(scope="module")
def run_dir(tiny_edges_run: Path) -> Path:
    return tiny_edges_run


@pytest.fixture(scope="module")
def loaded(run_dir: Path) -> tuple[torch.nn.Module, dict]:
    return load_checked_generator(run_dir)


def _edge_map(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random((height, width)) > 0.9, 0, 255).astype(np.uint8)


def test_odd_size_output_has_input_size(loaded: tuple) -> None:
    generator, config = loaded
    predictor = Predictor(generator, config, InferenceConfig(dropout=False))
    outputs = predictor.predict([_edge_map(301, 517), _edge_map(64, 64), _edge_map(33, 7)])
    assert [o.shape for o in outputs] == [(301, 517, 3), (64, 64, 3), (33, 7, 3)]
    assert all(o.dtype == np.uint8 for o in outputs)


def test_reflect_pad_any_amount() -> None:
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded = reflect_pad(x, 3, 4, 5, 6)
    assert padded.shape == (1, 1, 9, 14)
    assert torch.equal(padded[..., 3:5, 5:8], x)
    assert set(padded.unique().tolist()) <= set(x.unique().tolist())


def test_tiling_matches_untiled_away_from_tile_borders(loaded: tuple) -> None:
    generator, config = loaded
    x = torch.from_numpy(_edge_map(301, 517)).float()[None, None] / 127.5 - 1.0
    # running statistics: the network is then purely convolutional and tiling is exact away from seams
    whole = Predictor(generator, config, InferenceConfig(dropout=False, max_side=4096, norm_stats="running")).generate(x)
    tiler = Predictor(generator, config, InferenceConfig(dropout=False, max_side=256, overlap=128, norm_stats="running"))
    tiled = tiler.generate(x)
    assert tiled.shape == whole.shape == (1, 3, 301, 517)
    # padded to 320 x 576; tiles of 256 on the model's multiple (64)
    padded_h, padded_w, top, left = 320, 576, 19 // 2, 59 // 2
    ys, xs = tile_starts(padded_h, 256, 128), tile_starts(padded_w, 256, 128)
    assert len(ys) * len(xs) > 1
    inner_y = [y for y in ys if y > 0] + [y + 256 for y in ys if y + 256 < padded_h]
    inner_x = [v for v in xs if v > 0] + [v + 256 for v in xs if v + 256 < padded_w]
    rows = np.arange(301)[:, None] + top
    cols = np.arange(517)[None, :] + left
    distance = np.minimum(np.min([abs(rows - e) for e in inner_y], axis=0), np.min([abs(cols - e) for e in inner_x], axis=0))
    away = torch.from_numpy(distance >= 16)
    difference = (whole - tiled).abs()[0].amax(0)
    assert away.float().mean() > 0.2
    assert difference[away].max() < 1e-4
    assert difference.max() < 0.05  # blended seams stay close too


def test_tiling_uses_whole_image_statistics(loaded: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-image statistics: every tile is normalised with the whole image's statistics, not its own."""
    generator, config = loaded
    x = torch.from_numpy(_edge_map(256, 512, seed=4)).float()[None, None] / 127.5 - 1.0
    x[..., :, :256] = -x[..., :, :256]  # two halves with very different statistics
    whole = Predictor(generator, config, InferenceConfig(dropout=False, max_side=4096)).generate(x)
    tiler = Predictor(generator, config, InferenceConfig(dropout=False, max_side=256, overlap=64))
    tiled = tiler.generate(x)
    monkeypatch.setattr(Predictor, "_whole_image_statistics", lambda self, *args: None)
    per_tile = tiler.generate(x)
    error_whole = float((tiled - whole).abs().mean())
    error_per_tile = float((per_tile - whole).abs().mean())
    assert error_whole < 0.5 * error_per_tile


def test_dropout_seed_repeats_and_samples_differ(loaded: tuple) -> None:
    generator, config = loaded
    a = _edge_map(64, 96, seed=3)
    noisy = Predictor(generator, config, InferenceConfig(dropout=True, seed=5))
    first, again = noisy.predict([a], sample=0)[0], noisy.predict([a], sample=0)[0]
    other = noisy.predict([a], sample=1)[0]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    quiet = Predictor(generator, config, InferenceConfig(dropout=False, seed=5))
    assert np.array_equal(quiet.predict([a], sample=0)[0], quiet.predict([a], sample=1)[0])


def test_channel_mismatch_says_what_model_expects(loaded: tuple, photos: list[np.ndarray]) -> None:
    generator, config = loaded
    predictor = Predictor(generator, config, InferenceConfig())
    with pytest.raises(InputMismatchError, match="expects 1-channel"):
        predictor.check_input(photos[0], "photo.png")
    predictor.check_input(np.repeat(_edge_map(20, 20)[..., None], 3, axis=2))  # gray saved as RGB is fine


def test_from_photos_rebuilds_a_at_the_photos_resolution(run_dir: Path, photos: list[np.ndarray], tmp_path: Path) -> None:
    """A is rebuilt by the dataset's own stage, at the photo's own size; the output comes back at that size."""
    inputs = tmp_path / "photos"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "coffee.png"), cv2.cvtColor(photos[1], cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(inputs), "-o", str(out), "--from-photos",
                                      "--dropout", "off", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    expected = EdgesStage(EdgesConfig(detector="canny", fit=FitConfig(size=None)))(photos[1], "coffee").a
    rebuilt = cv2.imread(str(out / "inputs" / "coffee.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(rebuilt, expected)
    assert cv2.imread(str(out / "coffee.png")).shape == (*photos[1].shape[:2], 3)
    assert (out / "targets" / "coffee.png").is_file()
    recorded = json.loads((out / "predict.json").read_text())
    assert recorded["norm_stats"] == "per-image" and recorded["scale"] == "train" and recorded["training_size"] == SIZE


def test_cli_writes_outputs_gallery_and_skips_bad_inputs(run_dir: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "edges"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "odd.png"), _edge_map(301, 517))
    cv2.imwrite(str(inputs / "small.png"), _edge_map(40, 50, seed=1))
    (inputs / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(inputs), "-o", str(out), "--samples", "2",
                                      "--seed", "1", "--max-side", "128", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out / "odd_1.png")).shape == (301, 517, 3)
    assert cv2.imread(str(out / "small_2.png")).shape == (40, 50, 3)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [Path(r["path"]).name for r in rejects] == ["broken.png"]
    page = (out / "index.html").read_text()
    assert page.count("<tr>") == 3 and 'loading="lazy"' in page
    thumbs = list((out / "thumbs").iterdir())
    assert thumbs and all(max(cv2.imread(str(t)).shape[:2]) == 256 for t in thumbs)  # shown at 256 px, small or large


def test_cli_channel_mismatch_fails_with_message(run_dir: Path, photos: list[np.ndarray], tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(photos[0][:80, :80], cv2.COLOR_RGB2BGR))
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path / "photo.png"), "-o", str(tmp_path / "o"),
                                      "--device", "cpu"])
    assert result.exit_code != 0
    assert "expects 1-channel" in result.output


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned > /dev/null",))


def _copy_checkpoint(run_dir: Path, tmp_path: Path) -> Path:
    import shutil

    source = sorted((run_dir / "checkpoints").iterdir())[-1]
    target = tmp_path / "checkpoint"
    shutil.copytree(source, target)
    return target


def test_pickled_code_state_is_refused(run_dir: Path, tmp_path: Path) -> None:
    checkpoint = _copy_checkpoint(run_dir, tmp_path)
    buffer = io.BytesIO()
    torch.save({"step": 1, "payload": _Exploit()}, buffer)
    (checkpoint / "state.pt").write_bytes(buffer.getvalue())
    assert b"system" in pickle.dumps(_Exploit())
    with pytest.raises(CheckpointError, match="refused"):
        load_checked_generator(checkpoint)


def test_corrupted_safetensors_is_refused(run_dir: Path, tmp_path: Path) -> None:
    checkpoint = _copy_checkpoint(run_dir, tmp_path)
    weights = checkpoint / "generator.safetensors"
    data = bytearray(weights.read_bytes())
    weights.write_bytes(bytes(data[:8]) + b"{not json" + bytes(data[17:200]))
    with pytest.raises(CheckpointError, match="generator"):
        load_checked_generator(checkpoint)
    result = CliRunner().invoke(cli, ["predict", str(checkpoint), str(tmp_path), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0 and "cannot load" in result.output


@pytest.mark.gpu
def test_cuda_matches_cpu(loaded: tuple) -> None:
    import copy

    generator, config = loaded
    a = [_edge_map(301, 517), _edge_map(64, 64, seed=2)]
    cpu = Predictor(copy.deepcopy(generator), config, InferenceConfig(dropout=False, max_side=256)).predict(a)
    cuda = Predictor(copy.deepcopy(generator), config, InferenceConfig(dropout=False, max_side=256, device="cuda")).predict(a)
    for left, right in zip(cpu, cuda, strict=True):
        assert np.abs(left.astype(int) - right.astype(int)).max() <= 2
