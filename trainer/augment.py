"""Paired geometric augmentation on the training device, in one resampling pass.

``resize(load) -> random crop -> flip`` (and, for ``strong``, a random resized crop and a
small rotation) is a single affine map from the output crop back to the source image. We
sample that map once per pair and resample A and B with it through
:func:`kornia.geometry.transform.warp_affine`: bilinear for images, nearest for label maps,
so A and B get identical geometry and label maps gain no new values.

Coordinates are pixel centres (pixel ``i`` sits at ``i``); with ``align_corners=True`` this
is exactly Kornia's convention.
"""

from __future__ import annotations

import math

import torch
from kornia.geometry.transform import warp_affine

from pairforge.trainer.config import AugmentConfig


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    matrix = torch.eye(3, dtype=torch.float64).repeat(tx.shape[0], 1, 1)
    matrix[:, 0, 2], matrix[:, 1, 2] = tx, ty
    return matrix


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    matrix = torch.eye(3, dtype=torch.float64).repeat(sx.shape[0], 1, 1)
    matrix[:, 0, 0], matrix[:, 1, 1] = sx, sy
    return matrix


def _rotate(radians: torch.Tensor) -> torch.Tensor:
    matrix = torch.eye(3, dtype=torch.float64).repeat(radians.shape[0], 1, 1)
    cos, sin = torch.cos(radians), torch.sin(radians)
    matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 0], matrix[:, 1, 1] = cos, -sin, sin, cos
    return matrix


class PairAugment:
    """Samples one geometry per pair and applies it to A and B.

    Args:
        config: the augmentation settings.
        nearest_a: resample A with nearest neighbours (label maps).
    """

    def __init__(self, config: AugmentConfig, nearest_a: bool = False) -> None:
        self.config = config
        self.nearest_a = nearest_a

    def sample_matrices(
        self, sizes: torch.Tensor, generator: torch.Generator | None = None, train: bool = True
    ) -> torch.Tensor:
        """Output-crop pixel -> source pixel maps, one per pair.

        Args:
            sizes: ``(B, 2)`` source (height, width) of each pair.
            generator: CPU random generator (its state is checkpointed).
            train: False gives the evaluation geometry (resize to the crop size, no flip).

        Returns:
            ``(B, 3, 3)`` float64 homogeneous matrices.
        """
        cfg = self.config
        count = sizes.shape[0]
        heights, widths = sizes[:, 0].double(), sizes[:, 1].double()
        crop = float(cfg.crop_size)
        mode = cfg.mode if train else "none"

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)

        if mode == "none":
            load = crop
            window_w = window_h = torch.full((count,), crop, dtype=torch.float64)
            x0 = y0 = torch.zeros(count, dtype=torch.float64)
            flip = torch.zeros(count, dtype=torch.bool)
            angle = torch.zeros(count, dtype=torch.float64)
        else:
            load = float(cfg.load_size)
            if mode == "strong":
                area = uniform(cfg.min_crop_area, 1.0) * load * load
                log_ratio = uniform(math.log(3 / 4), math.log(4 / 3))
                window_w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=load)
                window_h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=load)
                x0 = uniform(0.0, 1.0) * (load - window_w)
                y0 = uniform(0.0, 1.0) * (load - window_h)
                angle = uniform(-cfg.max_rotation_degrees, cfg.max_rotation_degrees) * math.pi / 180
            else:
                span = int(cfg.load_size - cfg.crop_size) + 1
                window_w = window_h = torch.full((count,), crop, dtype=torch.float64)
                x0 = torch.randint(0, span, (count,), generator=generator).double()
                y0 = torch.randint(0, span, (count,), generator=generator).double()
                angle = torch.zeros(count, dtype=torch.float64)
            flip = torch.rand(count, generator=generator) < 0.5 if cfg.flip else torch.zeros(count, dtype=torch.bool)

        ones = torch.ones(count, dtype=torch.float64)
        zeros = torch.zeros(count, dtype=torch.float64)
        # 1. horizontal flip inside the crop
        flip_matrix = torch.where(
            flip[:, None, None], _translate(ones * (crop - 1), zeros) @ _scale(-ones, ones), torch.eye(3, dtype=torch.float64)
        )
        # 2. crop pixel centre -> window in the load-size square
        to_window = (
            _translate(x0 - 0.5, y0 - 0.5) @ _scale(window_w / crop, window_h / crop) @ _translate(ones * 0.5, ones * 0.5)
        )
        # 3. rotation about the window centre
        centre_x, centre_y = x0 + window_w / 2 - 0.5, y0 + window_h / 2 - 0.5
        rotation = _translate(centre_x, centre_y) @ _rotate(angle) @ _translate(-centre_x, -centre_y)
        # 4. load-size square -> source pixels (the resize)
        to_source = (
            _translate(-ones * 0.5, -ones * 0.5) @ _scale(widths / load, heights / load) @ _translate(ones * 0.5, ones * 0.5)
        )
        return to_source @ rotation @ to_window @ flip_matrix

    def apply(self, image: torch.Tensor, matrices: torch.Tensor, nearest: bool) -> torch.Tensor:
        """Resample ``image`` with ``matrices`` (from :meth:`sample_matrices`).

        Args:
            image: ``(B, C, H, W)`` float (sources padded by edge replication to a common size).
            matrices: ``(B, 3, 3)`` output -> source maps.
            nearest: nearest-neighbour resampling (label maps) instead of bilinear.

        Returns:
            ``(B, C, crop, crop)`` on ``image``'s device.
        """
        crop = self.config.crop_size
        source_to_output = torch.linalg.inv(matrices)[:, :2].to(device=image.device, dtype=torch.float32)
        return warp_affine(
            image,
            source_to_output,
            (crop, crop),
            mode="nearest" if nearest else "bilinear",
            padding_mode="border",
            align_corners=True,
        )

    def __call__(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        sizes: torch.Tensor,
        generator: torch.Generator | None = None,
        train: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch of pairs with one geometry per pair.

        Args:
            a: ``(B, Ca, H, W)`` float (0..255 or class ids).
            b: ``(B, 3, H, W)`` float 0..255.
            sizes: ``(B, 2)`` true (height, width) of each pair inside the padded batch.
            generator: CPU generator for the parameters.
            train: False gives the evaluation geometry.

        Returns:
            A and B, each ``(B, C, crop, crop)``.
        """
        matrices = self.sample_matrices(sizes.cpu(), generator, train)
        if self.nearest_a:
            return self.apply(a, matrices, nearest=True), self.apply(b, matrices, nearest=False)
        both = self.apply(torch.cat([a, b], dim=1), matrices, nearest=False)
        return both[:, : a.shape[1]], both[:, a.shape[1] :]
