"""Reading a multipart/form-data upload as it streams in: its form fields, and its file's bytes handed
on as they arrive.

FastAPI's `File()`/`Form()` parameters read the whole body into temporary files before the endpoint
runs. An upload here is read part by part instead (python-multipart's push parser), and the file's
bytes go straight on to `core.uploads.store_upload`: its size cap and type check act on the first
bytes (a program renamed `passport.pdf` is refused after 32 bytes, not after 10 MiB), and the file is
written once, into the store's staging file. The caller consumes each file part's `chunks` to the end
before asking for the next part.

Refusals, each an AppError (one problem+json answer; the request's transaction rolls back, so a file
already stored is removed again, core/files.py):
- `NotMultipart` (415): the body is not multipart/form-data (or has no boundary);
- `MalformedForm` (422, naming the field where there is one): a broken body, a field over
  `max_field_bytes`, more than `max_fields` fields or `max_files` files, a field that is not UTF-8;
- `UploadInterrupted` (400): the client went away, or the body ended, before the closing boundary.
  Nobody reads that answer; what matters is that the request stops there and leaves nothing.
The body's total size is capped before any of this by core/http.py (`max_upload_bytes`, 413).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from mobility.core.errors import AppError

MULTIPART = "multipart/form-data"
# Form fields around an upload are short (a type, a number, dates): 8 KiB is far above any of them.
MAX_FIELD_BYTES = 8 * 1024
MAX_FIELDS = 32


class NotMultipart(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"

    def __init__(self) -> None:
        super().__init__("Send the upload as multipart/form-data (a form with the file and its fields).")


class MalformedForm(AppError):
    """422 as a validation error does (`errors` names the field), so clients handle it the same way."""

    status, code, title = 422, "validation_error", "Invalid input"

    def __init__(self, detail: str, field: str | None = None) -> None:
        loc = ["body", field] if field else ["body"]
        super().__init__(detail, errors=[{"loc": loc, "msg": detail, "type": "multipart"}])


class UploadInterrupted(AppError):
    status, code, title = 400, "upload_interrupted", "Upload interrupted"

    def __init__(self) -> None:
        super().__init__("The upload ended before the whole body arrived: nothing was stored. Send it again.")


@dataclass
class FormField:
    name: str
    value: str


@dataclass
class FormFile:
    name: str
    filename: str | None  # as the client sent it: a label only (core.uploads.safe_file_name)
    chunks: AsyncIterator[bytes]


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type; NotMultipart (415) for anything else."""
    if not content_type:
        raise NotMultipart()
    media_type, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if media_type.lower() != MULTIPART.encode() or not boundary or len(boundary) > 200:
        raise NotMultipart()
    return boundary


class MultipartReader:
    def __init__(
        self,
        stream: AsyncIterable[bytes],
        boundary: bytes,
        *,
        max_fields: int = MAX_FIELDS,
        max_field_bytes: int = MAX_FIELD_BYTES,
        max_files: int = 1,
    ) -> None:
        self._chunks = stream.__aiter__()
        self._events: deque[tuple[Any, ...]] = deque()
        self._closed = False  # the parser has seen the closing boundary
        self._exhausted = False  # the stream has ended
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._part_done = True
        self.max_fields, self.max_field_bytes, self.max_files = max_fields, max_field_bytes, max_files
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    # --- the parser's callbacks: events queued, handed out by _next ---------------------------------

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        self._events.append(("part", self._headers))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(("data", bytes(data[start:end])))

    def _on_part_end(self) -> None:
        self._events.append(("end",))

    def _on_end(self) -> None:
        self._closed = True

    async def _next(self) -> tuple[Any, ...]:
        while not self._events:
            if self._exhausted:
                return ("eof",)
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._exhausted = True
                if not self._closed:
                    raise UploadInterrupted() from None
                continue
            except ClientDisconnect:
                raise UploadInterrupted() from None
            try:
                self._parser.write(chunk)
            except FormParserError as exc:
                raise MalformedForm(f"The multipart body cannot be read: {exc}.") from None
        return self._events.popleft()

    # --- what the caller reads ------------------------------------------------------------------------

    async def parts(self) -> AsyncIterator[FormField | FormFile]:
        fields = files = 0
        while True:
            event = await self._next()
            if event[0] == "eof":
                return
            if event[0] != "part":
                continue
            name, filename = _disposition(event[1])
            if filename is None:
                fields += 1
                if fields > self.max_fields:
                    raise MalformedForm(f"At most {self.max_fields} form fields.")
                yield FormField(name, await self._field_value(name))
                continue
            files += 1
            if files > self.max_files:
                raise MalformedForm(f"At most {self.max_files} file(s) per upload.", name)
            self._part_done = False
            file = FormFile(name, filename, self._file_chunks())
            yield file
            if not self._part_done:  # the caller did not read it all: skip the rest
                async for _ in file.chunks:
                    pass

    async def _field_value(self, name: str) -> str:
        value = bytearray()
        while (event := await self._next())[0] == "data":
            value += event[1]
            if len(value) > self.max_field_bytes:
                raise MalformedForm(f"{name} is longer than {self.max_field_bytes} bytes.", name)
        if event[0] != "end":
            raise UploadInterrupted()
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedForm(f"{name} is not UTF-8 text.", name) from None

    async def _file_chunks(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next()
            if event[0] == "data":
                if event[1]:
                    yield event[1]
            elif event[0] == "end":
                self._part_done = True
                return
            else:
                raise UploadInterrupted()


def _disposition(headers: dict[bytes, bytes]) -> tuple[str, str | None]:
    """The part's field name, and its file name (None for a plain field) from Content-Disposition."""
    disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
    raw_name = options.get(b"name")
    if disposition.lower() != b"form-data" or raw_name is None:
        raise MalformedForm('Each part needs Content-Disposition: form-data; name="..."')
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedForm("A field name is not UTF-8 text.") from None
    raw_filename = options.get(b"filename")
    # A file name is only a label (core.uploads.safe_file_name makes it safe): undecodable bytes are
    # replaced, never a reason to refuse the file.
    return name, None if raw_filename is None else raw_filename.decode("utf-8", "replace")
