"""Robust image reading and fast encoding, used by every command.

Every reader returns an RGB ``uint8`` array ``(H, W, 3)`` or raises
:class:`~pairforge.errors.SampleError` with a short reason; nothing here ends a
run. Only still images are read: an animated GIF/PNG/WebP or a multi-page TIFF is an
"animated image" reject (its first frame is never used silently). Image headers are checked against a pixel limit *before* pixels are
allocated, so a 100000x100000 PNG header cannot take the machine down.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pairforge.errors import SampleError
from pairforge.files import file_type, write_atomic
from pairforge.storage import is_url
from pairforge.storage import read_bytes as read_url

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})
DEFAULT_MAX_PIXELS = 64_000_000

# We enforce our own limit before decoding; Pillow's bomb check would raise first
# with a less useful message, or only warn.
Image.MAX_IMAGE_PIXELS = None
cv2.setNumThreads(1)


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True when the file extension (any case) is one pairforge reads."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read any supported image file as RGB uint8.

    Args:
        path: the file.
        max_pixels: refuse images whose header claims more pixels than this.

    Returns:
        ``(H, W, 3)`` uint8 array, EXIF orientation applied.

    Raises:
        SampleError: zero-byte, truncated, non-image, animated, too large or unreadable files.
    """
    return decode_image(_read_bytes(path), max_pixels=max_pixels)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes as RGB uint8 (see :func:`read_image`)."""
    return to_rgb_uint8(ImageOps.exif_transpose(_load(data, max_pixels)))


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    """A regular file's bytes, or a SampleError saying why they cannot be read (see :func:`_open_regular`).

    A URL is read by the process that calls this (a Dask worker reads its own inputs): a
    missing object is a reject, a storage failure (server, credentials) a
    :class:`pairforge.storage.StorageError` that stops the run.
    """
    if is_url(path):
        try:
            return read_url(os.fspath(path))
        except FileNotFoundError:
            raise SampleError("file not found", "the object was deleted after the listing") from None
    with os.fdopen(_open_regular(path), "rb") as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise SampleError("unreadable", str(exc.strerror or exc)) from None


def _open_regular(path: str | os.PathLike[str]) -> int:
    """A file descriptor of ``path`` opened for reading, once it is known to be a regular file.

    The file is opened without blocking and checked to be a regular file before anything
    is read, so a FIFO, socket or device among the inputs is a reject ("not a regular
    file"), never a read that waits forever.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        detail = "a dangling symbolic link" if path.is_symlink() else "it was moved or deleted after the listing"
        raise SampleError("file not found", detail) from None
    except PermissionError:
        raise SampleError("unreadable", "permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SampleError("unreadable", "a symbolic link loop") from None
        if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket or a device without a reader
            raise SampleError("not a regular file", "a socket or device") from None
        raise SampleError("unreadable", str(exc.strerror or exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise SampleError("is a directory")
        raise SampleError("not a regular file", file_type(mode))
    return fd


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` from an image file's header, without decoding its pixels.

    Raises:
        SampleError: as :func:`read_image` (a FIFO or device is "not a regular file").
    """
    if is_url(path):
        from pairforge.storage import Location

        try:
            opened: Any = Location(os.fspath(path)).open()
        except FileNotFoundError:
            raise SampleError("file not found", "the object was deleted after the listing") from None
    else:
        opened = os.fdopen(_open_regular(path), "rb")
    with opened as handle:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(handle) as image:
                    return image.size
        except UnidentifiedImageError:
            raise SampleError("not an image", "unrecognised format") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise SampleError("corrupt image", str(exc) or type(exc).__name__) from None


def _load(data: bytes, max_pixels: int) -> Image.Image:
    """Open image bytes, check the header's size against ``max_pixels``, then decode the pixels."""
    if not data:
        raise SampleError("empty file", "0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0:
                raise SampleError("invalid image size", f"{width}x{height}")
            if width * height > max_pixels:
                raise SampleError(
                    "too large",
                    f"{width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,} "
                    "(raise --max-pixels)",
                )
            _refuse_animation(image)
            image.load()
            return image
    except SampleError:
        raise
    except UnidentifiedImageError:
        raise SampleError("not an image", "unrecognised format") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        message = str(exc) or type(exc).__name__
        if "truncated" in message or isinstance(exc, EOFError):
            raise SampleError("truncated image", message) from None
        raise SampleError("corrupt image", message) from None
    except Image.DecompressionBombError as exc:  # pragma: no cover - limit disabled above
        raise SampleError("too large", str(exc)) from None


def _refuse_animation(image: Image.Image) -> None:
    """Refuse an image of several frames (animated GIF/PNG/WebP, multi-page TIFF), before decoding.

    Decoding one would silently use its first frame, which is rarely what was meant; the
    user picks the frame. A JPEG's extra MPF pictures (a camera's large preview, a stereo
    pair's second view; Pillow's ``MPO``) are not frames: its first picture is the photo.
    """
    if not getattr(image, "is_animated", False) or image.format == "MPO":
        return
    frames = getattr(image, "n_frames", 2)
    what = f"a TIFF with {frames} pages" if image.format == "TIFF" else f"an animated {image.format} with {frames} frames"
    raise SampleError("animated image", f"{what}: only still images are read; save the frame you want as its own file")


def read_label_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a label map without changing its values.

    Returns:
        ``(H, W)`` uint8/uint16 class ids for single-channel maps (8- or 16-bit
        grayscale, or palette PNGs, whose indices are the ids), or ``(H, W, 3)``
        uint8 RGB for colour-coded maps (alpha dropped).

    Raises:
        SampleError: as :func:`read_image`.
    """
    image = _load(_read_bytes(path), max_pixels)
    mode = image.mode
    if mode in ("L", "P"):
        return np.asarray(image, dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise SampleError("bad label map", "label ids outside 0..65535")
        return values.astype(np.uint16)
    if mode in ("RGB", "RGBA", "LA", "1", "CMYK", "YCbCr"):
        if mode == "LA":
            return np.asarray(image.convert("L"), dtype=np.uint8)
        if mode == "1":
            return np.asarray(image.convert("L"), dtype=np.uint8) // 255
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    raise SampleError("bad label map", f"unsupported image mode {mode}")


def to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """Convert a loaded Pillow image of any mode to RGB uint8.

    Alpha is composited on white; 16- and 32-bit integer images are scaled
    (not clipped) to 0..255; 1-bit, palette and CMYK images are expanded.
    """
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image, dtype=np.float64)
        full_scale = 65535.0 if (mode.startswith("I;16") or values.max(initial=0) > 255) else 255.0
        gray = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def encode_png(image: np.ndarray, compression: int = 1) -> bytes:
    """Encode an RGB ``(H, W, 3)`` or single-channel ``(H, W)`` uint8 array as PNG."""
    ok, buffer = cv2.imencode(".png", _to_cv(image), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arrays
        raise ValueError(f"PNG encoding failed for an array of shape {image.shape}")
    return buffer.tobytes()


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """Encode an RGB or single-channel uint8 array as baseline JPEG (4:2:0)."""
    ok, buffer = cv2.imencode(".jpg", _to_cv(image), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise ValueError(f"JPEG encoding failed for an array of shape {image.shape}")
    return buffer.tobytes()


def encode_image(image: np.ndarray, fmt: str, quality: int = 95) -> bytes:
    """Encode as ``png`` or ``jpg``."""
    if fmt == "png":
        return encode_png(image)
    if fmt in ("jpg", "jpeg"):
        return encode_jpeg(image, quality)
    raise ValueError(f"unknown image format {fmt!r}: expected png or jpg")


def write_image(path: str | os.PathLike[str], image: np.ndarray, fmt: str = "png", quality: int = 95) -> int:
    """Write an image atomically (temporary name, then rename). Returns the byte count."""
    return write_atomic(path, encode_image(image, fmt, quality))


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """One int32 per colour, ``R << 16 | G << 8 | B``: ``(..., 3)`` -> ``(...)`` (compare, sort, unique colours)."""
    rgb = np.asarray(rgb).astype(np.int32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """The inverse of :func:`pack_rgb`: ``(...)`` -> ``(..., 3)`` int32."""
    packed = np.asarray(packed)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.int32)


def colored_fraction(image: np.ndarray, tolerance: int = 0) -> float:
    """Fraction of pixels whose R, G and B differ by more than ``tolerance`` (0.0: the image is gray).

    The one grayscale test: ``make-gray`` rejects photos with almost no colour, ``make-labels``
    reads a 3-channel image with equal channels as class ids.

    Shape:
        ``(H, W, 3)`` uint8 RGB, or ``(H, W)`` / ``(H, W, 1)`` (always 0.0) -> a float in ``[0, 1]``.
    """
    if image.ndim == 2 or image.shape[2] == 1:
        return 0.0
    spread = image.max(axis=2) - image.min(axis=2)  # max >= min: no wrap-around, any integer dtype
    return float(np.count_nonzero(spread > tolerance)) / max(1, spread.size)


def _to_cv(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    raise ValueError(f"expected (H, W) or (H, W, 3) pixels, got shape {image.shape}")
