"""Upload checks (core/uploads.py): each bad input gets its own clear answer and leaves no file behind.

The flow tests store through `store_upload` as the documents service will: a real application session
(AppSession) on SQLite and on PostgreSQL, each file storage (local disk, the S3 server), real files made
by tests/support/sample_files.py. The expected answers come from the rules in the module doc: the type
comes from the content (PDF, JPEG, PNG, WebP), the size is capped while streaming (413), empty is 422,
other types 415, images past the pixel cap 422; names keep only a last segment of printable text with
the detected type's extension."""

from __future__ import annotations

import email.message
import io
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy.ext.asyncio import async_sessionmaker

from mobility.core.config import Settings
from mobility.core.errors import PROBLEM_JSON, install_error_handlers
from mobility.core.scope import Scope, apply_to_database
from mobility.core.storage import FileStorage
from mobility.core.uploads import (
    JPEG,
    PDF,
    PNG,
    WEBP,
    EmptyFile,
    FileTooLarge,
    ImageTooLarge,
    UnreadableFile,
    UnsupportedFileType,
    Upload,
    content_disposition,
    identify,
    safe_file_name,
    store_upload,
)
from tests.core.scoped import Db, PerBackend
from tests.support import sample_files
from tests.support.storage import (
    add_reference,
    chunks_of,
    create_references_table,
    new_namespace,
    references,
    stored_names,
)

MiB = 1024 * 1024

# --- the type, from the content -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (sample_files.pdf(), PDF),
        (sample_files.image("JPEG"), JPEG),
        (sample_files.image("PNG"), PNG),
        (sample_files.image("WEBP"), WEBP),
    ],
    ids=["pdf", "jpeg", "png", "webp"],
)
def test_allowed_kinds_are_known_by_their_first_bytes(data: bytes, kind) -> None:
    assert identify(data[:32]) is kind


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (sample_files.windows_program(), "a Windows program"),
        (sample_files.docx(), "a ZIP archive"),
        (sample_files.heic(), "a HEIC/HEIF photo"),
        (sample_files.image("GIF"), "a GIF image"),
        (sample_files.image("TIFF"), "a TIFF image"),
        (b"<html><script>alert(1)</script></html>", None),
        (b"plain text that claims to be a passport", None),
    ],
    ids=["exe", "docx", "heic", "gif", "tiff", "html", "text"],
)
def test_other_kinds_are_refused_with_what_they_are(data: bytes, named: str | None) -> None:
    with pytest.raises(UnsupportedFileType) as refused:
        identify(data[:32])
    assert refused.value.status == 415
    assert "Allowed: PDF, JPEG, PNG, WebP" in refused.value.detail
    if named:
        assert f"The file is {named}" in refused.value.detail
    assert refused.value.extra["allowed"] == ["application/pdf", "image/jpeg", "image/png", "image/webp"]


# --- names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_name", "kind", "safe"),
    [
        ("passport.pdf", PDF, "passport.pdf"),
        ("../../etc/passwd", PDF, "passwd.pdf"),
        ("..\\..\\Windows\\System32\\passport.pdf", PDF, "passport.pdf"),
        ("C:\\Users\\Ana\\Scans\\Passport.PDF", PDF, "Passport.pdf"),
        ("/absolute/path/to/scan.png", PNG, "scan.png"),
        ("pass\x00port\r\n\t.pdf", PDF, "passport.pdf"),
        ("\x1b[31mred\x1b[0m.pdf", PDF, "[31mred[0m.pdf"),
        # U+202E RIGHT-TO-LEFT OVERRIDE: shown as "invoiceexe.pdf", it is a name ending in ".exe".
        ("invoice\u202efdp.exe", PDF, "invoicefdp.exe.pdf"),
        ("\ufeffpass\u200bport\u2066.pdf", PDF, "passport.pdf"),
        ("passport.pdf", JPEG, "passport.pdf.jpg"),  # the name says what the file is
        ("photo.JPEG", JPEG, "photo.jpeg"),
        ("photo", WEBP, "photo.webp"),
        ("", PDF, "document.pdf"),
        (None, PNG, "document.png"),
        ("../", PDF, "document.pdf"),
        ("...", PDF, "document.pdf"),
        (" . hidden .pdf", PDF, "hidden.pdf"),
        ("  passport   scan  .pdf ", PDF, "passport scan.pdf"),
        ('a<b>:"c|d?*.pdf', PDF, "a_b___c_d__.pdf"),
        ("CON.pdf", PDF, "_CON.pdf"),
        ("lpt1", PDF, "_lpt1.pdf"),
        ("Jose\u0301.pdf", PDF, "José.pdf"),  # NFC
        ("Паспорт.pdf", PDF, "Паспорт.pdf"),
        ("護照\u3000掃描.jpg", JPEG, "護照 掃描.jpg"),
    ],
)
def test_a_safe_file_name(client_name: str | None, kind, safe: str) -> None:
    assert safe_file_name(client_name, kind) == safe


