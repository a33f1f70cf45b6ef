"""`POST /candidates/{id}/merge` through the API (issue 12, part 5): the answer, the tombstone's
answers (308 to the survivor when read, 409 when written), the trail of the request, a refused merge
that leaves everything as it was, and the attacker's side (another tenant: 404 or 422; a role without
`candidates:delete`: 403). What test_merge.py proves of the service is not proven again here."""

from __future__ import annotations

from datetime import date

from mobility.authz.permissions import SystemRole
from mobility.candidates import service
from mobility.candidates.models import Candidate
from mobility.training.models import Enrollment
from tests.support.admin_api import audit_of, call, make_world, sign_in
from tests.support.app import api_client, problem
from tests.support.factories import make_candidate, make_course, make_enrollment, make_user
from tests.support.rows import snapshot
from tests.support.sessions import system_session


async def _pair(url: str, tenant, **duplicate_values):
    async with system_session(url) as session:
        survivor = await make_candidate(session, tenant, date_of_birth=date(1994, 7, 1), nationality="FJ")
        duplicate = await make_candidate(
            session, tenant, date_of_birth=date(1994, 7, 1), nationality="FJ", **duplicate_values
        )
        for candidate in (survivor, duplicate):
            service._refresh_keys(candidate)
    return survivor, duplicate


