"""Settings API: every known key with its value and default; set one at a time, validated."""

from __future__ import annotations

from mobility.settings.service import KNOWN
from tests.support.admin_api import audit_of, call, make_world, one_audit_row
from tests.support.app import api_client, problem

KEY = "placements.passportValidityMonths"


async def test_list_shows_every_known_key_with_its_default(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    async with api_client(migrated_database_url) as client:
        response = await client.get("/api/v1/settings", headers=world.auth(world.admin))
    assert response.status_code == 200
    listed = {item["key"]: item for item in response.json()}
    assert set(listed) == set(KNOWN)
    assert listed[KEY] == {
        "key": KEY,
        "value": 6,
        "default": 6,
        "description": KNOWN[KEY].description,
        "isSet": False,
    }
    assert listed["vetting.requiredChecks"]["value"] == ["identity", "police_clearance", "medical"]


async def test_set_a_value_then_change_it(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    async with api_client(url) as client:
        first = await call(client, "PUT", f"/settings/{KEY}", headers, json={"value": 12})
        second = await call(client, "PUT", f"/settings/{KEY}", headers, json={"value": "9"})
        listed = await client.get("/api/v1/settings", headers=headers)
        elsewhere = await client.get("/api/v1/settings", headers=world.auth(world.other_admin))
    assert first.json() == {**first.json(), "value": 12, "default": 6, "isSet": True}
    assert second.json()["value"] == 9
    assert next(i for i in listed.json() if i["key"] == KEY)["value"] == 9
    # Another tenant's settings are its own.
    assert next(i for i in elsewhere.json() if i["key"] == KEY)["isSet"] is False

    created = (await audit_of(url, first))[0]
    await one_audit_row(
        url,
        first,
        action="setting.update",
        entity_type="settings",
        entity_id=created.entity_id,
        actor=world.admin,
        tenant=world.tenant,
        before=None,
        after=created.after,
    )
    assert (created.after["key"], created.after["value"], created.after["tenantId"]) == (
        KEY,
        12,
        str(world.tenant.id),
    )
    await one_audit_row(
        url,
        second,
        action="setting.update",
        entity_type="settings",
        entity_id=created.entity_id,
        actor=world.admin,
        tenant=world.tenant,
        before={"value": 12},
        after={"value": 9},
    )


async def test_invalid_values_and_unknown_keys_are_refused(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    async with api_client(url) as client:
        cases = [
            (
                await call(client, "PUT", f"/settings/{KEY}", headers, json={"value": "six"}),
                422,
                "invalid_input",
            ),
            (
                await call(client, "PUT", f"/settings/{KEY}", headers, json={"value": -1}),
                422,
                "invalid_input",
            ),
            (
                await call(client, "PUT", f"/settings/{KEY}", headers, json={"value": None}),
                422,
                "invalid_input",
            ),
            (
                await call(
                    client, "PUT", "/settings/vetting.requiredChecks", headers, json={"value": ["astrology"]}
                ),
                422,
                "invalid_input",
            ),
            (await call(client, "PUT", f"/settings/{KEY}", headers, json={}), 422, "validation_error"),
            (
                await call(
                    client,
                    "PUT",
                    f"/settings/{KEY}",
                    headers,
                    json={"value": 3, "tenantId": str(world.other.id)},
                ),
                422,
                "validation_error",
            ),
            (
                await call(client, "PUT", "/settings/theme.colour", headers, json={"value": "red"}),
                404,
                "not_found",
            ),
        ]
    for response, status, code in cases:
        problem(response, status, code)
        assert await audit_of(url, response) == []


async def test_a_trainer_may_not_read_or_change_settings(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    headers = world.auth(world.trainer)
    async with api_client(migrated_database_url) as client:
        read = await client.get("/api/v1/settings", headers=headers)
        write = await call(client, "PUT", f"/settings/{KEY}", headers, json={"value": 3})
    assert problem(read, 403, "forbidden")["permission"] == "settings:read"
    assert problem(write, 403, "forbidden")["permission"] == "settings:update"
    assert await audit_of(migrated_database_url, write) == []
