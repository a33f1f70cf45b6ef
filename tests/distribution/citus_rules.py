"""Citus's rules for distributing a schema, applied to a PostgreSQL catalogue (docs/scaling.md).

Citus is not installed on these machines: these checks stand in for what it would refuse when the
tables are distributed as `mobility.distribution` classifies them. Each rule is Citus's own, from its
source (citusdata/citus, src/backend/distributed):

1. Every table of the schema is classified, once, and every classified table exists (ours: one place
   says where each table lives, and a new table must be placed).
2. A distributed table has the distribution column `tenantId`: uuid everywhere (tables are co-located
   only when their distribution columns have the same type) and NOT NULL (Citus refuses a row without
   it: "cannot perform an INSERT with NULL in the partition column"); and a primary key (a shard is
   moved by logical replication, which needs one for its updates and deletes).
3. Every unique index of a distributed table (its primary key, UNIQUE constraints, unique indexes,
   expression or partial ones included) has `tenantId` among its key columns, and every exclusion
   constraint has it with an equality operator ("Distributed relations cannot have UNIQUE, EXCLUDE, or
   PRIMARY KEY constraints that do not include the partition column", commands/table.c).
4. Foreign keys (commands/foreign_constraint.c, ErrorIfUnsupportedForeignConstraintExists):
   - distributed -> distributed: the distribution column on both sides, at the same position (the
     tables co-located);
   - distributed -> reference: allowed; distributed -> local: refused;
   - reference or local -> distributed: refused;
   - reference -> local: ON DELETE and ON UPDATE NO ACTION or RESTRICT only;
   - whenever the referencing columns of a distributed table include `tenantId`: no ON DELETE SET
     NULL / SET DEFAULT, no ON UPDATE SET NULL / SET DEFAULT / CASCADE.
5. No row-level-security policy with a subquery on a table Citus manages (commands/policy.c): never on
   a distributed table; on the others only where `mobility.distribution.BEFORE_CITUS` says so (the
   work left before those tables join Citus), and every entry there must still be needed.

`violations(connection, tables)` returns one line per broken rule; the schema passes with none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from mobility.distribution import BEFORE_CITUS, DISTRIBUTION_COLUMN, Placement

DISTRIBUTED, REFERENCE, LOCAL = Placement.DISTRIBUTED, Placement.REFERENCE, Placement.LOCAL
_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def _all(connection: psycopg.Connection, query: str, params: tuple = ()) -> list[tuple[Any, ...]]:
    return connection.execute(query, params).fetchall()


def schema_tables(connection: psycopg.Connection) -> set[str]:
    """Every table of the `public` schema (partitions are their parent's)."""
    rows = _all(
        connection,
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        """,
    )
    return {name for (name,) in rows}


def violations(connection: psycopg.Connection, tables: Mapping[str, Placement]) -> list[str]:
    """What Citus would refuse, or what our own rule 1 does, with `tables` placed as given."""
    found = _classification(connection, tables)
    placed = {name: placement for name, placement in tables.items() if name in schema_tables(connection)}
    distributed = sorted(name for name, placement in placed.items() if placement is DISTRIBUTED)
    for table in distributed:
        found += _distribution_column(connection, table)
        found += _unique_keys(connection, table)
    found += _foreign_keys(connection, placed)
    found += _policies(connection, placed)
    return found


def _classification(connection: psycopg.Connection, tables: Mapping[str, Placement]) -> list[str]:
    existing = schema_tables(connection)
    found = [
        f"{name}: not classified: say in mobility/distribution.py whether it is distributed, reference or local"
        for name in sorted(existing - set(tables))
    ]
    found += [
        f"{name}: classified in mobility/distribution.py but the database has no such table"
        for name in sorted(set(tables) - existing)
    ]
    return found


def _distribution_column(connection: psycopg.Connection, table: str) -> list[str]:
    rows = _all(
        connection,
        """
        SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a
         WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped
        """,
        (table, DISTRIBUTION_COLUMN),
    )
    if not rows:
        return [f"{table}: distributed, but has no {DISTRIBUTION_COLUMN} column"]
    [(type_, not_null)] = rows
    found = []
    if type_ != "uuid":
        found.append(f"{table}: {DISTRIBUTION_COLUMN} is {type_}, not uuid (co-location needs one type)")
    if not not_null:
        found.append(f"{table}: {DISTRIBUTION_COLUMN} may be NULL (Citus refuses such a row)")
    has_primary_key = _all(
        connection, "SELECT FROM pg_index WHERE indrelid = %s::regclass AND indisprimary", (table,)
    )
    if not has_primary_key:
        found.append(f"{table}: distributed, but has no primary key (shard moves need one)")
    return found


def _unique_keys(connection: psycopg.Connection, table: str) -> list[str]:
    """Rule 3: unique indexes and exclusion constraints include tenantId (with `=` for an exclusion)."""
    rows = _all(
        connection,
        """
        SELECT ic.relname, i.indisunique,
               ARRAY(SELECT a.attname FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY k(attnum, n)
                     LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     ORDER BY k.n) AS key_columns,
               ARRAY(SELECT EXISTS (SELECT FROM pg_amop o JOIN pg_am m ON m.oid = o.amopmethod
                                     WHERE o.amopopr = x.op
                                       AND ((m.amname = 'btree' AND o.amopstrategy = 3)
                                         OR (m.amname = 'hash' AND o.amopstrategy = 1)))
                     FROM unnest(coalesce(con.conexclop, '{}')) WITH ORDINALITY x(op, n) ORDER BY x.n)
                     AS equality
          FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'x'
         WHERE i.indrelid = %s::regclass AND (i.indisunique OR i.indisexclusion)
         ORDER BY ic.relname
        """,
        (table,),
    )
    found = []
    for index, unique, key_columns, equality in rows:
        positions = [n for n, column in enumerate(key_columns) if column == DISTRIBUTION_COLUMN]
        if unique and not positions:
            found.append(
                f"{table}: unique key {index} on ({', '.join(c or '<expression>' for c in key_columns)}) "
                f"does not include {DISTRIBUTION_COLUMN}"
            )
        elif not unique and not any(equality[n] for n in positions if n < len(equality)):
            found.append(
                f"{table}: exclusion constraint {index} does not include {DISTRIBUTION_COLUMN} WITH ="
            )
    return found


def _foreign_keys(connection: psycopg.Connection, placed: Mapping[str, Placement]) -> list[str]:
    rows = _all(
        connection,
        """
        SELECT con.conname, child.relname, parent.relname,
               ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.n),
               ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.n),
               con.confdeltype, con.confupdtype
          FROM pg_constraint con
          JOIN pg_class child ON child.oid = con.conrelid
          JOIN pg_class parent ON parent.oid = con.confrelid
         WHERE con.contype = 'f' AND con.connamespace = 'public'::regnamespace
         ORDER BY child.relname, con.conname
        """,
    )
    found = []
    for name, child, parent, columns, referred, on_delete, on_update in rows:
        source, target = placed.get(child), placed.get(parent)
        if source is None or target is None:
            continue  # rule 1 reports it
        what = f"{child}.{name} ({', '.join(columns)}) -> {parent} ({', '.join(referred)})"
        kinds = f"{source} -> {target}"
        if source is not DISTRIBUTED and target is DISTRIBUTED:
            found.append(f"{what}: a {kinds} foreign key (only distributed tables may refer to them)")
        elif source is DISTRIBUTED and target is LOCAL:
            found.append(f"{what}: a {kinds} foreign key (a distributed table may refer to reference tables)")
        elif source is REFERENCE and target is LOCAL and {on_delete, on_update} - {"a", "r"}:
            found.append(
                f"{what}: reference -> local with ON DELETE {_ACTIONS[on_delete]} / ON UPDATE "
                f"{_ACTIONS[on_update]} (only NO ACTION or RESTRICT)"
            )
        if source is DISTRIBUTED and target is DISTRIBUTED:
            on_key = [
                n
                for n, (c, r) in enumerate(zip(columns, referred, strict=True))
                if c == DISTRIBUTION_COLUMN and r == DISTRIBUTION_COLUMN
            ]
            if not on_key:
                found.append(
                    f"{what}: between distributed tables without {DISTRIBUTION_COLUMN} on both sides, "
                    "at the same position"
                )
        moves_the_tenant = on_delete in ("n", "d") or on_update in ("n", "d", "c")
        if source is DISTRIBUTED and DISTRIBUTION_COLUMN in columns and moves_the_tenant:
            found.append(
                f"{what}: ON DELETE {_ACTIONS[on_delete]} / ON UPDATE {_ACTIONS[on_update]} on a key "
                f"that includes {DISTRIBUTION_COLUMN} (it would null or move the distribution column)"
            )
    return found


def _policies(connection: psycopg.Connection, placed: Mapping[str, Placement]) -> list[str]:
    rows = _all(
        connection,
        """
        SELECT DISTINCT c.relname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
         WHERE c.relnamespace = 'public'::regnamespace
           AND (p.polqual::text LIKE '%%{SUBLINK%%' OR coalesce(p.polwithcheck::text, '') LIKE '%%{SUBLINK%%')
        """,
    )
    with_subquery = {name for (name,) in rows if name in placed}
    found = [
        f"{table}: a row-level-security policy with a subquery on a distributed table"
        for table in sorted(with_subquery)
        if placed[table] is DISTRIBUTED
    ]
    found += [
        f"{table}: a row-level-security policy with a subquery, which Citus refuses on the tables it "
        "manages: rewrite it, or list it in mobility.distribution.BEFORE_CITUS"
        for table in sorted(with_subquery - set(BEFORE_CITUS))
        if placed[table] is not DISTRIBUTED
    ]
    found += [
        f"{table}: listed in mobility.distribution.BEFORE_CITUS, but no policy of it has a subquery "
        "any more: remove the entry"
        for table in sorted(set(BEFORE_CITUS) - with_subquery)
        if table in placed
    ]
    return found
