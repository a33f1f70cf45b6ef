"""The reminder jobs' tests (training, vetting, placements): the people a reminder may go to, and what
the jobs queued for them.

`make_people` makes a tenant with an active Admin, a suspended Admin (never reminded), an agent and a
broker with logins, a candidate login, and a second tenant with an Admin of its own (never reminded of
the first tenant's things). `queued` reads back what was queued in a tenant, by the reminder's dedupe
key (without the channel and recipient the outbox adds): {key: {(recipient, channel), ...}}.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from mobility.agents.models import Agent, Broker
from mobility.authz.permissions import SystemRole
from mobility.notifications.models import Notification
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from tests.support.factories import Member, make_agent, make_broker, make_tenant, make_user
from tests.support.sessions import system_session

CHANNELS = ("in_app", "email")


@dataclass
class People:
    tenant: Tenant
    admin: Member
    suspended_admin: Member
    agent_login: Member
    agent: Agent
    broker_login: Member
    broker: Broker
    candidate_login: Member
    other_tenant: Tenant
    other_admin: Member


async def make_people(session, **tenant_values: Any) -> People:
    tenant = await make_tenant(session, **tenant_values)
    agent_login = await make_user(session, tenant, SystemRole.agent)
    broker_login = await make_user(session, tenant, SystemRole.broker)
    other_tenant = await make_tenant(session)
    return People(
        tenant=tenant,
        admin=await make_user(session, tenant, SystemRole.admin),
        suspended_admin=await make_user(session, tenant, SystemRole.admin, status="suspended"),
        agent_login=agent_login,
        agent=await make_agent(session, tenant, agent_login.user),
        broker_login=broker_login,
        broker=await make_broker(session, tenant, broker_login.user),
        candidate_login=await make_user(session, tenant, SystemRole.candidate),
        other_tenant=other_tenant,
        other_admin=await make_user(session, other_tenant, SystemRole.admin),
    )


def set_setting(session, tenant: Tenant, key: str, value: Any) -> None:
    session.add(Setting(tenant_id=tenant.id, key=key, value=value))


def to_each(*people: Member | uuid.UUID) -> set[tuple[uuid.UUID, str]]:
    """A reminder in-app and by e-mail to each of `people`."""
    ids = [p if isinstance(p, uuid.UUID) else p.id for p in people]
    return {(user_id, channel) for user_id in ids for channel in CHANNELS}


async def notifications_in(url: str, *tenants: Tenant, template: str | None = None) -> list[Notification]:
    async with system_session(url) as session:
        statement = select(Notification).where(Notification.tenant_id.in_([t.id for t in tenants]))
        if template is not None:
            statement = statement.where(Notification.template == template)
        return list((await session.execute(statement)).scalars())


async def queued(url: str, tenant: Tenant, template: str) -> dict[str, set[tuple[uuid.UUID, str]]]:
    found: dict[str, set[tuple[uuid.UUID, str]]] = {}
    for row in await notifications_in(url, tenant, template=template):
        found.setdefault(row.dedupe_key.split("|")[0], set()).add((row.recipient_id, row.channel.value))
    return found
