"""Image-quality metrics for validation: L1, PSNR and SSIM (via Kornia), per image."""

from __future__ import annotations

import kornia
import torch


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image, in dB (capped at 100 for identical images).

    Shape:
        prediction, target: (B, C, H, W) in [0, 1] -> (B,)
    """
    mse = ((prediction.float() - target.float()) ** 2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(1.0 / mse.clamp(min=1e-10))).clamp(max=100.0)


def ssim(prediction: torch.Tensor, target: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Mean structural similarity of each image (Kornia's SSIM map, averaged).

    Shape:
        prediction, target: (B, C, H, W) in [0, 1] -> (B,)
    """
    window = min(window_size, prediction.shape[-1], prediction.shape[-2])
    window -= 1 - window % 2
    ssim_map = kornia.metrics.ssim(prediction.float(), target.float(), window_size=window, max_val=1.0)
    return ssim_map.flatten(1).mean(dim=1)


def l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The L1 metric of pairforge: mean absolute error of each image, on RGB values in [0, 1].

    One definition everywhere: training's ``val_l1`` (the validation split) and ``evaluate``'s
    ``l1`` both call this on RGB images scaled to [0, 1]. (The training loss ``loss_g_l1`` is
    the paper's L1 term on the generator's [-1, 1] outputs: twice this scale, and not a metric.)

    Shape:
        prediction, target: (B, C, H, W) in [0, 1] -> (B,)
    """
    return (prediction.float() - target.float()).abs().flatten(1).mean(dim=1)
