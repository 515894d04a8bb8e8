"""pix2pix generators and discriminators, and their N(0, 0.02) initialisation."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pairforge.trainer.config import ModelConfig

NormFactory = Callable[[int], nn.Module]


def norm_factory(norm: str) -> NormFactory:
    """Layer factory for ``batch``, ``instance`` (no affine, no running stats) or ``none``."""
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    return lambda channels: nn.Identity()


def unet_depth(generator: str, crop_size: int) -> int:
    """Number of down-sampling levels of a U-Net / encoder-decoder.

    ``unet_256`` has 8, ``unet_128`` 7; ``unet`` and ``encoder_decoder`` halve the crop while it
    stays even, at most 8 times (a 64-pixel crop gives 6 levels and a 1x1 bottleneck).
    """
    fixed = {"unet_256": 8, "unet_128": 7}
    if generator in fixed:
        return fixed[generator]
    depth, size = 0, crop_size
    while size % 2 == 0 and depth < 8:
        size //= 2
        depth += 1
    return depth


class UnetBlock(nn.Module):
    """One level of a U-Net: down-sample, run the inner levels, up-sample, optionally concatenate.

    Args:
        outer_channels: channels this level returns to its parent (before the skip concat).
        inner_channels: channels after its down-sampling convolution.
        in_channels: channels it receives (the image channels for the outermost level).
        submodule: the inner levels (None for the innermost).
        outermost: the image-facing level (Tanh output, no skip).
        norm: normalisation factory.
        dropout: 0.5 dropout after the up-convolution.
        skip: concatenate input and output (False gives the encoder-decoder ablation).

    Shape:
        (B, in_channels, H, W) -> (B, outer_channels [+ in_channels with skip], H, W)
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        in_channels: int | None = None,
        submodule: UnetBlock | None = None,
        outermost: bool = False,
        norm: NormFactory = nn.BatchNorm2d,
        dropout: bool = False,
        skip: bool = True,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        self.skip = skip
        innermost = submodule is None
        in_channels = outer_channels if in_channels is None else in_channels
        use_bias = not isinstance(norm(1), nn.BatchNorm2d)
        down_conv = nn.Conv2d(in_channels, inner_channels, 4, stride=2, padding=1, bias=use_bias)
        up_in = inner_channels if innermost or not skip else inner_channels * 2
        if outermost:
            up_conv = nn.ConvTranspose2d(up_in, outer_channels, 4, stride=2, padding=1)
            layers: list[nn.Module] = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        elif innermost:
            up_conv = nn.ConvTranspose2d(up_in, outer_channels, 4, stride=2, padding=1, bias=use_bias)
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True), up_conv, norm(outer_channels)]
        else:
            up_conv = nn.ConvTranspose2d(up_in, outer_channels, 4, stride=2, padding=1, bias=use_bias)
            layers = [
                nn.LeakyReLU(0.2, True),
                down_conv,
                norm(inner_channels),
                submodule,
                nn.ReLU(True),
                up_conv,
                norm(outer_channels),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost or not self.skip:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)


