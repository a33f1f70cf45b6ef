"""Paired, idempotent PostgreSQL scripts for every Alembic revision, for DBAs who apply SQL with psql.

`python -m mobility.ops.sqlscripts` writes `migrations/sql/<nn>_<slug>.up.sql` and `.down.sql` for each
revision. It asks Alembic for the revision's offline SQL (`alembic upgrade prev:rev --sql`,
`alembic downgrade rev:prev --sql`), splits it into statements and rewrites each statement into a form
that can run a second time without failing and without changing anything:

=====================================================  ==============================================
statement from the revision                            in the script
=====================================================  ==============================================
CREATE TABLE t                                         CREATE TABLE IF NOT EXISTS t
CREATE [UNIQUE] INDEX [CONCURRENTLY] i ON t            ... IF NOT EXISTS i (CONCURRENTLY: after
                                                       dropping an INVALID leftover of a failed build)
CREATE TYPE / ALTER TABLE t ADD CONSTRAINT c /         inside DO $$ ... IF NOT EXISTS (catalog
CREATE POLICY p ON t                                   lookup) THEN ... END IF $$
CREATE EXTENSION / SEQUENCE / SCHEMA / COLLATION       ... IF NOT EXISTS
CREATE FUNCTION / TRIGGER / VIEW                       CREATE OR REPLACE ...
ALTER TABLE t ADD COLUMN c                             ADD COLUMN IF NOT EXISTS c
ALTER TABLE t DROP CONSTRAINT IF EXISTS c [CASCADE],   both inside DO $$ ... IF the database is not
              ADD CONSTRAINT c (c redefined)           yet at the script's target revision THEN ...
ALTER TABLE t DROP COLUMN | CONSTRAINT                 ALTER TABLE IF EXISTS t DROP ... IF EXISTS
ALTER TYPE e ADD VALUE v                               ... ADD VALUE IF NOT EXISTS v
DROP TABLE | INDEX | TYPE | SEQUENCE | VIEW | ...      DROP ... IF EXISTS
ALTER TABLE t VALIDATE CONSTRAINT / ALTER COLUMN       unchanged: they set a state, so running them
SET|DROP DEFAULT / SET|DROP NOT NULL / TYPE (no        again changes nothing
USING) / ENABLE|FORCE ROW LEVEL SECURITY; COMMENT ON;
GRANT; REVOKE; ALTER DEFAULT PRIVILEGES; SET;
LOCK TABLE t IN ... MODE; BEGIN; COMMIT
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles        unchanged: already create-if-missing (the one
WHERE rolname = 'r') THEN CREATE ROLE r ...;           DO block form accepted; optionally refusing an
[ELSIF ... THEN RAISE EXCEPTION '...';] END IF;        unfit existing role, and ignoring a concurrent
[EXCEPTION WHEN duplicate_object OR unique_violation   creation of the same role)
THEN NULL;] END $$
INSERT INTO t (...) SELECT ... ON CONFLICT DO NOTHING;  inside DO $$ ... IF the database is not yet at
DELETE FROM t WHERE ... EXISTS (SELECT FROM copy ...)  the script's target revision THEN ... (a copy,
                                                       a move: each adds or removes nothing a second
                                                       time either)
DO $$ BEGIN IF (SELECT rolsuper ...) THEN ALTER      unchanged: it sets a state (a superuser only;
FUNCTION f(...) [NOT] LEAKPROOF; ELSE RAISE NOTICE     a NOTICE for another role)
'...'; END IF; END $$
DO $check$ ... $check$ (reads only, may RAISE)         unchanged: a check that refuses to go on
                                                       changes nothing (no write, lock, DDL or
                                                       dynamic SQL in it, else refused)
Alembic's own alembic_version statements               CREATE TABLE IF NOT EXISTS alembic_version,
                                                       then the version set to the target revision
=====================================================  ==============================================

Anything else (other data changes, renames, unnamed constraints or indexes, other DO blocks, CONCURRENTLY
inside a transaction, ...) stops the generator with `UnsupportedStatement` instead of being copied unchanged: a
script that is not idempotent must not be committed as if it were.

Every script also gets a header (revision, "generated, do not edit", how to apply it), psql's
ON_ERROR_STOP, the project's `lock_timeout` (wait briefly for a lock, then fail cleanly and be retried),
and a guard that refuses to run unless the database is at the revision the script starts from (or
already at the one it ends at). Squawk findings that a script takes knowingly are listed in
`KNOWN_FINDINGS` below, each with its reason, and written into the scripts as `-- squawk-ignore`
comments next to the line concerned, so regenerating always gives the same files.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.script import Script, ScriptDirectory

from mobility.core.config import Settings
from mobility.ops.migrations import MIGRATIONS_DIR, PROJECT_ROOT, alembic_config

SQL_DIR = MIGRATIONS_DIR / "sql"
REGENERATE = "python -m mobility.ops.sqlscripts"
# Offline SQL needs a dialect, not a server: nothing connects to this.
OFFLINE_URL = "postgresql://offline@localhost/offline"
# The same wait as `mobility db upgrade` (the setting's default; not read from the environment, so that
# generating gives the same files on every machine).
LOCK_TIMEOUT = Settings.model_fields["migration_lock_timeout"].default
SCRIPT_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.(up|down)\.sql$")


class UnsupportedStatement(Exception):
    """The revision emits a statement the generator does not know how to make idempotent."""


# --------------------------------------------------------------------------------------------------
# Squawk findings taken knowingly
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownFinding:
    """Squawk rules the up scripts break on purpose, and why.

    `line` is a regular expression for the lines Squawk points at; `within`, if given, one the
    statement around such a line must match (e.g. only columns of a table being created). The
    generator writes the reason once into the header of each script concerned and a
    `-- squawk-ignore <rule>` comment right above every line concerned. An entry must match at least
    one line somewhere, so a stale one is noticed. Without `line`, the rule is ignored for the whole
    file of each of `revisions`: for findings that are the nature of that file rather than of one statement.
    """

    rules: tuple[str, ...]
    reason: str
    revisions: tuple[str, ...] = ()  # (): every revision's up script
    line: str | None = None
    within: str | None = None


_NEW_TABLE = r"^CREATE TABLE IF NOT EXISTS (?!alembic_version )"
# Tables that exist before the domain revisions (0005, 0006) and may hold rows by the time 0007 runs.
_NOT_OLDER_TABLE = r"(?!(?:users|roles|sessions|activity_logs|tenants|user_tenants|alembic_version)\s)"
_JUST_CREATED = (
    "the tables concerned are the domain tables 0005 and 0006 created, empty, in the same upgrade: "
    "building an index or checking a key on an empty table takes no time, so the revision keeps "
    "these in one all-or-nothing transaction rather than build them concurrently or NOT VALID. "
    "(Tables older than 0005 are excluded from this: a finding there fails the test.)"
)

# The tables whose keys revision 0015 re-makes (tables meant to be distributed by tenant).
_KEYED_IN_0015 = (
    r"(?:agents|brokers|candidates|courses|enrollments|attendance_records|assessments|certificates"
    r"|vetting_records|placements|payments|invoices|notifications|settings|candidate_documents"
    r"|user_invitations|user_tenants|audit_logs)"
)

KNOWN_FINDINGS: tuple[KnownFinding, ...] = (
    KnownFinding(
        ("prefer-text-field",),
        "alembic_version is Alembic's own bookkeeping table, created exactly as Alembic creates it.",
        line=r"^\s*version_num VARCHAR\(32\) NOT NULL",
        within=r"^CREATE TABLE IF NOT EXISTS alembic_version ",
    ),
    KnownFinding(
        ("prefer-text-field",),
        "varchar columns of tables this script creates, empty: the length limits are part of the model "
        "(codes, names, ISO currency and country codes). Widening one later rewrites nothing; it only "
        "needs a brief ACCESS EXCLUSIVE lock, bounded by lock_timeout.",
        line=r"\sVARCHAR\(\d+\)",
        within=_NEW_TABLE,
    ),
    KnownFinding(
        ("prefer-bigint-over-int",),
        "integer columns of tables this script creates that hold small counts (a course's capacity, "
        "months of validity, ...), far below int's two billion; no key or counter is an int (keys are "
        "UUIDs).",
        line=r"^\s*\S+ INTEGER\b",
        within=_NEW_TABLE,
    ),
    KnownFinding(
        ("prefer-robust-stmts",),
        "VALIDATE CONSTRAINT can run again as it is (on a valid constraint it does nothing). It runs "
        "outside the transaction on purpose: the lock taken by ADD CONSTRAINT ... NOT VALID is released "
        "first, and the scan of existing rows holds only SHARE UPDATE EXCLUSIVE (reads and writes go on).",
        line=r"^\s*ALTER TABLE \S+ VALIDATE CONSTRAINT ",
    ),
    KnownFinding(
        ("ban-drop-constraint",),
        "the revision (re)defines these foreign keys with DROP CONSTRAINT IF EXISTS + ADD CONSTRAINT ... "
        "NOT VALID so that it can be rerun. At the revision the script starts from they do not exist "
        "(or are the leftover of a failed earlier run of this same script), so no guarantee is taken "
        "away; the script runs the pair only while the database is not yet at this revision.",
        revisions=("0002", "0003", "0008", "0014"),
        line=r"^\s*ALTER TABLE \S+ DROP CONSTRAINT IF EXISTS ",
        within=r"^ALTER TABLE (\S+) DROP CONSTRAINT IF EXISTS (\S+);\s+ALTER TABLE \1 ADD CONSTRAINT \2 ",
    ),
    KnownFinding(
        ("require-concurrent-index-creation",),
        _JUST_CREATED,
        revisions=("0007",),
        line=rf"^CREATE (UNIQUE )?INDEX IF NOT EXISTS \S+ ON {_NOT_OLDER_TABLE}",
    ),
    KnownFinding(
        ("constraint-missing-not-valid", "disallowed-unique-constraint"),
        _JUST_CREATED,
        revisions=("0007",),
        line=rf"^\s*ALTER TABLE {_NOT_OLDER_TABLE}\S+ ADD CONSTRAINT \S+ UNIQUE ",
    ),
    KnownFinding(
        ("constraint-missing-not-valid", "adding-foreign-key-constraint"),
        _JUST_CREATED,
        revisions=("0007",),
        line=rf"^\s*ALTER TABLE {_NOT_OLDER_TABLE}\S+ ADD CONSTRAINT \S+ FOREIGN KEY",
    ),
    KnownFinding(
        (
            "ban-drop-constraint",
            "require-concurrent-index-deletion",
            "constraint-missing-not-valid",
            "disallowed-unique-constraint",
        ),
        "roles holds a handful of rows (one per role): replacing its installation-wide unique name by one "
        "per tenant (the point of this step) takes a lock of a few milliseconds, bounded by lock_timeout. "
        "The legacy key may be a constraint or a bare index (prisma migrate makes an index), so both "
        "forms are dropped.",
        revisions=("0008",),
        line=r"(roles DROP CONSTRAINT IF EXISTS roles_name_key|DROP INDEX IF EXISTS roles_name_key"
        r'|ALTER TABLE roles ADD CONSTRAINT "roles_tenantId_name_key" UNIQUE'
        r'|ALTER TABLE roles DROP CONSTRAINT IF EXISTS "roles_tenantId_name_key")',
    ),
    KnownFinding(
        ("ban-drop-not-null",),
        "from this revision on, only an invitation that creates an account carries a token (an existing "
        "account's owner accepts logged in): the application that needs the column filled is the one "
        "this revision comes with; the downgrade fills it again (with a hash no token matches).",
        revisions=("0014",),
        line=r'^\s*ALTER TABLE user_invitations ALTER COLUMN "tokenHash" DROP NOT NULL',
    ),
    KnownFinding(
        ("require-concurrent-index-creation", "require-concurrent-index-deletion"),
        "the unique e-mail index is built in the same transaction as the check for case twins, with "
        "users locked against writes (SHARE) before the check: built CONCURRENTLY, a twin written "
        "between the check and the build would leave a failed, INVALID index and a half-done step. "
        "Writes to users wait for the build (reads and logins' lookups do not); the two old indexes "
        "are dropped last, so ACCESS EXCLUSIVE is held only from those drops to the commit.",
        revisions=("0013",),
        line=r"^(CREATE UNIQUE INDEX IF NOT EXISTS users_email_ci_key ON users "
        r"|DROP INDEX IF EXISTS users_email_(ci|lower)_idx;)",
    ),
    KnownFinding(
        (
            "ban-drop-constraint",
            "constraint-missing-not-valid",
            "adding-serial-primary-key-field",
            "adding-foreign-key-constraint",
            "disallowed-unique-constraint",
            "adding-not-nullable-field",
        ),
        "this step re-makes the keys of the tables meant to be distributed by tenant (primary keys on "
        "(tenantId, id), the same-tenant foreign keys on them, per-tenant unique codes and tokens): the "
        "old keys are dropped and the new ones built and checked at once, in one transaction, holding "
        "ACCESS EXCLUSIVE on those tables meanwhile. The domain tables are empty on every installation "
        "(the legacy database has none of them); user_tenants, user_invitations, settings and audit_logs "
        "hold only what the new application wrote: milliseconds to a second. users, roles, sessions and "
        "activity_logs are not touched. A rerun changes nothing: the redefinitions run only while the "
        "database is not yet at this revision, and a dropped key is gone.",
        revisions=("0015",),
        line=rf"^\s*ALTER TABLE (?:IF EXISTS )?{_KEYED_IN_0015}\s",
    ),
    KnownFinding(
        (
            "changing-column-type",
            "prefer-text-field",
            "require-concurrent-index-creation",
            "disallowed-unique-constraint",
            "constraint-missing-not-valid",
        ),
        "0018 changes `candidates`, which is empty on every installation when it runs (no code wrote "
        "candidates before the service this revision serves; the legacy database has no such table): "
        "widening a column, adding its unique keys and building its indexes take no time, so they stay "
        "in the revision's one all-or-nothing transaction rather than run concurrently or NOT VALID.",
        revisions=("0018",),
    ),
    KnownFinding(
        ("prefer-timestamp-tz",),
        "the legacy tables keep the Prisma app's `timestamp(3) without time zone` (holding UTC) so that "
        "a real legacy database and this baseline have the same shape (mobility.ops.legacy_schema).",
        revisions=("0000",),
    ),
)


# --------------------------------------------------------------------------------------------------
# Revisions and their offline SQL
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    number: int
    revision: str
    previous: str | None
    slug: str
    summary: str
    path: Path

    @property
    def stem(self) -> str:
        return f"{self.number:02d}_{self.slug}"


def revisions(script_location: Path = MIGRATIONS_DIR) -> list[Revision]:
    """The revisions from the baseline to head, in order (the chain must be linear)."""
    config = alembic_config(OFFLINE_URL)
    config.set_main_option("script_location", str(script_location))
    scripts: list[Script] = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    result = []
    for number, script in enumerate(scripts):
        if isinstance(script.down_revision, tuple) or (
            number and script.down_revision != result[-1].revision
        ):
            raise UnsupportedStatement(f"revision {script.revision}: only a linear history is supported")
        path = Path(script.path)
        slug = path.stem.split("_", 1)[1] if "_" in path.stem else path.stem
        summary = " ".join((script.doc or "").split())
        result.append(Revision(number, script.revision, script.down_revision, slug, summary, path))
    return result


def offline_sql(revision: Revision, direction: str, script_location: Path = MIGRATIONS_DIR) -> str:
    """What `alembic upgrade prev:rev --sql` (or `downgrade rev:prev --sql`) prints for one revision."""
    config = alembic_config(OFFLINE_URL)
    config.set_main_option("script_location", str(script_location))
    buffer = io.StringIO()
    config.output_buffer = buffer
    previous = revision.previous or "base"
    if direction == "up":
        command.upgrade(config, f"{previous}:{revision.revision}", sql=True)
    else:
        command.downgrade(config, f"{revision.revision}:{previous}", sql=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# Splitting SQL into statements
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    code: str  # without comments, dedented, no trailing blanks
    comments: tuple[str, ...] = ()  # the comment lines before it

    @property
    def flat(self) -> str:
        """On one line, for messages."""
        return " ".join(self.code.split())


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def _end_of_quoted(sql: str, start: int, quote: str, backslash: bool = False) -> int:
    """The index just past the literal or quoted identifier that opens at `start`."""
    i = start + 1
    while i < len(sql):
        if backslash and sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    raise UnsupportedStatement(f"unterminated {quote} in: {sql[start : start + 80]!r}")


def split_statements(sql: str) -> list[Statement]:
    """Statements separated by `;`, aware of quotes, dollar quoting and comments."""
    statements: list[Statement] = []
    code: list[str] = []
    comments: list[str] = []

    def flush() -> None:
        text = _tidy("".join(code))
        if text or comments:
            statements.append(Statement(text, tuple(comments)))
        code.clear()
        comments.clear()

    i = 0
    while i < len(sql):
        char = sql[i]
        if sql.startswith("--", i) or sql.startswith("/*", i):
            block = sql.startswith("/*", i)
            end = sql.find("*/", i + 2) + 2 if block else sql.find("\n", i)
            if block and end == 1:
                raise UnsupportedStatement("unterminated /* comment")
            end = len(sql) if end == -1 else end
            if not "".join(code).strip():  # a comment before the statement: kept with it
                comments.extend(line.strip() for line in sql[i + 2 : end - (2 if block else 0)].splitlines())
            i = end
            continue
        if char in "'\"":
            escapes = char == "'" and i > 0 and sql[i - 1] in "eE" and (i < 2 or not sql[i - 2].isalnum())
            end = _end_of_quoted(sql, i, char, backslash=escapes)
        elif char == "$" and (match := _DOLLAR_TAG.match(sql, i)) and not (i and sql[i - 1].isalnum()):
            close = sql.find(match.group(0), match.end())
            if close == -1:
                raise UnsupportedStatement(f"unterminated {match.group(0)} quote")
            end = close + len(match.group(0))
        elif char == ";":
            flush()
            i += 1
            continue
        else:
            if char == "\n":
                while code and code[-1] in (" ", "\t"):
                    code.pop()
            end = i + 1
        code.append(sql[i:end])
        i = end
    flush()
    return statements


def _tidy(code: str) -> str:
    lines = code.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    return textwrap.dedent("\n".join(lines)).strip()


# --------------------------------------------------------------------------------------------------
# Rewriting statements into their idempotent form
# --------------------------------------------------------------------------------------------------

IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
QNAME = rf"{IDENT}(?:\.{IDENT})?"
_FLAGS = re.IGNORECASE | re.DOTALL


def _name(identifier: str) -> str:
    """The catalog name of an identifier as written (quoted keeps its case, unquoted folds to lower)."""
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _split_qname(qname: str) -> tuple[str | None, str]:
    parts = re.findall(IDENT, qname)
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _split_top_level(text: str) -> list[str]:
    """`text` cut at the commas outside parentheses and quotes."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char in "'\"":
            i = _end_of_quoted(text, i, char)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return parts


