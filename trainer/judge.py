"""The judge: a small fully convolutional segmenter for the paper's FCN-score, and its training.

Trained on the real photos of the train split against their label maps (``pairforge
train-judge``), it is then applied to generated and real photos by ``evaluate``. Saved as
``judge.safetensors`` plus ``judge.json`` (architecture, palette, training facts); loading
never unpickles anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from pairforge.errors import ConfigError, DatasetError
from pairforge.files import write_atomic
from pairforge.trainer.inference import reflect_pad

logger = logging.getLogger(__name__)

JUDGE_FORMAT = "pairforge.judge/1"
WEIGHTS_NAME = "judge.safetensors"
CONFIG_NAME = "judge.json"


@dataclass(frozen=True)
class JudgeConfig:
    """Judge architecture and training.

    Attributes:
        base_channels: width of the first stage (stages double it, at most 4x).
        steps: optimizer steps.
        batch_size: crops per step.
        crop_size: side of the random training crops.
        lr: Adam learning rate.
        seed: seed for initialisation and crops.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
    """

    base_channels: int = 32
    steps: int = 2000
    batch_size: int = 8
    crop_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("base_channels", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "an integer >= 1")
        if self.crop_size < 8 or self.crop_size % 8:
            raise ConfigError("crop_size", self.crop_size, "a multiple of 8, >= 8")
        if self.lr <= 0:
            raise ConfigError("lr", self.lr, "> 0")


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Judge(nn.Module):
    """FCN segmenter: four stages (strides 1, 2, 2, 2), class scores from the last three fused
    upwards (FCN-8s style) and upsampled to the input size.

    Shape:
        (B, 3, H, W) in [-1, 1] -> (B, num_classes, H, W) logits; any H, W (padded to 8 inside).
    """

    multiple = 8

    def __init__(self, num_classes: int, base_channels: int = 32) -> None:
        super().__init__()
        widths = [base_channels, base_channels * 2, base_channels * 4, base_channels * 4]
        self.num_classes = num_classes
        self.stages = nn.ModuleList(
            [_stage(3, widths[0], 1), _stage(widths[0], widths[1], 2), _stage(widths[1], widths[2], 2),
             _stage(widths[2], widths[3], 2)]
        )
        self.scores = nn.ModuleList([nn.Conv2d(width, num_classes, 1) for width in widths[1:]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        x = reflect_pad(x, 0, pad_h, 0, pad_w)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        logits = self.scores[-1](features[-1])
        for score, feature in zip(reversed(self.scores[:-1]), reversed(features[1:-1]), strict=True):
            logits = F.interpolate(logits, size=feature.shape[-2:], mode="bilinear", align_corners=False) + score(feature)
        logits = F.interpolate(logits, size=(height + pad_h, width + pad_w), mode="bilinear", align_corners=False)
        return logits[..., :height, :width]

    @torch.no_grad()
    def segment(self, photos: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Class ids of each photo.

        Shape:
            photos: (H, W, 3) uint8 RGB (sizes may differ) -> (H, W) int64 ids.
        """
        self.eval()
        device = next(self.parameters()).device
        results = []
        for photo in photos:
            x = photo_tensor(photo, device)
            results.append(self(x).argmax(dim=1)[0].cpu().numpy())
        return results


