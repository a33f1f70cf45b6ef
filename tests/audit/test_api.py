"""Audit API: the current tenant's trail, newest first, filtered and paged; read only; no secrets."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime

from mobility.auth.credentials import hash_token
from mobility.authz.permissions import SystemRole
from mobility.users import service as users_service
from mobility.users.models import User
from tests.support.admin_api import all_pages, call, make_world, walk
from tests.support.app import api_client, problem
from tests.support.factories import system_role
from tests.support.sessions import get_row, system_session

TRAIL = "/api/v1/audit-logs"


async def rename(client, world, member, name: str):
    """As the System Admin acting in the world's tenant (names are account-wide)."""
    response = await call(
        client, "PATCH", f"/users/{member.id}", world.auth(world.system_admin), json={"name": name}
    )
    assert response.status_code == 200, response.text
    return response


async def test_the_trail_is_newest_first_filtered_and_paged(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    async with api_client(url) as client:
        for n in range(5):
            await rename(client, world, world.trainer, f"Trainer {n}")
        everything = await all_pages(client, "/audit-logs", headers, entityId=str(world.trainer.id), limit=2)
        oldest_first = await client.get(
            TRAIL, headers=headers, params={"entityId": str(world.trainer.id), "sort": "createdAt"}
        )
        by_action = await client.get(TRAIL, headers=headers, params={"action": "user.update", "limit": 100})
        by_actor = await client.get(
            TRAIL, headers=headers, params={"actorId": str(world.system_admin.id), "entityType": "users"}
        )
        renames = [item for page in everything for item in page["items"] if item["action"] == "user.update"]
        window = await client.get(
            TRAIL,
            headers=headers,
            params={
                "entityId": str(world.trainer.id),
                "action": "user.update",
                "from": renames[2]["createdAt"],
                "to": renames[0]["createdAt"],
            },
        )
    ids = walk(everything)
    assert len(ids) == len(set(ids)) and [len(p["items"]) for p in everything][:-1] == [2] * (
        len(everything) - 1
    )
    # The factory's create, then the five renames: newest first.
    assert [item["after"].get("name") for item in renames] == [f"Trainer {n}" for n in range(4, -1, -1)]
    # As instants: ISO strings do not sort as times ("...:05Z" after "...:05.1Z").
    times = [datetime.fromisoformat(item["createdAt"]) for page in everything for item in page["items"]]
    assert len(times) >= 6
    assert times == sorted(times, reverse=True)
    assert [item["id"] for item in oldest_first.json()["items"]] == ids[::-1]
    assert {item["action"] for item in by_action.json()["items"]} == {"user.update"}
    assert all(item["tenantId"] == str(world.tenant.id) for item in by_action.json()["items"])
    assert {item["actorId"] for item in by_actor.json()["items"]} == {str(world.system_admin.id)}
    assert len(by_actor.json()["items"]) == 5
    # `from` inclusive, `to` exclusive.
    assert [item["after"]["name"] for item in window.json()["items"]] == ["Trainer 3", "Trainer 2"]


async def test_bad_queries_are_refused(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    headers = world.auth(world.admin)
    forged = base64.urlsafe_b64encode(json.dumps(["yesterday", "x"]).encode()).decode()
    bad_time = base64.urlsafe_b64encode(
        json.dumps(["yesterday", "01a2140a-0000-7000-8000-000000000000"]).encode()
    ).decode()
    async with api_client(migrated_database_url) as client:
        schema = [
            {"limit": 101},
            {"from": "2026-01-01T00:00:00"},  # no time zone
            {"entityId": "users"},
            {"tenantId": str(world.other.id)},
            {"sort": "action"},  # the sort keys are enumerated in the OpenAPI document
            {"to": "0"},  # date-times are ISO 8601 text, never a Unix time
        ]
        schema_errors = [await client.get(TRAIL, headers=headers, params=params) for params in schema]
        invalid = [
            await client.get(TRAIL, headers=headers, params=params)
            for params in (
                {"cursor": "%%%"},
                {"cursor": forged},
                {"cursor": bad_time},
                {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            )
        ]
        write = await client.post(TRAIL, headers=headers, json={"action": "forged"})
    for response in schema_errors:
        problem(response, 422, "validation_error")
    for response in invalid:
        problem(response, 422, "invalid_input")
    problem(write, 405)


async def test_another_tenants_trail_is_not_visible(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        await rename(client, world, world.trainer, "Only in A")
        mine = await client.get(
            TRAIL, headers=world.auth(world.admin), params={"entityId": str(world.trainer.id)}
        )
        theirs = await client.get(
            TRAIL, headers=world.auth(world.other_admin), params={"entityId": str(world.trainer.id)}
        )
        all_of_b = await all_pages(client, "/audit-logs", world.auth(world.other_admin), limit=100)
        trainer = await client.get(TRAIL, headers=world.auth(world.trainer))
    assert mine.json()["items"]
    assert theirs.json()["items"] == []
    assert {item["tenantId"] for page in all_of_b for item in page["items"]} == {str(world.other.id)}
    assert problem(trainer, 403, "forbidden")["permission"] == "audit_logs:read"


async def test_no_secret_reaches_the_trail_or_the_api(migrated_database_url: str) -> None:
    """Invite, accept (sets a password), reset two-factor: the trail shows that secrets changed, never
    their values; the token itself reaches only the invitee (here: the operator's link)."""
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        trainer_role = str((await system_role(session, SystemRole.trainer)).id)
    password = secrets.token_urlsafe(12)
    async with api_client(url) as client:
        invited = await client.post(
            "/api/v1/users",
            headers=world.auth(world.admin),
            json={"email": f"s-{secrets.token_hex(4)}@example.org", "name": "S", "roleId": trainer_role},
        )
        assert "token" not in invited.text
        async with system_session(url) as session:
            token = await users_service.issue_invitation_link(
                session, email=invited.json()["email"], tenant_code=world.tenant.code
            )
        accepted = await client.post(
            "/api/v1/invitations/accept", json={"token": token, "password": password}
        )
        assert accepted.status_code == 204, accepted.text
        user_id = (
            await client.get(
                "/api/v1/users", headers=world.auth(world.admin), params={"q": invited.json()["email"]}
            )
        ).json()["items"][0]["id"]
        await client.post(f"/api/v1/users/{user_id}/reset-2fa", headers=world.auth(world.admin))
        pages = await all_pages(client, "/audit-logs", world.auth(world.admin), entityType="users", limit=100)
        pages += await all_pages(
            client, "/audit-logs", world.auth(world.admin), entityType="user_invitations", limit=100
        )
        user = await client.get(f"/api/v1/users/{user_id}", headers=world.auth(world.admin))
    stored = await get_row(url, User, user_id)
    text = json.dumps(pages) + user.text
    for secret in (token, hash_token(token), password, stored.password_hash):
        assert secret not in text
    hashes = [item["after"].get("passwordHash") for page in pages for item in page["items"] if item["after"]]
    assert "[redacted]" in hashes
    assert set(hashes) <= {"[redacted]", None}
