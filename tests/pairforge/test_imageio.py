"""Robust image reading: every odd file becomes RGB uint8 or a SampleError with a reason."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pairforge.errors import SampleError
from pairforge.imageio import decode_image, read_image, read_label_image


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture()
def astronaut_small(skimage_photos: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(skimage_photos[0][::8, ::8])  # 64x64 RGB


@pytest.mark.parametrize("fmt,ext", [("JPEG", ".JPG"), ("PNG", ".Png"), ("WEBP", ".webp"), ("TIFF", ".TIF"), ("BMP", ".bmp")])
def test_formats_any_case_extension(tmp_path: Path, astronaut_small: np.ndarray, fmt: str, ext: str) -> None:
    path = tmp_path / f"photo{ext}"
    path.write_bytes(_save(Image.fromarray(astronaut_small), fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {})))
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    tolerance = 12 if fmt in ("JPEG", "WEBP") else 0
    assert np.abs(image.astype(int) - astronaut_small.astype(int)).mean() <= tolerance


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_save(Image.fromarray(pixels), "JPEG", exif=exif, quality=95))
    image = read_image(path)
    assert image.shape == (40, 20, 3)
    assert image[5, 10, 0] > 200 and image[35, 10, 0] < 60  # red moved to the top


def test_modes_become_rgb(tmp_path: Path, astronaut_small: np.ndarray) -> None:
    base = Image.fromarray(astronaut_small)
    gray = base.convert("L")
    cases = {
        "l.png": (gray, "PNG"),
        "la.png": (gray.convert("LA"), "PNG"),
        "p.png": (base.convert("P"), "PNG"),
        "rgba.png": (base.convert("RGBA"), "PNG"),
        "cmyk.jpg": (base.convert("CMYK"), "JPEG"),
        "onebit.png": (gray.convert("1"), "PNG"),
    }
    for name, (image, fmt) in cases.items():
        path = tmp_path / name
        path.write_bytes(_save(image, fmt))
        result = read_image(path)
        assert result.dtype == np.uint8 and result.shape == (64, 64, 3), name
    cmyk = read_image(tmp_path / "cmyk.jpg").astype(int)
    assert np.abs(cmyk - astronaut_small.astype(int)).mean() < 20  # CMYK converted, not garbage


def test_alpha_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top opaque red, bottom transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = read_image(path)
    assert tuple(image[0, 0]) == (255, 0, 0)
    assert tuple(image[7, 7]) == (255, 255, 255)


def test_16_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    image = read_image(path)
    assert image.dtype == np.uint8
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
    assert 120 <= image[32, 0, 0] <= 135  # the middle of the ramp stays in the middle
    assert len(np.unique(image)) > 200  # scaled over the whole range, not clipped at 255


@pytest.mark.parametrize(
    "name,payload,reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"this is not a picture\n", "not an image"),
        ("huge.png", None, "too large"),  # a PNG whose header claims 100000 x 100000 px
    ],
)
def test_bad_files_raise_sample_error(tmp_path: Path, name: str, payload: bytes | None, reason: str,
                                      png_header_only: Callable[[int, int], bytes]) -> None:
    path = tmp_path / name
    path.write_bytes(png_header_only(100_000, 100_000) if payload is None else payload)
    with pytest.raises(SampleError, match=reason):
        read_image(path)


def test_truncated_jpeg_and_png(tmp_path: Path, astronaut_small: np.ndarray) -> None:
    big = np.repeat(np.repeat(astronaut_small, 4, axis=0), 4, axis=1)
    for fmt, name in (("JPEG", "cut.jpg"), ("PNG", "cut.png")):
        data = _save(Image.fromarray(big), fmt)
        path = tmp_path / name
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(SampleError, match="truncated|corrupt"):
            read_image(path)


def test_pixel_limit_is_configurable(tmp_path: Path, astronaut_small: np.ndarray) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(astronaut_small).save(path)
    with pytest.raises(SampleError, match="too large"):
        read_image(path, max_pixels=64 * 64 - 1)
    assert read_image(path, max_pixels=64 * 64).shape == (64, 64, 3)


def test_missing_and_dangling_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="not found"):
        read_image(tmp_path / "missing.png")
    link = tmp_path / "dangling.png"
    os.symlink(tmp_path / "nowhere.png", link)
    with pytest.raises(SampleError, match="dangling"):
        read_image(link)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(SampleError, match="directory"):
        read_image(tmp_path / "folder.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied(tmp_path: Path, astronaut_small: np.ndarray) -> None:
    path = tmp_path / "secret.png"
    Image.fromarray(astronaut_small).save(path)
    path.chmod(0)
    with pytest.raises(SampleError, match="permission"):
        read_image(path)


def test_decode_image_bytes(astronaut_small: np.ndarray) -> None:
    assert decode_image(_save(Image.fromarray(astronaut_small), "PNG")).shape == (64, 64, 3)


def test_label_maps_keep_their_ids(tmp_path: Path) -> None:
    ids = (np.arange(64 * 64).reshape(64, 64) % 40).astype(np.uint8)
    Image.fromarray(ids).save(tmp_path / "ids8.png")
    assert np.array_equal(read_label_image(tmp_path / "ids8.png"), ids)
    wide = (np.arange(64 * 64).reshape(64, 64) * 13).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "ids16.png")
    result = read_label_image(tmp_path / "ids16.png")
    assert result.dtype == np.uint16 and np.array_equal(result, wide)
    palette = Image.fromarray(ids, "P")
    palette.putpalette([value for index in range(256) for value in (index, 255 - index, 7)])
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(read_label_image(tmp_path / "palette.png"), ids)
    with pytest.raises(SampleError):
        (tmp_path / "bad.png").write_bytes(b"nope")
        read_label_image(tmp_path / "bad.png")


def test_a_fifo_is_a_reject_not_a_hang(tmp_path: Path) -> None:
    """Reading a named pipe without a writer would block forever; it is 'not a regular file' at once."""
    import subprocess
    import sys

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    code = (
        "import sys\nfrom pairforge.errors import SampleError\nfrom pairforge.imageio import read_image\n"
        "try:\n    read_image(sys.argv[1])\nexcept SampleError as e:\n    print(e.reason, '|', e.detail)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "not a regular file | a FIFO (named pipe)"


def test_devices_and_link_loops_are_rejects(tmp_path: Path) -> None:
    with pytest.raises(SampleError) as caught:
        read_image("/dev/null")
    assert (caught.value.reason, caught.value.detail) == ("not a regular file", "a character device")
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(SampleError) as caught:
        read_image(tmp_path / "a.png")
    assert (caught.value.reason, caught.value.detail) == ("unreadable", "a symbolic link loop")


@pytest.mark.parametrize(("fmt", "words"), [("GIF", "an animated GIF with 3 frames"), ("PNG", "an animated PNG with 3 frames"),
                                            ("WEBP", "an animated WEBP with 3 frames"), ("TIFF", "a TIFF with 3 pages")])
def test_animated_images_are_rejects_for_every_reader(tmp_path: Path, astronaut_small: np.ndarray, fmt: str,
                                                      words: str) -> None:
    """Several frames: never the first one silently, for photos, label maps and uploads alike; one frame is fine."""
    frames = [Image.fromarray(np.roll(astronaut_small, 8 * k, axis=1)) for k in range(3)]
    animated = _save(frames[0], fmt, save_all=True, append_images=frames[1:])
    (tmp_path / "anim.png").write_bytes(animated)  # the extension does not matter: the content does
    for read in (lambda: read_image(tmp_path / "anim.png"), lambda: read_label_image(tmp_path / "anim.png"),
                 lambda: decode_image(animated)):
        with pytest.raises(SampleError) as caught:
            read()
        assert caught.value.reason == "animated image"
        assert caught.value.detail.startswith(words) and "save the frame you want" in caught.value.detail
    still = _save(frames[0], fmt, save_all=True, append_images=[])
    assert decode_image(still).shape == (64, 64, 3)


def test_a_jpeg_with_an_mpf_preview_is_a_photo(astronaut_small: np.ndarray) -> None:
    """Cameras store a large preview as a second MPF picture (Pillow: MPO): its first picture is the photo."""
    first, preview = Image.fromarray(astronaut_small), Image.fromarray(astronaut_small[::2, ::2])
    data = _save(first, "MPO", save_all=True, append_images=[preview])
    assert Image.open(io.BytesIO(data)).format == "MPO" and Image.open(io.BytesIO(data)).n_frames == 2
    assert decode_image(data).shape == (64, 64, 3)
