"""One optimisation step of pix2pix (Isola et al. 2017, eq. 4): the paper's objective, read beside losses.py.

    G* = arg min_G max_D  L_cGAN(G, D) + lambda * L_L1(G)

- D step: D learns to tell the real pair (A, B) from the fake pair (A, G(A)), G(A) detached so
  only D moves (``loss_d``; the reference halves it, see :func:`~pairforge.trainer.losses.discriminator_loss`).
- G step: G learns to fool D on (A, G(A)) (``loss_g_gan``) while staying near B in L1, weighted
  by lambda (``--lambda-l1``, 100 in the paper; ``loss_g_l1`` is logged unweighted).
- ``--unconditional`` shows D only B or G(A); ``--no-gan`` drops D (L1 alone, the paper's ablation).
- EMA (``--ema``): an exponential moving average of G's weights, the test-time generator when set.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pairforge.trainer.config import LossConfig
from pairforge.trainer.losses import discriminator_loss, generator_gan_loss, l1_loss


@dataclass
class Models:
    """The networks and their optimizers, as checkpoints hold them (never DDP-wrapped or compiled)."""

    generator: nn.Module
    discriminator: nn.Module | None
    """None when training without the GAN term (``--no-gan``)."""
    ema: nn.Module | None
    """The generator's exponential moving average (``--ema``), or None."""
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer | None

    def networks(self) -> dict[str, nn.Module]:
        """The networks by checkpoint file name (``<name>.safetensors``)."""
        networks = {"generator": self.generator}
        if self.discriminator is not None:
            networks["discriminator"] = self.discriminator
        if self.ema is not None:
            networks["generator_ema"] = self.ema
        return networks

    def set_lr(self, lr: float) -> None:
        for optimizer in (self.optimizer_g, self.optimizer_d):
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr


@dataclass(frozen=True)
class Handles:
    """What the train step calls: the networks of :class:`Models`, DDP-wrapped and/or compiled."""

    generator: nn.Module
    discriminator: nn.Module | None
    """D for the D step (DDP-wrapped in a DDP run: its gradients are averaged over ranks)."""
    discriminator_for_g: nn.Module | None
    """D as the G step sees it: never DDP-wrapped (D is frozen there; only G's gradients flow)."""


def train_step(
    models: Models, handles: Handles, x: torch.Tensor, y: torch.Tensor, loss: LossConfig, conditional: bool,
    autocast: contextlib.AbstractContextManager[Any],
) -> dict[str, torch.Tensor]:
    """One optimisation step on encoded (x, y): D on real and fake pairs, then G on GAN + L1.

    Returns:
        the step's detached losses: ``loss_d`` (with a GAN), ``loss_g_l1``, ``loss_g_gan`` (with a GAN).
    """
    with autocast:
        fake = handles.generator(x)
    losses: dict[str, torch.Tensor] = {}
    if handles.discriminator is not None and models.optimizer_d is not None:
        losses["loss_d"] = discriminator_step(
            handles.discriminator, models.optimizer_d, x, y, fake.detach(), loss, conditional, autocast
        )
    losses.update(generator_step(handles.discriminator_for_g, models.optimizer_g, x, y, fake, loss, conditional, autocast))
    return losses


def discriminator_step(
    discriminator: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
    fake: torch.Tensor, loss: LossConfig, conditional: bool, autocast: contextlib.AbstractContextManager[Any],
) -> torch.Tensor:
    """Update D to tell (A, B) from (A, ``fake``) (``fake`` detached from G); returns the detached loss."""
    _set_requires_grad(discriminator, True)
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        real_in = _discriminator_input(x, y, conditional)
        fake_in = _discriminator_input(x, fake, conditional)
        loss_d = discriminator_loss(discriminator(real_in), discriminator(fake_in), loss.gan_mode)
    loss_d.backward()
    optimizer.step()
    _set_requires_grad(discriminator, False)
    return loss_d.detach()


def generator_step(
    discriminator: nn.Module | None, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
    fake: torch.Tensor, loss: LossConfig, conditional: bool, autocast: contextlib.AbstractContextManager[Any],
) -> dict[str, torch.Tensor]:
    """Update G on ``lambda_l1`` * L1(fake, B), plus D's verdict on (A, fake) unless ``discriminator`` is None.

    Returns:
        the detached terms: ``loss_g_l1`` (unweighted) and ``loss_g_gan``.
    """
    losses: dict[str, torch.Tensor] = {}
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        loss_g = l1_loss(fake, y) * loss.lambda_l1
        losses["loss_g_l1"] = loss_g.detach() / max(loss.lambda_l1, 1e-12)
        if discriminator is not None:
            loss_gan = generator_gan_loss(discriminator(_discriminator_input(x, fake, conditional)), loss.gan_mode)
            loss_g = loss_g + loss_gan
            losses["loss_g_gan"] = loss_gan.detach()
    loss_g.backward()
    optimizer.step()
    return losses


def _discriminator_input(x: torch.Tensor, b: torch.Tensor, conditional: bool) -> torch.Tensor:
    """What D judges: A next to B (cGAN, the default) or B alone (``--unconditional``)."""
    return torch.cat([x, b], 1) if conditional else b


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * G, parameter by parameter; batch-norm buffers copied from G."""
    for ema_parameter, parameter in zip(ema.parameters(), model.parameters(), strict=True):
        ema_parameter.lerp_(parameter.detach(), 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)
