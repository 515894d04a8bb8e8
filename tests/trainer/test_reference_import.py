"""pairforge import: reference latest_net_G.pth state dicts become runs that predict like the reference.

The reference networks below are written from the module layout of the reference's
models/networks.py (UnetSkipConnectionBlock nesting, ResnetBlock.conv_block) so that their
state-dict keys are the ones a real latest_net_G.pth carries.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pairforge.cli import cli
from pairforge.trainer.inference import (
    InferenceConfig,
    InputMismatchError,
    Predictor,
    load_checked_generator,
)
from pairforge.trainer.reference import ImportOptions, ReferenceImportError, import_reference


class RefUnetBlock(nn.Module):
    def __init__(self, outer: int, inner: int, input_nc: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm=nn.BatchNorm2d, dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        use_bias = getattr(norm, "func", norm) == nn.InstanceNorm2d
        input_nc = outer if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner, 4, 2, 1, bias=use_bias)
        if outermost:
            layers = [downconv, submodule, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=use_bias), norm(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), downconv, norm(inner), submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=use_bias), norm(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RefUnet(nn.Module):
    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int, norm=nn.BatchNorm2d) -> None:
        super().__init__()
        block = RefUnetBlock(ngf * 8, ngf * 8, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = RefUnetBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=True)
        block = RefUnetBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = RefUnetBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = RefUnetBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = RefUnetBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class RefResnetBlock(nn.Module):
    def __init__(self, dim: int, norm, dropout: bool, use_bias: bool) -> None:
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class RefResnet(nn.Module):
    def __init__(self, input_nc: int, output_nc: int, ngf: int, norm, dropout: bool, n_blocks: int) -> None:
        super().__init__()
        use_bias = getattr(norm, "func", norm) == nn.InstanceNorm2d
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=use_bias), norm(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1, bias=use_bias), norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [RefResnetBlock(ngf * 4, norm, dropout, use_bias) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1, bias=use_bias),
                       norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _init_reference(network: nn.Module, seed: int) -> nn.Module:
    """The reference's init (N(0, 0.02) convs, N(1, 0.02) norm scales), running statistics far from any batch's."""
    torch.manual_seed(seed)
    for layer in network.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.normal_(layer.bias, 0.0, 0.02)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.normal_(layer.bias, 0.0, 0.02)
            layer.running_mean.uniform_(2.0, 4.0)
            layer.running_var.uniform_(0.01, 0.02)
    return network


def _reference_forward(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference's test.py without --eval: training-mode batch norm; dropout off for comparison."""
    network.train()
    for layer in network.modules():
        if isinstance(layer, nn.Dropout):
            layer.eval()
    with torch.no_grad():
        return torch.cat([network(x[i : i + 1]) for i in range(x.shape[0])])


CASES = {
    "unet_128_batch": (lambda: RefUnet(3, 3, 7, 8), "unet_128", 128),
    "unet_256_batch_gray_in": (lambda: RefUnet(1, 3, 8, 4), "unet_256", 256),
    "resnet_6_instance": (lambda: RefResnet(3, 3, 8, functools.partial(nn.InstanceNorm2d, affine=False,
                                                                       track_running_stats=False), True, 6),
                          "resnet_6blocks", 64),
    "resnet_9_batch_nodropout": (lambda: RefResnet(3, 3, 4, nn.BatchNorm2d, False, 9), "resnet_9blocks", 64),
}


@pytest.mark.parametrize("case", list(CASES))
def test_imported_run_predicts_like_the_reference(case: str, tmp_path: Path) -> None:
    build, expected_generator, size = CASES[case]
    reference = _init_reference(build(), seed=len(case))
    checkpoint = tmp_path / "latest_net_G.pth"
    torch.save(reference.state_dict(), checkpoint)
    run = tmp_path / "runs" / "imported"
    result = CliRunner().invoke(cli, ["import", str(checkpoint), "-o", str(run)])
    assert result.exit_code == 0, result.output
    generator, config = load_checked_generator(run)
    assert config["model"]["generator"] == expected_generator
    in_channels = config["model"]["in_channels"]
    x = torch.rand(2, in_channels, size, size) * 2 - 1
    predictor = Predictor(generator, config, InferenceConfig(dropout=False, scale="native", max_side=4096))
    produced = predictor.generate(x)
    assert (produced - _reference_forward(reference, x)).abs().max() < 1e-5
    # and through the command line on an image file
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.full((size, size, 3) if in_channels == 3 else (size, size), 200, np.uint8))
    predicted = CliRunner().invoke(cli, ["predict", str(run), str(image), "-o", str(tmp_path / "out")])
    assert predicted.exit_code == 0, predicted.output