def test_a_long_name_is_capped_and_keeps_its_extension() -> None:
    name = safe_file_name("a" * 300 + " .pdf", PDF)
    assert name == "a" * 146 + ".pdf" and len(name) == 150
    name = safe_file_name("Ä" * 500, JPEG, max_length=20)
    assert name == "Ä" * 16 + ".jpg"


def parsed(header: str) -> tuple[str, dict[str, str]]:
    """The disposition and parameters as Python's MIME header parser (RFC 2231 aware) reads them; the
    name it gives is `filename*` where there is one, as RFC 6266 asks of a recipient."""
    message = email.message.EmailMessage()
    message["Content-Disposition"] = header
    field = message["Content-Disposition"]
    return field.content_disposition, dict(field.params)


def parsed_filename(header: str) -> str:
    """The name a recipient that follows RFC 6266 reads: `filename*` where there is one (Python's
    parser, for mail, takes whichever comes first: so each is read on its own)."""
    disposition, _, parameters = header.partition("; ")
    extended = [part for part in parameters.split("; ") if part.startswith("filename*=")]
    return parsed(f"{disposition}; {extended[-1]}" if extended else header)[1]["filename"]


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("passport.pdf", 'attachment; filename="passport.pdf"'),
        (
            "Pasaporte José.pdf",
            "attachment; filename=\"Pasaporte Jose.pdf\"; filename*=UTF-8''Pasaporte%20Jos%C3%A9.pdf",
        ),
        ("護照.pdf", "attachment; filename=\"document.pdf\"; filename*=UTF-8''%E8%AD%B7%E7%85%A7.pdf"),
        ('say "hi".pdf', "attachment; filename=\"say _hi_.pdf\"; filename*=UTF-8''say%20%22hi%22.pdf"),
        # ; and % in the plain name: some clients split parameters at the one, decode the other.
        ("report;100%.pdf", "attachment; filename=\"report_100_.pdf\"; filename*=UTF-8''report%3B100%25.pdf"),
    ],
)
def test_content_disposition(name: str, header: str) -> None:
    assert content_disposition(name) == header
    assert parsed_filename(header) == name


@pytest.mark.parametrize(
    "hostile",
    [
        "x.pdf\r\nSet-Cookie: session=stolen",
        "x\x00.pdf",
        "../../secret.pdf",
        "\u202egnp.exe",
        'x"; filename="evil.exe',
    ],
)
def test_content_disposition_of_a_hostile_stored_name(hostile: str) -> None:
    header = content_disposition(hostile)
    assert header.isprintable() and header.isascii()
    assert header.startswith("attachment; ")
    name = parsed_filename(header)
    assert "/" not in name and "\\" not in name and name.isprintable()
    assert "\u202e" not in name and not name.startswith(".")
    assert parsed(header)[0] == "attachment" and list(parsed(header)[1]) == ["filename"]


# --- the errors are problem+json answers -----------------------------------------------------------