async def test_merge_and_the_tombstones_answers(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    admin = world.auth(world.admin)
    survivor, duplicate = await _pair(url, world.tenant, email="meri@example.org")
    async with system_session(url) as session:
        course = await make_course(session, world.tenant)
        enrollment = await make_enrollment(session, course, duplicate)
    async with api_client(url) as client:
        merged = await call(
            client,
            "POST",
            f"/candidates/{survivor.id}/merge",
            admin,
            json={"duplicateCandidateId": str(duplicate.id)},
        )
        assert merged.status_code == 200, merged.text
        body = merged.json()
        assert (body["survivor"]["id"], body["survivor"]["email"], body["mergedId"]) == (
            str(survivor.id),
            "meri@example.org",
            str(duplicate.id),
        )
        assert body["moved"]["enrollments"] == [str(enrollment.id)]
        assert body["filledFields"] == ["email"]

        trail = await audit_of(url, merged)
        assert [row.action for row in trail if row.action == "candidate.merge"] == ["candidate.merge"]
        assert {(row.action, row.entity_type, row.entity_id) for row in trail} == {
            ("candidate.merge.move", "enrollments", enrollment.id),
            ("candidate.merged", "candidates", duplicate.id),
            ("candidate.merge", "candidates", survivor.id),
        }
        assert all(row.actor_id == world.admin.id and row.tenant_id == world.tenant.id for row in trail)

        # Read: 308 to the survivor, problem+json naming it.
        read = await call(client, "GET", f"/candidates/{duplicate.id}", admin)
        gone = problem(read, 308, "candidate_merged")
        assert read.headers["location"] == f"/api/v1/candidates/{survivor.id}"
        assert gone["survivorId"] == str(survivor.id)
        assert gone["type"] == "about:blank#candidate_merged"
        followed = await call(client, "GET", f"/candidates/{survivor.id}", admin)
        assert followed.status_code == 200
        # Writes and the tombstone's own views: 409 naming the survivor.
        for method, path, payload in (
            ("PATCH", f"/candidates/{duplicate.id}", {"phone": "+6799000001"}),
            ("POST", f"/candidates/{duplicate.id}/status", {"status": "withdrawn", "reason": "Gone"}),
            ("GET", f"/candidates/{duplicate.id}/history", None),
            ("GET", f"/candidates/{duplicate.id}/possible-duplicates", None),
            ("POST", f"/candidates/{survivor.id}/merge", {"duplicateCandidateId": str(duplicate.id)}),
            ("POST", f"/candidates/{duplicate.id}/merge", {"duplicateCandidateId": str(survivor.id)}),
        ):
            answer = await call(client, method, path, admin, json=payload)
            assert problem(answer, 409, "candidate_merged")["survivorId"] == str(survivor.id), path

        history = (await call(client, "GET", f"/candidates/{survivor.id}/history", admin)).json()["items"]
        [entry] = [item for item in history if item["action"] == "candidate.merge"]
        assert entry["candidateId"] == str(survivor.id)
        assert entry["after"]["merge"]["duplicateId"] == str(duplicate.id)
        assert {item["candidateId"] for item in history if item["action"] == "candidate.merged"} == {
            str(duplicate.id)
        }
        listed = (await call(client, "GET", "/candidates", admin, params={"limit": 100})).json()
        assert str(duplicate.id) not in {item["id"] for item in listed["items"]}


async def test_a_refused_merge_changes_nothing(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    survivor, duplicate = await _pair(url, world.tenant, email="twin@example.org")
    async with system_session(url) as session:
        course = await make_course(session, world.tenant)
        mine = await make_enrollment(session, course, survivor)
        theirs = await make_enrollment(session, course, duplicate)

    async def state() -> list:
        async with system_session(url) as session:
            return [
                await snapshot(session, Candidate, survivor.id),
                await snapshot(session, Candidate, duplicate.id),
                await snapshot(session, Enrollment, mine.id),
                await snapshot(session, Enrollment, theirs.id),
            ]

    before = await state()
    async with api_client(url) as client:
        refused = await call(
            client,
            "POST",
            f"/candidates/{survivor.id}/merge",
            world.auth(world.admin),
            json={"duplicateCandidateId": str(duplicate.id)},
        )
        body = problem(refused, 409, "merge_conflict")
        assert body["conflicts"] == [
            {
                "kind": "enrollment",
                "courseId": str(course.id),
                "survivorEnrollmentId": str(mine.id),
                "duplicateEnrollmentId": str(theirs.id),
            }
        ]
        itself = await call(
            client,
            "POST",
            f"/candidates/{survivor.id}/merge",
            world.auth(world.admin),
            json={"duplicateCandidateId": str(survivor.id)},
        )
        problem(itself, 409, "merge_not_allowed")
    assert await state() == before
    assert await audit_of(url, refused) == [] and await audit_of(url, itself) == []


async def test_the_attackers_side(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    survivor, duplicate = await _pair(url, world.tenant)
    theirs, _ = await _pair(url, world.other)
    async with system_session(url) as session:
        recruiter = await make_user(session, world.tenant, SystemRole.recruiter)
        recruiter_token = await sign_in(session, recruiter, world.tenant)
        agent = await make_user(session, world.tenant, SystemRole.agent)
        agent_token = await sign_in(session, agent, world.tenant)

    async def merge(headers, into, away):
        async with api_client(url) as client:
            return await call(
                client,
                "POST",
                f"/candidates/{into.id}/merge",
                headers,
                json={"duplicateCandidateId": str(away.id)},
            )

    before = [await snapshot_of(url, row) for row in (survivor, duplicate, theirs)]
    # Another tenant's Admin: A's records do not exist for them, in the path or in the body.
    problem(await merge(world.auth(world.other_admin), survivor, theirs), 404, "not_found")
    problem(await merge(world.auth(world.other_admin), theirs, survivor), 422)
    # This tenant's Admin with another tenant's record in the body: no such record.
    problem(await merge(world.auth(world.admin), survivor, theirs), 422)
    # Roles without candidates:delete.
    for token in (recruiter_token, agent_token):
        problem(await merge({"Authorization": f"Bearer {token}"}, survivor, duplicate), 403, "forbidden")
    problem(await merge(world.auth(world.trainer), survivor, duplicate), 403, "forbidden")
    assert [await snapshot_of(url, row) for row in (survivor, duplicate, theirs)] == before


async def snapshot_of(url: str, candidate: Candidate):
    async with system_session(url) as session:
        return await snapshot(session, Candidate, candidate.id)
