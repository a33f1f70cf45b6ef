"""Candidates' import and export through the API (issue 12, part 8): `POST /candidates/import` (the
report, 422 with it when rows are refused, a dry run, the upload's size and kind) and
`GET /candidates/export.csv|.xlsx` (the list's filters and row rules, streamed, formula injection,
the workbook readable back). What the import's service proves (tests/candidates/test_imports.py) is
not proven again here."""

from __future__ import annotations

import csv
import io
from datetime import date

import openpyxl
from sqlalchemy import select

from mobility.audit.models import ActivityLog
from mobility.authz.permissions import SystemRole
from mobility.candidates.models import Candidate
from tests.support.admin_api import audit_of, call, make_world, sign_in
from tests.support.app import api_client, problem
from tests.support.factories import make_agent, make_user
from tests.support.sample_files import pdf
from tests.support.sessions import system_session

YEAR = date.today().year
HEADER = "firstName,lastName,dateOfBirth,nationality,email,notes\n"


def upload(text: str, name: str = "intake.csv") -> dict:
    return {"files": {"file": (name, text.encode(), "text/csv")}}


async def test_import_reports_and_writes_each_candidate_with_its_audit_entry(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    admin = world.auth(world.admin)
    file = HEADER + "Mere,Tuilagi,1995-03-04,FJ,mere@example.org,\nSione,Tupou,1990-01-02,TO,,\n"
    async with api_client(url) as client:
        dry = await call(client, "POST", "/candidates/import?dryRun=true", admin, **upload(file))
        assert dry.status_code == 200, dry.text
        assert {k: dry.json()[k] for k in ("dryRun", "written", "rows", "valid", "created", "rejected")} == {
            "dryRun": True,
            "written": False,
            "rows": 2,
            "valid": 2,
            "created": 0,
            "rejected": 0,
        }
        assert await audit_of(url, dry) == []

        done = await call(client, "POST", "/candidates/import", admin, **upload(file, "../../etc/intake.csv"))
        assert done.status_code == 200, done.text
        assert (done.json()["format"], done.json()["created"], done.json()["written"]) == ("csv", 2, True)
        entries = await audit_of(url, done)
        assert [(entry.action, entry.actor_id) for entry in entries] == [
            ("candidate.import", world.admin.id)
        ] * 2
        listed = await call(client, "GET", "/candidates", admin)
        assert sorted(item["referenceNumber"] for item in listed.json()["items"]) == [
            f"{world.tenant.code}-{YEAR}-000001",
            f"{world.tenant.code}-{YEAR}-000002",
        ]


async def test_refused_rows_are_a_422_with_the_report_and_nothing_is_written(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    admin = world.auth(world.admin)
    file = HEADER + "Mere,Tuilagi,1995-03-04,FJ,mere@example.org,\nAna,Vake,1995-03-04,ZZ,MERE@example.org,\n"
    async with api_client(url) as client:
        refused = await call(client, "POST", "/candidates/import", admin, **upload(file))
        body = problem(refused, 422, "import_rejected")
        assert body["detail"] == "1 of 2 row(s) refused; nothing was imported (all or nothing)."
        [row] = body["rejectedRows"]
        assert row["line"] == 3
        assert row["reasons"][0].startswith("nationality: 'ZZ' is not an ISO 3166-1 alpha-2 country code")
        assert (body["written"], body["created"]) == (False, 0)
        assert (await call(client, "GET", "/candidates", admin)).json()["items"] == []
        # The same e-mail twice in one file: the second row names the first's line.
        twice = (
            HEADER
            + "Mere,Tuilagi,1995-03-04,FJ,mere@example.org,\nAna,Vake,1995-03-04,TO,MERE@example.org,\n"
        )
        body = problem(await call(client, "POST", "/candidates/import", admin, **upload(twice)), 422)
        assert body["rejectedRows"] == [{"line": 3, "reasons": ["The same e-mail as line 2 of this file."]}]


async def test_an_upload_is_judged_by_its_content_and_capped(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    admin = world.auth(world.admin)
    async with api_client(url, max_file_bytes=2000) as client:
        as_pdf = {"files": {"file": ("intake.csv", pdf(), "text/csv")}}
        problem(
            await call(client, "POST", "/candidates/import", admin, **as_pdf), 415, "unsupported_file_type"
        )
        big = HEADER + "Mere,Tuilagi,1995-03-04,FJ,,\n" * 100
        problem(await call(client, "POST", "/candidates/import", admin, **upload(big)), 413)
        problem(await call(client, "POST", "/candidates/import", admin, **upload("")), 422, "empty_file")
        problem(await call(client, "POST", "/candidates/import", admin, json={}), 415)
        bad_header = "Name,Born\nMere,1995\n"
        body = problem(await call(client, "POST", "/candidates/import", admin, **upload(bad_header)), 422)
        assert body["code"] == "header_mismatch" and body["unknownColumns"] == [
            "'Name' (column A)",
            "'Born' (column B)",
        ]


async def test_a_trainer_may_not_import(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    async with api_client(migrated_database_url) as client:
        file = HEADER + "Mere,Tuilagi,1995-03-04,FJ,,\n"
        refused = await call(client, "POST", "/candidates/import", world.auth(world.trainer), **upload(file))
        problem(refused, 403)


async def _register(client, headers, **values) -> dict:
    person = {"firstName": "Mere", "lastName": "Tuilagi", "dateOfBirth": "1995-03-04", "nationality": "FJ"}
    response = await call(client, "POST", "/candidates", headers, json={**person, **values})
    assert response.status_code == 201, response.text
    return response.json()


def _csv(response) -> list[dict[str, str]]:
    assert response.content.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel reads UTF-8 by
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


async def test_export_csv_follows_the_lists_filters_and_protects_formulas(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    admin = world.auth(world.admin)
    async with api_client(url) as client:
        mere = await _register(
            client, admin, phone="+6799991234", notes='=HYPERLINK("http://evil.example","x")'
        )
        await _register(client, admin, firstName="Sione", lastName="Tupou", nationality="TO", notes="@SUM(1)")
        await call(client, "POST", f"/candidates/{mere['id']}/status", admin, json={"status": "in_training"})

        response = await call(
            client, "GET", "/candidates/export.csv?nationality=FJ&status=in_training", admin
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert (
            response.headers["content-disposition"] == f'attachment; filename="candidates-{date.today()}.csv"'
        )
        [row] = _csv(response)
        assert (row["Reference number"], row["First name"], row["Status"]) == (
            mere["referenceNumber"],
            "Mere",
            "in_training",
        )
        # Cells a spreadsheet would run start with an apostrophe; the others are as stored.
        assert row["Notes"] == '\'=HYPERLINK("http://evil.example","x")'
        assert row["Phone"] == "'+6799991234"
        assert row["Date of birth"] == "1995-03-04"

        everyone = _csv(await call(client, "GET", "/candidates/export.csv?sort=name", admin))
        assert [(r["Last name"], r["Notes"]) for r in everyone] == [
            ("Tuilagi", mere_notes := everyone[0]["Notes"]),
            ("Tupou", "'@SUM(1)"),
        ]
        assert mere_notes.startswith("'=")
        # A bad filter is a 422 before any byte, as the list's.
        problem(
            await call(
                client,
                "GET",
                "/candidates/export.csv?createdFrom=2030-01-01T00:00:00Z&createdTo=2020-01-01T00:00:00Z",
                admin,
            ),
            422,
        )
        # Another tenant's admin exports their own (none).
        other = _csv(await call(client, "GET", "/candidates/export.csv", world.auth(world.other_admin)))
        assert other == []
    # Each export that answered is in the activity log: who, which tenant, format and filters.
    async with system_session(url) as session:
        entries = (
            await session.execute(
                select(ActivityLog)
                .where(ActivityLog.action == "candidates_exported", ActivityLog.user_id == world.admin.id)
                .order_by(ActivityLog.created_at, ActivityLog.id)
            )
        ).scalars()
        details = [entry.details for entry in entries]
    assert len(details) == 2  # the refused export (422) is not one
    assert {"tenantId": str(world.tenant.id), "format": "csv"}.items() <= details[0].items()
    assert {detail["filters"].get("nationality") for detail in details} == {"FJ", None}
    assert any(detail["filters"].get("status") == "in_training" for detail in details)


async def test_a_partner_exports_only_its_candidates_without_notes(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    admin = world.auth(world.admin)
    async with system_session(url) as session:
        member = await make_user(session, world.tenant, SystemRole.agent)
        agent = await make_agent(session, world.tenant, member.user)
        token = await sign_in(session, member, world.tenant)
    partner = {"Authorization": f"Bearer {token}"}
    async with api_client(url) as client:
        own = await _register(client, partner, firstName="Losa")
        await _register(client, admin, firstName="Vika", notes="internal")
        rows = _csv(await call(client, "GET", "/candidates/export.csv", partner))
        assert [(row["Id"], row["Agent code"]) for row in rows] == [(own["id"], agent.code)]
        assert "Notes" not in rows[0]
        staff_rows = _csv(await call(client, "GET", "/candidates/export.csv", admin))
        assert sorted(row["First name"] for row in staff_rows) == ["Losa", "Vika"]


async def test_export_xlsx_is_a_workbook_of_text_cells_that_imports_again(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    admin = world.auth(world.admin)
    async with api_client(url) as client:
        await _register(
            client,
            admin,
            notes="=1+1",
            address={"line1": "1 Ratu Mara Rd", "city": "Suva", "country": "FJ"},
            languages=[{"code": "en", "level": "C1"}],
            skills=[{"name": "Welding", "level": "advanced"}],
            email="mere@example.org",
        )
        response = await call(client, "GET", "/candidates/export.xlsx", admin)
        assert response.status_code == 200, response.text
        assert response.headers["content-disposition"].endswith('.xlsx"')
        book = openpyxl.load_workbook(io.BytesIO(response.content))
        sheet = book.active
        header = [cell.value for cell in sheet[1]]
        values = dict(zip(header, [cell.value for cell in sheet[2]], strict=False))
        assert (values["First name"], values["City"], values["Languages"], values["Notes"]) == (
            "Mere",
            "Suva",
            "en C1",
            "=1+1",
        )
        assert sheet["A2"].data_type == "s"  # text, never a formula
        assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
        assert sheet.max_row == 2

        # Less the columns the system sets, the export imports into another tenant as the same people.
        for column in sorted(
            (
                i
                for i, name in enumerate(header, 1)
                if name in ("Id", "Reference number", "Status", "Registered at", "Updated at")
            ),
            reverse=True,
        ):
            sheet.delete_cols(column)
        again = io.BytesIO()
        book.save(again)
        files = {"file": ("again.xlsx", again.getvalue(), "application/octet-stream")}
        imported = await call(
            client, "POST", "/candidates/import", world.auth(world.other_admin), files=files
        )
        assert imported.status_code == 200, imported.text
    async with system_session(url) as session:
        from sqlalchemy import select

        [copy] = (
            await session.execute(select(Candidate).where(Candidate.tenant_id == world.other.id))
        ).scalars()
        assert (copy.address, copy.skills, copy.notes) == (
            {"line1": "1 Ratu Mara Rd", "city": "Suva", "country": "FJ"},
            [{"name": "Welding", "level": "advanced"}],
            "=1+1",
        )


async def test_the_export_paths_are_not_taken_for_a_candidates_id(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    async with api_client(migrated_database_url) as client:
        for path in ("/candidates/export.csv", "/candidates/export.xlsx"):
            assert (await call(client, "GET", path, world.auth(world.admin))).status_code == 200
        problem(await call(client, "GET", "/candidates/export.pdf", world.auth(world.admin)), 422)
