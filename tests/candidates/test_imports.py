"""Importing candidates from a spreadsheet (issue 12, part 8): `mobility import candidates` on CSV and
.xlsx files, and the service under it. Expected answers come from the issue and candidates/imports.py's
rules: the API's rules on every row, duplicates within the file and against the database, the file's
line numbers, all or nothing, a dry run writes nothing, bad files refused with a clear answer."""

from __future__ import annotations

import asyncio
import io
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from mobility.audit.models import AuditLog
from mobility.authz.permissions import SystemRole
from mobility.candidates import imports
from mobility.candidates.models import Candidate
from tests.cli.support import Cli
from tests.support.factories import make_agent, make_tenant, make_user
from tests.support.sample_files import zip_bomb
from tests.support.sessions import Db, system_session

YEAR = date.today().year
HEADER = "First name,LAST_NAME,date of birth,Nationality,passportNumber,E-mail,Phone,Address line 1,City,Address country,Skills,Languages\n"  # noqa: E501
GOOD = [
    "Mere,Tuilagi,1995-03-04,FJ,FB123456,mere@example.org,9991234,1 Ratu Mara Rd,Suva,FJ,Welding; Carpentry,en C1; fj native\n",  # noqa: E501
    "Sione,Tupou,1990-01-02,TO,TP999999,sione@example.org,,,,,,\n",
    "Ana,Vake,1998-07-30,TO,,,,,,,,\n",
]


@pytest.fixture
def cli(backend: str, migrated_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI on the run's migrated database (each test works in tenants of its own)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOBILITY_DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("MOBILITY_DATA_DIR", str(tmp_path / "data"))
    return Cli(backend, migrated_database_url, tmp_path / "data", tmp_path / "backups", monkeypatch)


async def _tenant(url: str, role: SystemRole = SystemRole.admin):
    async with system_session(url) as session:
        tenant = await make_tenant(session)
        member = await make_user(session, tenant, role)
        agent = await make_agent(session, tenant, member.user) if role == SystemRole.agent else None
    return tenant, member, agent


async def _candidates(url: str, tenant) -> list[Candidate]:
    async with system_session(url) as session:
        rows = await session.execute(
            select(Candidate).where(Candidate.tenant_id == tenant.id).order_by(Candidate.reference_number)
        )
        return list(rows.scalars())


async def run(cli: Cli, *args: str):
    """The command in a thread of its own: it runs its own event loop (asyncio.run), as from a shell."""
    return await asyncio.to_thread(cli, *args)


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(lines), encoding="utf-8")
    return path


async def test_cli_imports_every_row_with_references_in_file_order_and_one_audit_entry_each(
    cli: Cli, tmp_path: Path
) -> None:
    tenant, admin, _ = await _tenant(cli.url)
    file = _write(tmp_path / "intake.csv", HEADER, *GOOD)

    result = await run(
        cli, "import", "candidates", str(file), "--tenant", tenant.code.lower(), "--as", admin.user.email
    )

    assert result.exit_code == 0, result.output
    assert "imported 3 candidate(s) from 3 row(s)" in result.stdout
    rows = await _candidates(cli.url, tenant)
    assert [(row.reference_number, row.first_name) for row in rows] == [
        (f"{tenant.code}-{YEAR}-000001", "Mere"),
        (f"{tenant.code}-{YEAR}-000002", "Sione"),
        (f"{tenant.code}-{YEAR}-000003", "Ana"),
    ]
    mere = rows[0]
    # The API's normalisations: a national phone of the nationality in E.164, the address from its parts,
    # the simple lists as the typed sections.
    assert (mere.phone, mere.passport_number, mere.email_key) == (
        "+6799991234",
        "FB123456",
        "mere@example.org",
    )
    assert mere.address == {"line1": "1 Ratu Mara Rd", "city": "Suva", "country": "FJ"}
    assert mere.skills == [{"name": "Welding"}, {"name": "Carpentry"}]
    assert mere.languages == [{"code": "en", "level": "C1"}, {"code": "fj", "level": "native"}]
    async with system_session(cli.url) as session:
        entries = (
            await session.execute(
                select(AuditLog.entity_id, AuditLog.action, AuditLog.actor_id).where(
                    AuditLog.entity_id.in_([row.id for row in rows])
                )
            )
        ).all()
    assert sorted((e.entity_id, e.action, e.actor_id) for e in entries) == sorted(
        (row.id, "candidate.import", admin.user.id) for row in rows
    )