@dataclass
class Piece:
    """One statement (or psql command) of a script: as committed, and as shown to Squawk.

    They differ only for guarded statements: the script runs them inside a DO block that checks first
    whether they are needed, which Squawk cannot see into, so Squawk is shown the statements themselves.
    """

    sql: str
    lint: str | None = None
    transaction: str | None = None  # "begin" / "commit" for the transaction markers


@dataclass
class _Context:
    revision: Revision
    direction: str
    in_transaction: bool = False
    pieces: list[Piece] = field(default_factory=list)
    prologue_done: bool = False

    @property
    def target(self) -> str | None:
        return self.revision.revision if self.direction == "up" else self.revision.previous

    @property
    def accepted(self) -> tuple[str | None, str | None]:
        """The revisions the database may be at before the script runs: where it starts, where it ends."""
        return (self.revision.previous, self.revision.revision)

    def fail(self, statement: Statement, why: str) -> UnsupportedStatement:
        return UnsupportedStatement(
            f"revision {self.revision.revision} ({self.direction}): {why}\n    {statement.flat}\n"
            "Make the revision emit a supported form, or teach mobility.ops.sqlscripts this one."
        )


def _guarded(test: str, *statements: str) -> Piece:
    """The statements inside `DO ... IF test THEN ... END IF`; Squawk is shown them bare."""
    bare = "\n\n".join(statement + ";" for statement in statements)
    body = "\n".join(textwrap.indent(statement + ";", " " * 8) for statement in statements)
    tag = "$$" if "$$" not in bare else "$guard$"
    sql = f"DO {tag}\nBEGIN\n    IF {test} THEN\n{body}\n    END IF;\nEND\n{tag};"
    return Piece(sql, lint=bare)