async def test_each_refusal_is_a_problem_answer() -> None:
    app = FastAPI()
    install_error_handlers(app)
    errors = {
        "too-large": FileTooLarge(10 * MiB),
        "type": UnsupportedFileType("a Windows program"),
        "empty": EmptyFile(),
        "unreadable": UnreadableFile("The PDF is incomplete."),
        "pixels": ImageTooLarge(90_000, 90_000, 80_000_000),
    }

    @app.get("/{which}")
    async def refuse(which: str) -> None:
        raise errors[which]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answers = {which: await client.get(f"/{which}") for which in errors}
    expected = {
        "too-large": (413, "content_too_large"),
        "type": (415, "unsupported_file_type"),
        "empty": (422, "empty_file"),
        "unreadable": (422, "unreadable_file"),
        "pixels": (422, "image_too_large"),
    }
    for which, (status, code) in expected.items():
        answer = answers[which]
        assert answer.status_code == status
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert answer.json()["code"] == code and answer.json()["detail"]
    assert answers["too-large"].json()["limit"] == 10 * MiB
    assert answers["pixels"].json()["maxPixels"] == 80_000_000


# --- the flow: checked, stored, or refused leaving nothing ------------------------------------------


@pytest.fixture
async def sessions(db: Db, per_backend: PerBackend, backend: str) -> async_sessionmaker:
    """Application sessions (AppSession, as the owner) on the test database of the backend, which holds
    a table of references to stored files (the documents table's stand-in)."""
    await per_backend.get("file_references", backend, lambda: create_references_table(db.engine))
    return db.sessionmaker


SETTINGS = Settings()  # the defaults: 10 MiB, 80 megapixels


async def upload(
    sessions: async_sessionmaker,
    storage: FileStorage,
    data: bytes,
    client_name: str | None = "passport.pdf",
    *,
    settings: Settings = SETTINGS,
    chunks: AsyncIterator[bytes] | None = None,
    namespace: str | None = None,
) -> Upload:
    """Upload `data` in a transaction that records a reference to it and commits; an error rolls it back.
    In a namespace of its own unless given: the test database's reference table is the run's."""
    namespace = namespace or new_namespace()
    async with sessions() as session, session.begin():
        await apply_to_database(session, Scope(tenant_id=uuid.uuid4(), actor_id=uuid.uuid4(), role="Admin"))
        accepted = await store_upload(
            session,
            storage,
            chunks or chunks_of(data, 8192),
            client_name=client_name,
            references=references,
            settings=settings,
            namespace=namespace,
        )
        await add_reference(session, accepted.stored.key)
    return accepted


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (sample_files.pdf(), PDF),
        (sample_files.image("JPEG", 1200, 1600), JPEG),
        (sample_files.image("PNG", 300, 200), PNG),
        (sample_files.image("WEBP", 640, 480), WEBP),
        (sample_files.multi_picture_jpeg(), JPEG),
    ],
    ids=["pdf", "jpeg", "png", "webp", "jpeg-with-two-pictures"],
)
async def test_an_allowed_file_is_stored(sessions, file_storage: FileStorage, data: bytes, kind) -> None:
    accepted = await upload(sessions, file_storage, data, "../Scans/My passport.pdf")
    assert accepted.kind is kind
    assert accepted.stored.size == len(data)
    assert accepted.file_name == safe_file_name("My passport.pdf", kind)
    assert stored_names(file_storage) == {accepted.stored.key}
    if kind is not PDF:
        assert accepted.image is not None
        assert (accepted.image.width, accepted.image.height) == Image.open(io.BytesIO(data)).size


async def test_the_name_never_chooses_where_a_file_lands(sessions, file_storage: FileStorage) -> None:
    namespace = new_namespace()
    accepted = await upload(
        sessions, file_storage, sample_files.pdf(), "../../../../etc/cron.d/x\x00\n.pdf", namespace=namespace
    )
    sha256 = accepted.stored.sha256
    assert accepted.stored.key == f"{namespace}/sha256/{sha256[:2]}/{sha256}"
    assert accepted.file_name == "x.pdf"
    assert stored_names(file_storage) == {accepted.stored.key}


class Pulled:
    """An upload stream that counts what was read of it."""

    def __init__(self, data: bytes, size: int = 8192) -> None:
        self.data, self.size, self.pulled = data, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in chunks_of(self.data, self.size):
            self.pulled += len(chunk)
            yield chunk