async def test_dry_run_checks_everything_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    tenant, _admin, _ = await _tenant(cli.url)
    file = _write(tmp_path / "intake.csv", HEADER, *GOOD)

    result = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code, "--dry-run")

    assert result.exit_code == 0, result.output
    assert "dry run, nothing written: 3 row(s), 3 valid, 0 refused" in result.stdout
    assert await _candidates(cli.url, tenant) == []
    # Nor were reference numbers used up: the real import starts at 1.
    assert (await run(cli, "import", "candidates", str(file), "--tenant", tenant.code)).exit_code == 0
    assert (await _candidates(cli.url, tenant))[0].reference_number == f"{tenant.code}-{YEAR}-000001"


async def test_one_refused_row_refuses_the_file_unless_skip_invalid(cli: Cli, tmp_path: Path) -> None:
    tenant, _admin, _ = await _tenant(cli.url)
    bad = "Old,Timer,1900-01-01,FJ,,,,,,,,\n"  # line 4: too old for the date-of-birth rule
    file = _write(tmp_path / "intake.csv", HEADER, GOOD[0], GOOD[1], bad, GOOD[2])

    refused = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code)

    assert refused.exit_code == 1
    assert (
        "line 4: date of birth: The date of birth must make the candidate 16 to 75 years old"
        in refused.stderr
    )
    assert "error: 1 of 4 row(s) refused; nothing was imported (all or nothing)" in refused.stderr
    assert await _candidates(cli.url, tenant) == []

    skipped = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code, "--skip-invalid")
    assert skipped.exit_code == 0, skipped.output
    assert "imported 3 candidate(s) from 4 row(s); 1 row(s) refused and skipped" in skipped.stdout
    assert [row.first_name for row in await _candidates(cli.url, tenant)] == ["Mere", "Sione", "Ana"]


async def test_duplicates_within_the_file_and_against_the_database_with_the_files_line_numbers(
    cli: Cli, tmp_path: Path
) -> None:
    tenant, _admin, _ = await _tenant(cli.url)
    first = await run(
        cli, "import", "candidates", str(_write(tmp_path / "a.csv", HEADER, GOOD[0])), "--tenant", tenant.code
    )
    assert first.exit_code == 0, first.output
    [registered] = await _candidates(cli.url, tenant)
    file = _write(
        tmp_path / "b.csv",
        "firstName,lastName,dateOfBirth,nationality,nationalId,email,notes\n",
        'Losa,Fifita,1993-05-06,TO,TO-1234-5,,"two\nlines"\n',  # lines 2-3
        "Vika,Fifita,1994-05-06,TO,,MERE@example.org,\n",  # line 4: Mere's e-mail, another case
        "Losana,Fifita,1993-05-06,TO,to12345,,\n",  # line 5: line 2's national id, written otherwise
        "Pita,Lui,1992-02-02,TO,,pita@example.org,\n",  # line 6: fine
    )

    result = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code)

    assert result.exit_code == 1
    assert (
        f"line 4: A candidate with the same e-mail is registered already: {registered.reference_number}."
        in result.stderr
    )
    assert "line 5: The same national id as line 2 of this file." in result.stderr
    assert "line 2:" not in result.stderr and "line 6:" not in result.stderr
    assert len(await _candidates(cli.url, tenant)) == 1


async def test_duplicates_of_earlier_batches_name_their_line(db: Db) -> None:
    """Rows of earlier batches are in the database already: a duplicate of one names its line."""
    tenant, admin, _ = await _tenant(db.url)
    rows = ["firstName,lastName,dateOfBirth,nationality,passportNumber\n"]
    rows += [f"P{letter},Lui,1992-02-02,TO,TP10000{n}\n" for n, letter in enumerate("abcde")]
    rows.append("Again,Lui,1992-02-02,TO,tp 100002\n")  # line 7: line 4's passport, three batches later
    async with db.acting(admin.scope()) as session:
        report = await imports.import_candidates(
            session, io.BytesIO("".join(rows).encode()), batch_size=2, dry_run=True
        )
    assert [(row.line, row.reasons) for row in report.rejected_rows] == [
        (7, ["The same passport as line 4 of this file."])
    ]
    assert (report.rows, report.valid, report.written) == (6, 5, False)


