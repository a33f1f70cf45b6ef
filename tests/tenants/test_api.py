"""Tenants API: System Admins manage tenants; an Admin reads only their own; never deleted."""

from __future__ import annotations

import secrets
import uuid

from mobility.tenants.models import Tenant
from tests.support.admin_api import all_pages, audit_of, call, make_world, one_audit_row, walk
from tests.support.app import api_client, problem
from tests.support.sessions import get_row


def new_code() -> str:
    return f"N-{secrets.token_hex(3).upper()}"


async def test_system_admin_creates_a_tenant_recorded_once(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    code = new_code()
    body = {
        "name": f"Harbour Institute {code}",
        "code": code,
        "branding": {"logoUrl": "https://cdn.example.org/logo.png", "colorHex": "#0a3d62"},
        "contactInfo": {"email": "office@harbour.example", "phone": "+679 331 2000", "address": "Suva"},
    }
    async with api_client(migrated_database_url) as client:
        response = await call(client, "POST", "/tenants", world.auth(world.system_admin), json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        fetched = await client.get(f"/api/v1/tenants/{created['id']}", headers=world.auth(world.system_admin))
    assert created["code"] == code and created["isActive"] is True
    assert created["branding"] == {"logoUrl": "https://cdn.example.org/logo.png", "colorHex": "#0A3D62"}
    assert created["contactInfo"]["email"] == "office@harbour.example"
    assert fetched.json() == created
    row = (await audit_of(migrated_database_url, response))[0]
    await one_audit_row(
        migrated_database_url,
        response,
        action="tenant.create",
        entity_type="tenants",
        entity_id=created["id"],
        actor=world.system_admin,
        # A tenant's records belong to its own trail, not to the one of the tenant the actor acts in.
        tenant=await get_row(migrated_database_url, Tenant, uuid.UUID(created["id"])),
        before=None,
        after=row.after,
    )
    assert row.after["code"] == code and row.after["isActive"] is True
    # The Admin of the tenant the System Admin acted in reads nothing of it in their trail.
    async with api_client(migrated_database_url) as client:
        trail = await client.get("/api/v1/audit-logs?entityType=tenants", headers=world.auth(world.admin))
    assert trail.status_code == 200
    assert trail.json()["items"] and created["id"] not in {item["entityId"] for item in trail.json()["items"]}


async def test_create_validates_and_refuses_duplicates(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    headers = world.auth(world.system_admin)
    async with api_client(migrated_database_url) as client:
        bad = [
            {"name": "x", "code": "lower-case"},
            {"name": "x", "code": "-DASH"},
            {"name": "", "code": new_code()},
            {"name": "x", "code": new_code(), "branding": {"logoUrl": "http://plain.example/logo.png"}},
            {"name": "x", "code": new_code(), "branding": {"colorHex": "red"}},
            {"name": "x", "code": new_code(), "branding": {"font": "Comic"}},
            {"name": "x", "code": new_code(), "contactInfo": {"email": "not-an-address"}},
        ]
        for body in bad:
            response = await call(client, "POST", "/tenants", headers, json=body)
            problem(response, 422, "validation_error")
            assert await audit_of(migrated_database_url, response) == []
        duplicate_code = await call(
            client,
            "POST",
            "/tenants",
            headers,
            json={"name": f"Other {new_code()}", "code": world.other.code},
        )
        duplicate_name = await call(
            client, "POST", "/tenants", headers, json={"name": world.other.name.lower(), "code": new_code()}
        )
    assert problem(duplicate_code, 409, "conflict")["field"] == "code"
    assert problem(duplicate_name, 409, "conflict")["field"] == "name"
    assert await audit_of(migrated_database_url, duplicate_code) == []


async def test_protected_fields_are_refused(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    headers = world.auth(world.system_admin)
    async with api_client(migrated_database_url) as client:
        for extra in ({"isActive": False}, {"createdBy": str(world.admin.id)}, {"id": str(world.other.id)}):
            response = await call(
                client,
                "POST",
                "/tenants",
                headers,
                json={"name": f"T {new_code()}", "code": new_code(), **extra},
            )
            problem(response, 422, "validation_error")
        for extra in ({"code": "NEW-CODE"}, {"isActive": False}, {"tenantId": str(world.tenant.id)}):
            response = await call(client, "PATCH", f"/tenants/{world.other.id}", headers, json=extra)
            problem(response, 422, "validation_error")
            assert await audit_of(migrated_database_url, response) == []
        null_name = await call(client, "PATCH", f"/tenants/{world.other.id}", headers, json={"name": None})
    problem(null_name, 422, "validation_error")
    unchanged = await get_row(migrated_database_url, Tenant, world.other.id)
    assert (unchanged.code, unchanged.name, unchanged.is_active) == (world.other.code, world.other.name, True)


async def test_update_records_only_the_changed_fields(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    async with api_client(migrated_database_url) as client:
        response = await call(
            client,
            "PATCH",
            f"/tenants/{world.other.id}",
            world.auth(world.system_admin),
            json={"name": world.other.name, "contactInfo": {"website": "https://other.example"}},
        )
    assert response.status_code == 200, response.text
    assert response.json()["contactInfo"] == {"website": "https://other.example/"}
    await one_audit_row(
        migrated_database_url,
        response,
        action="tenant.update",
        entity_type="tenants",
        entity_id=world.other.id,
        actor=world.system_admin,
        tenant=world.other,
        before={"contactInfo": {}},
        after={"contactInfo": {"website": "https://other.example/"}},
    )


async def test_deactivate_and_activate(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    headers = world.auth(world.system_admin)
    async with api_client(migrated_database_url) as client:
        off = await call(client, "POST", f"/tenants/{world.other.id}/deactivate", headers)
        again = await call(client, "POST", f"/tenants/{world.other.id}/deactivate", headers)
        # A deactivated tenant's members can no longer act in it.
        locked_out = await client.get("/api/v1/me", headers=world.auth(world.other_admin))
        on = await call(client, "POST", f"/tenants/{world.other.id}/activate", headers)
    assert off.json()["isActive"] is False and again.json()["isActive"] is False
    assert locked_out.status_code == 401
    assert on.json()["isActive"] is True
    for response, action, before in ((off, "tenant.deactivate", True), (on, "tenant.activate", False)):
        await one_audit_row(
            migrated_database_url,
            response,
            action=action,
            entity_type="tenants",
            entity_id=world.other.id,
            actor=world.system_admin,
            tenant=world.other,
            before={"isActive": before},
            after={"isActive": not before},
        )
    assert await audit_of(migrated_database_url, again) == []


async def test_admin_reads_only_their_own_tenant(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    headers = world.auth(world.admin)
    async with api_client(migrated_database_url) as client:
        listed = await client.get("/api/v1/tenants", headers=headers)
        own = await client.get(f"/api/v1/tenants/{world.tenant.id}", headers=headers)
        foreign = await client.get(f"/api/v1/tenants/{world.other.id}", headers=headers)
        writes = [
            await call(client, "POST", "/tenants", headers, json={"name": "x", "code": new_code()}),
            await call(client, "PATCH", f"/tenants/{world.tenant.id}", headers, json={"name": "Mine now"}),
            await call(client, "POST", f"/tenants/{world.tenant.id}/deactivate", headers),
            await call(client, "POST", f"/tenants/{world.tenant.id}/activate", headers),
        ]
        trainer = await client.get("/api/v1/tenants", headers=world.auth(world.trainer))
    assert [t["id"] for t in listed.json()["items"]] == [str(world.tenant.id)]
    assert own.status_code == 200
    problem(foreign, 404, "not_found")
    for response in writes:
        problem(response, 403, "forbidden")
        assert await audit_of(migrated_database_url, response) == []
    problem(trainer, 403, "forbidden")


async def test_list_filters_sorts_and_pages(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    headers = world.auth(world.system_admin)
    marker = secrets.token_hex(3).upper()
    async with api_client(migrated_database_url) as client:
        made = []
        for index in range(5):
            response = await client.post(
                "/api/v1/tenants",
                headers=headers,
                json={"name": f"Paging {marker} {index}", "code": f"P{marker}-{index}"},
            )
            made.append(response.json()["id"])
        await client.post(f"/api/v1/tenants/{made[0]}/deactivate", headers=headers)
        pages = await all_pages(client, "/tenants", headers, q=marker.lower(), limit=2)
        descending = await client.get(
            "/api/v1/tenants", headers=headers, params={"q": marker, "sort": "-code"}
        )
        inactive = await client.get(
            "/api/v1/tenants", headers=headers, params={"q": marker, "active": "false"}
        )
        too_big = await client.get("/api/v1/tenants", headers=headers, params={"limit": 101})
        bad_sort = await client.get("/api/v1/tenants", headers=headers, params={"sort": "isActive"})
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert walk(pages) == made
    assert [t["id"] for t in descending.json()["items"]] == made[::-1]
    assert [t["id"] for t in inactive.json()["items"]] == [made[0]]
    problem(too_big, 422, "validation_error")
    # The sort keys are enumerated in the OpenAPI document, and checked as any other parameter.
    assert problem(bad_sort, 422, "validation_error")["errors"][0]["loc"] == ["query", "sort"]


async def test_unknown_tenant_is_404(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    headers = world.auth(world.system_admin)
    async with api_client(migrated_database_url) as client:
        missing = await client.get(f"/api/v1/tenants/{world.admin.id}", headers=headers)
        not_an_id = await client.get("/api/v1/tenants/nope", headers=headers)
    problem(missing, 404, "not_found")
    problem(not_an_id, 422, "validation_error")
