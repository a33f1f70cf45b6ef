"""Candidates through the API (issue 12, parts 2-5): answers, problem+json, the attacker's side, the
audit trail, and 20 concurrent registrations (PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest

from mobility.authz.permissions import SystemRole
from tests.support.admin_api import audit_of, call, make_world, sign_in
from tests.support.app import api_client, problem
from tests.support.factories import make_agent, make_user
from tests.support.sessions import system_session

YEAR = date.today().year
PERSON = {"firstName": "Mere", "lastName": "Tuilagi", "dateOfBirth": "1995-03-04", "nationality": "FJ"}


async def _partner(url: str, world, role: SystemRole):
    """A login of `role` in the world's tenant with its partner record (an Agent) or own record."""
    async with system_session(url) as session:
        member = await make_user(session, world.tenant, role)
        agent = await make_agent(session, world.tenant, member.user) if role == SystemRole.agent else None
        token = await sign_in(session, member, world.tenant)
    return member, agent, {"Authorization": f"Bearer {token}"}


async def test_register_read_change_and_history(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    admin = world.auth(world.admin)
    async with api_client(url) as client:
        created = await call(
            client, "POST", "/candidates", admin, json={**PERSON, "passportNumber": "fb 123456"}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["referenceNumber"] == f"{world.tenant.code}-{YEAR}-000001"
        assert (body["status"], body["passportNumber"], body["possibleDuplicates"]) == (
            "registered",
            "FB123456",
            [],
        )
        candidate_id = body["id"]
        [entry] = await audit_of(url, created)
        assert (entry.action, str(entry.entity_id), entry.actor_id) == (
            "candidate.create",
            candidate_id,
            world.admin.id,
        )

        changed = await call(
            client, "PATCH", f"/candidates/{candidate_id}", admin, json={"firstName": "Sera"}
        )
        assert changed.status_code == 200 and changed.json()["firstName"] == "Sera"

        moved = await call(
            client, "POST", f"/candidates/{candidate_id}/status", admin, json={"status": "in_training"}
        )
        assert moved.status_code == 200 and moved.json()["status"] == "in_training"
        refused = await call(
            client, "POST", f"/candidates/{candidate_id}/status", admin, json={"status": "deployed"}
        )
        details = problem(refused, 409, "transition_not_allowed")
        assert details["allowedTransitions"] == ["registered", "trained", "withdrawn", "rejected"]
        no_reason = await call(
            client, "POST", f"/candidates/{candidate_id}/status", admin, json={"status": "withdrawn"}
        )
        problem(no_reason, 422, "reason_required")

        answer = await call(client, "GET", f"/candidates/{candidate_id}/history", admin)
        assert answer.status_code == 200
        history = answer.json()["items"]
        assert [item["action"] for item in history] == [
            "candidate.create",
            "candidate.update",
            "candidate.status",
        ]
        assert history[2]["before"] == {"status": "registered"}
        assert history[1]["after"]["firstName"] == "Sera"
        assert {item["actorId"] for item in history} == {str(world.admin.id)}
        # A page at a time, newest first on request: the same entries.
        pages, cursor = [], None
        while True:
            params = {"limit": 1, "sort": "-createdAt", **({"cursor": cursor} if cursor else {})}
            page = (
                await call(client, "GET", f"/candidates/{candidate_id}/history", admin, params=params)
            ).json()
            pages += page["items"]
            if not (cursor := page["nextCursor"]):
                break
        assert pages == history[::-1]


async def test_invalid_input_is_422_with_the_fields(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    async with api_client(migrated_database_url) as client:
        for values, field in (
            ({"nationality": "XX"}, "nationality"),
            ({"dateOfBirth": str(date.today())}, "dateOfBirth"),
            ({"passportNumber": "N/A"}, "passportNumber"),
            ({"status": "placed"}, "status"),  # never sent with the profile
        ):
            response = await call(
                client, "POST", "/candidates", world.auth(world.admin), json={**PERSON, **values}
            )
            details = problem(response, 422)
            assert any(field in str(error["loc"]) for error in details["errors"]), details
        capped = await call(client, "GET", "/candidates?limit=101", world.auth(world.admin))
        problem(capped, 422)


async def test_a_duplicate_is_409_naming_the_record(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    admin = world.auth(world.admin)
    async with api_client(migrated_database_url) as client:
        first = await call(client, "POST", "/candidates", admin, json={**PERSON, "email": "dup@example.org"})
        again = await call(
            client,
            "POST",
            "/candidates",
            admin,
            json={**PERSON, "firstName": "Ana", "email": "DUP@example.org"},
        )
        details = problem(again, 409, "duplicate_candidate")
        assert (details["existingId"], details["existingReference"]) == (
            first.json()["id"],
            first.json()["referenceNumber"],
        )
        likely = await call(client, "POST", "/candidates", admin, json={**PERSON, "firstName": "Meri"})
        assert [item["id"] for item in likely.json()["possibleDuplicates"]] == [first.json()["id"]]
        listed = await call(client, "GET", f"/candidates/{first.json()['id']}/possible-duplicates", admin)
        assert [item["id"] for item in listed.json()] == [likely.json()["id"]]


async def test_another_tenants_candidate_does_not_exist(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    async with api_client(migrated_database_url) as client:
        theirs = await call(client, "POST", "/candidates", world.auth(world.other_admin), json=PERSON)
        candidate_id = theirs.json()["id"]
        mine = world.auth(world.admin)
        for method, path, body in (
            ("GET", f"/candidates/{candidate_id}", None),
            ("PATCH", f"/candidates/{candidate_id}", {"firstName": "X"}),
            ("POST", f"/candidates/{candidate_id}/status", {"status": "withdrawn", "reason": "x"}),
            ("GET", f"/candidates/{candidate_id}/history", None),
            ("GET", f"/candidates/{candidate_id}/possible-duplicates", None),
        ):
            problem(await call(client, method, path, mine, json=body), 404, "not_found")
        listed = await call(client, "GET", "/candidates", mine)
        assert candidate_id not in {item["id"] for item in listed.json()["items"]}
        # A weaker role: a Trainer registers nobody.
        problem(
            await call(client, "POST", "/candidates", world.auth(world.trainer), json=PERSON),
            403,
            "forbidden",
        )


async def test_partners_and_candidates_through_the_api(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    _agent_user, agent, agent_headers = await _partner(url, world, SystemRole.agent)
    _other_user, _other, other_headers = await _partner(url, world, SystemRole.agent)
    async with api_client(url) as client:
        created = await call(
            client, "POST", "/candidates", agent_headers, json={**PERSON, "passportNumber": "ZZ998877"}
        )
        assert created.status_code == 201 and created.json()["agentId"] == str(agent.id)
        candidate_id = created.json()["id"]
        problem(await call(client, "POST", "/candidates", agent_headers, json={**PERSON, "notes": "x"}), 422)
        # Another agent: the candidate does not exist for it, and its duplicate gets no details.
        problem(await call(client, "GET", f"/candidates/{candidate_id}", other_headers), 404)
        duplicate = problem(
            await call(
                client, "POST", "/candidates", other_headers, json={**PERSON, "passportNumber": "ZZ998877"}
            ),
            409,
            "duplicate_candidate",
        )
        assert "existingId" not in duplicate and "existingReference" not in duplicate
        problem(
            await call(
                client,
                "POST",
                f"/candidates/{candidate_id}/status",
                agent_headers,
                json={"status": "in_training"},
            ),
            403,
            "status_change_not_allowed",
        )

        # The candidate's own login: contacts only.
        async with system_session(url) as session:
            member = await make_user(session, world.tenant, SystemRole.candidate)
            from mobility.candidates.models import Candidate

            row = await session.get(Candidate, uuid.UUID(candidate_id))
            row.user_id = member.id
            token = await sign_in(session, member, world.tenant)
        own = {"Authorization": f"Bearer {token}"}
        ok = await call(client, "PATCH", f"/candidates/{candidate_id}", own, json={"phone": "+679 912 3456"})
        assert ok.status_code == 200 and ok.json()["phone"] == "+6799123456"
        problem(await call(client, "PATCH", f"/candidates/{candidate_id}", own, json={"lastName": "X"}), 422)
        problem(
            await call(
                client,
                "POST",
                f"/candidates/{candidate_id}/status",
                own,
                json={"status": "withdrawn", "reason": "x"},
            ),
            403,
            "forbidden",
        )
        listed = await call(client, "GET", "/candidates", own)
        assert [item["id"] for item in listed.json()["items"]] == [candidate_id]
        assert listed.json()["items"][0]["notes"] is None


@pytest.mark.postgres_only
async def test_twenty_concurrent_registrations_get_twenty_numbers(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        responses = await asyncio.gather(
            *(
                call(
                    client,
                    "POST",
                    "/candidates",
                    world.auth(world.admin),
                    json={**PERSON, "email": f"twin{index}@example.org"},
                )
                for index in range(20)
            )
        )
    assert [response.status_code for response in responses] == [201] * 20, [r.text for r in responses]
    numbers = {response.json()["referenceNumber"] for response in responses}
    assert numbers == {f"{world.tenant.code}-{YEAR}-{n:06d}" for n in range(1, 21)}


async def test_the_list_shows_each_caller_only_what_is_theirs(migrated_database_url: str) -> None:
    """The list (a compiled read since bench/candidates.py) from the attacker's side: another partner,
    another tenant's Admin and a Trainer who teaches none of them see none of the candidates, on the first
    page, filtered, searched by name, or after a cursor; the partner pages through its own; partners never see notes."""
    url = migrated_database_url
    world = await make_world(url)
    _agent_user, _agent, agent_headers = await _partner(url, world, SystemRole.agent)
    _other_user, _other, other_headers = await _partner(url, world, SystemRole.agent)
    admin = world.auth(world.admin)
    async with api_client(url) as client:
        mine = []
        for index, last in enumerate(("Tuilagi", "Tupou", "Vake")):
            body = {**PERSON, "lastName": last, "passportNumber": f"ZL10000{index}"}
            created = await call(client, "POST", "/candidates", agent_headers, json=body)
            assert created.status_code == 201, created.text
            mine.append(created.json()["id"])
        staff_only = await call(client, "POST", "/candidates", admin, json={**PERSON, "notes": "internal"})
        assert staff_only.status_code == 201

        async def listed(headers, **params) -> list[str]:
            ids, cursor = [], None
            while True:
                query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
                page = await call(client, "GET", "/candidates", headers, params=query)
                assert page.status_code == 200, page.text
                ids += [item["id"] for item in page.json()["items"]]
                assert all(item["notes"] is None for item in page.json()["items"]) or headers is admin
                if not (cursor := page.json()["nextCursor"]):
                    return ids

        assert sorted(await listed(agent_headers)) == sorted(mine)
        assert await listed(agent_headers, sort="name") == mine  # Tuilagi, Tupou, Vake
        assert sorted(await listed(agent_headers, status="registered")) == sorted(mine)
        assert await listed(other_headers) == []
        assert await listed(world.auth(world.other_admin)) == []
        assert await listed(world.auth(world.trainer)) == []
        assert set(await listed(admin)) >= {*mine, staff_only.json()["id"]}
        # A name search (on PostgreSQL a compiled read of its own, ranked): the same rows, no others.
        assert await listed(agent_headers, q="Tuilagi") == [mine[0]]
        assert await listed(other_headers, q="Tuilagi") == []
        assert await listed(world.auth(world.other_admin), q="Tuilagi") == []
        assert await listed(world.auth(world.trainer), q="Tuilagi") == []
        assert set(await listed(admin, q="Tuilagi")) == {mine[0], staff_only.json()["id"]}
