"""Hand-made image files for the security and fuzz tests: a small digit in any format, and
headers that declare huge images whose pixels are not there."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw

#: Formats Pillow writes and the service accepts.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")


def digit_image(fmt: str = "PNG") -> bytes:
    """A 7 drawn in black on white, 48x48, in ``fmt``."""
    image = Image.new("L", (48, 48), 255)
    ImageDraw.Draw(image).line([(12, 10), (36, 10), (20, 40)], fill=0, width=4)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG header for a ``width`` x ``height`` greyscale image with (almost) no
    pixel data: it can only be refused from the header, never decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + _png_chunk(b"IEND", b"")
    )


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose screen and only frame are ``width`` x ``height`` (at most 65535), with a
    few bytes of image data."""
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + frame + b"\x02\x02D\x01\x00;"


def bmp_declaring(width: int, height: int) -> bytes:
    """A 24-bit BMP header for ``width`` x ``height`` (signed 32-bit) and no pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info
