"""Documents through the API (issue 12, parts 6 and 7), with real files on disk (and once on the S3
server): answers and problem+json, the faults of the issue's "Bad input" (each leaves no file and no
row), an upload cut off half-way, a rollback after the file was stored, a file shared by content, the
audit rows, the attacker's side, deleting a candidate, the expiring list. What test_service.py proves
is not proven again here."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from mobility.authz.permissions import SystemRole
from mobility.core.storage import FileStorage
from mobility.core.uploads import content_disposition
from mobility.documents.models import CandidateDocument
from mobility.placements.models import Placement
from mobility.tenants.models import Tenant
from tests.documents.support import unique_pdf
from tests.support import sample_files
from tests.support.admin_api import World, audit_of, call, make_world, one_audit_row, sign_in
from tests.support.app import api_client, problem
from tests.support.factories import Member, make_agent, make_broker, make_candidate, make_user
from tests.support.rows import RowBuilder
from tests.support.sessions import Db, get_row, system_session
from tests.support.storage import stored_names

MiB = 1024 * 1024


@dataclass
class People:
    world: World
    agent: Member
    broker: Member
    candidate_login: Member
    headers: dict[str, dict[str, str]]
    mine: uuid.UUID  # the agent's and broker's candidate, with the candidate login
    theirs: uuid.UUID  # another agent's candidate

    def auth(self, who: str) -> dict[str, str]:
        return self.headers[who]


async def make_people(url: str) -> People:
    world = await make_world(url)
    async with system_session(url) as session:
        tenant = await session.get(Tenant, world.tenant.id)
        agent = await make_user(session, tenant, SystemRole.agent)
        broker = await make_user(session, tenant, SystemRole.broker)
        candidate_login = await make_user(session, tenant, SystemRole.candidate)
        agent_row = await make_agent(session, tenant, agent.user)
        other_agent = await make_agent(session, tenant)
        broker_row = await make_broker(session, tenant, broker.user)
        mine = await make_candidate(
            session,
            tenant,
            agent_id=agent_row.id,
            broker_id=broker_row.id,
            user_id=candidate_login.id,
            nationality="FJ",
        )
        theirs = await make_candidate(session, tenant, agent_id=other_agent.id, nationality="FJ")
        headers = {
            "admin": world.auth(world.admin),
            "trainer": world.auth(world.trainer),
            "other_admin": world.auth(world.other_admin),
        }
        for name, member in (("agent", agent), ("broker", broker), ("candidate", candidate_login)):
            headers[name] = {"Authorization": f"Bearer {await sign_in(session, member, tenant)}"}
    return People(world, agent, broker, candidate_login, headers, mine.id, theirs.id)


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
async def client(db: Db, files_dir: Path):
    """The API on the test database, its files under the test's own directory."""
    async with api_client(db.url, files_dir=files_dir, max_file_bytes=MiB) as client:
        yield client


def storage_of(client: httpx.AsyncClient) -> FileStorage:
    return client.app.state.storage  # type: ignore[attr-defined]


def form(
    data: bytes, name: str = "passport.pdf", content_type: str = "application/pdf", **fields: str
) -> dict:
    fields.setdefault("type", "medical")
    return {"files": {"file": (name, data, content_type)}, "data": fields}


async def upload(client, people: People, who: str = "admin", candidate=None, data=None, **kwargs):
    return await call(
        client,
        "POST",
        f"/candidates/{candidate or people.mine}/documents",
        people.auth(who),
        **form(data if data is not None else unique_pdf(), **kwargs),
    )


async def document_rows(url: str, *candidates: uuid.UUID) -> list[CandidateDocument]:
    async with system_session(url) as session:
        found = await session.execute(
            select(CandidateDocument).where(CandidateDocument.candidate_id.in_(candidates))
        )
        return list(found.scalars())


# --- the whole round ------------------------------------------------------------------------------


