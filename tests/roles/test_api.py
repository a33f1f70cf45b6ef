"""Roles API: the global system roles are read-only; each tenant manages its own custom roles."""

from __future__ import annotations

import secrets

from mobility.authz.permissions import MATRIX, SystemRole
from mobility.roles.models import Role
from mobility.users.models import UserTenant
from tests.support.admin_api import all_pages, audit_of, call, make_world, one_audit_row, sign_in, walk
from tests.support.app import api_client, problem
from tests.support.factories import make_user, system_role
from tests.support.sessions import get_row, system_session


def role_name() -> str:
    return f"Coordinator {secrets.token_hex(3)}"


async def test_create_a_custom_role(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    name = role_name()
    body = {
        "name": name,
        "description": "Runs intakes",
        "permissions": ["candidates:update", "candidates:read"],
    }
    async with api_client(url) as client:
        response = await call(client, "POST", "/roles", world.auth(world.admin), json=body)
        fetched = await client.get(f"/api/v1/roles/{response.json()['id']}", headers=world.auth(world.admin))
    assert response.status_code == 201, response.text
    role = response.json()
    assert (role["name"], role["systemRole"], role["tenantId"]) == (name, False, str(world.tenant.id))
    assert role["permissions"] == ["candidates:read", "candidates:update"]
    assert fetched.json() == role
    row = (await audit_of(url, response))[0]
    await one_audit_row(
        url,
        response,
        action="role.create",
        entity_type="roles",
        entity_id=role["id"],
        actor=world.admin,
        tenant=world.tenant,
        before=None,
        after=row.after,
    )
    assert row.after["permissions"] == ["candidates:read", "candidates:update"]
    assert row.after["tenantId"] == str(world.tenant.id) and row.after["systemRole"] is False


async def test_create_validates_names_and_permissions(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    async with api_client(url) as client:
        taken = (await client.post("/api/v1/roles", headers=headers, json={"name": role_name()})).json()[
            "name"
        ]
        cases = [
            ({"name": "admin"}, 422, "invalid_input"),
            ({"name": "System Admin"}, 422, "invalid_input"),
            ({"name": taken.upper()}, 409, "conflict"),
            ({"name": ""}, 422, "validation_error"),
            ({"name": role_name(), "permissions": ["candidates:fly"]}, 422, "validation_error"),
            ({"name": role_name(), "permissions": "candidates:read"}, 422, "validation_error"),
            # Managing tenants is no tenant's business; the trail is never written through the API.
            ({"name": role_name(), "permissions": ["tenants:create"]}, 422, "invalid_input"),
            ({"name": role_name(), "permissions": ["audit_logs:delete"]}, 422, "validation_error"),
            # Fields the caller may not set.
            ({"name": role_name(), "systemRole": True}, 422, "validation_error"),
            ({"name": role_name(), "tenantId": str(world.other.id)}, 422, "validation_error"),
            ({"name": role_name(), "createdBy": str(world.trainer.id)}, 422, "validation_error"),
        ]
        for body, status, code in cases:
            response = await call(client, "POST", "/roles", headers, json=body)
            problem(response, status, code)
            assert await audit_of(url, response) == [], body
        # The same name in another tenant is no conflict: names are per tenant.
        elsewhere = await client.post(
            "/api/v1/roles", headers=world.auth(world.other_admin), json={"name": taken}
        )
    assert elsewhere.status_code == 201


async def test_a_role_cannot_grant_what_its_creator_lacks(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        designer = Role(
            name=role_name(), tenant_id=world.tenant.id, permissions=["roles:create", "roles:update"]
        )
        session.add(designer)
        await session.flush()
        member = await make_user(session, world.tenant, designer)
        token = await sign_in(session, member, world.tenant)
    headers = {"Authorization": f"Bearer {token}"}
    async with api_client(url) as client:
        escalate = await call(
            client, "POST", "/roles", headers, json={"name": role_name(), "permissions": ["users:delete"]}
        )
        own = await call(
            client, "POST", "/roles", headers, json={"name": role_name(), "permissions": ["roles:create"]}
        )
        widen = await call(
            client,
            "PATCH",
            f"/roles/{designer.id}",
            headers,
            json={"permissions": ["roles:create", "users:update"]},
        )
    assert problem(escalate, 403, "insufficient_rights")["missing"] == ["users:delete"]
    assert own.status_code == 201
    problem(widen, 403, "insufficient_rights")
    assert (await get_row(url, Role, designer.id)).permissions == ["roles:create", "roles:update"]


async def test_update_a_custom_role(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    async with api_client(url) as client:
        created = (
            await client.post(
                "/api/v1/roles", headers=headers, json={"name": role_name(), "permissions": ["courses:read"]}
            )
        ).json()
        path = f"/roles/{created['id']}"
        response = await call(
            client,
            "PATCH",
            path,
            headers,
            json={"permissions": ["courses:read", "courses:update"], "name": created["name"]},
        )
        refused = [
            await call(client, "PATCH", path, headers, json=body)
            for body in (
                {"systemRole": True},
                {"tenantId": str(world.other.id)},
                {"name": None},
                {"name": "Trainer"},
            )
        ]
        cleared = await call(client, "PATCH", path, headers, json={"description": None})
    assert response.json()["permissions"] == ["courses:read", "courses:update"]
    await one_audit_row(
        url,
        response,
        action="role.update",
        entity_type="roles",
        entity_id=created["id"],
        actor=world.admin,
        tenant=world.tenant,
        before={"permissions": ["courses:read"]},
        after={"permissions": ["courses:read", "courses:update"]},
    )
    assert cleared.status_code == 200 and cleared.json()["description"] is None
    for bad in refused:
        assert bad.status_code == 422, bad.text
        assert await audit_of(url, bad) == []
    stored = await get_row(url, Role, created["id"])
    assert (stored.system_role, stored.tenant_id, stored.name) == (False, world.tenant.id, created["name"])


async def test_system_roles_are_read_only(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        trainer = await system_role(session, SystemRole.trainer)
    async with api_client(url) as client:
        read = await client.get(f"/api/v1/roles/{trainer.id}", headers=world.auth(world.admin))
        change = await call(
            client, "PATCH", f"/roles/{trainer.id}", world.auth(world.system_admin), json={"description": "x"}
        )
        delete = await call(client, "DELETE", f"/roles/{trainer.id}", world.auth(world.admin))
    assert read.json()["systemRole"] is True
    assert read.json()["permissions"] == sorted(MATRIX[SystemRole.trainer])
    problem(change, 403, "role_read_only")
    problem(delete, 403, "role_read_only")


async def test_delete_a_custom_role_unless_held(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    async with api_client(url) as client:
        held = (await client.post("/api/v1/roles", headers=headers, json={"name": role_name()})).json()
        unused = (await client.post("/api/v1/roles", headers=headers, json={"name": role_name()})).json()
        await client.put(
            f"/api/v1/users/{world.trainer.id}/membership", headers=headers, json={"roleId": held["id"]}
        )
        in_use = await call(client, "DELETE", f"/roles/{held['id']}", headers)
        response = await call(client, "DELETE", f"/roles/{unused['id']}", headers)
        gone = await client.get(f"/api/v1/roles/{unused['id']}", headers=headers)
    assert problem(in_use, 409, "conflict")["holders"] == 1
    assert await audit_of(url, in_use) == []
    assert response.status_code == 204
    row = (await audit_of(url, response))[0]
    await one_audit_row(
        url,
        response,
        action="role.delete",
        entity_type="roles",
        entity_id=unused["id"],
        actor=world.admin,
        tenant=world.tenant,
        before=row.before,
        after=None,
    )
    assert row.before["name"] == unused["name"]
    problem(gone, 404, "not_found")


async def test_list_shows_global_and_own_roles_only(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    marker = secrets.token_hex(3)
    async with api_client(url) as client:
        own = [
            (await client.post("/api/v1/roles", headers=headers, json={"name": f"R{marker} {n}"})).json()[
                "id"
            ]
            for n in range(3)
        ]
        # A's Admin also holds a custom role of tenant B: it is still not one of A's roles.
        async with system_session(url) as session:
            held_elsewhere = Role(name=f"R{marker} x", tenant_id=world.other.id, permissions=[])
            session.add(held_elsewhere)
            await session.flush()
            session.add(
                UserTenant(user_id=world.admin.id, tenant_id=world.other.id, role_id=held_elsewhere.id)
            )
        foreign = str(held_elsewhere.id)
        pages = await all_pages(client, "/roles", headers, limit=2)
        searched = await client.get(
            "/api/v1/roles", headers=headers, params={"q": f"r{marker}", "sort": "-name"}
        )
        system = await client.get("/api/v1/roles", headers=headers, params={"system": "true", "limit": 100})
        custom = await client.get("/api/v1/roles", headers=headers, params={"system": "false"})
        too_big = await client.get("/api/v1/roles", headers=headers, params={"limit": 1000})
    ids = walk(pages)
    assert len(ids) == len(set(ids)) and set(own) <= set(ids) and foreign not in ids
    assert [r["id"] for r in searched.json()["items"]] == own[::-1]
    names = {r["name"] for r in system.json()["items"]}
    assert {"Admin", "Trainer", "System Admin"} <= names
    assert all(r["tenantId"] is None for r in system.json()["items"])
    assert {r["id"] for r in custom.json()["items"]} == set(own)
    problem(too_big, 422, "validation_error")


async def test_another_tenants_roles_do_not_exist(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        foreign = (
            await client.post(
                "/api/v1/roles", headers=world.auth(world.other_admin), json={"name": role_name()}
            )
        ).json()
        headers = world.auth(world.admin)
        responses = [
            await call(client, "GET", f"/roles/{foreign['id']}", headers),
            await call(client, "PATCH", f"/roles/{foreign['id']}", headers, json={"description": "mine"}),
            await call(client, "DELETE", f"/roles/{foreign['id']}", headers),
        ]
    for response in responses:
        problem(response, 404, "not_found")
        assert await audit_of(url, response) == []
    assert (await get_row(url, Role, foreign["id"])).description is None


async def test_a_trainer_may_not_manage_roles(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.trainer)
    async with system_session(url) as session:
        any_role = (await system_role(session, SystemRole.trainer)).id
    async with api_client(url) as client:
        responses = [
            await call(client, "GET", "/roles", headers),
            await call(client, "GET", f"/roles/{any_role}", headers),
            await call(client, "POST", "/roles", headers, json={"name": role_name()}),
            await call(client, "PATCH", f"/roles/{any_role}", headers, json={"description": "x"}),
            await call(client, "DELETE", f"/roles/{any_role}", headers),
        ]
    for response in responses:
        assert problem(response, 403, "forbidden")["permission"].startswith("roles:")
