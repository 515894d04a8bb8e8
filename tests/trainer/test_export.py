"""export: TorchScript and ONNX round trips within 1e-4 of PyTorch, at sizes other than the traced one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.errors import ConfigError
from pairforge.trainer.export import export_generator
from pairforge.trainer.inference import (
    InferenceConfig,
    Predictor,
    load_checked_generator,
    size_multiple,
)
from pairforge.trainer.loop import train
from tests.trainer.conftest import make_tiny_config, write_shards

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    shards = write_shards(root / "shards", kind="edges", count=4, size=40, shards=1, val=0)
    config = make_tiny_config(shards, root / "runs", steps=2, augment__crop_size=32)
    return Path(train(config).run_dir)


def _reference(generator: torch.nn.Module, x: torch.Tensor, config: dict,
               norm_stats: str = "per-image") -> np.ndarray:
    """What predict --dropout off --scale native computes on the encoded input x."""
    predictor = Predictor(generator, config, InferenceConfig(dropout=False, scale="native", max_side=4096,
                                                             norm_stats=norm_stats))
    return predictor.generate(x).numpy()



@pytest.mark.slow
def test_torchscript_round_trip_dynamic_size(run_dir: Path, tmp_path: Path) -> None:
    generator, config = load_checked_generator(run_dir)
    multiple = size_multiple(config)
    result = export_generator(generator, config, tmp_path / "g.pt", "torchscript", multiple)
    assert result.max_abs_error is not None and result.max_abs_error < 1e-4
    module = torch.jit.load(str(result.path))
    x = torch.rand(1, 1, 5 * multiple, 2 * multiple) * 2 - 1  # a size the checks did not use
    assert np.abs(module(x).detach().numpy() - _reference(generator, x, config)).max() < 1e-4
    # per-image statistics: not the running-average network, and a batch of 2 = 2 batches of 1
    running = _reference(generator, x, config, "running")
    assert np.abs(module(x).detach().numpy() - running).max() > 1e-3
    pair = torch.cat([x, -x])
    assert np.abs(module(pair)[1:].detach().numpy() - module(-x).detach().numpy()).max() < 1e-5


@pytest.mark.slow
def test_torchscript_running_statistics_option(run_dir: Path, tmp_path: Path) -> None:
    generator, config = load_checked_generator(run_dir)
    multiple = size_multiple(config)
    result = export_generator(generator, config, tmp_path / "g.pt", "torchscript", multiple, norm_stats="running")
    module = torch.jit.load(str(result.path))
    x = torch.rand(1, 1, 2 * multiple, 3 * multiple) * 2 - 1
    assert np.abs(module(x).detach().numpy() - _reference(generator, x, config, "running")).max() < 1e-4
    assert '"norm_stats": "running"' in result.sidecar.read_text()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install pairforge[onnx])")
def test_onnx_round_trip_dynamic_size(run_dir: Path, tmp_path: Path) -> None:
    import onnxruntime

    generator, config = load_checked_generator(run_dir)
    multiple = size_multiple(config)
    result = export_generator(generator, config, tmp_path / "g.onnx", "onnx", multiple)
    assert result.verified_with == "onnxruntime" and result.max_abs_error < 1e-4
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 1, 2 * multiple, 4 * multiple) * 2 - 1
    produced = session.run(None, {"a": x.numpy()})[0]
    assert produced.shape == (3, 3, 2 * multiple, 4 * multiple)
    assert np.abs(produced - _reference(generator, x, config)).max() < 1e-4


def test_export_refuses_sizes_off_the_multiple(run_dir: Path, tmp_path: Path) -> None:
    generator, config = load_checked_generator(run_dir)
    with pytest.raises(ConfigError, match="multiples"):
        export_generator(generator, config, tmp_path / "g.pt", "torchscript", 32, check_sizes=((33, 32),))
    with pytest.raises(ConfigError, match="format"):
        export_generator(generator, config, tmp_path / "g.x", "tflite", 32)


def test_export_cli_writes_file_and_sidecar(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    result = CliRunner().invoke(cli, ["export", str(run_dir), "--format", "torchscript", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "model.pt.json").is_file()
    assert "max |export - torch|" in result.output
    help_text = CliRunner().invoke(cli, ["export", "--help"]).output
    assert "DROPOUT OFF" in help_text