def _missing(catalog_query: str) -> str:
    return f"NOT EXISTS ({catalog_query})"


def _not_there_yet(ctx: _Context) -> str:
    """The database is not yet at the script's target revision (set in the script's last transaction)."""
    return f"(SELECT max(version_num) FROM alembic_version) IS DISTINCT FROM {_literal(ctx.target or '')}"


def _plain(statement: str) -> Piece:
    return Piece(statement + ";")


def _set_version(revision: str) -> list[Piece]:
    return [
        _plain(f"DELETE FROM alembic_version WHERE version_num <> {_literal(revision)}"),
        _plain(
            f"INSERT INTO alembic_version (version_num) VALUES ({_literal(revision)}) ON CONFLICT DO NOTHING"
        ),
    ]


_ALEMBIC_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS alembic_version (\n"
    "    version_num VARCHAR(32) NOT NULL,\n"
    "    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n"
    ")"
)


def _prologue(ctx: _Context) -> list[Piece]:
    """Right after the first BEGIN: alembic_version exists, and the database is where we start from."""

    def shown(revision: str | None) -> str:
        return revision or "(none)"

    allowed = " AND ".join(
        "current_revision IS NOT NULL"
        if revision is None
        else f"current_revision IS DISTINCT FROM {_literal(revision)}"
        for revision in ctx.accepted
    )
    start, end = (ctx.revision.previous, ctx.revision.revision)
    if ctx.direction == "down":
        start, end = end, start
    message = (
        f"the database is at revision %, and this script takes it from {shown(start)} to {shown(end)}: "
        "apply the scripts in order"
    )
    guard = (
        "DO $$\nDECLARE\n    current_revision text;\nBEGIN\n"
        "    IF to_regclass('alembic_version') IS NOT NULL THEN\n"
        "        SELECT max(version_num) INTO current_revision FROM alembic_version;\n"
        "    END IF;\n"
        f"    IF {allowed} THEN\n"
        f"        RAISE EXCEPTION {_literal(message)}, coalesce(current_revision, '(none)');\n"
        "    END IF;\nEND\n$$;"
    )
    pieces = [Piece(guard)]
    if ctx.direction == "up":
        pieces.insert(0, _plain(_ALEMBIC_VERSION_TABLE))
    return pieces