BAD_INPUTS = {
    "renamed-exe": (sample_files.windows_program(), UnsupportedFileType, "Windows program"),
    "zip-bomb": (sample_files.zip_bomb(), UnsupportedFileType, "ZIP archive"),
    "docx": (sample_files.docx(), UnsupportedFileType, "ZIP archive"),
    "heic": (sample_files.heic(), UnsupportedFileType, "Most Compatible"),
    "empty": (b"", EmptyFile, "empty (0 bytes)"),
    "png-bomb": (sample_files.png_bomb(), ImageTooLarge, "at most 80000000 pixels"),
    "jpeg-too-many-pixels": (sample_files.jpeg_claiming(9000, 9000), ImageTooLarge, "9000 x 9000 pixels"),
    "animated-png": (sample_files.animated("PNG"), UnsupportedFileType, "animated PNG"),
    "animated-webp": (sample_files.animated("WEBP"), UnsupportedFileType, "animated WebP"),
    "damaged-jpeg": (b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x13" * 3000, UnreadableFile, "JPEG"),
    "truncated-pdf": (sample_files.pdf()[:-200], UnreadableFile, "end-of-file marker"),
    "too-large": (b"%PDF-1.7\n" + b"\x00" * (11 * MiB) + b"%%EOF\n", FileTooLarge, "10485760 bytes"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_a_bad_upload_is_refused_and_leaves_nothing(
    sessions, file_storage: FileStorage, case: str
) -> None:
    data, error, says = BAD_INPUTS[case]
    stream = Pulled(data)
    with pytest.raises(error) as refused:
        await upload(sessions, file_storage, data, "passport.pdf", chunks=stream.__aiter__())
    assert says in refused.value.detail
    assert stored_names(file_storage) == set()
    if case in ("zip-bomb", "too-large"):
        # Refused as soon as it was known: the rest of the upload was never read.
        assert stream.pulled < len(data)
    if case == "too-large":
        assert stream.pulled <= SETTINGS.max_file_bytes + stream.size


async def test_an_upload_interrupted_half_way_leaves_nothing(sessions, file_storage: FileStorage) -> None:
    class ClientGone(Exception):
        pass

    async def cut_off() -> AsyncIterator[bytes]:
        data = sample_files.pdf()
        yield data[:700]
        raise ClientGone("the connection closed half-way")

    with pytest.raises(ClientGone):
        await upload(sessions, file_storage, b"", chunks=cut_off())
    assert stored_names(file_storage) == set()


async def test_the_pixel_cap_is_a_setting(sessions, file_storage: FileStorage) -> None:
    photo = sample_files.image("JPEG", 400, 300)
    with pytest.raises(ImageTooLarge, match=r"400 x 300 pixels\): at most 100000 pixels"):
        await upload(sessions, file_storage, photo, "photo.jpg", settings=Settings(max_image_pixels=100_000))
    assert stored_names(file_storage) == set()
    accepted = await upload(
        sessions, file_storage, photo, "photo.jpg", settings=Settings(max_image_pixels=120_000)
    )
    assert accepted.kind is JPEG


async def test_the_size_cap_is_a_setting(sessions, file_storage: FileStorage) -> None:
    pdf = sample_files.pdf()
    with pytest.raises(FileTooLarge):
        await upload(sessions, file_storage, pdf, settings=Settings(max_file_bytes=len(pdf) - 1))
    assert stored_names(file_storage) == set()
    accepted = await upload(sessions, file_storage, pdf, settings=Settings(max_file_bytes=len(pdf)))
    assert accepted.stored.size == len(pdf)


def test_the_multipart_cap_follows_the_file_cap() -> None:
    assert Settings(max_file_bytes=20 * MiB).max_upload_bytes == 20 * MiB + 64 * 1024
    assert Settings(max_file_bytes=MiB, max_upload_bytes=3 * MiB).max_upload_bytes == 3 * MiB
    with pytest.raises(ValueError, match="MOBILITY_MAX_UPLOAD_BYTES"):
        Settings(max_file_bytes=20 * MiB, max_upload_bytes=10 * MiB)
