"""Agents and brokers: the partners who bring candidates in and place them.

Both kinds share every rule here (`PartnerMixin`); each function takes the model (`Agent`, `Broker`).

- The code is unique per tenant (409). A partner's own login (`userId`) is a member of the tenant
  holding the Agent (for agents) or Broker (for brokers) role, linked to one record at most (409).
- A partner's own login sees only its record (the row rules) and changes only how to reach it
  (`PartnerSelfUpdate`'s fields); anything else it sends is refused with 403 naming the fields.
- Status: `active` -> `suspended` (staff, with a reason: kept with when and by whom) -> `active`
  (reactivate); `active`/`suspended` -> `inactive` (deactivate) -> `active` (reactivate). A status
  change needs the resource's `delete` permission (as a tenant's deactivation needs `tenants:delete`):
  the partner's own login, which may update its record, cannot lift its own suspension.
- A deactivated partner's login loses its access to the tenant: its membership is suspended and its
  sessions here end (users service), so it no longer sees the partner's candidates. Reactivating the
  partner gives the membership back. A suspended partner keeps read access (it may not register).
- Delete only while nothing refers to the partner (candidates, placements, payments, invoices): else
  409 naming what does; the foreign keys refuse it too.
- `ensure_can_register`: the licensing rule the candidates service calls before a partner registers a
  candidate (or a candidate is linked to a partner): the partner is active, holds a licence (a number)
  and the licence has not expired (an expiry of today is still valid). 409 otherwise, one code per
  reason.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.agents.models import Agent, Broker, PartnerMixin, PartnerStatus
from mobility.agents.schemas import PartnerListParams, PartnerSelfUpdate
from mobility.authz.permissions import SystemRole
from mobility.candidates.models import Candidate
from mobility.core import audit
from mobility.core.calendar import today
from mobility.core.errors import Conflict, Forbidden, InvalidInput
from mobility.core.models import utcnow
from mobility.core.pagination import contains, paginate, text_key, time_key
from mobility.core.scope import get_visible, require_scope, tenant_view
from mobility.finance.models import Invoice, Payment
from mobility.placements.models import Placement
from mobility.roles.models import Role
from mobility.users import service as users_service
from mobility.users.models import UserTenant

Partner = Agent | Broker
PartnerModel = type[Agent] | type[Broker]

# The role a partner's own login holds, by kind.
OWN_ROLE: dict[type, SystemRole] = {Agent: SystemRole.agent, Broker: SystemRole.broker}
# What refers to a partner, by the column that does: a partner is deleted only when none does.
REFERRERS = (Candidate, Placement, Payment, Invoice)
SELF_FIELDS = frozenset(PartnerSelfUpdate.model_fields)


def kind(model: PartnerModel) -> str:
    return "agent" if model is Agent else "broker"


class PartnerNotActive(Conflict):
    code, title = "partner_not_active", "The partner is not active"


class PartnerUnlicensed(Conflict):
    code, title = "partner_unlicensed", "The partner holds no valid licence"


class PartnerInUse(Conflict):
    code, title = "partner_in_use", "Records refer to this partner"


class PartnerStatusConflict(Conflict):
    code, title = "partner_status", "Not possible in the partner's status"


class NotYoursToChange(Forbidden):
    code, title = "partner_fields_staff_only", "Only staff change these fields"


def _sort_keys(model: PartnerModel) -> dict[str, Any]:
    return {
        "code": text_key(model.code),
        "name": text_key(model.name),
        "createdAt": time_key(model.created_at),
    }


def is_own_login(session: AsyncSession, model: PartnerModel) -> bool:
    """Whether the caller is a partner's own login of this kind (it sees its own record only)."""
    return require_scope(session).role == OWN_ROLE[model].value


def sees_notes(session: AsyncSession, model: PartnerModel) -> bool:
    """Internal notes are staff's: a partner's own login never sees them."""
    return not is_own_login(session, model)


async def list_partners(
    session: AsyncSession, model: PartnerModel, *, params: PartnerListParams
) -> tuple[list[Partner], str | None]:
    statement = select(model)
    if params.status is not None:
        statement = statement.where(model.status == params.status)
    if params.country is not None:
        statement = statement.where(model.country == params.country)
    day = today()
    if params.licence_expiring_within is not None:
        statement = statement.where(
            model.licence_expiry >= day,
            model.licence_expiry <= day + timedelta(days=params.licence_expiring_within),
        )
    if params.licence_expired is True:
        statement = statement.where(model.licence_expiry < day)
    elif params.licence_expired is False:
        statement = statement.where(or_(model.licence_expiry.is_(None), model.licence_expiry >= day))
    if params.q:
        statement = statement.where(contains(model.code, model.name, text=params.q))
    return await paginate(
        session,
        statement,
        params=params,
        sort_keys=_sort_keys(model),
        default_sort="name",
        id_column=model.id,
    )


