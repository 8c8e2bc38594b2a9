"""PNG written by hand (the GPU machine's Python has no Pillow guarantee, and little is needed), and the
pixel conversions of RFB's 32-bit frames."""

from __future__ import annotations

import struct
import zlib


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rgb: bytes, level: int = 6) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (rows top to bottom, 3 bytes a pixel), filter 0 on every row."""
    stride = width * 3
    if len(rgb) != stride * height:
        raise ValueError(f"{len(rgb)} bytes of pixels for {width}x{height} RGB")
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, level))
        + _png_chunk(b"IEND", b"")
    )


def bgrx_to_rgb(pixels: bytes) -> bytes:
    """RFB's 32-bit little-endian true colour (B, G, R, padding) to packed RGB."""
    count = len(pixels) // 4
    rgb = bytearray(count * 3)
    rgb[0::3] = pixels[2::4]
    rgb[1::3] = pixels[1::4]
    rgb[2::3] = pixels[0::4]
    return bytes(rgb)


def count_colours(bgrx: bytes) -> int:
    """Distinct colours among 32-bit BGRX pixels (the padding byte ignored)."""
    words = set(memoryview(bgrx[: len(bgrx) // 4 * 4]).cast("I"))
    return len({w & 0xFFFFFF for w in words})
