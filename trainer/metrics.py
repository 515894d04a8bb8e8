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
    """Mean absolute error of each image.

    Shape:
        prediction, target: (B, C, H, W) -> (B,)
    """
    return (prediction.float() - target.float()).abs().flatten(1).mean(dim=1)
