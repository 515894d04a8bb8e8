"""Pixel encodings shared by training and inference: uint8 A/B <-> network tensors.

Training, ``predict`` and ``evaluate`` use the same functions, so normalisation, one-hot
label inputs and the Lab colorization setup are defined once:

- RGB / gray inputs and RGB outputs: ``x / 127.5 - 1`` (range [-1, 1]).
- Label inputs with ``label_input="onehot"``: one channel per palette class (the ignore
  class last when present); with ``"color"`` the colour-coded label image as RGB.
- ``colorspace="lab"``: input is the photo's CIE L (``L / 50 - 1``): L of B in training and
  evaluation, of the photo with ``predict --from-photos``, and of a user's gray image
  otherwise; output and target are ab / 110; the output image is that L plus the predicted ab.
  One Lab definition (:mod:`pairforge.lab`, here in torch) for make-gray, trainer and evaluate.
- ``direction="BtoA"``: B is the input and A the target (the reference's facades, cityscapes
  and maps folders hold photo|labels); the encoding then describes the swapped pair.

Typical inference::

    generator, config = load_generator("runs/00001-pix2pix")
    x = prepare_input(a_uint8, config)          # (B, C, H, W) float
    rgb = output_to_rgb(generator(x), config, x)  # (B, H, W, 3) uint8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pairforge import kinds
from pairforge import lab as cie
from pairforge.descriptions import stage_config
from pairforge.errors import ConfigError
from pairforge.imageio import pack_rgb, unpack_rgb
from pairforge.palettes import nearest_colors, palette_colors
from pairforge.trainer.config import DIRECTIONS

AB_SCALE = 110.0


@dataclass(frozen=True)
class Encoding:
    """How A and B become network tensors.

    Attributes:
        kind: dataset kind (edges, gray, labels, generic).
        a_channels: channels of A as stored (1 or 3).
        colorspace: ``rgb`` or ``lab``.
        label_input: ``onehot`` or ``color`` (labels only).
        palette_colors: RGB colour of each one-hot channel, in channel order.
        direction: ``AtoB`` or ``BtoA`` (the stored pair is swapped when read; ``kind`` and
            ``a_channels`` then describe the network's input, i.e. the stored B).
        gray_space: how a 1-channel A's values map to L* when no photo is at hand (Lab runs):
            ``lab`` (make-gray --space lab: L* scaled to 0..255), otherwise the lightness of
            the value as a neutral sRGB gray.
    """

    kind: str
    a_channels: int
    colorspace: str = "rgb"
    label_input: str = "onehot"
    palette_colors: tuple[tuple[int, int, int], ...] = ()
    direction: str = "AtoB"
    gray_space: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError("direction", self.direction, " | ".join(DIRECTIONS))
        if self.onehot and not self.palette_colors:
            raise ConfigError("label_input", "onehot", "a dataset with a palette (or --label-input color)")
        if self.colorspace == "lab" and kinds.of(self.kind).palette:
            raise ConfigError("colorspace", "lab", "rgb for label datasets")
        if self.colorspace == "lab" and self.direction == "BtoA":
            raise ConfigError("colorspace", "lab", "rgb with --direction BtoA (colorization predicts the photo, AtoB)")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Encoding:
        """Build from a run's config dict (config.json) or from its parts."""
        dataset = config["dataset"]
        data = config.get("data", {})
        direction = str(data.get("direction", "AtoB"))
        stage = stage_config(dataset.get("source"))
        if direction == "BtoA":
            return cls(
                kind="generic",
                a_channels=int(dataset.get("b_channels", 3)),
                colorspace=data.get("colorspace", "rgb"),
                label_input="color",
                direction=direction,
            )
        return cls(
            kind=dataset["kind"],
            a_channels=int(dataset["a_channels"]),
            colorspace=data.get("colorspace", "rgb"),
            label_input=data.get("label_input", "onehot") if kinds.of(dataset["kind"]).palette else "color",
            palette_colors=palette_colors(dataset.get("palette")),
            gray_space=str(stage.get("space", "")) if kinds.of(dataset["kind"]).lightness else "",
        )

    @property
    def swapped(self) -> bool:
        """The stored pair is read B -> A."""
        return self.direction == "BtoA"

    @property
    def onehot(self) -> bool:
        return kinds.of(self.kind).palette and self.label_input == "onehot"

    @property
    def label_a(self) -> bool:
        """A is a label map: resample it with nearest neighbours only."""
        return kinds.of(self.kind).nearest

    @property
    def stored_a_channels(self) -> int:
        """Channels of the uint8 A tensor handed to the device (class ids count as one)."""
        return 1 if self.onehot else self.a_channels

    @property
    def in_channels(self) -> int:
        if self.colorspace == "lab":
            return 1
        return len(self.palette_colors) if self.onehot else self.a_channels

    @property
    def out_channels(self) -> int:
        return 2 if self.colorspace == "lab" else 3


def colors_to_ids(rgb: np.ndarray, colors: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """Map a colour-coded label image to class ids (nearest palette colour).

    Args:
        rgb: ``(H, W, 3)`` uint8.
        colors: palette colours in channel order.

    Returns:
        ``(H, W)`` uint8 ids into ``colors``.
    """
    packed = pack_rgb(rgb)
    unique, inverse = np.unique(packed.ravel(), return_inverse=True)
    ids = nearest_colors(unpack_rgb(unique), np.asarray(colors)).astype(np.uint8)
    return ids[inverse.reshape(-1)].reshape(rgb.shape[:2])


def a_to_stored(a: np.ndarray, encoding: Encoding) -> np.ndarray:
    """One decoded A image to the channels-first uint8 array the device receives.

    Args:
        a: ``(H, W)`` or ``(H, W, C)`` uint8, RGB order.

    Returns:
        ``(encoding.stored_a_channels, H, W)`` uint8 (class ids for one-hot label inputs).
    """
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if encoding.onehot:
        rgb = a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
        return colors_to_ids(np.ascontiguousarray(rgb), encoding.palette_colors)[None]
    if encoding.a_channels == 1:
        gray = a if a.ndim == 2 else (a[..., 0] if a.shape[2] == 1 else cv2.cvtColor(a, cv2.COLOR_RGB2GRAY))
        return np.ascontiguousarray(gray)[None]
    rgb = a if a.ndim == 3 and a.shape[2] == 3 else np.repeat(a.reshape(*a.shape[:2], 1), 3, axis=2)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def _constant(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=like.device)


def _srgb_to_linear(values: torch.Tensor) -> torch.Tensor:
    return torch.where(values <= 0.04045, values / 12.92, ((values.clamp(min=0.0) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(values: torch.Tensor) -> torch.Tensor:
    values = values.clamp(min=0.0)
    return torch.where(values <= 0.0031308, values * 12.92, 1.055 * values.clamp(min=1e-12) ** (1.0 / 2.4) - 0.055)


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > cie.DELTA**3, t.clamp(min=1e-12) ** (1.0 / 3.0), t / (3.0 * cie.DELTA**2) + 4.0 / 29.0)


def _f_inverse(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > cie.DELTA, t**3, 3.0 * cie.DELTA**2 * (t - 4.0 / 29.0))


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] to Lab (:mod:`pairforge.lab`'s definition, in torch).

    Shape:
        (B, 3, H, W) -> (B, 3, H, W): L in [0, 100], a and b about [-110, 110].
    """
    linear = _srgb_to_linear(rgb.float())
    xyz = torch.einsum("ij,bjhw->bihw", _constant(cie.RGB_TO_XYZ, rgb), linear)
    xyz = xyz / _constant(cie.WHITE, rgb)[None, :, None, None]
    fx, fy, fz = _f(xyz[:, 0:1]), _f(xyz[:, 1:2]), _f(xyz[:, 2:3])
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab to sRGB in [0, 1], clipped (:mod:`pairforge.lab`'s definition, in torch).

    Shape:
        (B, 3, H, W) -> (B, 3, H, W).
    """
    lab = lab.float()
    fy = (lab[:, 0:1] + 16.0) / 116.0
    fx, fz = fy + lab[:, 1:2] / 500.0, fy - lab[:, 2:3] / 200.0
    xyz = torch.cat([_f_inverse(fx), _f_inverse(fy), _f_inverse(fz)], dim=1)
    xyz = xyz * _constant(cie.WHITE, lab)[None, :, None, None]
    linear = torch.einsum("ij,bjhw->bihw", _constant(cie.XYZ_TO_RGB, lab), xyz)
    return _linear_to_srgb(linear).clamp(0.0, 1.0)


def photo_lightness(photo: torch.Tensor) -> torch.Tensor:
    """L* in [0, 100] of RGB photos (B) in 0..255.

    Shape:
        (B, 3, H, W) -> (B, 1, H, W)
    """
    return rgb_to_lab(photo.float() / 255.0)[:, :1]


def a_lightness(a: torch.Tensor, encoding: Encoding) -> torch.Tensor:
    """L* in [0, 100] of a gray A when no photo is at hand (a user's gray image).

    A ``make-gray --space lab`` A stores L* directly (scaled to 0..255); any other gray image is
    read as neutral sRGB gray, and a 3-channel A as the colour it is.

    Shape:
        (B, 1 or 3, H, W) values 0..255 -> (B, 1, H, W)
    """
    a = a.float()
    if a.shape[1] == 1 and encoding.gray_space == "lab":
        return a / cie.L_SCALE_8BIT
    rgb = a.expand(-1, 3, -1, -1) if a.shape[1] == 1 else a[:, :3]
    return photo_lightness(rgb)


def encode_input(a: torch.Tensor, encoding: Encoding, b: torch.Tensor | None = None) -> torch.Tensor:
    """Stored A (after augmentation) to the generator input.

    Args:
        a: ``(B, stored_a_channels, H, W)``, values 0..255 (class ids for one-hot inputs).
        b: ``(B, 3, H, W)`` the photos B, 0..255: for Lab runs the input is their L (training,
            evaluation, ``--from-photos``); without them L comes from A (:func:`a_lightness`).

    Returns:
        ``(B, in_channels, H, W)`` float in [-1, 1] (one-hot in {-1, 1}).
    """
    if encoding.colorspace == "lab":
        lightness = photo_lightness(b) if b is not None else a_lightness(a, encoding)
        return lightness / 50.0 - 1.0
    if encoding.onehot:
        ids = a[:, 0].round().long().clamp_(0, len(encoding.palette_colors) - 1)
        onehot = F.one_hot(ids, len(encoding.palette_colors)).permute(0, 3, 1, 2)
        return onehot.to(torch.float32) * 2.0 - 1.0
    return a.float() / 127.5 - 1.0


def encode_target(b: torch.Tensor, encoding: Encoding) -> torch.Tensor:
    """Stored B (RGB 0..255) to the generator target.

    Shape:
        (B, 3, H, W) -> (B, out_channels, H, W) float, in [-1, 1] (ab / 110 for Lab).
    """
    if encoding.colorspace == "lab":
        return rgb_to_lab(b.float() / 255.0)[:, 1:] / AB_SCALE
    return b.float() / 127.5 - 1.0


def encode_pair(a: torch.Tensor, b: torch.Tensor, encoding: Encoding) -> tuple[torch.Tensor, torch.Tensor]:
    """``(encode_input(a, encoding, b), encode_target(b, encoding))``, with B converted to Lab once
    for Lab runs (its L is the input, its ab the target): training and validation batches.
    """
    if encoding.colorspace == "lab":
        lab = rgb_to_lab(b.float() / 255.0)
        return lab[:, :1] / 50.0 - 1.0, lab[:, 1:] / AB_SCALE
    return encode_input(a, encoding, b), encode_target(b, encoding)


def decode_output(output: torch.Tensor, encoding: Encoding, network_input: torch.Tensor | None = None) -> torch.Tensor:
    """Generator output to RGB in [0, 1].

    Args:
        output: ``(B, out_channels, H, W)`` generator output.
        network_input: the encoded input (needed for Lab: it carries L).

    Returns:
        ``(B, 3, H, W)`` float RGB in [0, 1].
    """
    output = output.float()
    if encoding.colorspace == "lab":
        if network_input is None:
            raise ValueError("Lab outputs need the network input (its L channel) to become RGB")
        lightness = (network_input[:, :1].float() + 1.0) * 50.0
        lab = torch.cat([lightness, output * AB_SCALE], dim=1)
        return lab_to_rgb(lab)
    return ((output + 1.0) / 2.0).clamp(0.0, 1.0)


def visualize_input(network_input: torch.Tensor, encoding: Encoding) -> torch.Tensor:
    """Encoded input as an RGB picture in [0, 1] for sample grids.

    Shape:
        (B, in_channels, H, W) -> (B, 3, H, W)
    """
    x = network_input.float()
    if encoding.onehot:
        colors = torch.tensor(encoding.palette_colors, dtype=torch.float32, device=x.device) / 255.0
        return colors[x.argmax(dim=1)].permute(0, 3, 1, 2)
    x = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]


def _as_stored_tensor(a: np.ndarray | torch.Tensor, encoding: Encoding) -> torch.Tensor:
    """Any accepted A layout to ``(B, stored_a_channels, H, W)`` uint8 on the CPU."""
    if isinstance(a, torch.Tensor):
        channels_first = a.detach().cpu()
        if channels_first.ndim == 3:
            channels_first = channels_first[None]
        array = channels_first.permute(0, 2, 3, 1).numpy()
    else:
        array = np.asarray(a)
        if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
            array = array[None]
    if array.dtype != np.uint8:
        raise ValueError(f"A must be uint8, got {array.dtype}")
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    return torch.from_numpy(np.stack([a_to_stored(image, encoding) for image in array]))


def _photos_tensor(photos: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """RGB photos ``(H, W, 3)``/``(B, H, W, 3)`` uint8 numpy or ``(B, 3, H, W)`` tensor to (B, 3, H, W)."""
    if isinstance(photos, torch.Tensor):
        tensor = photos if photos.ndim == 4 else photos[None]
        return tensor.to(device).float()
    array = np.asarray(photos)
    array = array[None] if array.ndim == 3 else array
    return torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(0, 3, 1, 2).to(device).float()


def prepare_input(
    a: np.ndarray | torch.Tensor,
    config: dict[str, Any] | Encoding,
    photos: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """uint8 A images to the generator input, exactly as in training.

    Args:
        a: ``(H, W)``, ``(H, W, C)`` or ``(B, H, W[, C])`` uint8 numpy (RGB order), or a uint8
            tensor ``(B, C, H, W)``. Label inputs are colour-coded RGB; gray A may be RGB.
        config: the run's config dict (from :func:`load_generator`) or an :class:`Encoding`.
        photos: Lab runs: the colour photos the A came from (their L is the input, as in
            training); without them L is read from A.

    Returns:
        ``(B, in_channels, H, W)`` float tensor (on the tensor's device for tensor input).
    """
    encoding = config if isinstance(config, Encoding) else Encoding.from_config(config)
    device = a.device if isinstance(a, torch.Tensor) else torch.device("cpu")
    stored = _as_stored_tensor(a, encoding).to(device)
    b = _photos_tensor(photos, device) if photos is not None and encoding.colorspace == "lab" else None
    return encode_input(stored.float(), encoding, b)


def output_to_rgb(
    output: torch.Tensor,
    config: dict[str, Any] | Encoding,
    a_or_l: np.ndarray | torch.Tensor | None = None,
) -> np.ndarray:
    """Generator output to uint8 RGB images.

    Args:
        output: ``(B, out_channels, H, W)`` generator output.
        config: the run's config dict or an :class:`Encoding`.
        a_or_l: for Lab runs, the encoded input from :func:`prepare_input` or the uint8 A images.

    Returns:
        ``(B, H, W, 3)`` uint8 numpy array.
    """
    encoding = config if isinstance(config, Encoding) else Encoding.from_config(config)
    network_input = None
    if a_or_l is not None:
        is_encoded = isinstance(a_or_l, torch.Tensor) and a_or_l.is_floating_point()
        network_input = a_or_l if is_encoded else prepare_input(a_or_l, encoding)
        network_input = network_input.to(output.device)
    rgb = decode_output(output.detach(), encoding, network_input)
    return (rgb * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