async def test_a_header_that_does_not_fit_refuses_the_file_before_any_row(cli: Cli, tmp_path: Path) -> None:
    tenant, _admin, _ = await _tenant(cli.url)
    file = _write(
        tmp_path / "intake.csv",
        "First name,Last name,Date of birth,Favourite colour,Reference number\n",
        "Mere,Tuilagi,1995-03-04,blue,X\n",
    )

    result = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code)

    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: the header row does not fit: unknown column(s) 'Favourite colour' (column D)"
    )
    assert "the system sets, which an import cannot: 'Reference number' (column E)" in line
    assert "missing required column(s) 'Nationality'" in line
    assert await _candidates(cli.url, tenant) == []


async def test_an_xlsx_workbook_with_excel_cells_and_its_row_numbers(cli: Cli, tmp_path: Path) -> None:
    tenant, _admin, _ = await _tenant(cli.url)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["First name", "Last name", "Date of birth", "Nationality", "Phone", "Passport expiry"])
    sheet.append(["Mere", "Tuilagi", datetime(1995, 3, 4), "FJ", 9991234, None])  # a date cell, a number
    sheet.append([None, None, None, None, None, None])  # row 3 left empty
    sheet.append(["Sione", "Tupou", "1990-01-02", "TO", "+61 412 345 678", None])
    sheet.append(["Bad", "Expiry", "1990-01-02", "TO", None, date(1999, 1, 1)])  # row 5
    file = tmp_path / "intake.xlsx"
    book.save(file)

    refused = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code)
    assert refused.exit_code == 1
    assert "line 5: Passport expiry: A passport expiry must lie within" in refused.stderr

    sheet.delete_rows(5)
    book.save(file)
    done = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code)
    assert done.exit_code == 0, done.output
    rows = await _candidates(cli.url, tenant)
    assert [(row.first_name, row.date_of_birth, row.phone) for row in rows] == [
        ("Mere", date(1995, 3, 4), "+6799991234"),
        ("Sione", date(1990, 1, 2), "+61412345678"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty (0 bytes)"),
        (bytes(range(256)) * 8, "the file is binary, not text"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "an old excel workbook (.xls)"),
        (b"First name,Last name\n\xff\xfe broken", "not utf-8 text"),
    ],
    ids=["zero-bytes", "garbage", "xls", "not-utf8"],
)
async def test_files_that_are_no_spreadsheet_get_a_clear_one_line_answer(
    cli: Cli, tmp_path: Path, content: bytes, message: str
) -> None:
    tenant, _admin, _ = await _tenant(cli.url)
    file = tmp_path / "intake.csv"
    file.write_bytes(content)

    result = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code)

    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: ") and message in line.lower(), result.stderr
    assert "nothing was imported" in line
    assert await _candidates(cli.url, tenant) == []


async def test_a_zip_bomb_is_refused_unread(db: Db) -> None:
    tenant, admin, _ = await _tenant(db.url)
    import zipfile

    buffer = io.BytesIO(zip_bomb())
    with zipfile.ZipFile(buffer, "a") as archive:  # dressed as a workbook
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    async with db.acting(admin.scope()) as session:
        with pytest.raises(imports.UnreadableSpreadsheet, match="refused unread"):
            await imports.import_candidates(session, buffer)
        # A plain ZIP that is no workbook is not a spreadsheet at all.
        with pytest.raises(imports.UnsupportedSpreadsheet, match="not an Excel workbook"):
            await imports.import_candidates(session, io.BytesIO(zip_bomb()))


async def test_an_agent_imports_its_own_candidates_and_may_not_name_partners(
    cli: Cli, tmp_path: Path
) -> None:
    tenant, member, agent = await _tenant(cli.url, SystemRole.agent)
    email = member.user.email
    staff_columns = _write(tmp_path / "a.csv", "First name,Last name,Date of birth,Nationality,Agent code\n")
    refused = await run(
        cli, "import", "candidates", str(staff_columns), "--tenant", tenant.code, "--as", email
    )
    assert refused.exit_code == 1
    assert "column(s) only staff may set: Agent code" in refused.stderr

    file = _write(tmp_path / "b.csv", HEADER, GOOD[1])
    done = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code, "--as", email)
    assert done.exit_code == 0, done.output
    [row] = await _candidates(cli.url, tenant)
    assert (row.agent_id, row.created_by) == (agent.id, member.user.id)


