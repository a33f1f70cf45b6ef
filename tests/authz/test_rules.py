"""STYLE rule 17: row rules fail closed by declaration.

Every row-filtered model declares its rule for the roles that can see it (`TENANT_WIDE` where the
whole tenant is meant); a tenant-scoped model without one shows its rows to the tenant's
administrators only. A new table fails here until its author writes down who sees its rows."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from mobility.authz import rules
from mobility.authz.permissions import SystemRole
from mobility.core.scope import Scope, tenant_scoped
from mobility.models import Base


def tenant_scoped_models() -> list[type]:
    return sorted(
        (m.class_ for m in Base.registry.mappers if tenant_scoped(m.class_)), key=lambda c: c.__name__
    )


def test_every_tenant_scoped_model_declares_its_rule() -> None:
    missing = [cls.__name__ for cls in tenant_scoped_models() if not rules.declared(cls)]
    assert not missing, (
        "Tenant-scoped models without a row rule in mobility/authz/rules.py `_RULES` (declare who sees "
        "their rows, `TENANT_WIDE` if the whole tenant): " + ", ".join(missing)
    )


@pytest.mark.parametrize("role", [role.value for role in SystemRole])
def test_an_undeclared_tenant_scoped_model_is_seen_by_administrators_only(role: str, monkeypatch) -> None:
    from mobility.settings.models import Setting

    monkeypatch.delitem(rules._RULES, Setting)
    scope = Scope(
        tenant_id=uuid.uuid4(),
        actor_id=uuid.uuid4(),
        role=role,
        is_system_admin=role == SystemRole.system_admin,
    )
    clause = rules.ROW_RULES.row_filter(Setting, scope)
    sql = str(select(Setting.id).where(clause).compile(compile_kwargs={"literal_binds": True}))
    # The tenant's rows for its administrators; nothing at all for anyone else.
    if role in (SystemRole.system_admin, SystemRole.admin):
        assert '"tenantId" =' in sql and "false" not in sql.lower(), sql
    else:
        assert "false" in sql.lower(), sql
