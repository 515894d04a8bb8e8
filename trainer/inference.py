"""Running a trained generator on images of any size: scale, padding, tiling, batching, test-time noise.

Typical use::

    generator, run_config = load_checked_generator("runs/00001-pix2pix")
    predictor = Predictor(generator, run_config, InferenceConfig(dropout=False))
    predictor.check_input(a)                # InputMismatchError when the model cannot take it
    [rgb] = predictor.predict([a])          # (H, W, 3) uint8, same H and W as ``a``

Test time follows the paper and the reference: the generator runs as in training, dropout on
and batch norm with the statistics of each image (:func:`~pairforge.trainer.networks.inference_generator`),
so an output never depends on the other images in its batch. ``norm_stats="running"`` uses the
running averages instead.

Scale: by default (``scale="train"``) each input is resized so its shorter side is the training
crop size, run, and the output resized back to the input's size (for colorization the
predicted ab is resized and combined with the input's own full-resolution L). With
``scale="native"`` the stored resolution is used: the encoded input is reflect-padded to the
generator's multiple (``2**depth`` for U-Nets, 4 for ResNets) and the output cropped back;
inputs whose padded side exceeds ``max_side`` are cut into overlapping tiles placed on that
multiple, blended with linear ramps across overlaps, and every tile uses the whole image's
batch-norm statistics (accumulated over the tiles, layer by layer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pairforge import kinds
from pairforge.errors import ConfigError, PairforgeError, SampleError
from pairforge.imageio import DEFAULT_MAX_PIXELS, pack_rgb
from pairforge.trainer.checkpoint import load_generator
from pairforge.trainer.config import SCALES
from pairforge.trainer.networks import (
    NORM_STATS,
    StatisticsCollected,
    inference_generator,
    per_image_layers,
    unet_depth,
)
from pairforge.trainer.transforms import Encoding, output_to_rgb, prepare_input

logger = logging.getLogger(__name__)

GRAY_TOLERANCE = 8
"""A colour image counts as grayscale when its channels differ by at most this (JPEG noise)."""
PALETTE_TOLERANCE = 0.01
"""Largest fraction of label pixels allowed off the palette's exact colours."""


class InputMismatchError(PairforgeError):
    """Inputs the model cannot take (wrong channels or label colours); says what it expects."""


@dataclass(frozen=True)
class InferenceConfig:
    """How predictions are made.

    Attributes:
        dropout: keep the generator's dropout on at test time (the paper's noise source).
        seed: seed of the dropout noise (outputs repeat for the same seed, inputs and batch size).
        batch_size: images (or tiles) per forward pass.
        max_side: inputs whose padded height or width exceeds this are tiled.
        overlap: overlap between neighbouring tiles, in pixels (rounded up to the model's multiple).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        norm_stats: ``per-image`` (batch norm with each image's statistics, the paper's test
            protocol) or ``running`` (the running averages kept during training).
        scale: ``train`` (run at the training scale, output resized back) or ``native``.
        max_pixels: largest image, in pixels, both as stored (checked on the file's header) and
            as the network processes it (after scaling and padding; see :meth:`Predictor.check_size`).
    """

    dropout: bool = True
    seed: int = 0
    batch_size: int = 4
    max_side: int = 1024
    overlap: int = 128
    device: str = "cpu"
    norm_stats: str = "per-image"
    scale: str = "train"
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.norm_stats not in NORM_STATS:
            raise ConfigError("norm_stats", self.norm_stats, " | ".join(NORM_STATS))
        if self.scale not in SCALES:
            raise ConfigError("scale", self.scale, " | ".join(SCALES))
        if self.batch_size < 1:
            raise ConfigError("batch_size", self.batch_size, "an integer >= 1")
        if self.max_side < 8:
            raise ConfigError("max_side", self.max_side, "an integer >= 8 (pixels)")
        if self.overlap < 0:
            raise ConfigError("overlap", self.overlap, "an integer >= 0 (pixels)")
        if self.max_pixels < 1:
            raise ConfigError("max_pixels", self.max_pixels, "an integer >= 1 (pixels)")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError("device", self.device, "cpu, cuda or cuda:N")


