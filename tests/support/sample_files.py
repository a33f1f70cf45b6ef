"""Real files of each kind an upload may be, made here (Pillow writes the images and the PDF; the
archives are real ZIP files; the bombs are real: a small file whose header promises billions of
pixels, or whose content inflates a thousandfold)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from functools import cache

from PIL import Image


def image(kind: str, width: int = 64, height: int = 48, **options) -> bytes:
    buffer = io.BytesIO()
    picture = Image.new("RGB", (width, height), (200, 120, 40))
    picture.save(buffer, kind, **options)
    return buffer.getvalue()


def pdf() -> bytes:
    """A one-page PDF as a scanner's software writes it (an image on a page)."""
    return image("PDF")


def windows_program() -> bytes:
    """The start of a Windows executable: the MZ header, the DOS stub, a PE header."""
    dos_header = b"MZ" + b"\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 44
    dos_header += struct.pack("<I", 0x80)
    stub = b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21This program cannot be run in DOS mode.\r\r\n$"
    body = dos_header + stub
    body += b"\x00" * (0x80 - len(body)) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 2000
    return body


@cache
def zip_bomb(inflated_bytes: int = 200 * 1024 * 1024) -> bytes:
    """A ZIP archive of ~200 KiB holding one file of 200 MiB of zeros."""
    buffer = io.BytesIO()
    block = b"\x00" * (1024 * 1024)
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("passport.pdf", "w", force_zip64=True) as member,
    ):
        for _ in range(inflated_bytes // len(block)):
            member.write(block)
    return buffer.getvalue()


def docx() -> bytes:
    """The shape of a Word document: a ZIP archive with [Content_Types].xml and word/document.xml."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", '<?xml version="1.0"?><w:document/>')
    return buffer.getvalue()


def heic() -> bytes:
    """The start of an iPhone photo: an ISO BMFF `ftyp` box of brand heic."""
    return struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic" + b"\x00" * 500


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@cache
def png_bomb(side: int = 30_000) -> bytes:
    """A real decompression bomb: a valid 1-bit PNG of side x side black pixels (900 megapixels at the
    default), a couple of hundred KiB that decode to ~3.6 GB of RGBA."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims width x height pixels."""
    data = bytearray(image("JPEG", 16, 16))
    at = data.index(b"\xff\xc0")
    # SOF0: marker, length (2), precision (1), height (2), width (2)
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def animated(kind: str) -> bytes:
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(buffer, kind, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def multi_picture_jpeg() -> bytes:
    """A JPEG with a second picture in it (MPO, as some phones write: a preview, a depth map)."""
    buffer = io.BytesIO()
    pictures = [Image.new("RGB", (40, 30), colour) for colour in ((10, 20, 30), (200, 200, 200))]
    pictures[0].save(buffer, "MPO", save_all=True, append_images=pictures[1:])
    return buffer.getvalue()