class UnetGenerator(nn.Module):
    """U-Net generator (or the encoder-decoder ablation with ``skip=False``).

    Level ``i`` (0 = outermost) has ``base_channels * min(2**i, 8)`` channels; the middle levels at
    8x width get dropout, as in the paper.

    Shape:
        (B, in_channels, H, W) in [-1, 1] -> (B, out_channels, H, W) in [-1, 1];
        H and W divisible by ``2**depth``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        base_channels: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        skip: bool = True,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"U-Net depth {depth} is too small (need at least 2 levels)")
        norm_layer = norm_factory(norm)
        widths = [base_channels * min(2**level, 8) for level in range(depth)]
        block: UnetBlock | None = None
        for level in range(depth - 1, 0, -1):
            outer, inner = widths[level - 1], widths[level]
            middle_of_eight = block is not None and inner == outer == base_channels * 8
            block = UnetBlock(
                outer,
                inner,
                submodule=block,
                norm=norm_layer,
                dropout=dropout and middle_of_eight,
                skip=skip,
            )
        self.model = UnetBlock(
            out_channels, widths[0], in_channels=in_channels, submodule=block, outermost=True,
            norm=norm_layer, skip=skip,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResnetBlock(nn.Module):
    """Residual block: reflect-pad, 3x3 conv, norm, ReLU, [dropout], reflect-pad, 3x3 conv, norm.

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, channels: int, norm: NormFactory, dropout: bool, use_bias: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=use_bias),
            norm(channels),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=use_bias), norm(channels)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """ResNet generator: two stride-2 convs, ``blocks`` residual blocks, two up-convs.

    Shape:
        (B, in_channels, H, W) in [-1, 1] -> (B, out_channels, H, W) in [-1, 1]; H, W divisible by 4.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        blocks: int,
        base_channels: int = 64,
        norm: str = "batch",
        dropout: bool = True,
    ) -> None:
        super().__init__()
        norm_layer = norm_factory(norm)
        use_bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, base_channels, 7, bias=use_bias),
            norm_layer(base_channels),
            nn.ReLU(True),
        ]
        channels = base_channels
        for _ in range(2):
            layers += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=use_bias),
                norm_layer(channels * 2),
                nn.ReLU(True),
            ]
            channels *= 2
        layers += [ResnetBlock(channels, norm_layer, dropout, use_bias) for _ in range(blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias),
                norm_layer(channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4x4 convs, then two stride-1 4x4 convs to one logit per patch.

    ``n_layers=3`` has a 70x70 receptive field.

    Shape:
        (B, in_channels, H, W) -> (B, 1, H', W') logits
    """

    def __init__(self, in_channels: int, base_channels: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        norm_layer = norm_factory(norm)
        use_bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        multiplier = 1
        for layer in range(1, n_layers + 1):
            previous, multiplier = multiplier, min(2**layer, 8)
            stride = 2 if layer < n_layers else 1
            layers += [
                nn.Conv2d(base_channels * previous, base_channels * multiplier, 4, stride=stride, padding=1, bias=use_bias),
                norm_layer(base_channels * multiplier),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(base_channels * multiplier, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """PixelGAN: 1x1 convolutions, one logit per pixel.

    Shape:
        (B, in_channels, H, W) -> (B, 1, H, W) logits
    """

    def __init__(self, in_channels: int, base_channels: int = 64, norm: str = "batch") -> None:
        super().__init__()
        norm_layer = norm_factory(norm)
        use_bias = norm != "batch"
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, base_channels, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(base_channels, base_channels * 2, 1, bias=use_bias),
            norm_layer(base_channels * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(base_channels * 2, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ImageDiscriminator(nn.Module):
    """Global discriminator (``--discriminator global``): stride-2 convs down to at most 4x4, then one conv
    covering the rest: one logit per image. (The paper's 286x286 ImageGAN is ``--discriminator image``.)

    Shape:
        (B, in_channels, S, S) with S = ``image_size`` -> (B, 1, 1, 1) logits
    """

    def __init__(self, in_channels: int, image_size: int, base_channels: int = 64, norm: str = "batch") -> None:
        super().__init__()
        norm_layer = norm_factory(norm)
        use_bias = norm != "batch"
        layers: list[nn.Module] = []
        channels, size, level = in_channels, image_size, 0
        while size > 4 and size % 2 == 0:
            out = base_channels * min(2**level, 8)
            layers.append(nn.Conv2d(channels, out, 4, stride=2, padding=1, bias=use_bias or level == 0))
            if level > 0:
                layers.append(norm_layer(out))
            layers.append(nn.LeakyReLU(0.2, True))
            channels, size, level = out, size // 2, level + 1
        layers.append(nn.Conv2d(channels, 1, size))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The paper's initialisation: conv weights N(0, gain), norm scales N(1, gain), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)


def build_generator(config: ModelConfig) -> nn.Module:
    """The generator ``config.generator``, initialised N(0, 0.02)."""
    if config.generator.startswith("resnet_"):
        blocks = 9 if config.generator == "resnet_9blocks" else 6
        network: nn.Module = ResnetGenerator(
            config.in_channels, config.out_channels, blocks, config.generator_channels, config.norm, config.dropout
        )
    else:
        network = UnetGenerator(
            config.in_channels,
            config.out_channels,
            unet_depth(config.generator, config.crop_size),
            config.generator_channels,
            config.norm,
            config.dropout,
            skip=config.generator != "encoder_decoder",
        )
    init_weights(network)
    return network


IMAGE_GAN_LAYERS = 5
"""PatchGAN depth of the paper's 286x286 "ImageGAN" (3 gives 70x70, 1 gives 16x16)."""


def discriminator_in_channels(config: ModelConfig) -> int:
    """Channels the discriminator sees: B, plus A when conditional."""
    return config.out_channels + (config.in_channels if config.conditional else 0)


def build_discriminator(config: ModelConfig) -> nn.Module:
    """The discriminator ``config.discriminator``, initialised N(0, 0.02)."""
    in_channels = discriminator_in_channels(config)
    if config.discriminator == "patch":
        network: nn.Module = PatchDiscriminator(in_channels, config.discriminator_channels, config.n_layers, config.norm)
    elif config.discriminator == "pixel":
        network = PixelDiscriminator(in_channels, config.discriminator_channels, config.norm)
    elif config.discriminator == "image":
        # the paper's 286x286 discriminator (appendix: C64-C128-C256-C512-C512-C512) is a 5-layer PatchGAN
        network = PatchDiscriminator(in_channels, config.discriminator_channels, IMAGE_GAN_LAYERS, config.norm)
    else:
        network = ImageDiscriminator(in_channels, config.crop_size, config.discriminator_channels, config.norm)
    init_weights(network)
    return network


NORM_STATS = ("per-image", "running")
"""Test-time batch-norm statistics: each image's own (the paper, the reference's default) or the running averages."""


class StatisticsCollected(Exception):
    """Raised by a :class:`PerImageNorm` that has collected what it was asked for (ends the forward early)."""


class PerImageNorm(nn.Module):
    """A trained ``BatchNorm2d`` applied with the statistics of each image (instance normalisation).

    Uses the batch-norm layer's own scale and shift (shared, not copied). At batch size 1 this
    is exactly batch norm in training mode, which is how the paper and the reference run the
    generator at test time; for a batch of N it gives the outputs of N batches of 1.

    For tiled inference of one large image, :meth:`collect` accumulates the layer's input
    statistics over the tiles (weighted by each tile's share of the image) and
    :meth:`fix_statistics` then makes every tile use the whole image's statistics.

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, batch_norm: nn.BatchNorm2d) -> None:
        super().__init__()
        self.weight = batch_norm.weight
        self.bias = batch_norm.bias
        self.eps = float(batch_norm.eps)
        self.fixed: tuple[torch.Tensor, torch.Tensor] | None = None
        self.collecting: tuple[torch.Tensor, list[torch.Tensor]] | None = None

    def fix_statistics(self, statistics: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """Use ``(mean, var)`` of shape (1 or B, C) instead of each input's own (None: back to per-input)."""
        self.fixed = statistics

    def collect(self, weights: torch.Tensor | None, sums: list[torch.Tensor] | None = None) -> None:
        """On the next forward, add ``weights``-weighted sums of x and x**2 and the weight total
        to ``sums`` (per channel), then raise :class:`StatisticsCollected`. ``None`` stops collecting.

        Shape:
            weights: (B, 1, h, w) at image resolution (resized to the layer's resolution).
        """
        self.collecting = None if weights is None or sums is None else (weights, sums)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.collecting is not None:
            weights, sums = self.collecting
            w = F.interpolate(weights, size=x.shape[-2:], mode="nearest")
            values = x.float()
            sums[0] += (w * values).sum(dim=(0, 2, 3))
            sums[1] += (w * values * values).sum(dim=(0, 2, 3))
            sums[2] += w.sum()
            raise StatisticsCollected
        if self.fixed is None:
            return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        mean, var = self.fixed
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        y = (x - mean[:, :, None, None]) * scale[:, :, None, None].to(x.dtype)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        return y

    def extra_repr(self) -> str:
        return f"{0 if self.weight is None else self.weight.numel()}, eps={self.eps}, per-image statistics"


def inference_generator(generator: nn.Module, norm_stats: str = "per-image", dropout: bool = False) -> nn.Module:
    """The generator as it runs at test time; the one place that defines test-time behaviour.

    Returns a structural copy that shares the generator's parameters and buffers (no weights
    are copied; the original keeps its mode): every ``BatchNorm2d`` applied with per-image
    statistics (``norm_stats="per-image"``, the paper's protocol) or its running averages
    (``"running"``), in eval mode, with the dropout layers on when ``dropout`` is True.

    Used by predict, evaluate, in-training validation and sample grids, export and serving.

    Raises:
        ValueError: unknown ``norm_stats``.
    """
    if norm_stats not in NORM_STATS:
        raise ValueError(f"norm_stats {norm_stats!r}: expected one of {', '.join(NORM_STATS)}")
    from pairforge.trainer.checkpoint import unwrap

    plain = unwrap(generator)
    memo: dict[int, object] = {id(t): t for t in (*plain.parameters(), *plain.buffers())}
    network = copy.deepcopy(plain, memo)
    if norm_stats == "per-image":
        _swap_batch_norms(network)
    network.eval()
    if dropout:
        enable_dropout(network)
    return network


def _swap_batch_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, PerImageNorm(child))
        else:
            _swap_batch_norms(child)


def per_image_layers(network: nn.Module) -> list[PerImageNorm]:
    """The :class:`PerImageNorm` layers of an :func:`inference_generator`, in forward order."""
    return [layer for layer in network.modules() if isinstance(layer, PerImageNorm)]


def enable_dropout(network: nn.Module) -> nn.Module:
    """Put only the dropout layers back in training mode (the paper's test-time noise)."""
    for layer in network.modules():
        if isinstance(layer, nn.Dropout):
            layer.train()
    return network