async def get_partner(
    session: AsyncSession, model: PartnerModel, partner_id: uuid.UUID, *, field_name: str | None = None
) -> Partner:
    return await get_visible(session, model, partner_id, field_name=field_name)


async def _ensure_code_free(session: AsyncSession, model: PartnerModel, code: str) -> None:
    with tenant_view(session):
        taken = (await session.execute(select(model.id).where(model.code == code).limit(1))).scalar()
    if taken is not None:
        raise Conflict(f"The {kind(model)} code {code!r} is taken in this tenant.", field="code")


async def _check_login(
    session: AsyncSession, model: PartnerModel, user_id: uuid.UUID, ignore: uuid.UUID | None
) -> None:
    """`user_id` is an active member of this tenant holding the partner kind's role, and no other
    partner of this kind is linked to it."""
    role = OWN_ROLE[model]
    with tenant_view(session):
        member = (
            await session.execute(
                select(Role.name)
                .join(UserTenant, UserTenant.role_id == Role.id)
                .where(UserTenant.user_id == user_id, UserTenant.status == "active")
            )
        ).scalar_one_or_none()
        if member is None:
            raise InvalidInput("userId is not an active member of this tenant.", field="userId")
        if member != role.value:
            raise InvalidInput(f"userId must hold the {role.value} role in this tenant.", field="userId")
        linked = select(model.id).where(model.user_id == user_id)
        if ignore is not None:
            linked = linked.where(model.id != ignore)
        if (await session.execute(linked.limit(1))).scalar() is not None:
            raise Conflict(f"This login is linked to another {kind(model)} already.", field="userId")


_CONFLICT_ON_WRITE = "Another partner has this code or login (changed meanwhile)."


async def create_partner(session: AsyncSession, model: PartnerModel, values: dict[str, Any]) -> Partner:
    """A new partner from `values` (PartnerCreate's fields, plain)."""
    require_scope(session)
    await _ensure_code_free(session, model, values["code"])
    if values.get("user_id") is not None:
        await _check_login(session, model, values["user_id"], ignore=None)
    terms = values.pop("payment_terms", None)
    partner = model(**{key: value for key, value in values.items() if value is not None})
    partner.payment_terms = terms or {}
    partner.status = PartnerStatus.active
    session.add(partner)
    await audit.flush_as(session, f"{kind(model)}.create", conflict=_CONFLICT_ON_WRITE)
    return partner


async def update_partner(
    session: AsyncSession, model: PartnerModel, partner_id: uuid.UUID, changes: dict[str, Any]
) -> Partner:
    """Staff change any field of PartnerUpdate; the partner's own login only PartnerSelfUpdate's."""
    partner = await get_partner(session, model, partner_id)
    if is_own_login(session, model):
        beyond = sorted(set(changes) - SELF_FIELDS)
        if beyond:
            names = [_camel(name) for name in beyond]
            raise NotYoursToChange(
                f"A partner changes only its contact details; not: {', '.join(names)}.", fields=names
            )
    if "code" in changes and changes["code"] != partner.code:
        await _ensure_code_free(session, model, changes["code"])
    if changes.get("user_id") is not None and changes["user_id"] != partner.user_id:
        await _check_login(session, model, changes["user_id"], ignore=partner.id)
    number = changes.get("licence_number", partner.licence_number)
    expiry = changes.get("licence_expiry", partner.licence_expiry)
    if expiry is not None and number is None:
        raise InvalidInput("licenceExpiry needs licenceNumber.", field="licenceExpiry")
    if "payment_terms" in changes and changes["payment_terms"] is None:
        changes["payment_terms"] = {}
    for key, value in changes.items():
        if getattr(partner, key) != value:
            setattr(partner, key, value)
    await audit.flush_as(session, f"{kind(model)}.update", conflict=_CONFLICT_ON_WRITE)
    return partner


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def suspend_partner(
    session: AsyncSession, model: PartnerModel, partner_id: uuid.UUID, *, reason: str
) -> Partner:
    scope = require_scope(session)
    partner = await get_partner(session, model, partner_id)
    if partner.status != PartnerStatus.active:
        raise PartnerStatusConflict(
            f"Only an active {kind(model)} can be suspended; this one is {partner.status.value}.",
            partnerStatus=partner.status.value,
        )
    partner.status = PartnerStatus.suspended
    partner.suspension_reason = reason
    partner.suspended_at = utcnow()
    partner.suspended_by = scope.actor_id
    await audit.flush_as(session, f"{kind(model)}.suspend", conflict=_CONFLICT_ON_WRITE)
    return partner


