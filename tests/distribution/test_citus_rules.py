"""The migrated schema could be distributed by Citus as mobility.distribution places its tables.

Citus is not installable here: tests/distribution/citus_rules.py applies its rules to the PostgreSQL
catalogue that `alembic upgrade head` built (not to the models: what really exists), whatever tables
are added later. The tests below then break each rule once, on tables made inside a transaction that
is rolled back, and see it reported: a checker that reports nothing proves nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from mobility.distribution import BEFORE_CITUS, TABLES, Placement, tables_of
from tests.distribution.citus_rules import DISTRIBUTED, LOCAL, REFERENCE, schema_tables, violations
from tests.support.databases import libpq_url

pytestmark = pytest.mark.postgres_only

PLACED = {name: table.placement for name, table in TABLES.items()}


@pytest.fixture
def catalogue(migrated_database_url: str) -> Iterator[psycopg.Connection]:
    """The migrated database, as its owner, in a transaction rolled back at the end."""
    with psycopg.connect(libpq_url(migrated_database_url)) as connection:
        try:
            yield connection
        finally:
            connection.rollback()


def test_the_migrated_schema_follows_citus_rules(catalogue) -> None:
    problems = violations(catalogue, PLACED)
    assert not problems, "the schema cannot be distributed as mobility.distribution says:\n" + "\n".join(
        problems
    )


def test_the_placement_is_the_one_the_issue_and_the_plan_name(catalogue) -> None:
    """docs/scaling.md's promise, checked on the placement itself: the tenant-scoped tables (the 18
    of 0015 and the 3 of 0016) are distributed; tenants, roles and the global keys are reference tables; sessions and login
    throttles stay on the coordinator."""
    distributed = set(tables_of(Placement.DISTRIBUTED))
    assert distributed == {
        "agents",
        "brokers",
        "candidates",
        "candidate_documents",
        "candidate_reference_counters",
        "courses",
        "enrollments",
        "attendance_records",
        "assessments",
        "certificates",
        "vetting_records",
        "placements",
        "payments",
        "invoices",
        "notifications",
        "settings",
        "audit_logs",
        "user_tenants",
        "user_invitations",
        "notification_preferences",
        "webhook_endpoints",
        "webhook_deliveries",
    }
    assert {"tenants", "roles", "certificate_codes", "invitation_tokens"} <= set(
        tables_of(Placement.REFERENCE)
    )
    assert {"sessions", "login_throttles", "alembic_version"} <= set(tables_of(Placement.LOCAL))
    # Every table with a tenant of its own (a NOT NULL tenantId) that is not a global key is distributed.
    owned = {
        name
        for (name,) in catalogue.execute(
            """
            SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
               AND a.attname = 'tenantId' AND a.attnotnull AND NOT a.attisdropped
            """
        ).fetchall()
    }
    assert owned - distributed == {"certificate_codes", "invitation_tokens"}
    assert all(TABLES[name].why for name in TABLES)
    assert set(BEFORE_CITUS) <= set(TABLES)


# --- each rule, broken once ---------------------------------------------------------------------------


def _probe(catalogue: psycopg.Connection, *statements: str) -> None:
    for statement in statements:
        catalogue.execute(statement)


PROBE = 'CREATE TABLE probe_items (id uuid NOT NULL, "tenantId" uuid NOT NULL, code text NOT NULL, {extra})'


def _broken(catalogue, placed: dict[str, Placement], *statements: str) -> list[str]:
    _probe(catalogue, *statements)
    return violations(catalogue, {**PLACED, **placed})


def test_a_new_tenant_table_with_a_unique_key_on_another_column_alone_fails(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_items": DISTRIBUTED},
        PROBE.format(extra='PRIMARY KEY ("tenantId", id), CONSTRAINT probe_items_code_key UNIQUE (code)'),
    )
    assert problems == ["probe_items: unique key probe_items_code_key on (code) does not include tenantId"]


def test_a_primary_key_without_the_tenant_fails_and_with_it_passes(catalogue) -> None:
    assert _broken(catalogue, {"probe_items": DISTRIBUTED}, PROBE.format(extra="PRIMARY KEY (id)")) == [
        "probe_items: unique key probe_items_pkey on (id) does not include tenantId"
    ]
    catalogue.rollback()
    assert (
        _broken(catalogue, {"probe_items": DISTRIBUTED}, PROBE.format(extra='PRIMARY KEY (id, "tenantId")'))
        == []
    )


def test_unique_indexes_count_expression_and_partial_ones_included(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_items": DISTRIBUTED},
        PROBE.format(extra='PRIMARY KEY ("tenantId", id)'),
        "CREATE UNIQUE INDEX probe_lower ON probe_items (lower(code))",
        "CREATE UNIQUE INDEX probe_partial ON probe_items (code) WHERE code <> ''",
        'CREATE UNIQUE INDEX probe_fine ON probe_items ("tenantId", lower(code))',
        # An INCLUDE column is not a key: uniqueness is over (code) alone.
        'CREATE UNIQUE INDEX probe_included ON probe_items (code) INCLUDE ("tenantId")',
    )
    assert problems == [
        "probe_items: unique key probe_included on (code) does not include tenantId",
        "probe_items: unique key probe_lower on (<expression>) does not include tenantId",
        "probe_items: unique key probe_partial on (code) does not include tenantId",
    ]


def test_an_exclusion_constraint_needs_the_tenant_with_equality(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_items": DISTRIBUTED},
        PROBE.format(extra='PRIMARY KEY ("tenantId", id)'),
        "ALTER TABLE probe_items ADD CONSTRAINT probe_code_excl EXCLUDE USING btree (code WITH =)",
        'ALTER TABLE probe_items ADD CONSTRAINT probe_fine_excl EXCLUDE USING btree ("tenantId" WITH =, code WITH =)',
    )
    assert problems == ["probe_items: exclusion constraint probe_code_excl does not include tenantId WITH ="]


def test_the_distribution_column_must_be_there_uuid_and_not_null_with_a_primary_key(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_a": DISTRIBUTED, "probe_b": DISTRIBUTED, "probe_c": DISTRIBUTED},
        "CREATE TABLE probe_a (id uuid PRIMARY KEY)",
        'CREATE TABLE probe_b (id uuid, "tenantId" uuid, PRIMARY KEY (id))',
        'CREATE TABLE probe_c (id uuid, "tenantId" text NOT NULL)',
    )
    assert problems == [
        "probe_a: distributed, but has no tenantId column",
        "probe_a: unique key probe_a_pkey on (id) does not include tenantId",
        "probe_b: tenantId may be NULL (Citus refuses such a row)",
        "probe_b: unique key probe_b_pkey on (id) does not include tenantId",
        "probe_c: tenantId is text, not uuid (co-location needs one type)",
        "probe_c: distributed, but has no primary key (shard moves need one)",
    ]


def test_an_unclassified_table_and_a_stale_classification_fail(catalogue) -> None:
    _probe(catalogue, "CREATE TABLE probe_unplaced (id uuid PRIMARY KEY)")
    problems = violations(catalogue, {**PLACED, "probe_gone": LOCAL})
    assert problems == [
        "probe_unplaced: not classified: say in mobility/distribution.py whether it is distributed, "
        "reference or local",
        "probe_gone: classified in mobility/distribution.py but the database has no such table",
    ]
    # The classification covers exactly the schema, as it is.
    catalogue.rollback()
    assert schema_tables(catalogue) == set(TABLES)


def test_foreign_keys_between_distributed_tables_carry_the_tenant_on_both_sides(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_items": DISTRIBUTED, "probe_parts": DISTRIBUTED},
        PROBE.format(extra='PRIMARY KEY ("tenantId", id), UNIQUE (id, "tenantId")'),
        'CREATE TABLE probe_parts (id uuid, "tenantId" uuid NOT NULL, "itemId" uuid, "otherTenant" uuid,'
        ' PRIMARY KEY ("tenantId", id),'
        ' CONSTRAINT probe_same FOREIGN KEY ("tenantId", "itemId") REFERENCES probe_items ("tenantId", id),'
        # The tenant on both sides, but not at the same position: tenantId -> id.
        ' CONSTRAINT probe_crossed FOREIGN KEY ("tenantId", "itemId") REFERENCES probe_items (id, "tenantId"),'
        ' CONSTRAINT probe_other FOREIGN KEY ("otherTenant", "itemId") REFERENCES probe_items ("tenantId", id))',
    )
    assert problems == [
        "probe_parts.probe_crossed (tenantId, itemId) -> probe_items (id, tenantId): between distributed "
        "tables without tenantId on both sides, at the same position",
        "probe_parts.probe_other (otherTenant, itemId) -> probe_items (tenantId, id): between distributed "
        "tables without tenantId on both sides, at the same position",
    ]


def test_nothing_refers_from_reference_or_local_tables_to_distributed_ones(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_lookup": REFERENCE, "probe_cache": LOCAL, "probe_items": DISTRIBUTED},
        PROBE.format(extra='PRIMARY KEY ("tenantId", id)'),
        'CREATE TABLE probe_lookup (id uuid PRIMARY KEY, "tenantId" uuid, "itemId" uuid,'
        ' FOREIGN KEY ("tenantId", "itemId") REFERENCES probe_items ("tenantId", id))',
        'CREATE TABLE probe_cache (id uuid PRIMARY KEY, "tenantId" uuid, "itemId" uuid,'
        ' FOREIGN KEY ("tenantId", "itemId") REFERENCES probe_items ("tenantId", id))',
        # The allowed direction: a distributed table refers to a reference table.
        'ALTER TABLE probe_items ADD COLUMN "lookupId" uuid REFERENCES probe_lookup (id)',
    )
    assert problems == [
        "probe_cache.probe_cache_tenantId_itemId_fkey (tenantId, itemId) -> probe_items (tenantId, id): "
        "a local -> distributed foreign key (only distributed tables may refer to them)",
        "probe_lookup.probe_lookup_tenantId_itemId_fkey (tenantId, itemId) -> probe_items (tenantId, id): "
        "a reference -> distributed foreign key (only distributed tables may refer to them)",
    ]


def test_a_distributed_table_refers_to_no_local_table(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_items": DISTRIBUTED},
        PROBE.format(extra='PRIMARY KEY ("tenantId", id), "sessionId" uuid REFERENCES sessions (id)'),
    )
    assert problems == [
        "probe_items.probe_items_sessionId_fkey (sessionId) -> sessions (id): a distributed -> local "
        "foreign key (a distributed table may refer to reference tables)"
    ]


def test_a_reference_table_refers_to_a_local_one_only_with_restrict_or_no_action(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_lookup": REFERENCE},
        "CREATE TABLE probe_lookup (id uuid PRIMARY KEY,"
        ' "sessionId" uuid REFERENCES sessions (id) ON DELETE CASCADE,'
        ' "throttle" text REFERENCES login_throttles (key) ON DELETE RESTRICT)',
    )
    assert problems == [
        "probe_lookup.probe_lookup_sessionId_fkey (sessionId) -> sessions (id): reference -> local with "
        "ON DELETE CASCADE / ON UPDATE NO ACTION (only NO ACTION or RESTRICT)"
    ]


def test_a_key_with_the_tenant_is_never_set_null_or_cascaded_on_update(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_items": DISTRIBUTED, "probe_parts": DISTRIBUTED},
        PROBE.format(extra='PRIMARY KEY ("tenantId", id)'),
        'CREATE TABLE probe_parts (id uuid, "tenantId" uuid NOT NULL, "itemId" uuid, PRIMARY KEY ("tenantId", id),'
        ' CONSTRAINT probe_null FOREIGN KEY ("tenantId", "itemId") REFERENCES probe_items ON DELETE SET NULL ("itemId"),'
        ' CONSTRAINT probe_moved FOREIGN KEY ("tenantId", "itemId") REFERENCES probe_items ON UPDATE CASCADE,'
        ' CONSTRAINT probe_tenant FOREIGN KEY ("tenantId") REFERENCES tenants ON DELETE SET NULL)',
    )
    assert problems == [
        "probe_parts.probe_moved (tenantId, itemId) -> probe_items (tenantId, id): ON DELETE NO ACTION / "
        "ON UPDATE CASCADE on a key that includes tenantId (it would null or move the distribution column)",
        "probe_parts.probe_null (tenantId, itemId) -> probe_items (tenantId, id): ON DELETE SET NULL / "
        "ON UPDATE NO ACTION on a key that includes tenantId (it would null or move the distribution column)",
        "probe_parts.probe_tenant (tenantId) -> tenants (id): ON DELETE SET NULL / ON UPDATE NO ACTION on "
        "a key that includes tenantId (it would null or move the distribution column)",
    ]


def test_a_policy_with_a_subquery_fails_on_a_distributed_table(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_items": DISTRIBUTED},
        PROBE.format(extra='PRIMARY KEY ("tenantId", id)'),
        "ALTER TABLE probe_items ENABLE ROW LEVEL SECURITY",
        'CREATE POLICY probe ON probe_items USING (EXISTS (SELECT FROM tenants t WHERE t.id = "tenantId"))',
    )
    assert problems == ["probe_items: a row-level-security policy with a subquery on a distributed table"]


def test_before_citus_lists_exactly_the_policies_left_to_rewrite(catalogue) -> None:
    problems = _broken(
        catalogue,
        {"probe_lookup": REFERENCE},
        "CREATE TABLE probe_lookup (id uuid PRIMARY KEY)",
        "ALTER TABLE probe_lookup ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY probe ON probe_lookup USING (EXISTS (SELECT FROM tenants))",
        # One listed entry fixed: its policy no longer has a subquery.
        "DROP POLICY tenant_isolation ON sessions",
        "CREATE POLICY tenant_isolation ON sessions USING (true)",
    )
    assert problems == [
        "probe_lookup: a row-level-security policy with a subquery, which Citus refuses on the tables it "
        "manages: rewrite it, or list it in mobility.distribution.BEFORE_CITUS",
        "sessions: listed in mobility.distribution.BEFORE_CITUS, but no policy of it has a subquery any "
        "more: remove the entry",
    ]


def test_the_plan_lists_each_table_where_the_classification_places_it() -> None:
    """docs/scaling.md's table of placements says what mobility/distribution.py says."""
    from mobility.ops.migrations import PROJECT_ROOT

    text = (PROJECT_ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    for placement in Placement:
        [row] = [line for line in text.splitlines() if line.startswith(f"| **{placement.value}**")]
        listed = set(re.findall(r"`(\w+)`", row.rsplit("|", 2)[-2]))
        assert listed == set(tables_of(placement)), placement
