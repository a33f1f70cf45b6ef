"""Fixtures of the row-level security tests (PostgreSQL only); their helpers: tests/rls/support.py.

`tenants`: two tenants with a row of their own in every table that has a `tenantId` column.
"""

from __future__ import annotations

import pytest

from tests.rls.support import TwoTenants, make_two_tenants


@pytest.fixture(scope="session")
async def tenants(migrated_database_url: str) -> TwoTenants:
    """Shared by every test of the run: read it, never commit into it (tests counting what a tenant
    sees would depend on which tests ran before). A test that commits rows takes `own_tenants`."""
    return await make_two_tenants(migrated_database_url)


@pytest.fixture
async def own_tenants(migrated_database_url: str) -> TwoTenants:
    """Two tenants of the test's own, for tests that commit users, memberships or sessions into them."""
    return await make_two_tenants(migrated_database_url)