async def test_upload_list_read_download_verify_and_delete(db: Db, client) -> None:
    people = await make_people(db.url)
    data = unique_pdf()
    created = await upload(
        client, people, "agent", data=data, name="Medical report é.pdf", issuedOn="2026-01-05"
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["type"], body["fileName"], body["contentType"], body["sizeBytes"]) == (
        "medical",
        "Medical report é.pdf",
        "application/pdf",
        len(data),
    )
    assert (body["status"], body["current"], body["issuedOn"], body["createdBy"]) == (
        "pending",
        True,
        "2026-01-05",
        str(people.agent.id),
    )
    assert "storageKey" not in body
    document_id = body["id"]
    row = await get_row(db.url, CandidateDocument, document_id)
    [entry] = [
        entry
        for entry in await audit_of(db.url, created)
        if entry.action == "document.upload" and str(entry.entity_id) == document_id
    ]
    assert entry.actor_id == people.agent.id and entry.after["sha256"] == row.sha256

    listed = await call(client, "GET", f"/candidates/{people.mine}/documents", people.auth("broker"))
    assert [item["id"] for item in listed.json()] == [document_id]
    again = await upload(client, people, "admin")  # a newer medical
    history = await call(
        client, "GET", f"/candidates/{people.mine}/documents?includeSuperseded=true", people.auth("candidate")
    )
    assert {(item["id"], item["current"]) for item in history.json()} == {
        (document_id, False),
        (again.json()["id"], True),
    }

    downloaded = await call(client, "GET", f"/documents/{document_id}/download", people.auth("candidate"))
    assert downloaded.status_code == 200 and downloaded.content == data
    assert downloaded.headers["content-type"] == "application/pdf"
    assert downloaded.headers["content-disposition"] == content_disposition("Medical report é.pdf")
    assert downloaded.headers["content-disposition"].startswith('attachment; filename="Medical report e.pdf"')

    current = again.json()["id"]
    verified = await call(
        client, "POST", f"/documents/{current}/verify", people.world.auth(people.world.admin)
    )
    assert verified.status_code == 200 and verified.json()["status"] == "verified"
    assert verified.json()["verifiedBy"] == str(people.world.admin.id)
    await one_audit_row(
        db.url,
        verified,
        action="document.verify",
        entity_type="candidate_documents",
        entity_id=current,
        actor=people.world.admin,
        tenant=people.world.tenant,
        before={
            "status": "pending",
            "verifiedBy": None,
            "verifiedAt": None,
            "reviewedBy": None,
            "reviewedAt": None,
        },
        after={
            "status": "verified",
            "verifiedBy": str(people.world.admin.id),
            "verifiedAt": verified.json()["verifiedAt"].replace("Z", "+00:00"),
            "reviewedBy": str(people.world.admin.id),
            "reviewedAt": verified.json()["reviewedAt"].replace("Z", "+00:00"),
        },
    )
    problem(
        await call(client, "POST", f"/documents/{current}/verify", people.auth("admin")),
        409,
        "already_reviewed",
    )
    problem(
        await call(
            client, "POST", f"/documents/{document_id}/reject", people.auth("admin"), json={"reason": "x"}
        ),
        409,
        "document_superseded",
    )
    no_reason = await call(client, "POST", f"/documents/{current}/reject", people.auth("admin"), json={})
    assert problem(no_reason, 422)["errors"][0]["loc"] == ["body", "reason"]

    deleted = await call(client, "DELETE", f"/documents/{current}", people.auth("admin"))
    assert deleted.status_code == 204
    assert await get_row(db.url, CandidateDocument, current) is None
    # The version it superseded is current again; only its file is left.
    assert (await get_row(db.url, CandidateDocument, document_id)).current
    assert stored_names(storage_of(client)) == {row.storage_key}


# --- bad input: each answered, nothing left ----------------------------------------------------------

