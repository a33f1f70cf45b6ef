"""Step 13: one account per e-mail address, whatever its letter case, enforced by the database.

Logins match e-mails case-insensitively (0010, 0012), but the legacy unique key `users_email_key` is
case-sensitive: `Bob@x.example` and `bob@x.example` could be two accounts, and a login found one of
them. This revision replaces the non-unique lookup indexes by one UNIQUE index on the e-mail as logins
compare it (`mobility.users.models.email_key`):

- PostgreSQL: `users_email_ci_key` UNIQUE on `(email COLLATE mobility_email_ci)`, the collation of
  0012, in place of `users_email_ci_idx` (0012) and `users_email_lower_idx` (0010, unused there since
  0012). Uniqueness is then exactly the login lookup's equality (ICU, case-insensitive, accents
  significant), and the lookup, as the app role under row-level security, still uses an index (an
  equality under a collation calls no function that is not LEAKPROOF; lower() would).
- SQLite: `users_email_ci_key` UNIQUE on `lower(email)`, in place of `users_email_lower_idx`.

The legacy `users_email_key` stays: it is the legacy app's (and the Prisma schema's `@unique`) key.

Existing case twins make the upgrade refuse, before any DDL and without changing anything, with the
twins listed (ten groups at most) and the way out named: `mobility users duplicates` lists them,
`mobility users merge KEEP DROP` folds one account into the other. On PostgreSQL the revision is one
transaction: `users` is locked against writes (SHARE: reads and logins' lookups go on) before the
check, so no twin can slip in between the check and the index, and the index is built in the same
transaction (writes to users wait for the build: seconds at a million users). The old indexes are
dropped last, so ACCESS EXCLUSIVE is held only from those drops to the commit.

The downgrade rebuilds the indexes of 0010 and 0012 (CONCURRENTLY on PostgreSQL) and drops the unique
one; no data changes either way.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.util.exc import CommandError
from sqlalchemy.exc import DBAPIError

from mobility.ops.migration_ops import execute, is_postgresql, outside_the_transaction

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIQUE_INDEX = "users_email_ci_key"
LOWER_INDEX = "users_email_lower_idx"  # 0010
COLLATED_INDEX = "users_email_ci_idx"  # 0012 (PostgreSQL)
COLLATION = "mobility_email_ci"
SHOWN_GROUPS = 10

# The refusal, one line: "<n> e-mail address(es) ... : <groups> ... Nothing was changed."
REFUSAL_START = "e-mail address(es) belong to more than one account once letter case is ignored"
REFUSAL_END = (
    "one account per e-mail is what revision 0013 enforces. List them with `mobility users duplicates`, "
    "fold each group into one account with `mobility users merge KEEP DROP`, then upgrade again. "
    "Nothing was changed."
)

# PostgreSQL: the same check in SQL, so that the generated script (migrations/sql) refuses as well.
# Reads only; `twins` groups accounts by the e-mail as the unique index compares it.
PG_CHECK = f"""
    DO $check$
    DECLARE
        twin_groups integer;
        listing text;
    BEGIN
        SELECT count(*), string_agg(accounts, '; ' ORDER BY n) FILTER (WHERE n <= {SHOWN_GROUPS})
        INTO twin_groups, listing
        FROM (
            SELECT row_number() OVER (ORDER BY min(email), min(id::text)) AS n,
                   string_agg(email || ' (' || id::text || ')', ', ' ORDER BY email, id) AS accounts
            FROM users
            GROUP BY (email COLLATE {COLLATION})
            HAVING count(*) > 1
        ) AS twins;
        IF twin_groups > 0 THEN
            IF twin_groups > {SHOWN_GROUPS} THEN
                listing := listing || format(' and %s more', twin_groups - {SHOWN_GROUPS});
            END IF;
            RAISE EXCEPTION '% {REFUSAL_START}: %; {REFUSAL_END}', twin_groups, listing;
        END IF;
    END
    $check$
"""


def _refusal(groups: list[list[tuple[str, str]]]) -> str:
    """The SQLite twin of PG_CHECK's message."""
    shown = "; ".join(
        ", ".join(f"{email} ({user_id})" for email, user_id in group) for group in groups[:SHOWN_GROUPS]
    )
    more = f" and {len(groups) - SHOWN_GROUPS} more" if len(groups) > SHOWN_GROUPS else ""
    return f"{len(groups)} {REFUSAL_START}: {shown}{more}; {REFUSAL_END}"


def _refuse_sqlite_twins() -> None:
    if op.get_context().as_sql:
        return  # offline SQL is generated for PostgreSQL only (migrations/sql)
    rows = op.get_bind().execute(
        sa.text(
            "SELECT lower(email) AS key, email, id FROM users WHERE lower(email) IN "
            "(SELECT lower(email) FROM users GROUP BY lower(email) HAVING count(*) > 1) "
            "ORDER BY key, email, id"
        )
    )
    groups: dict[str, list[tuple[str, str]]] = {}
    for key, email, user_id in rows:
        groups.setdefault(key, []).append((email, str(uuid.UUID(str(user_id)))))  # SQLite keeps hex
    if groups:
        raise CommandError(_refusal(list(groups.values())))


def _refuse_postgresql_twins() -> None:
    try:
        execute(PG_CHECK)
    except DBAPIError as exc:
        # The refusal as the one line it is (the driver adds the PL/pgSQL context on further lines).
        text = str(exc.orig if exc.orig is not None else exc)
        first = next((line.strip() for line in text.splitlines() if line.strip()), text)
        if REFUSAL_START not in first:
            raise
        raise CommandError(first) from exc


def upgrade() -> None:
    if is_postgresql():
        # Writes to users wait from here to the commit; reads (logins' lookups) go on.
        op.execute("LOCK TABLE users IN SHARE MODE")
        _refuse_postgresql_twins()
        op.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {UNIQUE_INDEX} ON users ((email COLLATE {COLLATION}))")
        op.execute(f"DROP INDEX IF EXISTS {COLLATED_INDEX}")
        op.execute(f"DROP INDEX IF EXISTS {LOWER_INDEX}")
        return
    _refuse_sqlite_twins()
    op.create_index(UNIQUE_INDEX, "users", [sa.text("lower(email)")], unique=True)
    op.drop_index(LOWER_INDEX, table_name="users")


def downgrade() -> None:
    if is_postgresql():
        block, outside = outside_the_transaction()
        concurrently = " CONCURRENTLY" if outside else ""
        with block:
            op.execute(f"CREATE INDEX{concurrently} IF NOT EXISTS {LOWER_INDEX} ON users (lower(email))")
            op.execute(
                f"CREATE INDEX{concurrently} IF NOT EXISTS {COLLATED_INDEX} ON users ((email COLLATE {COLLATION}))"
            )
            op.execute(f"DROP INDEX{concurrently} IF EXISTS {UNIQUE_INDEX}")
        return
    op.create_index(LOWER_INDEX, "users", [sa.text("lower(email)")])
    op.drop_index(UNIQUE_INDEX, table_name="users")