def load_checked_generator(
    path: str | Path, device: str | torch.device = "cpu", ema: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`~pairforge.trainer.checkpoint.load_generator`, after checking the checkpoint is safe.

    ``state.pt`` is opened with ``torch.load(weights_only=True)`` (a pickle that would build
    arbitrary objects, e.g. call ``os.system``, is refused) and weights come only from
    safetensors files; a damaged file becomes one clear error.

    Raises:
        CheckpointError: no checkpoint, a refused ``state.pt``, or unreadable weights/config.
    """
    return load_generator(path, device=device, ema=ema)  # the checked loader shared with train --resume


def size_multiple(run_config: dict[str, Any]) -> int:
    """Height and width the generator needs its input divisible by."""
    model = run_config["model"]
    if str(model["generator"]).startswith("resnet_"):
        return 4
    return 2 ** unet_depth(model["generator"], int(model["crop_size"]))


def training_size(run_config: dict[str, Any]) -> int:
    """Side (pixels) of the crops the generator was trained on."""
    augment = run_config.get("augment") or {}
    return int(augment.get("crop_size") or run_config["model"]["crop_size"])


def scale_hint(run_config: dict[str, Any]) -> str | None:
    """A warning for ``--scale train`` when the run trained on crops much smaller than its load size.

    The reference tests at the crop size (``train``), which matches training when the load size is
    close to it (286 -> 256). A run trained on, say, 64-px crops of 128-px images saw objects at the
    128-px scale; at ``train`` scale its inputs are shrunk to 64 px and it sees them at half that.
    """
    augment = run_config.get("augment") or {}
    load, crop = int(augment.get("load_size") or 0), training_size(run_config)
    if augment.get("mode", "pix2pix") == "none" or load < 1.5 * crop:
        return None
    return (f"this run trained on {crop}-px crops of images resized to {load} px, so at --scale train (inputs shrunk "
            f"to {crop} px) it sees objects at {crop / load:.2g}x the size it learned; for inputs stored at about "
            f"{load} px, --scale native runs it at its training scale")


def model_scale_size(height: int, width: int, train_size: int) -> tuple[int, int]:
    """Size at which an image is run at the training scale: shorter side = ``train_size``, aspect kept."""
    factor = train_size / min(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))


def resize(x: torch.Tensor, size: tuple[int, int], nearest: bool = False) -> torch.Tensor:
    """Resize a float batch (bilinear with antialiasing; nearest for one-hot label inputs).

    Shape:
        (B, C, H, W) -> (B, C, *size)
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if nearest:
        return F.interpolate(x, size=size, mode="nearest-exact")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def describe_expected_input(encoding: Encoding) -> str:
    """What A images the model takes, in words (for error messages and --help)."""
    if kinds.of(encoding.kind).palette:
        return f"colour-coded label maps with the run's palette ({len(encoding.palette_colors)} colours)"
    if encoding.a_channels == 1:
        return f"1-channel (grayscale) {encoding.kind} images"
    return f"3-channel RGB {encoding.kind} images"


def reflect_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Reflect-pad by any amount (repeats the reflection when padding exceeds the image).

    Shape:
        (B, C, H, W) -> (B, C, H + top + bottom, W + left + right)
    """
    while top or bottom or left or right:
        height, width = x.shape[-2:]
        mode = "reflect" if height > 1 and width > 1 else "replicate"
        limit_h, limit_w = max(height - 1, 1), max(width - 1, 1)
        step = (min(left, limit_w), min(right, limit_w), min(top, limit_h), min(bottom, limit_h))
        x = F.pad(x, step, mode=mode)
        left, right, top, bottom = left - step[0], right - step[1], top - step[2], bottom - step[3]
    return x


def tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile origins covering ``[0, size)``: every ``stride``, the last flush with the end."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D blending weights: linear ramps over ``overlap`` pixels at inner tile edges."""
    weight = torch.ones(length)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float32) + 1.0) / (overlap + 1.0)
        if ramp_start:
            weight[:overlap] = torch.minimum(weight[:overlap], ramp)
        if ramp_end:
            weight[-overlap:] = torch.minimum(weight[-overlap:], ramp.flip(0))
    return weight