BAD_FILES = {
    # (data, client's name, client's content type) -> (status, code)
    "exe renamed passport.pdf": (
        sample_files.windows_program(),
        "passport.pdf",
        "application/pdf",
        415,
        "unsupported_file_type",
    ),
    "zip bomb": (sample_files.zip_bomb(), "passport.pdf", "application/pdf", 415, "unsupported_file_type"),
    "0-byte file": (b"", "passport.pdf", "application/pdf", 422, "empty_file"),
    "image bomb": (sample_files.png_bomb(), "photo.png", "image/png", 422, "image_too_large"),
    "cut-off pdf": (sample_files.pdf()[:-300], "scan.pdf", "application/pdf", 422, "unreadable_file"),
    # Past the file cap (1 MiB here) but within the body's (the cap and the form around it): the
    # upload's own check, as the file streams in; past the body's cap: refused before it is read.
    "over the file cap": (
        b"%PDF-1.7\n" + b"\x00" * MiB + b"\n%%EOF\n",
        "big.pdf",
        "application/pdf",
        413,
        "content_too_large",
    ),
    "over the body cap": (
        b"%PDF-1.7\n" + b"\x00" * (2 * MiB) + b"\n%%EOF\n",
        "big.pdf",
        "application/pdf",
        413,
        "content_too_large",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_each_bad_file_is_refused_and_leaves_no_file_and_no_row(db: Db, client, case: str) -> None:
    people = await make_people(db.url)
    data, name, content_type, status, code = BAD_FILES[case]
    response = await upload(client, people, data=data, name=name, content_type=content_type, type="passport")
    problem(response, status, code)
    assert stored_names(storage_of(client)) == set()
    assert await document_rows(db.url, people.mine) == []


BAD_FORMS = {
    "no type": ({"type": ""}, ["body", "type"]),
    "an unknown type": ({"type": "diploma"}, ["body", "type"]),
    "a date that is no date": ({"expiresOn": "31/12/2030"}, ["body", "expiresOn"]),
    "expiry before issue": ({"issuedOn": "2026-01-01", "expiresOn": "2025-01-01"}, ["body"]),
    "an unknown field": ({"status": "verified"}, ["body", "status"]),
    "a passport number that is none": (
        {"type": "passport", "documentNumber": "N/A"},
        ["body", "documentNumber"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FORMS))
async def test_bad_form_fields_are_422_naming_them_and_leave_nothing(db: Db, client, case: str) -> None:
    people = await make_people(db.url)
    fields, loc = BAD_FORMS[case]
    response = await upload(client, people, **fields)
    details = problem(response, 422)
    # Each field refused is named: in `errors` (the form's shape), or as `field` (a rule of the service).
    named = [error["loc"] for error in details.get("errors", [])]
    if "field" in details:
        named.append(["body", details["field"]])
    assert any(where[: len(loc)] == loc for where in named), details
    assert stored_names(storage_of(client)) == set()
    assert await document_rows(db.url, people.mine) == []


async def test_other_bodies_than_multipart_and_no_file(db: Db, client) -> None:
    people = await make_people(db.url)
    path = f"/candidates/{people.mine}/documents"
    problem(
        await call(client, "POST", path, people.auth("admin"), json={"type": "medical"}),
        415,
        "unsupported_media_type",
    )
    no_file = await call(client, "POST", path, people.auth("admin"), files={"type": (None, "medical")})
    assert problem(no_file, 422)["errors"][0]["loc"] == ["body", "file"]
    two = await call(
        client,
        "POST",
        path,
        people.auth("admin"),
        files=[
            ("file", ("a.pdf", unique_pdf(), "application/pdf")),
            ("file", ("b.pdf", unique_pdf(), "application/pdf")),
        ],
        data={"type": "medical"},
    )
    problem(two, 422)
    assert stored_names(storage_of(client)) == set()
    assert await document_rows(db.url, people.mine) == []


async def test_a_hostile_file_name_is_only_a_label(db: Db, client) -> None:
    people = await make_people(db.url)
    # As clients send it: httpx (like browsers, WHATWG HTML) percent-encodes the line breaks and tab in
    # a file name; the escape character and the right-to-left override travel as they are.
    response = await upload(client, people, name="../../../etc/pass\x1b\r\n\twd\u202egnp.exe.pdf")
    assert response.status_code == 201, response.text
    document = response.json()
    # The last path segment, without control or bidi characters, ending with the detected type's extension.
    assert document["fileName"] == "pass%0D%0A%09wdgnp.exe.pdf"
    row = await get_row(db.url, CandidateDocument, document["id"])
    assert stored_names(storage_of(client)) == {row.storage_key} and ".." not in row.storage_key
    header = (
        await call(client, "GET", f"/documents/{document['id']}/download", people.auth("admin"))
    ).headers["content-disposition"]
    assert header.isascii() and header.isprintable() and "/" not in header

    # Raw line breaks inside a part's header break the body itself: refused, nothing left.
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="type"\r\n\r\nmedical\r\n'
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="../x\r\n\t.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + unique_pdf() + b"\r\n--b0undary--\r\n"
    )
    broken = await call(
        client,
        "POST",
        f"/candidates/{people.mine}/documents",
        {**people.auth("admin"), "Content-Type": "multipart/form-data; boundary=b0undary"},
        content=body,
    )
    problem(broken, 422)
    assert stored_names(storage_of(client)) == {row.storage_key}
    assert [r.id for r in await document_rows(db.url, people.mine)] == [row.id]


@pytest.mark.parametrize("ending", ["client gone", "body cut short"])
async def test_an_upload_interrupted_half_way_leaves_no_file_and_no_row(db: Db, client, ending: str) -> None:
    """The client goes away in the middle of the file (the app reads a disconnect where the rest of the
    body should be), or the body ends before the form's closing boundary."""
    people = await make_people(db.url)
    request = client.build_request(
        "POST",
        f"/api/v1/candidates/{people.mine}/documents",
        headers=people.auth("admin"),
        **form(sample_files.image("PNG", 400, 300), name="photo.png", content_type="image/png"),
    )
    body = request.read()
    half = body[: len(body) // 2]
    if ending == "client gone":
        received = [{"type": "http.request", "body": half, "more_body": True}, {"type": "http.disconnect"}]
    else:
        received = [{"type": "http.request", "body": half, "more_body": False}]
    sent = []

    async def receive():
        return received.pop(0) if received else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": request.url.path,
        "raw_path": request.url.raw_path,
        "query_string": b"",
        "root_path": "",
        # A body cut short says so in its length: complete as HTTP, incomplete as a form.
        "headers": [
            (
                name.lower(),
                str(len(half)).encode()
                if name.lower() == b"content-length" and ending != "client gone"
                else value,
            )
            for name, value in request.headers.raw
        ],
        "client": ("10.9.9.9", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    await client.app(scope, receive, send)  # type: ignore[attr-defined]
    start = next(message for message in sent if message["type"] == "http.response.start")
    assert start["status"] == 400
    answer = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert answer["code"] == "upload_interrupted"
    assert stored_names(storage_of(client)) == set()
    assert await document_rows(db.url, people.mine) == []


async def test_a_rollback_after_the_file_was_stored_leaves_no_orphan_file(db: Db, client) -> None:
    """The file is in the store before the passport's number meets another candidate's: the 409 rolls
    the request back, and the file with it."""
    people = await make_people(db.url)
    first = await upload(client, people, candidate=people.theirs, type="passport", documentNumber="FB777001")
    assert first.status_code == 201
    kept = stored_names(storage_of(client))
    clash = await upload(client, people, type="passport", documentNumber="fb 777001")
    details = problem(clash, 409, "duplicate_candidate")
    assert details["existingId"] == str(people.theirs)
    assert stored_names(storage_of(client)) == kept
    assert await document_rows(db.url, people.mine) == []


async def test_a_file_shared_by_content_survives_deleting_one_referrer(db: Db, client) -> None:
    people = await make_people(db.url)
    data = unique_pdf()
    one = (await upload(client, people, data=data, type="other")).json()
    two = (await upload(client, people, candidate=people.theirs, data=data, type="other")).json()
    assert one["sha256"] == two["sha256"]
    [key] = stored_names(storage_of(client))
    assert (await call(client, "DELETE", f"/documents/{one['id']}", people.auth("admin"))).status_code == 204
    assert stored_names(storage_of(client)) == {key}
    downloaded = await call(client, "GET", f"/documents/{two['id']}/download", people.auth("admin"))
    assert downloaded.content == data
    assert (await call(client, "DELETE", f"/documents/{two['id']}", people.auth("admin"))).status_code == 204
    assert stored_names(storage_of(client)) == set()


async def test_on_the_s3_store_upload_download_and_delete(db: Db, s3_server, tmp_path: Path) -> None:
    prefix = f"api-{uuid.uuid4().hex[:8]}"
    settings = {
        "file_storage": "s3",
        "s3_bucket": s3_server.bucket,
        "s3_endpoint_url": s3_server.endpoint_url,
        "s3_prefix": prefix,
        "s3_addressing_style": "path",
        "s3_access_key_id": s3_server.access_key_id,
        "s3_secret_access_key": s3_server.secret_access_key,
        "data_dir": tmp_path,
        "files_dir": tmp_path / "unused",
    }
    async with api_client(db.url, **settings) as s3_client:
        people = await make_people(db.url)
        store = storage_of(s3_client)
        data = sample_files.image("JPEG", 320, 240)
        created = await upload(
            s3_client, people, data=data, name="photo.jpeg", content_type="image/jpeg", type="photo"
        )
        assert created.status_code == 201, created.text
        document = created.json()
        assert stored_names(store) == {(await get_row(db.url, CandidateDocument, document["id"])).storage_key}
        downloaded = await call(
            s3_client, "GET", f"/documents/{document['id']}/download", people.auth("agent")
        )
        assert downloaded.content == data and downloaded.headers["content-type"] == "image/jpeg"
        assert (
            await call(s3_client, "DELETE", f"/documents/{document['id']}", people.auth("admin"))
        ).status_code == 204
        assert stored_names(store) == set()


# --- the attacker's side ---------------------------------------------------------------------------


async def test_another_tenants_or_partners_ids_are_not_found_and_partners_do_not_review(
    db: Db, client
) -> None:
    people = await make_people(db.url)
    document = (await upload(client, people, "agent")).json()["id"]
    theirs = (await upload(client, people, candidate=people.theirs)).json()["id"]
    for who, candidate, doc in (("other_admin", people.mine, document), ("agent", people.theirs, theirs)):
        problem(await upload(client, people, who, candidate=candidate), 404, "not_found")
        problem(
            await call(client, "GET", f"/candidates/{candidate}/documents", people.auth(who)),
            404,
            "not_found",
        )
        for method, path in (("GET", ""), ("GET", "/download")):
            problem(await call(client, method, f"/documents/{doc}{path}", people.auth(who)), 404, "not_found")
    problem(
        await call(client, "DELETE", f"/documents/{document}", people.auth("other_admin")), 404, "not_found"
    )
    for who in ("agent", "broker", "candidate"):
        problem(
            await call(client, "POST", f"/documents/{document}/verify", people.auth(who)), 403, "forbidden"
        )
        problem(await call(client, "DELETE", f"/documents/{document}", people.auth(who)), 403, "forbidden")
        problem(await call(client, "GET", "/documents/expiring", people.auth(who)), 403, "forbidden")
    problem(await call(client, "GET", f"/documents/{document}", people.auth("trainer")), 403, "forbidden")
    # The broker and the candidate themself upload too.
    for who in ("broker", "candidate"):
        assert (await upload(client, people, who, type="cv")).status_code == 201
    assert stored_names(storage_of(client)) >= {
        (await get_row(db.url, CandidateDocument, document)).storage_key
    }


# --- deleting a candidate, the expiring list ----------------------------------------------------------


async def test_deleting_a_candidate(db: Db, client) -> None:
    people = await make_people(db.url)
    await upload(client, people)
    problem(
        await call(client, "DELETE", f"/candidates/{people.mine}", people.auth("agent")), 403, "forbidden"
    )
    async with system_session(db.url) as session:
        await RowBuilder(session, await session.get(Tenant, people.world.tenant.id)).build(
            Placement, candidate_id=people.theirs
        )
    await upload(client, people, candidate=people.theirs)
    refused = await call(client, "DELETE", f"/candidates/{people.theirs}", people.auth("admin"))
    assert problem(refused, 409, "candidate_in_use")["references"] == {"placements": 1}
    deleted = await call(client, "DELETE", f"/candidates/{people.mine}", people.auth("admin"))
    assert deleted.status_code == 204
    problem(await call(client, "GET", f"/candidates/{people.mine}", people.auth("admin")), 404)
    assert await document_rows(db.url, people.mine) == []
    assert stored_names(storage_of(client)) == {
        row.storage_key for row in await document_rows(db.url, people.theirs)
    }


async def test_the_expiring_list(db: Db, client) -> None:
    people = await make_people(db.url)
    soon = (date.today() + timedelta(days=20)).isoformat()
    later = (date.today() + timedelta(days=100)).isoformat()
    medical = (await upload(client, people, type="medical", expiresOn=soon)).json()["id"]
    passport = (
        await upload(client, people, type="passport", documentNumber="FB991122", expiresOn=later)
    ).json()["id"]
    found = await call(client, "GET", "/documents/expiring?limit=100", people.auth("admin"))
    items = {item["id"]: item for item in found.json()["items"]}
    assert {medical, passport} <= set(items)
    assert (items[passport]["leadDays"], items[passport]["daysLeft"]) == (180, 100)
    assert items[medical]["candidate"]["id"] == str(people.mine)
    within = await call(client, "GET", "/documents/expiring?within=90d&limit=100", people.auth("admin"))
    assert medical in {item["id"] for item in within.json()["items"]}
    assert passport not in {item["id"] for item in within.json()["items"]}
    for bad in ("90", "-1d", "99999d", "4000d"):
        problem(await call(client, "GET", f"/documents/expiring?within={bad}", people.auth("admin")), 422)
