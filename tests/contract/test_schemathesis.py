"""Schemathesis over the whole API, in process (ASGI), on PostgreSQL: every operation of the OpenAPI
document, found from the document itself, with valid and invalid data, then stateful sequences
(create, read, change, delete) along the links schemathesis infers. Zero failures of:

- not_a_server_error: no 5xx;
- status_code_conformance, content_type_conformance, response_schema_conformance: every answer is
  one the document describes, in the documented media type and shape;
- negative_data_rejection: input the document rules out is refused (4xx);
- ignored_auth: an operation that declares authentication refuses a request without it;
- use_after_free, ensure_resource_availability: a deleted object is gone, a created one is there.

The run acts as a System Admin with a bearer token. Each case gets a fresh session (the run may log
out, or end its own sessions, which it is allowed to), and the acting tenant and account are made
active again first (the run may deactivate them, which it is also allowed to): these are the
fixture's upkeep, not shortcuts past a rule. Bounded by example counts sized for about a minute.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import timedelta

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)
from sqlalchemy import create_engine, insert, update

from mobility.auth.credentials import hash_token
from mobility.auth.models import Session
from mobility.core.config import Settings
from mobility.core.models import utcnow
from mobility.main import create_app
from mobility.tenants.models import Tenant
from mobility.users.models import User
from tests.support.admin_api import World
from tests.support.databases import app_role_url, to_sync

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    use_after_free,
    ensure_resource_availability,
]
# Per operation and generation mode; the stateful phase below adds sequences across operations.
EXAMPLES = 8
STATEFUL = hypothesis.settings(
    max_examples=10,
    stateful_step_count=6,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    deadline=None,
    # Random, not derandomized: which steps may follow depends on the database's state, so replaying a
    # known prefix can draw differently (hypothesis then reports a "flaky strategy", not a finding).
    derandomize=False,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fresh_session_auth(world: World) -> type:
    """An auth provider (schemathesis makes it): a new session of the acting user for every case."""
    # A synchronous engine: schemathesis calls `get` synchronously, where no async session can run.
    engine = create_engine(to_sync(world.url))

    class FreshSession:
        def get(self, case, context) -> str:
            token = secrets.token_urlsafe(32)
            now = utcnow()
            with engine.begin() as connection:
                connection.execute(update(Tenant).where(Tenant.id == world.tenant.id).values(is_active=True))
                connection.execute(
                    update(User).where(User.id == world.system_admin.id).values(status="active")
                )
                connection.execute(
                    insert(Session).values(
                        user_id=world.system_admin.id,
                        tenant_id=world.tenant.id,
                        token=hash_token(token),
                        expires_at=now + timedelta(hours=1),
                        last_seen_at=now,
                        created_at=now,
                    )
                )
            return token

        def set(self, case, data: str, context) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return FreshSession


@pytest.fixture
def api_schema(contract_world: World):
    settings = Settings(database_url=contract_world.url, app_database_url=app_role_url(contract_world.url))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    schema.auth(refresh_interval=None)(fresh_session_auth(contract_world))
    return schema


def _operations(schema) -> list:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30, "the OpenAPI document lists too few operations: is discovery broken?"
    return operations


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_every_operation_conforms(api_schema, mode) -> None:
    failures = []
    answered: dict[int, int] = {}  # by class of status: 2 (2xx), 4 (4xx)
    for operation in _operations(api_schema):

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode, auth_storage=api_schema.auth))
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def conforms(case) -> None:
            response = case.call_and_validate(checks=CHECKS)
            answered[response.status_code // 100] = answered.get(response.status_code // 100, 0) + 1

        try:
            conforms()
        except hypothesis.errors.Unsatisfiable:
            continue  # nothing to make invalid (an operation without inputs)
        except Exception as exc:  # every operation is run; all failures are reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # The run reached the operations' logic, not only their validation and authentication.
    assert answered.get(2 if mode is schemathesis.GenerationMode.POSITIVE else 4, 0) > 50, answered


def test_stateful_sequences_conform(api_schema) -> None:
    failures: list[str] = []
    calls: list[str] = []

    class Checked(api_schema.as_state_machine()):  # type: ignore[misc]
        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            calls.append(case.operation.label)
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            except Exception as exc:
                failures.append(f"{case.operation.label}: {exc}")
                raise

    # A replay may draw differently because the database changed in between (see STATEFUL); as in
    # schemathesis's own runner, what counts is the failures recorded as they happened.
    with contextlib.suppress(hypothesis.errors.Flaky):
        Checked.run(settings=STATEFUL)
    assert not failures, "\n\n".join(failures)
    assert len(set(calls)) > 10, sorted(set(calls))
