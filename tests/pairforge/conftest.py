"""Fixtures of the core tests: a PNG writer for header-only files (too large to decode)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height while holding almost no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


@pytest.fixture
def png_header_only() -> Callable[[int, int], bytes]:
    """:func:`header_only_png`: ``png_header_only(width, height)`` -> PNG bytes."""
    return header_only_png