def test_wrong_generator_names_keys_and_the_likely_options(tmp_path: Path) -> None:
    checkpoint = tmp_path / "g.pth"
    torch.save(_init_reference(RefUnet(3, 3, 7, 8), 0).state_dict(), checkpoint)
    with pytest.raises(ReferenceImportError, match=r"unet_256.*missing keys.*model\.model\.1\..*looks like "
                                                   r"--generator unet_128 --norm batch"):
        import_reference(checkpoint, tmp_path / "run", ImportOptions(generator="unet_256"))
    with pytest.raises(ReferenceImportError, match=r"--norm instance; missing keys.*bias.*unexpected keys.*model\.2\.weight"
                                                   r".*looks like --generator unet_128 --norm batch"):
        import_reference(checkpoint, tmp_path / "run", ImportOptions(norm="instance"))
    assert not (tmp_path / "run").exists()


def test_old_files_without_num_batches_tracked_and_dataparallel_prefix(tmp_path: Path) -> None:
    reference = _init_reference(RefUnet(3, 3, 7, 8), 3)
    state = {f"module.{k}": v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    checkpoint = tmp_path / "old.pth"
    torch.save(state, checkpoint)
    run = import_reference(checkpoint, tmp_path / "run", ImportOptions(kind="edges"))
    generator, config = load_checked_generator(run)
    assert config["dataset"]["kind"] == "edges"
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    produced = Predictor(generator, config, InferenceConfig(dropout=False, scale="native")).generate(x)
    assert (produced - _reference_forward(reference, x)).abs().max() < 1e-5


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned > /dev/null",))


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = tmp_path / "good.pth"
    torch.save(_init_reference(RefUnet(3, 3, 7, 8), 0).state_dict(), good)
    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], not_dict)
    code = tmp_path / "code.pth"
    with open(code, "wb") as handle:
        pickle.dump({"model.weight": _Exploit()}, handle)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pth"
    text.write_text("garbage\n")
    return {
        "not a state dict": (not_dict, "not a state dict"),
        "pickle with code": (code, "refused -- .*could run code"),
        "truncated": (truncated, "unreadable.*truncated"),
        "not a PyTorch file": (text, "refused -- not readable as tensors .*non-PyTorch file"),
    }


def test_bad_checkpoints_give_one_clear_error_and_write_nothing(tmp_path: Path) -> None:
    for name, (path, message) in _bad_files(tmp_path).items():
        out = tmp_path / "runs" / name.replace(" ", "_")
        result = CliRunner().invoke(cli, ["import", str(path), "-o", str(out)])
        assert result.exit_code == 1, (name, result.output)
        assert "Traceback" not in result.output and str(path) in result.output
        assert "False" not in result.output and "likely succeed" not in result.output  # never torch's advice
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert re.search(message, result.output), (name, result.output)
        assert not out.exists()
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_colour_image_to_a_one_channel_model_is_refused(tmp_path: Path) -> None:
    checkpoint = tmp_path / "gray.pth"
    torch.save(_init_reference(RefUnet(1, 3, 7, 4), 1).state_dict(), checkpoint)
    run = import_reference(checkpoint, tmp_path / "run", ImportOptions(kind="edges"))
    generator, config = load_checked_generator(run)
    predictor = Predictor(generator, config, InferenceConfig())
    rng = np.random.default_rng(0)
    with pytest.raises(InputMismatchError, match="colour image.*1-channel"):
        predictor.check_input(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "photo.png")
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["predict", str(run), str(photo), "-o", str(out)])
    assert result.exit_code == 1 and "colour image" in result.output and "Traceback" not in result.output
    assert not list(out.glob("*.png")) if out.exists() else True
    assert json.loads((run / "config.json").read_text())["dataset"]["a_channels"] == 1


def test_a_saved_object_that_runs_code_is_named(tmp_path: Path) -> None:
    """torch.save of an object whose unpickling calls a function: refused, naming what it asked for."""
    from pairforge.trainer.checkpoint import torch_load_plain

    path = tmp_path / "evil.pth"
    torch.save({"model.weight": _Exploit()}, path)
    with pytest.raises(ValueError, match=r"refused -- it asks to load \S+, which could run code") as caught:
        torch_load_plain(path)
    assert "False" not in str(caught.value)
