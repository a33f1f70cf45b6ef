"""Candidates' documents: upload (multipart/form-data, streamed), list, read, download, verify, reject,
delete, and the documents expiring soon. The rules are the service's (documents/service.py); who sees
which documents, the row rules' (a document is visible exactly when its candidate is)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from mobility.core import multipart, uploads
from mobility.core.auth import require
from mobility.core.deps import DbSession, FileStore
from mobility.core.openapi import problem_responses
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute
from mobility.documents import service
from mobility.documents.schemas import (
    CandidateDocumentsParams,
    CandidateSummary,
    DocumentRead,
    DocumentRejection,
    DocumentUpload,
    DocumentVerification,
    ExpiringDocumentRead,
    ExpiringParams,
)

router = APIRouter(prefix="/api/v1", tags=["documents"], route_class=ApiRoute)

FILE_FIELD = "file"


def _upload_body() -> dict[str, Any]:
    """The multipart body in the OpenAPI document: the form fields of DocumentUpload and the file."""
    schema = DocumentUpload.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rpartition("/")[2]])
            options = [option for option in node.get("anyOf", []) if option.get("type") != "null"]
            if len(options) == 1:  # a form has no null: a field left out is one not given
                node = {**{k: v for k, v in node.items() if k not in ("anyOf", "default")}, **options[0]}
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    properties = {
        FILE_FIELD: {
            "type": "string",
            "format": "binary",
            "description": "The document: PDF, JPEG, PNG or WebP (judged by its content), at most the "
            "installation's size cap (MOBILITY_MAX_FILE_BYTES, 10 MiB by default).",
        },
        **inline(schema["properties"]),
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                multipart.MULTIPART: {
                    "schema": {
                        "type": "object",
                        "title": "DocumentUploadForm",
                        "required": [FILE_FIELD, *schema.get("required", [])],
                        "properties": properties,
                        "additionalProperties": False,
                    },
                    "encoding": {
                        FILE_FIELD: {"contentType": ", ".join(k.content_type for k in uploads.ALLOWED)}
                    },
                }
            },
        }
    }


def _form_errors(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [
            {**error, "loc": ("body", *error["loc"])}
            for error in exc.errors(include_url=False, include_context=False)
        ]
    )


@router.post(
    "/candidates/{candidate_id}/documents",
    response_model=DocumentRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require("candidate_documents:create")],
    responses=problem_responses(400, 408, 409, 413, 415),
    openapi_extra=_upload_body(),
)
async def upload_document(candidate_id: uuid.UUID, request: Request, session: DbSession, storage: FileStore):
    """Upload a document of a candidate (multipart/form-data: `file`, `type`, and optionally
    `documentNumber`, `issuedOn`, `expiresOn`). The file is judged by its content: 415 for a type not
    allowed, 413 past the size cap, 422 for an empty or damaged file or a bad field. A newer document of
    a type held once (passport, medical, ...) supersedes the current one; a passport's number and expiry
    update the candidate's (409 when another candidate holds that passport). 400 when the body ends
    before it is complete: nothing is stored."""
    boundary = multipart.boundary_of(request.headers.get("content-type"))
    candidate = await service.candidate_for_upload(session, candidate_id)
    fields: dict[str, str] = {}
    upload = None
    async for part in multipart.MultipartReader(request.stream(), boundary).parts():
        if isinstance(part, multipart.FormField):
            if part.name in fields:
                raise multipart.MalformedForm(f"{part.name} is sent twice.", part.name)
            fields[part.name] = part.value
        elif part.name != FILE_FIELD:
            raise multipart.MalformedForm(f"The file goes in the field {FILE_FIELD!r}.", part.name)
        else:
            upload = await service.store_file(
                session, storage, part.chunks, client_name=part.filename, settings=request.app.state.settings
            )
    try:
        form = DocumentUpload.model_validate(fields)
    except ValidationError as exc:
        raise _form_errors(exc) from None
    if upload is None:
        raise multipart.MalformedForm("The file is missing.", FILE_FIELD)
    return await service.add_document(session, candidate, form, upload)


@router.get(
    "/candidates/{candidate_id}/documents",
    response_model=list[DocumentRead],
    dependencies=[require("candidate_documents:read")],
)
async def list_candidate_documents(
    candidate_id: uuid.UUID, session: DbSession, params: Annotated[CandidateDocumentsParams, Query()]
):
    """The candidate's current documents by type, newest first; `includeSuperseded=true` adds the
    versions newer uploads replaced (`current: false`)."""
    return await service.list_candidate_documents(
        session, candidate_id, include_superseded=params.include_superseded
    )


# Before /documents/{document_id}: "expiring" is no document id.
@router.get(
    "/documents/expiring",
    response_model=Page[ExpiringDocumentRead],
    dependencies=[require("candidate_documents:read")],
)
async def list_expiring_documents(session: DbSession, params: Annotated[ExpiringParams, Query()]):
    """Staff: current documents (not rejected) expiring within their type's lead time, soonest first.
    A type's lead time is the longest of its reminder lead days (setting
    `notifications.reminderLeadDays`, `documentExpiry.<type>`, e.g. passport 180, police clearance 60,
    medical 30); `within=90d` looks 90 days ahead for every type instead."""
    rows, next_cursor = await service.expiring_documents(session, params=params)
    items = [
        ExpiringDocumentRead(
            **DocumentRead.model_validate(row.document).model_dump(),
            days_left=row.days_left,
            lead_days=row.lead_days,
            candidate=CandidateSummary.model_validate(row.candidate),
        )
        for row in rows
    ]
    return Page[ExpiringDocumentRead](items=items, next_cursor=next_cursor)


@router.get(
    "/documents/{document_id}",
    response_model=DocumentRead,
    dependencies=[require("candidate_documents:read")],
)
async def get_document(document_id: uuid.UUID, session: DbSession):
    return await service.get_document(session, document_id)


@router.get(
    "/documents/{document_id}/download",
    dependencies=[require("candidate_documents:read")],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file, as an attachment, in its own type (one of these; generic clients read "
            "it as bytes, application/octet-stream)",
            "content": {
                content_type: {"schema": {"type": "string", "format": "binary"}}
                for content_type in (
                    "application/octet-stream",
                    *(kind.content_type for kind in uploads.ALLOWED),
                )
            },
        }
    },
)
async def download_document(document_id: uuid.UUID, session: DbSession, storage: FileStore):
    """The stored file, streamed, as an attachment under its safe name (404 `document_file_missing` if
    the store lost it)."""
    document, download = await service.open_document(session, storage, document_id)
    return StreamingResponse(
        download.chunks,
        media_type=document.content_type,
        headers={
            "Content-Disposition": uploads.content_disposition(document.file_name),
            "Content-Length": str(download.size),
            "Cache-Control": "private, no-store",
            "ETag": f'"{document.sha256}"',
        },
    )


@router.post(
    "/documents/{document_id}/verify",
    response_model=DocumentRead,
    dependencies=[require("candidate_documents:update")],
    responses=problem_responses(409),
)
async def verify_document(
    document_id: uuid.UUID, session: DbSession, body: DocumentVerification | None = None
):
    """Staff: the document is checked and good (who and when are recorded; an optional note). 409 for a
    superseded version or a document verified already."""
    return await service.verify_document(session, document_id, note=body.note if body else None)


@router.post(
    "/documents/{document_id}/reject",
    response_model=DocumentRead,
    dependencies=[require("candidate_documents:update")],
    responses=problem_responses(409),
)
async def reject_document(document_id: uuid.UUID, body: DocumentRejection, session: DbSession):
    """Staff: the document is refused, with the reason (who, when and why are recorded). 409 for a
    superseded version or a document rejected already."""
    return await service.reject_document(session, document_id, reason=body.reason)


@router.delete(
    "/documents/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[require("candidate_documents:delete")],
)
async def delete_document(document_id: uuid.UUID, session: DbSession, storage: FileStore):
    """Staff: delete one version. Its stored file goes once the deletion is committed, unless another
    document has the same content. Deleting the current version makes the one it replaced current."""
    await service.delete_document(session, storage, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
