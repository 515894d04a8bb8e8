"""Adversarial losses (vanilla, LSGAN, hinge) and the L1 reconstruction term."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, gan_mode: str) -> torch.Tensor:
    """Discriminator objective, halved as in the paper (slows D relative to G).

    Args:
        real_logits: D on real pairs.
        fake_logits: D on generated pairs (detached from G).
        gan_mode: ``vanilla``, ``lsgan`` or ``hinge``.

    Shape:
        logits: any shape, e.g. (B, 1, H', W'); returns a scalar.
    """
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if gan_mode == "vanilla":
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    elif gan_mode == "lsgan":
        real = F.mse_loss(real_logits, torch.ones_like(real_logits))
        fake = F.mse_loss(fake_logits, torch.zeros_like(fake_logits))
    elif gan_mode == "hinge":
        real = F.relu(1.0 - real_logits).mean()
        fake = F.relu(1.0 + fake_logits).mean()
    else:
        raise ValueError(f"unknown gan_mode {gan_mode!r}")
    return 0.5 * (real + fake)


def generator_gan_loss(fake_logits: torch.Tensor, gan_mode: str) -> torch.Tensor:
    """Generator's adversarial objective (non-saturating for vanilla).

    Shape:
        fake_logits: any shape; returns a scalar.
    """
    fake_logits = fake_logits.float()
    if gan_mode == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if gan_mode == "lsgan":
        return F.mse_loss(fake_logits, torch.ones_like(fake_logits))
    if gan_mode == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"unknown gan_mode {gan_mode!r}")


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error in the network's output space.

    Shape:
        output, target: (B, C, H, W); returns a scalar.
    """
    return F.l1_loss(output.float(), target.float())