Handler = Callable[[_Context, Statement, re.Match[str]], list[Piece]]
_HANDLERS: list[tuple[re.Pattern[str], Handler]] = []


def handles(pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _HANDLERS.append((re.compile(pattern, _FLAGS), handler))
        return handler

    return register


def _insert(code: str, match: re.Match[str], group: int, text: str) -> str:
    return code[: match.start(group)] + text + code[match.start(group) :]


# --- transactions and session settings -------------------------------------------------------------


@handles(r"^BEGIN(?:\s+TRANSACTION|\s+WORK)?$")
def _begin(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    if ctx.in_transaction:
        raise ctx.fail(statement, "BEGIN inside a transaction")
    ctx.in_transaction = True
    pieces = [Piece("BEGIN;", transaction="begin")]
    if not ctx.prologue_done:
        ctx.prologue_done = True
        pieces += _prologue(ctx)
    return pieces


@handles(r"^COMMIT(?:\s+TRANSACTION|\s+WORK)?$")
def _commit(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    if not ctx.in_transaction:
        raise ctx.fail(statement, "COMMIT outside a transaction")
    ctx.in_transaction = False
    return [Piece("COMMIT;", transaction="commit")]


@handles(r"^(?:SET|RESET)\s+(?:LOCAL\s+|SESSION\s+)?[a-z_.]+\b")
@handles(r"^COMMENT\s+ON\s")
@handles(r"^(?:GRANT|REVOKE)\s")
@handles(r"^ALTER\s+DEFAULT\s+PRIVILEGES\s")
@handles(r"^CREATE\s+OR\s+REPLACE\s")
@handles(r"^LOCK\s+(?:TABLE\s+)?(?:ONLY\s+)?[a-z_][a-z0-9_]*\s+IN\s+[A-Z ]+\s+MODE$")
def _unchanged(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    return [_plain(statement.code)]


# Roles belong to the cluster, not to the database: a revision creates one only when missing, in this
# one DO block form (nothing else may be in the block; the condition names a role's own catalog row).
_ROLE = r"[a-z_][a-z0-9_]*"
_ENSURE_ROLE = re.compile(
    rf"^DO\s+(\$\w*\$)\s*BEGIN\s+"
    rf"IF\s+NOT\s+EXISTS\s*\(\s*SELECT\s+FROM\s+pg_roles\s+WHERE\s+rolname\s*=\s*'(?P<role>{_ROLE})'\s*\)\s+THEN\s+"
    r"CREATE\s+ROLE\s+(?P=role)(?:\s+[A-Z]+)*\s*;\s+"
    r"(?:ELSIF\s+EXISTS\s*\(\s*SELECT\s+FROM\s+pg_roles\s+WHERE\s+rolname\s*=\s*'(?P=role)'\s+AND\s+[^;']*\)\s+THEN\s+"
    r"RAISE\s+EXCEPTION\s+'(?:[^']|'')*'\s*;\s+)?"
    r"END\s+IF\s*;\s+"
    r"(?:EXCEPTION\s+WHEN\s+(?:duplicate_object|unique_violation)(?:\s+OR\s+(?:duplicate_object|unique_violation))?"
    r"\s+THEN\s+NULL\s*;\s+)?"
    r"END\s*\1$",
    _FLAGS,
)


# A check that refuses to go on (RAISE EXCEPTION) and changes nothing: a DO block tagged `$check$`
# whose body, outside string literals, has no statement that writes, locks, changes the schema or runs
# dynamic SQL. Running it again only checks again.
_CHECK_BLOCK = re.compile(r"^DO\s+\$check\$(?P<body>.*)\$check\$$", _FLAGS)
_WRITES = re.compile(
    r"\b(?:INSERT|UPDATE|DELETE|MERGE|CREATE|ALTER|DROP|TRUNCATE|GRANT|REVOKE|COPY|EXECUTE|PERFORM|CALL"
    r"|LOCK|SET|RESET|COMMIT|ROLLBACK|NOTIFY|VACUUM|CLUSTER|REINDEX|REFRESH|COMMENT|SECURITY|IMPORT)\b",
    re.IGNORECASE,
)


def _without_literals(code: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", code)


def read_only_check(code: str) -> bool:
    """`code` is a `DO $check$ ... $check$` block that only reads (and may raise)."""
    match = _CHECK_BLOCK.match(code)
    return match is not None and not _WRITES.search(_without_literals(match.group("body")))


# Marking a function LEAKPROOF or NOT LEAKPROOF where the role may (a superuser; a NOTICE otherwise): it
# sets a state, so running it again changes nothing.
_MARK_LEAKPROOF = re.compile(
    r"^DO\s+(\$\w*\$)\s*BEGIN\s+"
    r"IF\s*\(\s*SELECT\s+rolsuper\s+FROM\s+pg_roles\s+WHERE\s+rolname\s*=\s*current_user\s*\)\s+THEN\s+"
    r"ALTER\s+FUNCTION\s+[a-z_][a-z0-9_]*\s*\([a-z, ]*\)\s+(?:NOT\s+)?LEAKPROOF\s*;\s+"
    r"ELSE\s+RAISE\s+NOTICE\s+'(?:[^']|'')*'\s*;\s+"
    r"END\s+IF\s*;\s+END\s*\1$",
    _FLAGS,
)


@handles(r"^DO\s")
def _do(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    if read_only_check(statement.code) or _MARK_LEAKPROOF.match(statement.code):
        return [_plain(statement.code)]
    if not _ENSURE_ROLE.match(statement.code):
        raise ctx.fail(statement, "no idempotent form known for this DO block")
    create = re.search(r"CREATE\s+ROLE\s[^;]*", statement.code, _FLAGS)
    return [Piece(statement.code + ";", lint=create.group(0) + ";" if create else None)]


# A backfill that fills a column only where it is still NULL: a rerun finds nothing left to fill.
_BACKFILL = re.compile(
    rf"^UPDATE\s+(?:ONLY\s+)?{QNAME}(?:\s+(?:AS\s+)?(?!SET\s){IDENT})?\s+SET\s+(?P<set>.+?)\s+"
    rf"(?:FROM\s+.+?\s+)?WHERE\s+(?P<where>.+)$",
    _FLAGS,
)


@handles(r"^UPDATE\s+(?!alembic_version\s)")
def _update(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    backfill = _BACKFILL.match(statement.code)
    if backfill:
        first = re.match(rf"^\s*({IDENT})\s*=", backfill.group("set"), _FLAGS)
        if first:
            column = re.escape(first.group(1))
            where = backfill.group("where")
            if re.search(rf"(?:^|[\s(])(?:{IDENT}\.)?{column}\s+IS\s+NULL\b", where, _FLAGS):
                return [_plain(statement.code)]
    raise ctx.fail(
        statement, "no idempotent form known for this UPDATE (only a backfill: WHERE <set column> IS NULL)"
    )


# Copying rows into a table (filling a new table from existing rows, or the first half of a move):
# INSERT ... SELECT ... ON CONFLICT DO NOTHING adds nothing a first run added. Run once, while the
# database is not yet at the script's target revision: later, the rows (or tables) it copies from may
# be gone.
_COPY = re.compile(
    rf"^INSERT\s+INTO\s+{QNAME}\s*\([^()]*\)\s*SELECT\s.+\sON\s+CONFLICT\s+DO\s+NOTHING$", _FLAGS
)
# The second half of a move: deleting only rows that another table holds now (`... EXISTS (SELECT FROM
# <copy> ...)`): a second run deletes nothing that was not copied. Run once, like the copy.
_DELETE_COPIED = re.compile(
    rf"^DELETE\s+FROM\s+{QNAME}\s+WHERE\s.*\bEXISTS\s*\(\s*SELECT\s+(?:1\s+)?FROM\s+{QNAME}\s.*\)$", _FLAGS
)


@handles(r"^INSERT\s+INTO\s+(?!alembic_version\s)")
def _copy(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    if not _COPY.match(statement.code):
        raise ctx.fail(
            statement,
            "no idempotent form known for this INSERT (only INSERT ... SELECT ... ON CONFLICT DO NOTHING)",
        )
    return [_guarded(_not_there_yet(ctx), statement.code)]


@handles(r"^DELETE\s+FROM\s+(?!alembic_version\s)")
def _delete_copied(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    if not _DELETE_COPIED.match(statement.code):
        raise ctx.fail(
            statement,
            "no idempotent form known for this DELETE (only of rows copied elsewhere: ... EXISTS (SELECT FROM <copy> ...))",
        )
    return [_guarded(_not_there_yet(ctx), statement.code)]


# --- Alembic's version table ------------------------------------------------------------------------


@handles(r"^CREATE\s+TABLE\s+alembic_version\s*\(")
def _version_table(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    return []  # the prologue creates it when missing


@handles(r"^INSERT\s+INTO\s+alembic_version\s*\(version_num\)\s*VALUES\s*\('([^']+)'\)")
@handles(
    r"^UPDATE\s+alembic_version\s+SET\s+version_num\s*=\s*'([^']+)'\s+WHERE\s+alembic_version\.version_num\s*=\s*'[^']+'$"
)
def _version_set(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    if match.group(1) != ctx.target:
        raise ctx.fail(statement, f"sets the version to {match.group(1)}, expected {ctx.target}")
    return _set_version(match.group(1))


@handles(r"^DELETE\s+FROM\s+alembic_version\s+WHERE\s+alembic_version\.version_num\s*=\s*'([^']+)'$")
def _version_delete(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    if ctx.direction != "down" or ctx.revision.previous is not None:
        raise ctx.fail(statement, "removes a version row outside the baseline's downgrade")
    return [_plain("DROP TABLE IF EXISTS alembic_version")]


# --- CREATE ----------------------------------------------------------------------------------------


@handles(r"^CREATE\s+TABLE\s+(?!IF\s+NOT\s+EXISTS\s)()")
def _create_table(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    return [_plain(_insert(statement.code, match, 1, "IF NOT EXISTS "))]


@handles(r"^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s")
@handles(r"^CREATE\s+(?:EXTENSION|SEQUENCE|SCHEMA|COLLATION)\s+IF\s+NOT\s+EXISTS\s")
def _create_if_not_exists(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    return [_plain(statement.code)]


@handles(r"^CREATE\s+(?:EXTENSION|SEQUENCE|SCHEMA|COLLATION)\s+(?!IF\s+NOT\s+EXISTS\s)()")
def _create_simple(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    return [_plain(_insert(statement.code, match, 1, "IF NOT EXISTS "))]


@handles(r"^CREATE\s+()(?:FUNCTION|TRIGGER|VIEW|PROCEDURE)\s")
def _create_or_replace(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    return [_plain(_insert(statement.code, match, 1, "OR REPLACE "))]


@handles(rf"^CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(IF\s+NOT\s+EXISTS\s+)?({QNAME})\s+ON\s")
def _create_index(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    code = statement.code if match.group(3) else _insert(statement.code, match, 4, "IF NOT EXISTS ")
    if not match.group(2):
        return [_plain(code)]
    if ctx.in_transaction:
        raise ctx.fail(
            statement,
            "CREATE INDEX CONCURRENTLY inside a transaction (run it in op.get_context().autocommit_block())",
        )
    schema, name = _split_qname(match.group(4))
    namespace = f"{_literal(_name(schema))}::regnamespace" if schema else "current_schema()::regnamespace"
    # A concurrent build that failed (e.g. on lock_timeout) leaves an INVALID index behind, which
    # IF NOT EXISTS would then keep for ever: drop such a leftover (concurrently) before building.
    cleanup = (
        "SELECT format('DROP INDEX CONCURRENTLY IF EXISTS %I.%I', n.nspname, c.relname)\n"
        "FROM pg_index i\n"
        "JOIN pg_class c ON c.oid = i.indexrelid\n"
        "JOIN pg_namespace n ON n.oid = c.relnamespace\n"
        f"WHERE c.relname = {_literal(_name(name))} AND c.relnamespace = {namespace} AND NOT i.indisvalid\n"
        "\\gexec"
    )
    return [Piece(cleanup), _plain(code)]


@handles(rf"^CREATE\s+TYPE\s+({QNAME})\s")
def _create_type(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    schema, name = _split_qname(match.group(1))
    namespace = f"{_literal(_name(schema))}::regnamespace" if schema else "current_schema()::regnamespace"
    condition = f"SELECT FROM pg_type WHERE typname = {_literal(_name(name))} AND typnamespace = {namespace}"
    return [_guarded(_missing(condition), statement.code)]


@handles(rf"^CREATE\s+POLICY\s+({IDENT})\s+ON\s+({QNAME})\s")
def _create_policy(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    condition = (
        f"SELECT FROM pg_policy WHERE polrelid = {_literal(match.group(2))}::regclass "
        f"AND polname = {_literal(_name(match.group(1)))}"
    )
    return [_guarded(_missing(condition), statement.code)]


# --- ALTER -----------------------------------------------------------------------------------------


@handles(rf"^ALTER\s+TYPE\s+({QNAME})\s+ADD\s+VALUE\s+(IF\s+NOT\s+EXISTS\s+)?()")
def _alter_type_add_value(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    code = statement.code if match.group(2) else _insert(statement.code, match, 3, "IF NOT EXISTS ")
    return [_plain(code)]


_ALTER_IN_PLACE = re.compile(
    rf"^(?:VALIDATE\s+CONSTRAINT\s+{IDENT}"
    rf"|ALTER\s+(?:COLUMN\s+)?{IDENT}\s+(?:SET\s+DEFAULT\s|DROP\s+DEFAULT$|SET\s+NOT\s+NULL$|DROP\s+NOT\s+NULL$"
    rf"|(?:SET\s+DATA\s+)?TYPE\s(?!.*\sUSING\s)|SET\s+STATISTICS\s)"
    r"|(?:ENABLE|DISABLE|FORCE|NO\s+FORCE)\s+ROW\s+LEVEL\s+SECURITY$"
    r"|(?:ENABLE|DISABLE)\s+TRIGGER\s)",
    _FLAGS,
)


def _reindent(action: str) -> str:
    """An action cut out of a multi-line ALTER TABLE, its continuation lines indented by four."""
    lines = action.split("\n")
    if len(lines) == 1 or "'" in action:  # never touch what may be inside a literal
        return action
    return "\n".join([lines[0], *("    " + line.strip() for line in lines[1:])])


@handles(rf"^ALTER\s+TABLE\s+(IF\s+EXISTS\s+)?(ONLY\s+)?({QNAME})\s+(.+)$")
def _alter_table(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    only, table = match.group(2) or "", match.group(3)
    actions = [_reindent(action) for action in _split_top_level(match.group(4))]
    added = {
        _name(m.group(1)) for a in actions if (m := re.match(rf"^ADD\s+CONSTRAINT\s+({IDENT})\s", a, _FLAGS))
    }
    redefined: dict[str, str] = {}  # constraint name -> its DROP CONSTRAINT IF EXISTS statement
    pieces = []
    # One statement per action: each can then take its own form (same transaction, same effect).
    for action in actions:
        head = f"ALTER TABLE {only}{table}"
        drop = re.match(rf"^DROP\s+CONSTRAINT\s+IF\s+EXISTS\s+({IDENT})(?:\s+CASCADE)?$", action, _FLAGS)
        if drop and _name(drop.group(1)) in added:
            # DROP CONSTRAINT IF EXISTS c + ADD CONSTRAINT c: a (re)definition of c, which a catalog
            # lookup by name cannot tell from "already done". Both run together, once: while the
            # database is not yet at the script's target revision (set in its last transaction).
            redefined[_name(drop.group(1))] = f"{head} {action}"
            continue
        add = re.match(rf"^ADD\s+CONSTRAINT\s+({IDENT})\s", action, _FLAGS)
        if add and _name(add.group(1)) in redefined:
            pieces.append(
                _guarded(_not_there_yet(ctx), redefined.pop(_name(add.group(1))), f"{head} {action}")
            )
            continue
        if m := re.match(r"^ADD\s+COLUMN\s+(IF\s+NOT\s+EXISTS\s+)?()", action, _FLAGS):
            action = action if m.group(1) else _insert(action, m, 2, "IF NOT EXISTS ")
            pieces.append(_plain(f"{head} {action}"))
        elif m := re.match(rf"^ADD\s+CONSTRAINT\s+({IDENT})\s", action, _FLAGS):
            condition = (
                f"SELECT FROM pg_constraint WHERE conrelid = {_literal(table)}::regclass "
                f"AND conname = {_literal(_name(m.group(1)))}"
            )
            pieces.append(_guarded(_missing(condition), f"{head} {action}"))
        elif m := re.match(r"^DROP\s+(COLUMN|CONSTRAINT)\s+(IF\s+EXISTS\s+)?()", action, _FLAGS):
            # IF EXISTS on the table too: a later statement of a downgrade may have dropped it already.
            action = action if m.group(2) else _insert(action, m, 3, "IF EXISTS ")
            pieces.append(_plain(f"ALTER TABLE IF EXISTS {only}{table} {action}"))
        elif _ALTER_IN_PLACE.match(action):
            pieces.append(_plain(f"{head} {action}"))
        else:
            raise ctx.fail(statement, f"unsupported ALTER TABLE action: {action}")
    if redefined:
        raise ctx.fail(statement, "DROP CONSTRAINT IF EXISTS after the ADD CONSTRAINT of the same name")
    return pieces


# --- DROP ------------------------------------------------------------------------------------------


@handles(
    r"^DROP\s+(?:TABLE|TYPE|SEQUENCE|VIEW|FUNCTION|PROCEDURE|EXTENSION|SCHEMA|TRIGGER|POLICY|COLLATION)\s+"
    r"(IF\s+EXISTS\s+)?()"
)
@handles(r"^DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(IF\s+EXISTS\s+)?()")
def _drop(ctx: _Context, statement: Statement, match: re.Match[str]) -> list[Piece]:
    if re.match(r"^DROP\s+INDEX\s+CONCURRENTLY\s", statement.code, _FLAGS) and ctx.in_transaction:
        raise ctx.fail(statement, "DROP INDEX CONCURRENTLY inside a transaction")
    code = statement.code if match.group(1) else _insert(statement.code, match, 2, "IF EXISTS ")
    return [_plain(code)]


def rewrite(revision: Revision, direction: str, sql: str) -> list[Piece]:
    """The idempotent pieces of a script, from the revision's offline SQL."""
    ctx = _Context(revision, direction)
    statements = split_statements(sql)
    for statement in statements:
        comments = [c for c in statement.comments if not re.match(r"Running (upgrade|downgrade) ", c)]
        if comments:
            ctx.pieces.append(Piece("\n".join(f"-- {c}".rstrip() for c in comments)))
        if not statement.code:
            continue
        for pattern, handler in _HANDLERS:
            if match := pattern.match(statement.code):
                ctx.pieces += handler(ctx, statement, match)
                break
        else:
            raise ctx.fail(statement, "no idempotent form known for this statement")
    transactions = [piece.transaction for piece in ctx.pieces if piece.transaction]
    if not transactions or transactions[0] != "begin" or ctx.in_transaction:
        raise UnsupportedStatement(
            f"revision {revision.revision} ({direction}): expected the offline SQL to open with BEGIN and "
            "end with COMMIT (transactional DDL, transaction_per_migration)"
        )
    return ctx.pieces


# --------------------------------------------------------------------------------------------------
# Rendering the files
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlScript:
    revision: Revision
    direction: str
    text: str  # the committed file
    lint_text: str  # the same, with guarded statements shown bare, for Squawk
    findings: frozenset[KnownFinding] = frozenset()  # the line findings it carries

    @property
    def name(self) -> str:
        return f"{self.revision.stem}.{self.direction}.sql"


def _header(revision: Revision, direction: str, findings: list[KnownFinding]) -> str:
    name = f"{revision.stem}.{direction}.sql"
    source = revision.path
    if source.is_relative_to(PROJECT_ROOT):
        source = source.relative_to(PROJECT_ROOT)
    start, end = revision.previous, revision.revision
    if direction == "down":
        start, end = end, start
    alembic = "upgrade" if direction == "up" else "downgrade"
    state = f"Expects the database at revision {start}" if start else "Expects an empty database"
    state += f" (or already at {end}: then it changes nothing)" if end else " (or one already downgraded)"
    state += f" and leaves it at {end}." if end else " and leaves it empty."
    if direction == "up" and start is None:
        state += (
            " A database that already has the legacy tables (the Prisma app's) is not built with this "
            "script but adopted: `mobility db adopt` checks its shape and stamps this revision."
        )
    if direction == "down":
        state += (
            " Take a backup first (`mobility db backup`, or pg_dump -Fc): what this drops (tables, columns "
            'and the data in them) does not come back. See docs/migrations.md, "Rolling back".'
        )
    lines = [
        f"{name}: revision {revision.revision}, {'upgrade' if direction == 'up' else 'downgrade'}"
        f" {start or '(empty)'} -> {end or '(empty)'}",
        revision.summary,
        "",
        f"GENERATED by `{REGENERATE}` from {source}: `alembic {alembic} "
        f"{start or 'base'}:{end or 'base'} --sql`, each statement rewritten so that running it again "
        "changes nothing. Do not edit by hand: change the revision and regenerate.",
        "",
        "Apply with psql, outside any transaction (the script opens and commits its own):",
        f'    psql -X -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f migrations/sql/{name}',
        state,
    ]
    text = "\n".join(_wrap_comment(line) if not line.startswith("    ") else f"-- {line}" for line in lines)
    if findings:
        text += "\n--\n-- Squawk findings this script takes knowingly"
        text += " (marked `-- squawk-ignore` where they occur):" if any(f.line for f in findings) else ":"
        by_reason: dict[str, list[str]] = {}
        for finding in findings:
            by_reason.setdefault(finding.reason, []).extend(finding.rules)
        for reason, rules in by_reason.items():
            text += "\n" + _wrap_comment(f"- {', '.join(dict.fromkeys(rules))}: {reason}", hanging="  ")
        for finding in findings:
            if not finding.line:
                text += f"\n-- squawk-ignore-file {', '.join(finding.rules)}"
    return text


def _wrap_comment(text: str, indent: str = "", hanging: str = "") -> str:
    width = 100 - len(indent) - 3
    lines = textwrap.wrap(text, width, subsequent_indent=hanging, break_on_hyphens=False) or [""]
    return "\n".join(f"{indent}-- {line}".rstrip() for line in lines)


_SETTINGS = f"""\\set ON_ERROR_STOP on
-- Wait at most {LOCK_TIMEOUT} for a lock, then fail cleanly (run the script again later) rather than queue
-- every other query behind this one.
SET lock_timeout = '{LOCK_TIMEOUT}';
-- No statement timeout: the long statements (VALIDATE CONSTRAINT, CREATE INDEX CONCURRENTLY) hold no
-- lock that blocks reads or writes, and cutting them short would only waste their work.
SET statement_timeout = 0;"""


def _annotate(piece_text: str, statement: str, findings: list[KnownFinding], used: set[KnownFinding]) -> str:
    """Puts `-- squawk-ignore <rules>` right above the lines of a statement that findings match."""
    applicable = [f for f in findings if f.within is None or re.search(f.within, statement)]
    if not applicable:
        return piece_text
    out = []
    for line in piece_text.split("\n"):
        matched = [f for f in applicable if not line.lstrip().startswith("--") and re.search(f.line, line)]
        if matched:
            used.update(matched)
            indent = line[: len(line) - len(line.lstrip())]
            rules = ", ".join(dict.fromkeys(rule for f in matched for rule in f.rules))
            out.append(f"{indent}-- squawk-ignore {rules} -- taken knowingly: see the header")
        out.append(line)
    return "\n".join(out)


def render(revision: Revision, direction: str, pieces: list[Piece]) -> SqlScript:
    findings = [
        f
        for f in KNOWN_FINDINGS
        if direction == "up" and (not f.revisions or revision.revision in f.revisions)
    ]
    line_findings = [f for f in findings if f.line]
    used: set[KnownFinding] = set()

    def body(lint: bool) -> str:
        chunks = []
        for piece in pieces:
            text = piece.lint if lint and piece.lint is not None else piece.sql
            chunks.append(_annotate(text, piece.lint or piece.sql, line_findings, used))
        return "\n\n".join(chunks)

    committed, bare = body(lint=False), body(lint=True)
    header = _header(revision, direction, [f for f in findings if not f.line or f in used])
    text = f"{header}\n\n{_SETTINGS}\n\n{committed}\n"
    lint_text = f"{header}\n\n{_SETTINGS}\n\n{bare}\n"
    return SqlScript(revision, direction, text, lint_text, frozenset(used))


def generate(script_location: Path = MIGRATIONS_DIR) -> list[SqlScript]:
    """Every revision's up and down script, from the revisions as they are now."""
    scripts = []
    for revision in revisions(script_location):
        for direction in ("up", "down"):
            pieces = rewrite(revision, direction, offline_sql(revision, direction, script_location))
            scripts.append(render(revision, direction, pieces))
    used = set().union(*(script.findings for script in scripts))
    stale = [f for f in KNOWN_FINDINGS if f.line and f not in used]
    if stale:
        raise UnsupportedStatement(
            "KNOWN_FINDINGS entries that match no line of any up script (remove them): "
            + "; ".join(f"{', '.join(f.rules)} {f.line!r}" for f in stale)
        )
    return scripts


def differences(scripts: Iterable[SqlScript], directory: Path = SQL_DIR) -> list[str]:
    """The files in `directory` that are missing, different or no longer generated."""
    expected = {script.name: script.text for script in scripts}
    present = (
        {p.name for p in directory.glob("*.sql") if SCRIPT_NAME.match(p.name)}
        if directory.is_dir()
        else set()
    )
    problems = []
    for name, text in sorted(expected.items()):
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{name}: out of date")
    problems += [f"{name}: no revision generates it any more" for name in sorted(present - set(expected))]
    return problems


def write(scripts: Iterable[SqlScript], directory: Path = SQL_DIR) -> list[Path]:
    """Writes the scripts (and removes generated files no revision makes any more); returns what changed."""
    scripts = list(scripts)
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for script in scripts:
        path = directory / script.name
        if not path.exists() or path.read_text(encoding="utf-8") != script.text:
            path.write_text(script.text, encoding="utf-8")
            changed.append(path)
    names = {script.name for script in scripts}
    for path in directory.glob("*.sql"):
        if SCRIPT_NAME.match(path.name) and path.name not in names:
            path.unlink()
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=REGENERATE, description="Write the paired, idempotent SQL scripts of every Alembic revision."
    )
    parser.add_argument("--check", action="store_true", help="only report scripts that are out of date")
    parser.add_argument("--directory", type=Path, default=SQL_DIR, help=f"default: {SQL_DIR}")
    args = parser.parse_args(argv)
    try:
        scripts = generate()
    except UnsupportedStatement as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = differences(scripts, args.directory)
        for problem in problems:
            print(problem)
        if problems:
            print(f"regenerate with: {REGENERATE}", file=sys.stderr)
        return 1 if problems else 0
    changed = write(scripts, args.directory)
    for path in changed:
        print(f"wrote {path}" if path.exists() else f"removed {path}")
    print(f"{len(scripts)} scripts, {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
