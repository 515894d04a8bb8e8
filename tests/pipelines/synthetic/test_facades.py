"""Procedural facades: deterministic per seed, valid label ids, per-index regeneration, make-labels ready."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pairforge.errors import ConfigError
from pairforge.imageio import read_image, read_label_image
from pairforge.palettes import load_palette
from pairforge.pipelines.geometry import FitConfig
from pairforge.pipelines.labels import LabelsConfig, LabelsStage
from pairforge.pipelines.synthetic.facades import (
    FACADE_PALETTE,
    FacadesConfig,
    facade_key,
    render_facade,
    write_facades,
)


def digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_seed_identical_bytes_different_seed_different(tmp_path: Path) -> None:
    first = write_facades(tmp_path / "a", FacadesConfig(count=4, seed=3, size=96))
    write_facades(tmp_path / "b", FacadesConfig(count=4, seed=3, size=96))
    write_facades(tmp_path / "c", FacadesConfig(count=4, seed=4, size=96))
    a, b, c = digests(tmp_path / "a"), digests(tmp_path / "b"), digests(tmp_path / "c")
    assert len(a) == 9 and a == b
    assert {k: v for k, v in a.items() if k != "palette.json"}.keys() == {
        f"{d}/{facade_key(i)}.{e}"
        for i in range(4)
        for d, e in (("photos", "jpg"), ("labels", "png"))
    }
    differing = [name for name in a if name != "palette.json" and a[name] != c[name]]
    assert len(differing) == 8
    assert first["count"] == 4 and abs(sum(first["class_fractions"].values()) - 1.0) < 1e-2


def test_render_i_alone_equals_ith_of_batch() -> None:
    config = FacadesConfig(count=6, seed=11, size=64)
    batch = [render_facade(index, config) for index in range(6)]
    photo, labels = render_facade(4, config)
    np.testing.assert_array_equal(photo, batch[4][0])
    np.testing.assert_array_equal(labels, batch[4][1])
    # the index matters, and the count does not
    assert not np.array_equal(batch[3][0], batch[4][0])
    np.testing.assert_array_equal(
        render_facade(4, FacadesConfig(count=100, seed=11, size=64))[0], photo
    )


def test_labels_use_only_palette_ids_and_look_like_facades() -> None:
    config = FacadesConfig(count=30, seed=0, size=128)
    seen: set[int] = set()
    for index in range(config.count):
        photo, labels = render_facade(index, config)
        assert photo.shape == (128, 128, 3) and photo.dtype == np.uint8
        assert labels.shape == (128, 128) and labels.dtype == np.uint8
        present = {int(v) for v in np.unique(labels)}
        assert present <= set(FACADE_PALETTE.ids)
        seen |= present
        # every facade has wall and windows, and a facade, not one flat colour, is drawn
        fractions = np.bincount(labels.ravel(), minlength=12) / labels.size
        assert fractions[2] > 0.15 and fractions[3] > 0.03
        assert photo.std() > 10
    names = {FACADE_PALETTE.names[FACADE_PALETTE.ids.index(i)] for i in seen}
    assert {"wall", "window", "door", "balcony", "cornice", "shop", "sky", "background", "shutter", "pillar",
            "awning"} <= names


def _detail(gray: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute Laplacian inside ``mask`` (eroded, so region borders do not count)."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F))[inner].mean()) if inner.sum() > 30 else float("nan")


@pytest.mark.parametrize(("class_id", "name"), [(9, "shutter"), (10, "pillar"), (11, "awning")])
def test_texture_not_colour_tells_some_classes_from_the_wall(class_id: int, name: str) -> None:
    """Shutters, pilasters and awnings share the wall's colour distribution and differ by texture.

    Over many facades their mean colour is the wall's (so a per-class mean colour, what L1
    converges to, cannot separate them), while their fine detail is well above the wall's.
    """
    config = FacadesConfig(count=60, seed=7, size=256)
    colour_gaps, textured, compared = [], 0, 0
    for index in range(config.count):
        photo, labels = render_facade(index, config)
        mask, wall = labels == class_id, labels == 2
        if mask.sum() < 200:
            continue
        colour_gaps.append(photo[mask].mean(axis=0) - photo[wall].mean(axis=0))
        gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32)
        detail, wall_detail = _detail(gray, mask), _detail(gray, wall)
        if np.isfinite(detail):
            compared += 1
            textured += detail > 1.5 * wall_detail
    assert len(colour_gaps) >= 8, name
    assert np.abs(np.mean(colour_gaps, axis=0)).max() < 25, name  # no colour cue on average (0..255)
    assert textured >= 0.8 * compared, name


def test_classes_are_rendered_differently() -> None:
    """Labels carry information: windows are darker than the wall they sit in, on average."""
    config = FacadesConfig(count=20, seed=5, size=128)
    darker = 0
    for index in range(config.count):
        photo, labels = render_facade(index, config)
        brightness = photo.astype(np.float32).mean(axis=2)
        darker += brightness[labels == 3].mean() < brightness[labels == 2].mean()
    assert darker >= 17


def test_output_feeds_make_labels(tmp_path: Path) -> None:
    write_facades(tmp_path, FacadesConfig(count=2, seed=1, size=64))
    palette = load_palette(tmp_path / "palette.json")
    assert palette == FACADE_PALETTE
    stage = LabelsStage(LabelsConfig(palette, fit=FitConfig(size=64)))
    key = facade_key(1)
    photo = read_image(tmp_path / "photos" / f"{key}.jpg")
    labels = read_label_image(tmp_path / "labels" / f"{key}.png")
    np.testing.assert_array_equal(labels, render_facade(1, FacadesConfig(seed=1, size=64))[1])
    sample = stage(photo, key, label=labels)
    np.testing.assert_array_equal(sample.a, np.asarray(FACADE_PALETTE.colors, np.uint8)[labels])  # ids 0..11 = rows
    assert json.loads((tmp_path / "palette.json").read_text())["name"] == "facades"


@pytest.mark.slow
def test_every_small_size_renders() -> None:
    """Blinds one pixel tall crashed ``_awning`` (IndexError) at most sizes below 80 (seed 0: index 14)."""
    for size in range(32, 80):
        for index in range(16):
            photo, labels = render_facade(index, FacadesConfig(count=1, size=size))
            assert photo.shape == (size, size, 3) and labels.shape == (size, size)


def test_synth_facades_command_at_the_smallest_sizes(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pairforge.cli import cli

    for size in ("64", "32"):
        result = CliRunner().invoke(cli, ["synth", "facades", "-o", str(tmp_path / size), "--count", "30",
                                          "--size", size])
        assert result.exit_code == 0 and result.exception is None, result.output
        assert len(list((tmp_path / size / "labels").glob("*.png"))) == 30
    result = CliRunner().invoke(cli, ["synth", "facades", "-o", str(tmp_path / "x"), "--size", "31"])
    assert result.exit_code == 2 and "31" in result.output


def test_progress_called_per_sample(tmp_path: Path) -> None:
    calls: list[int] = []
    write_facades(tmp_path, FacadesConfig(count=3, size=64), progress=calls.append)
    assert calls == [1, 1, 1]


def test_bad_config_names_the_field() -> None:
    for kwargs in ({"count": 0}, {"seed": -1}, {"size": 31}, {"size": 4097}, {"size": 256.0}, {"jpeg_quality": 101}):
        with pytest.raises(ConfigError) as info:
            FacadesConfig(**kwargs)
        assert info.value.field == next(iter(kwargs)), kwargs