def _shares(starts: list[int], tile: int, size: int) -> list[torch.Tensor]:
    """Per tile, 1 on the pixels (along one axis) nearer to it than to its neighbours: each pixel counted once."""
    cuts = [0] + [(starts[i + 1] + starts[i] + tile) // 2 for i in range(len(starts) - 1)] + [size]
    shares = []
    for index, start in enumerate(starts):
        share = torch.zeros(tile)
        share[max(cuts[index] - start, 0) : max(cuts[index + 1] - start, 0)] = 1.0
        shares.append(share)
    return shares


class Predictor:
    """A generator plus the run's encoding: A images in, RGB images of the same size out.

    Args:
        generator: the trained generator (from :func:`load_checked_generator`).
        run_config: the run's config dict.
        config: inference options.
    """

    def __init__(self, generator: nn.Module, run_config: dict[str, Any], config: InferenceConfig) -> None:
        self.config = config
        self.run_config = run_config
        self.encoding = Encoding.from_config(run_config)
        self.multiple = size_multiple(run_config)
        self.device = torch.device(config.device)
        self.generator = inference_generator(generator.to(self.device), config.norm_stats, config.dropout)
        self.train_size = training_size(run_config)
        self.tile = max(self.multiple, config.max_side // self.multiple * self.multiple)
        overlap = -(-config.overlap // self.multiple) * self.multiple
        self.overlap = min(overlap, self.tile - self.multiple)

    def check_input(self, a: np.ndarray, name: str = "input") -> None:
        """Fail when the model cannot take ``a``, saying what it expects.

        Args:
            a: ``(H, W)`` or ``(H, W, 3)`` uint8 image.
            name: the file, for the message.

        Raises:
            InputMismatchError: a colour image for a 1-channel model, a gray image for a
                label model, or label colours off the run's palette.
            SampleError: not a uint8 2-D/3-channel image, or "too large" to process (:meth:`check_size`).
        """
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim not in (2, 3):
            raise SampleError("invalid array", f"not a uint8 image ({getattr(a, 'shape', type(a))})")
        if a.ndim == 3 and a.shape[2] not in (1, 3, 4):
            raise SampleError("invalid array", f"{a.shape[2]} channels (expected 1 or 3)")
        if min(a.shape[:2]) < 1:
            raise SampleError("empty image")
        self.check_size(*a.shape[:2])
        expected = describe_expected_input(self.encoding)
        rgb = a.ndim == 3 and a.shape[2] >= 3
        if self.encoding.a_channels == 1 and rgb:
            spread = a[..., :3].max(axis=2).astype(np.int16) - a[..., :3].min(axis=2)
            if int(spread.max(initial=0)) > GRAY_TOLERANCE:
                raise InputMismatchError(
                    f"{name}: a colour image, but the model expects {expected} "
                    "(give A images, or photos with --from-photos)"
                )
        if kinds.of(self.encoding.kind).palette and self.encoding.palette_colors:
            if not rgb:
                raise InputMismatchError(f"{name}: a 1-channel image, but the model expects {expected}")
            palette = pack_rgb(np.asarray(self.encoding.palette_colors, dtype=np.int32))
            off = float(np.mean(~np.isin(pack_rgb(a), palette)))
            if off > PALETTE_TOLERANCE:
                raise InputMismatchError(
                    f"{name}: {off:.0%} of its pixels are not palette colours; the model expects {expected}"
                )

    def processed_size(self, height: int, width: int) -> tuple[int, int]:
        """Height and width at which the network processes an input of this size.

        ``scale="train"``: shorter side resized to the training size (a 1x50000 strip becomes
        64x3200000 for a 64-px run), then both sides padded to the model's multiple.
        """
        if self.config.scale == "train":
            height, width = model_scale_size(height, width, self.train_size)
        return height + -height % self.multiple, width + -width % self.multiple

    def check_size(self, height: int, width: int) -> None:
        """Refuse an input the network would process at more than ``max_pixels`` pixels.

        The one size rule of predict, serve and evaluate: the file's own size is checked on its
        header when it is read; this checks what the network will run on, which ``--scale train``
        can make far larger (a thin strip's short side is scaled up to the training size).

        Raises:
            SampleError: ``too large``, naming the stored size, the processed size and the limit.
        """
        run_height, run_width = self.processed_size(height, width)
        limit = self.config.max_pixels
        if run_height * run_width <= limit:
            return
        if self.config.scale == "train":
            how = f"at the training scale (shorter side {self.train_size} px)"
            advice = "crop it to a less elongated shape, use --scale native, or raise --max-pixels"
        else:
            how = f"padded to a multiple of {self.multiple}"
            advice = "downscale or crop it, or raise --max-pixels"
        raise SampleError("too large", f"{width}x{height} = {width * height:,} pixels runs at {run_width}x{run_height} "
                                       f"= {run_width * run_height:,} pixels {how}, over the limit of {limit:,}: "
                                       f"{advice}")

    @torch.no_grad()
    def generate(self, x: torch.Tensor, sample: int = 0) -> torch.Tensor:
        """Run the generator on an encoded batch of any size.

        Args:
            x: encoded input from :func:`~pairforge.trainer.transforms.prepare_input`.
            sample: index of the dropout draw (with dropout on, each index gives another output).

        Returns:
            the generator output, cropped back to the input size.

        Shape:
            (B, in_channels, H, W) -> (B, out_channels, H, W)
        """
        if self.config.dropout:
            torch.manual_seed(self.config.seed * 1_000_003 + sample)
        x = x.to(self.device, torch.float32)
        height, width = x.shape[-2:]
        pad_h = -height % self.multiple
        pad_w = -width % self.multiple
        top, left = pad_h // 2, pad_w // 2
        padded = reflect_pad(x, top, pad_h - top, left, pad_w - left)
        if max(padded.shape[-2:]) > self.tile:
            output = torch.cat([self._tiled(padded[i : i + 1]) for i in range(padded.shape[0])])
        else:
            output = self._batched(padded)
        return output[..., top : top + height, left : left + width]

    def _batched(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.generator(chunk) for chunk in x.split(self.config.batch_size)]
        return torch.cat(parts).float()

    def _whole_image_statistics(self, tiles: torch.Tensor, shares: torch.Tensor) -> None:
        """Fix every per-image norm layer to the statistics of the whole image its ``tiles`` cover.

        Layer by layer (each later layer sees the earlier ones already fixed), the layer's input is
        averaged over the tiles, each pixel counted once (``shares`` gives each tile the part of
        the image nearest to it). Costs about half a forward pass per norm layer.

        Shape:
            tiles: (T, C, h, w); shares: (T, 1, h, w) with values 0/1.
        """
        for layer in per_image_layers(self.generator):
            channels = 0 if layer.weight is None else layer.weight.numel()
            sums = [torch.zeros(channels, device=tiles.device), torch.zeros(channels, device=tiles.device),
                    torch.zeros((), device=tiles.device)]
            for crops, weights in zip(tiles.split(self.config.batch_size), shares.split(self.config.batch_size),
                                      strict=True):
                layer.collect(weights, sums)
                try:
                    self.generator(crops)
                except StatisticsCollected:
                    pass
                finally:
                    layer.collect(None)
            mean = sums[0] / sums[2].clamp(min=1.0)
            var = (sums[1] / sums[2].clamp(min=1.0) - mean * mean).clamp(min=0.0)
            layer.fix_statistics((mean[None], var[None]))

    def _tiled(self, image: torch.Tensor) -> torch.Tensor:
        """Overlapping tiles of one image on the model's multiple, blended with linear ramps.

        With per-image statistics every tile uses the whole image's (not its own), so tiling
        does not change an image's normalisation.
        """
        _, _, height, width = image.shape
        tile_h, tile_w = min(self.tile, height), min(self.tile, width)
        stride_h, stride_w = max(tile_h - self.overlap, self.multiple), max(tile_w - self.overlap, self.multiple)
        windows = [(y, x0) for y in tile_starts(height, tile_h, stride_h) for x0 in tile_starts(width, tile_w, stride_w)]
        crops = torch.cat([image[..., y : y + tile_h, x0 : x0 + tile_w] for y, x0 in windows])
        layers = per_image_layers(self.generator)
        try:
            if layers:
                rows = _shares(tile_starts(height, tile_h, stride_h), tile_h, height)
                cols = _shares(tile_starts(width, tile_w, stride_w), tile_w, width)
                shares = torch.stack([r[:, None] * c[None, :] for r in rows for c in cols])[:, None].to(image.device)
                self._whole_image_statistics(crops, shares)
            results = self._batched(crops)
        finally:
            for layer in layers:
                layer.fix_statistics(None)
        output = torch.zeros(1, results.shape[1], height, width, device=image.device)
        total = torch.zeros(1, 1, height, width, device=image.device)
        for (y, x0), result in zip(windows, results, strict=True):
            weight_y = _ramp(tile_h, self.overlap, y > 0, y + tile_h < height).to(image.device)
            weight_x = _ramp(tile_w, self.overlap, x0 > 0, x0 + tile_w < width).to(image.device)
            weight = weight_y[:, None] * weight_x[None, :]
            output[0, :, y : y + tile_h, x0 : x0 + tile_w] += result * weight
            total[0, 0, y : y + tile_h, x0 : x0 + tile_w] += weight
        return output / total

    def run_encoded(self, encoded: torch.Tensor, sample: int = 0) -> torch.Tensor:
        """The generator output for an encoded batch, at this predictor's scale, at the batch's size.

        Shape:
            (B, in_channels, H, W) -> (B, out_channels, H, W)
        """
        height, width = encoded.shape[-2:]
        if self.config.scale == "native":
            return self.generate(encoded, sample)
        size = model_scale_size(height, width, self.train_size)
        output = self.generate(resize(encoded.to(self.device), size, nearest=self.encoding.onehot), sample)
        return resize(output, (height, width))

    def predict(
        self, images: Sequence[np.ndarray], sample: int = 0, photos: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Outputs for A images of any sizes (same-size images share forward passes).

        Args:
            images: ``(H, W)`` or ``(H, W, 3)`` uint8 A images (checked with :meth:`check_input`).
            sample: dropout draw index.
            photos: colorization (Lab) runs: the colour photos the A images came from, whose L
                is the input and the output's L (as in training); without them L is read from A.

        Returns:
            ``(H, W, 3)`` uint8 RGB outputs, in input order, each the size of its input.
        """
        results: list[np.ndarray | None] = [None] * len(images)
        use_photos = photos is not None and self.encoding.colorspace == "lab"
        if photos is not None and len(photos) != len(images):
            raise ValueError(f"{len(photos)} photos for {len(images)} images")
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault(image.shape, []).append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.config.batch_size):
                chosen = indices[start : start + self.config.batch_size]
                stacked = np.stack([images[i][..., None] if images[i].ndim == 2 else images[i] for i in chosen])
                light = np.stack([photos[i] for i in chosen]) if use_photos and photos is not None else None
                encoded = prepare_input(stacked, self.encoding, light)
                output = self.run_encoded(encoded, sample)
                rgb = output_to_rgb(output, self.encoding, encoded.to(output.device))
                for i, picture in zip(chosen, rgb, strict=True):
                    results[i] = picture
        return [r for r in results if r is not None]

    def describe(self) -> dict[str, Any]:
        """How this predictor runs the generator (recorded next to predict/evaluate outputs)."""
        return {
            "norm_stats": self.config.norm_stats,
            "dropout": self.config.dropout,
            "seed": self.config.seed,
            "scale": self.config.scale,
            "training_size": self.train_size,
            "direction": self.encoding.direction,
        }