def photo_tensor(photo: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """The judge's input: ``(H, W, 3)`` uint8 RGB -> ``(1, 3, H, W)`` float in -1..1 on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None].to(device).float() / 127.5 - 1.0


def _random_batch(
    samples: Sequence[tuple[np.ndarray, np.ndarray]], config: JudgeConfig, rng: np.random.Generator, ignore_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops (padded with the ignore id when a sample is small) with random flips."""
    size = config.crop_size
    photos = np.zeros((config.batch_size, size, size, 3), np.uint8)
    labels = np.full((config.batch_size, size, size), ignore_id, np.int64)
    for index in range(config.batch_size):
        photo, ids = samples[int(rng.integers(len(samples)))]
        height, width = ids.shape
        top, left = int(rng.integers(max(height - size, 0) + 1)), int(rng.integers(max(width - size, 0) + 1))
        crop_photo, crop_ids = photo[top : top + size, left : left + size], ids[top : top + size, left : left + size]
        if rng.random() < 0.5:
            crop_photo, crop_ids = crop_photo[:, ::-1], crop_ids[:, ::-1]
        photos[index, : crop_ids.shape[0], : crop_ids.shape[1]] = crop_photo
        labels[index, : crop_ids.shape[0], : crop_ids.shape[1]] = crop_ids
    x = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, torch.from_numpy(labels)


def train_judge(
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    config: JudgeConfig,
    progress: Callable[[int, float], None] | None = None,
) -> Judge:
    """Train a judge on (photo, class ids) pairs; ids >= ``num_classes`` are ignored.

    Args:
        samples: ``(H, W, 3)`` uint8 photos with ``(H, W)`` integer ids.
        num_classes: classes to learn.
        config: training options.
        progress: called with (step, loss) after every step.

    Raises:
        DatasetError: no samples.
    """
    if not samples:
        raise DatasetError("no training samples for the judge")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = torch.device(config.device)
    judge = Judge(num_classes, config.base_channels).to(device)
    optimizer = torch.optim.Adam(judge.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    judge.train()
    for step in range(1, config.steps + 1):
        x, y = _random_batch(samples, config, rng, num_classes)
        loss = F.cross_entropy(judge(x.to(device)), y.to(device), ignore_index=num_classes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(step, loss.item())
    return judge.eval()


def save_judge(judge: Judge, folder: str | Path, facts: dict[str, Any], config: JudgeConfig) -> Path:
    """Write ``judge.safetensors`` and ``judge.json`` (architecture, ``facts``: palette, counts...)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in judge.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_NAME))
    document = {"format": JUDGE_FORMAT, "num_classes": judge.num_classes, "base_channels": config.base_channels,
                "training": asdict(config), **facts}
    write_atomic(folder / CONFIG_NAME, json.dumps(document, indent=2, sort_keys=True))
    return folder


def load_judge(folder: str | Path, device: str = "cpu") -> tuple[Judge, dict[str, Any]]:
    """A saved judge (safetensors weights, JSON config) in eval mode, and its JSON document.

    Raises:
        DatasetError: missing or unreadable files, or an unknown format.
    """
    folder = Path(folder)
    try:
        document = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{folder / CONFIG_NAME}: not a judge config ({exc}); train one with `pairforge train-judge`") from None
    if document.get("format") != JUDGE_FORMAT:
        raise DatasetError(f"{folder / CONFIG_NAME}: format {document.get('format')!r} is not {JUDGE_FORMAT!r}")
    judge = Judge(int(document["num_classes"]), int(document["base_channels"]))
    try:
        judge.load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)
    except Exception as exc:  # safetensors and state-dict errors
        raise DatasetError(f"{folder / WEIGHTS_NAME}: cannot load the judge ({type(exc).__name__}: {exc})") from None
    return judge.to(device).eval(), document


def blur(photo: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Gaussian blur of a photo (what an L1-only generator's softness looks like to the judge).

    Shape:
        (H, W, 3) uint8 -> (H, W, 3) uint8.
    """
    import cv2

    return cv2.GaussianBlur(photo, (0, 0), sigma)


def region_mean_fill(photo: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each class region of the photo filled with its mean colour (all texture removed).

    Shape:
        photo (H, W, 3) uint8, ids (H, W) integer -> (H, W, 3) uint8.
    """
    filled = np.empty_like(photo)
    flat_ids = ids.ravel()
    counts = np.bincount(flat_ids)
    pixels = photo.reshape(-1, 3).astype(np.float64)
    means = np.stack([np.bincount(flat_ids, pixels[:, c], minlength=counts.size) for c in range(3)], axis=1)
    means /= np.maximum(counts, 1)[:, None]
    filled.reshape(-1, 3)[:] = np.rint(means[flat_ids]).astype(np.uint8)
    return filled


DEGRADATIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "real photos": lambda photo, ids: photo,
    "blurred, sigma 2 px": lambda photo, ids: blur(photo, 2.0),
    "class regions filled with their mean colour": region_mean_fill,
}
"""What :func:`judge_sensitivity` shows the judge: name -> (photo, ids) -> photo."""


@torch.no_grad()
def judge_sensitivity(judge: Judge, samples: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, float]]:
    """What the judge can see: its scores on real photos and on degraded copies of them.

    A judge that keeps its accuracy on blurred or region-mean-filled photos cannot tell a
    blurry mean-colour output from a sharp, textured one, so its FCN-score cannot rank them.

    Args:
        judge: a trained judge.
        samples: (photo (H, W, 3) uint8, ids (H, W)) pairs the judge was not trained on;
            ids >= ``judge.num_classes`` are ignored.

    Returns:
        degradation name -> per-pixel accuracy, per-class accuracy, class IoU and the mean
        cross-entropy (``loss``) of the judge against the labels.
    """
    from pairforge.trainer.evaluation import confusion_matrix, segmentation_scores

    judge.eval()
    device = next(judge.parameters()).device
    results: dict[str, dict[str, float]] = {}
    for name, degrade in DEGRADATIONS.items():
        confusion = np.zeros((judge.num_classes, judge.num_classes), np.int64)
        losses = []
        for photo, ids in samples:
            seen = degrade(photo, ids)
            logits = judge(photo_tensor(seen, device))
            target = torch.from_numpy(np.minimum(ids, judge.num_classes).astype(np.int64))[None].to(device)
            losses.append(float(F.cross_entropy(logits, target, ignore_index=judge.num_classes)))
            confusion += confusion_matrix(logits.argmax(dim=1)[0].cpu().numpy(), ids, judge.num_classes)
        results[name] = {**segmentation_scores(confusion), "loss": float(np.mean(losses)) if losses else float("nan")}
    return results