async def test_staff_name_the_partner_by_code_and_an_unknown_actor_is_refused(
    cli: Cli, tmp_path: Path
) -> None:
    tenant, admin, _ = await _tenant(cli.url)
    async with system_session(cli.url) as session:
        agent = await make_agent(session, tenant)
    file = _write(
        tmp_path / "a.csv",
        "First name,Last name,Date of birth,Nationality,Agent\n",
        f"Mere,Tuilagi,1995-03-04,FJ,{agent.code.lower()}\n",
        "Sione,Tupou,1990-01-02,TO,NO-SUCH\n",
    )
    unknown = await run(
        cli, "import", "candidates", str(file), "--tenant", tenant.code, "--as", "nobody@example.org"
    )
    assert unknown.exit_code == 1 and "no active account has the e-mail" in unknown.stderr
    result = await run(cli, "import", "candidates", str(file), "--tenant", tenant.code, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "line 3: agentCode: no agent 'NO-SUCH'" in result.stderr
    [row] = await _candidates(cli.url, tenant)
    assert row.agent_id == agent.id


async def test_a_trainer_may_not_import(db: Db) -> None:
    tenant, trainer, _ = await _tenant(db.url, SystemRole.trainer)
    async with db.acting(trainer.scope()) as session:
        with pytest.raises(imports.Forbidden):
            await imports.import_candidates(session, io.BytesIO("".join([HEADER, *GOOD]).encode()))
        assert await session.scalar(select(func.count()).select_from(Candidate)) == 0


def test_header_keys_ignore_case_spaces_and_punctuation() -> None:
    assert {
        imports.header_key(text) for text in ("First name", "firstName", "FIRST_NAME", " first-name ")
    } == {"firstname"}
    labels = [column.label for column in imports.COLUMNS]
    assert len(set(map(imports.header_key, labels))) == len(labels)


async def test_a_row_naming_a_partner_that_may_not_register_is_refused(db: Db) -> None:
    """The agents service's licensing rule, per row: a suspended agent named by staff refuses its row."""
    from mobility.agents.models import Agent, PartnerStatus

    tenant, admin, _ = await _tenant(db.url)
    async with system_session(db.url) as session:
        agent = await make_agent(session, tenant)
        (await session.get(Agent, agent.id)).status = PartnerStatus.suspended
    file = f"First name,Last name,Date of birth,Nationality,Agent code\nMere,Tuilagi,1995-03-04,FJ,{agent.code}\n"
    async with db.acting(admin.scope()) as session:
        report = await imports.import_candidates(session, io.BytesIO(file.encode()))
    [row] = report.rejected_rows
    assert row.line == 2 and row.reasons == [
        f"The agent {agent.code} is suspended and cannot register candidates."
    ]
    assert (report.written, report.created) == (False, 0)


async def test_rows_checked_by_processes_of_their_own_import_as_rows_checked_here(db: Db) -> None:
    """The command line has large files checked by a pool of processes (imports.checking_processes):
    the same refusals, line numbers, partners and duplicate keys as checking in the importing process,
    batches in the file's order. Each way imports into a tenant of its own."""
    reports, written = {}, {}
    for processes in (0, 1):
        tenant, admin, _ = await _tenant(db.url)
        async with system_session(db.url) as session:
            agent = await make_agent(session, tenant)
        lines = [
            "First name,Last name,Date of birth,Nationality,Passport number,Agent code\n",
            f"Mere,Tuilagi,1995-03-04,FJ,FB100001,{agent.code}\n",  # line 2
            "Sione,Tupou,1890-01-02,TO,TP100002,\n",  # line 3: born too long ago
            "Ana,Vake,1998-07-30,TO,TP100003,NO-SUCH\n",  # line 4: no such agent
            "Losa,Lui,1992-02-02,TO,TP100004,\n",  # line 5
            "Vika,Lui,1993-02-02,TO,tp 100004,\n",  # line 6: line 5's passport, a batch later
            "Pita,Moala,1994-02-02,WS,WS100006,\n",  # line 7
        ]
        async with db.acting(admin.scope()) as session:
            reports[processes] = await imports.import_candidates(
                session,
                io.BytesIO("".join(lines).encode()),
                batch_size=2,
                processes=processes,
                skip_invalid=True,
            )
            rows = await session.execute(
                select(Candidate.first_name, Candidate.agent_id, Candidate.passport_key).order_by(
                    Candidate.reference_number
                )
            )
            written[processes] = [(name, agent_id == agent.id, key) for name, agent_id, key in rows]
    pooled, here = reports[1], reports[0]
    assert (
        written[1]
        == written[0]
        == [
            ("Mere", True, "FJ:FB100001"),
            ("Losa", False, "TO:TP100004"),
            ("Pita", False, "WS:WS100006"),
        ]
    )
    assert [row.line for row in pooled.rejected_rows] == [3, 4, 6]
    assert pooled.rejected_rows[1].reasons == ["agentCode: no agent 'NO-SUCH'"]
    assert pooled.rejected_rows[2].reasons == ["The same passport as line 5 of this file."]
    assert [(row.line, row.reasons) for row in pooled.rejected_rows] == [
        (row.line, row.reasons) for row in here.rejected_rows
    ]
    assert (pooled.rows, pooled.valid, pooled.created) == (here.rows, here.valid, here.created) == (6, 3, 3)


def test_small_files_are_checked_in_the_importing_process() -> None:
    assert imports.checking_processes(imports.POOL_MIN_BYTES - 1) == 0
    assert 1 <= imports.checking_processes(imports.POOL_MIN_BYTES) <= imports.MAX_CHECKING_PROCESSES


async def test_an_imported_candidates_audit_entry_is_the_one_a_registration_writes(db: Db) -> None:
    """The import writes its rows' trail in bulk (core.audit.record_bulk_insert); each entry's `after`
    is what the flush of the same registration through the API writes: the same columns and values,
    dates as ISO text, the typed sections (skills, languages, address) as JSON."""
    from mobility.candidates import service
    from mobility.candidates.schemas import CandidateCreate

    row = {
        "firstName": "Mere",
        "lastName": "Tuilagi",
        "dateOfBirth": "1995-03-04",
        "nationality": "FJ",
        "passportNumber": "FB123456",
        "passportExpiry": "2031-01-01",
        "email": "mere@example.org",
        "phone": "+6799991234",
        "address": {"line1": "1 Ratu Mara Rd", "city": "Suva", "country": "FJ"},
        "skills": [{"name": "Welding"}, {"name": "Carpentry"}],
        "languages": [{"code": "en", "level": "C1"}],
    }
    afters = {}
    for way in ("import", "api"):
        tenant, admin, _ = await _tenant(db.url)
        async with db.acting(admin.scope()) as session:
            if way == "import":
                file = "firstName,lastName,dateOfBirth,nationality,passportNumber,passportExpiry,email,phone,"
                file += "Address line 1,City,Address country,Skills,Languages\n"
                file += "Mere,Tuilagi,1995-03-04,FJ,FB123456,2031-01-01,mere@example.org,+6799991234,"
                file += "1 Ratu Mara Rd,Suva,FJ,Welding; Carpentry,en C1\n"
                report = await imports.import_candidates(session, io.BytesIO(file.encode()))
                assert report.created == 1
            else:
                await service.create_candidate(session, CandidateCreate.model_validate(row))
                await session.flush()
            entry = (
                await session.execute(
                    select(AuditLog).where(
                        AuditLog.entity_type == "candidates", AuditLog.tenant_id == tenant.id
                    )
                )
            ).scalar_one()
            afters[way] = entry.after
    varying = {"id", "tenantId", "referenceNumber", "createdAt", "updatedAt", "createdBy", "updatedBy"}
    imported = {key: value for key, value in afters["import"].items() if key not in varying}
    registered = {key: value for key, value in afters["api"].items() if key not in varying}
    assert imported == registered
    assert imported["skills"] == [{"name": "Welding"}, {"name": "Carpentry"}]
    assert imported["dateOfBirth"] == "1995-03-04" and imported["address"]["city"] == "Suva"
