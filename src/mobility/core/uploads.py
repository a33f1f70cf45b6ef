"""Checking uploaded files: what they are (by content), how big, and the name they are shown under.

An upload is judged by its bytes, never by the name or Content-Type the client sent (a `.exe` renamed
`passport.pdf` is a program; a passport scanned as JPEG and named `.pdf` is a JPEG):

- Size: `UploadCheck.stream` counts the bytes as they pass and stops at `max_bytes` (413), so a
  chunked or lying upload is cut off there, never read to its end. An empty file is refused (422).
- Type, from the first bytes (415 otherwise): the allowed kinds are `ALLOWED`, the ones a document of
  an overseas-employment file comes as:
  - PDF: scans, forms, certificates, contracts;
  - JPEG and PNG: photos and screenshots of documents, passport photos;
  - WebP: what many Android phones and messaging apps save photos as.
  Refused, with the reason in the answer: archives (ZIP, and with it .docx/.xlsx/.odt, which are ZIP
  files: a zip bomb needs a reader that unpacks, and nothing here unpacks), programs, Office documents,
  GIF/TIFF, and HEIC/HEIF, the iPhone's own photo format: browsers other than Safari cannot show it to the
  staff who check documents, reading it needs a native decoder (libheif) of its own in the API, and an
  iPhone turns a photo into JPEG when a web page uploads it (or with Settings > Camera > Formats >
  Most Compatible), so the answer says that.
- Then the whole file, once staged and before it becomes visible (`UploadCheck.inspect`, run by
  core.files.store): an image's header must be read by Pillow as the format its first bytes claim,
  and its pixel dimensions stay under `max_image_pixels` (a decompression bomb: a few KiB that decode
  to gigabytes); animated PNG and WebP images are refused (no document is animated, and a person
  checking one frame would not see the others). Nothing is decoded: only
  headers are read. A PDF must end with its end-of-file marker (a cut-off file cannot be checked by a
  person either).
- The name: `safe_file_name` keeps a client's name only as a label (directories, control, format and
  bidi characters gone, length capped, the extension of the detected type), and `content_disposition`
  sends it back as an attachment (RFC 6266, non-ASCII as RFC 5987 `filename*`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from mobility.core import files
from mobility.core.errors import AppError
from mobility.core.storage import FileStorage, StoredFile

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from mobility.core.config import Settings


# --- the answers --------------------------------------------------------------------------------------


class FileTooLarge(AppError):
    # The code and title of core/http.py's answer to a body over its cap.
    status, code, title = 413, "content_too_large", "Content too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is larger than {limit} bytes, the largest allowed.", limit=limit)


class UnsupportedFileType(AppError):
    status, code, title = 415, "unsupported_file_type", "Unsupported file type"

    def __init__(self, what: str | None, hint: str = "") -> None:
        allowed = ", ".join(kind.label for kind in ALLOWED)
        found = f"The file is {what}" if what else "The file's content is not of an allowed type"
        super().__init__(
            f"{found}. Allowed: {allowed} (judged by the content, not the name){hint}.",
            allowed=[kind.content_type for kind in ALLOWED],
        )


class EmptyFile(AppError):
    status, code, title = 422, "empty_file", "Empty file"

    def __init__(self) -> None:
        super().__init__("The file is empty (0 bytes).")


class UnreadableFile(AppError):
    status, code, title = 422, "unreadable_file", "Damaged or incomplete file"


class ImageTooLarge(AppError):
    status, code, title = 422, "image_too_large", "Image dimensions too large"

    def __init__(self, width: int | None, height: int | None, limit: int) -> None:
        size = f" ({width} x {height} pixels)" if width and height else ""
        super().__init__(
            f"The image is too large{size}: at most {limit} pixels. Scan or export it at a lower resolution.",
            maxPixels=limit,
        )


# --- the allowed kinds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileKind:
    label: str
    content_type: str
    extension: str  # the one a safe name ends with, unless the client's is in `extensions`
    extensions: frozenset[str]
    pillow_format: str | None = None  # images: the Pillow plugin that must read the header


PDF = FileKind("PDF", "application/pdf", ".pdf", frozenset({".pdf"}))
JPEG = FileKind("JPEG", "image/jpeg", ".jpg", frozenset({".jpg", ".jpeg", ".jpe", ".jfif"}), "JPEG")
PNG = FileKind("PNG", "image/png", ".png", frozenset({".png"}), "PNG")
WEBP = FileKind("WebP", "image/webp", ".webp", frozenset({".webp"}), "WEBP")
ALLOWED: tuple[FileKind, ...] = (PDF, JPEG, PNG, WEBP)

# Enough for every signature below (ISO BMFF's brand sits at bytes 8-12).
SNIFF_BYTES = 32


def identify(head: bytes) -> FileKind:
    """The allowed kind whose signature `head` (the file's first bytes) starts with; else
    UnsupportedFileType naming what it looks like."""
    if head.startswith(b"%PDF-"):  # ISO 32000-1, 7.5.2
        return PDF
    if head.startswith(b"\xff\xd8\xff"):  # SOI, then the first marker
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    what, hint = _refused_kind(head)
    raise UnsupportedFileType(what, hint)


_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}
_REFUSED: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (as are .docx, .xlsx and .odt files)"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"PK\x07\x08", "a ZIP archive"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a program"),
    (b"#!", "a script"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document (.doc, .xls)"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
)


def _refused_kind(head: bytes) -> tuple[str | None, str]:
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return (
            "a HEIC/HEIF photo",
            "; on an iPhone, upload it from the browser (it is sent as JPEG) or set Settings > Camera >"
            " Formats > Most Compatible",
        )
    for signature, what in _REFUSED:
        if head.startswith(signature):
            return what, ""
    return None, ""


# --- checking an upload as it streams, then as a whole ----------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int


class UploadCheck:
    """One upload's checks. `stream()` wraps the upload's chunks (size cap, type from the first bytes,
    not empty); `inspect(path)` looks at the complete staged file before it is stored for good.
    `kind` is the detected kind once the first bytes have passed."""

    def __init__(self, *, max_bytes: int, max_image_pixels: int) -> None:
        self.max_bytes = max_bytes
        self.max_image_pixels = max_image_pixels
        self.kind: FileKind | None = None
        self.size = 0
        self.image: ImageFacts | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadCheck:
        return cls(max_bytes=settings.max_file_bytes, max_image_pixels=settings.max_image_pixels)

    async def stream(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        head = bytearray()
        async for chunk in chunks:
            if not chunk:
                continue
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise FileTooLarge(self.max_bytes)
            if self.kind is not None:
                yield chunk
                continue
            head += chunk
            if len(head) >= SNIFF_BYTES:
                self.kind = identify(bytes(head))
                yield bytes(head)
        if self.size == 0:
            raise EmptyFile()
        if self.kind is None:  # shorter than SNIFF_BYTES
            self.kind = identify(bytes(head))
            yield bytes(head)

    def inspect(self, path: Path) -> None:
        """The whole-file checks (blocking: run it in a thread, as core.files.store does)."""
        if self.kind is None:
            raise RuntimeError("inspect() before the upload was streamed through stream()")
        if self.kind is PDF:
            _check_pdf(path)
        elif self.kind.pillow_format:
            self.image = _check_image(path, self.kind, self.max_image_pixels)


def _check_pdf(path: Path) -> None:
    # Readers look for %%EOF in the last 1024 bytes (trailing whitespace or junk is common).
    with open(path, "rb") as file:
        file.seek(max(0, path.stat().st_size - 1024))
        tail = file.read()
    if b"%%EOF" not in tail:
        raise UnreadableFile("The PDF is incomplete (it has no end-of-file marker): upload it again.")


def _check_image(path: Path, kind: FileKind, max_pixels: int) -> ImageFacts:
    # Imported here: Pillow is needed by uploads only, not by every request of the API.
    from PIL import Image, UnidentifiedImageError

    try:
        # formats=[...]: only the plugin of the kind the first bytes claim may read it. open() reads
        # the header and nothing else; Pillow raises DecompressionBombError itself past twice its own
        # limit, before our (lower) one is checked.
        with Image.open(path, formats=[kind.pillow_format]) as image:
            width, height = image.size
            # APNG and animated WebP. Not JPEG: a phone's JPEG may carry more pictures (MPO: previews,
            # depth maps) that are no animation.
            animated = kind is not JPEG and getattr(image, "is_animated", False)
    except Image.DecompressionBombError:
        raise ImageTooLarge(None, None, max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        # SyntaxError: what Pillow's plugins raise for a malformed header. ValueError: its guard against
        # compressed text chunks that inflate past its limits.
        raise UnreadableFile(
            f"The file starts like a {kind.label} image but cannot be read as one: {exc.__class__.__name__}."
        ) from None
    if width <= 0 or height <= 0:
        raise UnreadableFile(f"The {kind.label} image has no pixels.")
    if width * height > max_pixels:
        raise ImageTooLarge(width, height, max_pixels)
    if animated:
        raise UnsupportedFileType(f"an animated {kind.label} image", "; send a still image or a PDF")
    return ImageFacts(width=width, height=height)


# --- the one call a service makes ----------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """An upload checked and stored, with what its row records."""

    stored: StoredFile  # key, sha256, size
    kind: FileKind  # kind.content_type: what the file is, from its content
    file_name: str  # the safe name to show and to download it as
    image: ImageFacts | None  # an image's pixel dimensions


async def store_upload(
    session: AsyncSession,
    storage: FileStorage,
    chunks: AsyncIterable[bytes],
    *,
    client_name: str | None,
    references: files.References,
    settings: Settings,
    namespace: str | None = None,
) -> Upload:
    """Check and store an uploaded file as part of the session's transaction (core/files.py): the size
    cap while it streams in (413), its type from its first bytes (415), not empty (422), the whole-file
    checks before it becomes visible (422), then stored by content. Any refusal, or the stream failing
    half-way, leaves no file behind; a rollback later removes it again."""
    check = UploadCheck.from_settings(settings)
    stored = await files.store(
        session,
        storage,
        check.stream(chunks),
        references=references,
        namespace=namespace,
        verify=check.inspect,
    )
    assert check.kind is not None
    return Upload(
        stored=stored, kind=check.kind, file_name=safe_file_name(client_name, check.kind), image=check.image
    )


# --- names ------------------------------------------------------------------------------------------

MAX_NAME_LENGTH = 150
DEFAULT_STEM = "document"
# Control (Cc: NUL, CR, LF, ...), format (Cf: the bidi overrides and isolates U+202A-202E and
# U+2066-2069, zero-width characters, the BOM, soft hyphens), surrogates, private-use and unassigned
# code points, and line/paragraph separators: none belongs in a name a person reads.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Reserved in Windows names (a download is saved there too); "/" and "\" are cut at before this.
_RESERVED_CHARACTERS = re.compile(r'[<>:"|?*]')
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)


def safe_file_name(client_name: str | None, kind: FileKind, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """The name to store and show for an upload the client called `client_name`: only its last path
    segment (`../../x.pdf` and `C:\\x\\y.pdf` give `x.pdf`, `y.pdf`), no control, format or bidi
    characters, Unicode NFC, spaces collapsed, no leading or trailing dots or spaces, no characters that
    Windows reserves, at most `max_length` characters, ending with an extension of the detected kind:
    the client's if it is one (lowercased), else the kind's added (`passport.pdf` that is a JPEG
    becomes `passport.pdf.jpg`: the name says what the file is, and loses nothing)."""
    name = unicodedata.normalize("NFC", client_name or "")
    name = name.replace("\\", "/").rstrip("/ ").rpartition("/")[2]
    name = "".join(
        " " if unicodedata.category(char) == "Zs" else char
        for char in name
        if unicodedata.category(char) not in _DROPPED_CATEGORIES
    )
    name = _RESERVED_CHARACTERS.sub("_", name)
    name = _tidy(name)
    stem, dot, extension = name.rpartition(".")
    if dot and stem and f".{extension.lower()}" in kind.extensions:
        stem, extension = _tidy(stem), f".{extension.lower()}"
    else:
        stem, extension = name, kind.extension
    if stem.split(".", 1)[0].strip().lower() in _WINDOWS_DEVICES:
        stem = f"_{stem}"
    stem = _tidy(stem[: max(1, max_length - len(extension))]) or DEFAULT_STEM
    return stem + extension


def _tidy(name: str) -> str:
    return " ".join(name.split()).strip(" .")


# RFC 5987 attr-char, less nothing: what may stand unencoded in filename*=UTF-8''...
_ATTR_CHARS = "!#$&+-.^_`|~"
# What may stand in the quoted ASCII filename="...": printable ASCII but the quote and the backslash
# (which would need escaping, and which some clients read as a path separator), the semicolon (which
# naive parsers split parameters at) and the percent sign (which some browsers decode there).
_UNQUOTABLE = re.compile(r'[^\x20-\x7e]|["\\;%]')


def content_disposition(file_name: str, *, disposition: str = "attachment") -> str:
    """A Content-Disposition header value for a stored file (RFC 6266): `attachment` (the browser saves
    it, never shows it in our origin), an ASCII `filename` for old clients, and the exact name as
    `filename*=UTF-8''...` (RFC 5987) when it is not plain ASCII. The name is cleaned again on the way
    out: a header can carry no line break or control character whatever the row holds."""
    if disposition not in ("attachment", "inline"):
        raise ValueError(f"not a disposition: {disposition!r}")
    name = unicodedata.normalize("NFC", file_name)
    name = "".join(char for char in name if unicodedata.category(char) not in _DROPPED_CATEGORIES)
    name = _tidy(name.replace("\\", "/").rpartition("/")[2]) or DEFAULT_STEM
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    # A name in another script has no ASCII left: "document" and the extension stand in for it.
    fallback = (_ascii(stem) or DEFAULT_STEM) + (f".{_ascii(extension)}" if _ascii(extension) else "")
    header = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
    return header


def _ascii(text: str) -> str:
    """`text` in printable ASCII for a quoted header parameter: accents dropped (é -> e), the rest
    (other scripts, quotes, backslashes) replaced or left out."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _tidy(_UNQUOTABLE.sub("_", plain))
