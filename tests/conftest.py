"""Fixtures shared by every test package: real photos from scikit-image, AB folders in tmp_path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (no GPU on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def sample_photos() -> list[np.ndarray]:
    """scikit-image's bundled colour photos, RGB uint8."""
    from skimage import data

    return [getattr(data, name)() for name in PHOTO_NAMES]


@pytest.fixture(scope="session")
def skimage_photos() -> list[np.ndarray]:
    return sample_photos()


@pytest.fixture(scope="session")
def tiny_edges_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step edges run at 64 px whose dataset recorded its Canny recipe (so photos can become A).

    Trained once per session for predict, serve and the browser tests; they read it and never write to it.
    """
    from pairforge.trainer.loop import train
    from tests.trainer.conftest import make_tiny_config, write_stage_shards

    root = tmp_path_factory.mktemp("tiny-edges-run")
    shards = write_stage_shards(root / "shards", sample_photos(), size=64)
    return Path(train(make_tiny_config(shards, root / "runs", steps=2, augment__crop_size=64)).run_dir)


def random_crops(photos: list[np.ndarray], count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` random crops (resized when a photo is too small) of the given size."""
    rng = np.random.default_rng(seed)
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        scale = max(height / photo.shape[0], width / photo.shape[1], 0.25 + 0.75 * rng.random())
        if scale != 1.0:
            photo = cv2.resize(photo, (max(width, round(photo.shape[1] * scale)), max(height, round(photo.shape[0] * scale))),
                               interpolation=cv2.INTER_AREA)
        top = int(rng.integers(0, photo.shape[0] - height + 1))
        left = int(rng.integers(0, photo.shape[1] - width + 1))
        crops.append(np.ascontiguousarray(photo[top : top + height, left : left + width]))
    return crops


def write_ab_folder(root: Path, photos: list[np.ndarray], count: int, size: int = 64, splits: tuple[str, ...] = ("",),
                    extension: str = ".png", seed: int = 0) -> list[Path]:
    """Write ``count`` AB images (A = inverted gray-ish edges of B, B = a crop) spread over ``splits``."""
    paths = []
    for index, crop in enumerate(random_crops(photos, count, size, size, seed)):
        gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        edges = 255 - cv2.Canny(gray, 50, 150)
        a = np.repeat(edges[..., None], 3, axis=2)
        ab = np.concatenate([a, crop], axis=1)
        split = splits[index % len(splits)]
        path = root / split / f"pair_{index:05d}{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        options = [cv2.IMWRITE_JPEG_QUALITY, 95] if extension.lower() in (".jpg", ".jpeg") else []
        cv2.imwrite(str(path), cv2.cvtColor(ab, cv2.COLOR_RGB2BGR), options)
        paths.append(path)
    return paths


@pytest.fixture()
def make_ab_folder(skimage_photos: list[np.ndarray]):  # noqa: ANN201 - returns a factory
    """Factory: ``make_ab_folder(root, count, size=64, splits=("",), extension=".png", seed=0) -> paths``."""

    def factory(root: Path, count: int, **options: object) -> list[Path]:
        return write_ab_folder(root, skimage_photos, count, **options)  # type: ignore[arg-type]

    return factory


def pytest_itemcollected(item: pytest.Item) -> None:
    """Tests that start real services (the S3 server, a Dask cluster) or read the session's trained run are
    ``slow``: ``make test`` and CI run them, the fast loop (``pytest -m "not slow"``, ``make test-fast``)
    leaves them out."""
    if {"s3", "cluster", "tiny_edges_run"} & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.slow)