async def deactivate_partner(session: AsyncSession, model: PartnerModel, partner_id: uuid.UUID) -> Partner:
    partner = await get_partner(session, model, partner_id)
    if partner.status == PartnerStatus.inactive:
        raise PartnerStatusConflict(
            f"The {kind(model)} is inactive already.", partnerStatus=partner.status.value
        )
    partner.status = PartnerStatus.inactive
    await audit.flush_as(session, f"{kind(model)}.deactivate", conflict=_CONFLICT_ON_WRITE)
    await _set_login_access(session, partner, allowed=False)
    return partner


async def reactivate_partner(session: AsyncSession, model: PartnerModel, partner_id: uuid.UUID) -> Partner:
    partner = await get_partner(session, model, partner_id)
    if partner.status == PartnerStatus.active:
        raise PartnerStatusConflict(
            f"The {kind(model)} is active already.", partnerStatus=partner.status.value
        )
    was_inactive = partner.status == PartnerStatus.inactive
    partner.status = PartnerStatus.active
    partner.suspension_reason = None
    partner.suspended_at = None
    partner.suspended_by = None
    await audit.flush_as(session, f"{kind(model)}.reactivate", conflict=_CONFLICT_ON_WRITE)
    if was_inactive:
        await _set_login_access(session, partner, allowed=True)
    return partner


async def _set_login_access(session: AsyncSession, partner: PartnerMixin, *, allowed: bool) -> None:
    """The partner's login follows the partner: a membership (still) in this tenant is suspended with
    its sessions here, or reactivated (users service: audited there)."""
    if partner.user_id is None:
        return
    with tenant_view(session):
        member = await session.scalar(select(UserTenant.id).where(UserTenant.user_id == partner.user_id))
    if member is None:
        return
    if allowed:
        await users_service.reactivate(session, partner.user_id)
    else:
        await users_service.suspend(session, partner.user_id)


async def references(session: AsyncSession, model: PartnerModel, partner_id: uuid.UUID) -> dict[str, int]:
    """How many rows of each table refer to the partner (tables with none left out)."""
    column = "agent_id" if model is Agent else "broker_id"
    found: dict[str, int] = {}
    with tenant_view(session):
        for referrer in REFERRERS:
            count = (
                await session.execute(
                    select(func.count()).select_from(referrer).where(getattr(referrer, column) == partner_id)
                )
            ).scalar_one()
            if count:
                found[referrer.__tablename__] = count
    return found


async def delete_partner(session: AsyncSession, model: PartnerModel, partner_id: uuid.UUID) -> None:
    partner = await get_partner(session, model, partner_id)
    found = await references(session, model, partner_id)
    if found:
        listed = ", ".join(f"{count} {table}" for table, count in found.items())
        raise PartnerInUse(f"{listed} refer to this {kind(model)}; deactivate it instead.", references=found)
    await session.delete(partner)
    await audit.flush_as(
        session,
        f"{kind(model)}.delete",
        conflict=f"Records refer to this {kind(model)}; deactivate it instead.",
    )


def registration_refusal(partner: PartnerMixin, model: PartnerModel) -> Conflict | None:
    """Why `partner` may not register a candidate now, or None when it may."""
    what = f"The {kind(model)} {partner.code}"
    if partner.status != PartnerStatus.active:
        return PartnerNotActive(
            f"{what} is {partner.status.value} and cannot register candidates.",
            partner=kind(model),
            partnerStatus=partner.status.value,
        )
    if partner.licence_number is None:
        return PartnerUnlicensed(
            f"{what} has no licence on record and cannot register candidates.", partner=kind(model)
        )
    if partner.licence_expiry is not None and partner.licence_expiry < today():
        return PartnerUnlicensed(
            f"{what}'s licence expired on {partner.licence_expiry.isoformat()}; it cannot register candidates.",
            partner=kind(model),
            licenceExpiry=partner.licence_expiry.isoformat(),
        )
    return None


async def ensure_can_register(
    session: AsyncSession, *, agent_id: uuid.UUID | None = None, broker_id: uuid.UUID | None = None
) -> None:
    """The licensing rule: each partner named may register new candidates now, else 409
    (`partner_not_active`: suspended or inactive; `partner_unlicensed`: no licence or an expired one).
    A partner the caller cannot see (another tenant's, or not theirs) is invalid input on its field
    (`agentId`, `brokerId`), as any reference in a body."""
    for model, partner_id, field in ((Agent, agent_id, "agentId"), (Broker, broker_id, "brokerId")):
        if partner_id is None:
            continue
        partner = await get_partner(session, model, partner_id, field_name=field)
        refusal = registration_refusal(partner, model)
        if refusal is not None:
            raise refusal
