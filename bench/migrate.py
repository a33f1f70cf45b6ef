"""Benchmark: adopt a legacy PostgreSQL database with N users and upgrade it to head, watching the locks.

    .venv/bin/python bench/migrate.py [--users N] [--keep]

Builds a legacy database (the Prisma app's four tables, filled server-side), copies it, then:
- on the original: `db adopt` and each revision to head, one at a time, timed;
- on the copy (the baseline): the naive way of making the same change to roles and users, i.e. plain
  ALTER TABLE ... ADD COLUMN ... REFERENCES and a plain CREATE INDEX, in one transaction.
Both runs are watched the same way: a monitor samples pg_locks every few ms for ACCESS EXCLUSIVE locks
on users/roles, and two "application" probes read and update users by id in a loop.
GOAL: no ACCESS EXCLUSIVE lock on users or roles held longer than 1 s. Exit 0 when met, 1 otherwise.
Figures go to bench/results/migrate-<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from alembic import command
from sqlalchemy.engine import make_url

from mobility.ops.migrations import adopt, alembic_config, ordered_revisions, upgrade

ADMIN_URL = os.environ.get("MOBILITY_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
GOAL_MS = 1000.0
WATCHED = ["users", "roles"]
SAMPLE_INTERVAL = 0.005  # monitor: seconds between two pg_locks samples
NOTE_WAIT_MS = 50.0  # app lock waits at least this long are listed with what caused them
PROBE_PAUSE = 0.005  # probes: seconds between two queries (keeps them from eating a core of the two)

ROLE_NAMES = ["System Admin", "Admin", "Trainer", "Candidate", "Agent", "Broker", "Recruiter"]


# --- databases -------------------------------------------------------------------------------------


def conninfo(dbname: str) -> str:
    return make_url(ADMIN_URL).set(database=dbname).render_as_string(hide_password=False)


def async_url(dbname: str) -> str:
    url = make_url(ADMIN_URL).set(drivername="postgresql+asyncpg", database=dbname)
    return url.render_as_string(hide_password=False)


def admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def build_legacy(dbname: str, users: int) -> dict[str, float]:
    """The Prisma app's database: the baseline tables (revision 0000), filled, vacuumed, no alembic_version."""
    started = time.perf_counter()
    upgrade(async_url(dbname), "0000")
    schema_s = time.perf_counter() - started
    with psycopg.connect(conninfo(dbname), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        # Skip the row-by-row foreign key triggers while loading: the rows are consistent by construction.
        conn.execute("SET session_replication_role = replica")
        with conn.transaction():
            conn.execute(
                """INSERT INTO roles (id, name, description, permissions, "updatedAt")
                   SELECT gen_random_uuid(), name, name || ' (legacy)', '{}'::jsonb, now()
                   FROM unnest(%s::text[]) AS name""",
                (ROLE_NAMES,),
            )
            conn.execute(
                """INSERT INTO users (id, email, "passwordHash", name, "roleId", "lastLoginAt",
                                      "createdAt", "updatedAt")
                   SELECT gen_random_uuid(), 'user' || i || '@example.com', md5(i::text), 'User ' || i,
                          (SELECT array_agg(id ORDER BY name) FROM roles)[1 + i %% 7],
                          now() - (i %% 1000) * interval '1 hour',
                          now() - (i %% 2000) * interval '1 day', now()
                   FROM generate_series(1, %s) AS i""",
                (users,),
            )
            conn.execute(
                """INSERT INTO sessions (id, "userId", token, "expiresAt", "ipAddress", "userAgent")
                   SELECT gen_random_uuid(), id, md5(id::text), now() + interval '30 days',
                          '10.0.0.1', 'Mozilla/5.0 (bench)'
                   FROM users LIMIT %s""",
                (users // 2,),
            )
            conn.execute(
                """INSERT INTO activity_logs (id, "userId", action, details, "ipAddress", "userAgent")
                   SELECT gen_random_uuid(), u.id, 'login', jsonb_build_object('n', g),
                          '10.0.0.1', 'Mozilla/5.0 (bench)'
                   FROM users u CROSS JOIN generate_series(1, 2) AS g"""
            )
        load_s = time.perf_counter() - started - schema_s
        # A live database has been vacuumed: hint bits set, statistics current.
        conn.execute("VACUUM (ANALYZE)")
        # The Prisma app's database has no Alembic table.
        conn.execute("DROP TABLE alembic_version")
    total_s = time.perf_counter() - started
    return {"schema_s": schema_s, "load_s": load_s, "vacuum_analyze_s": total_s - schema_s - load_s}


# The naive equivalent of revisions 0002 (roles) and 0003 (users): the columns, foreign keys and index
# the models describe, added the obvious way, in one transaction. ADD COLUMN takes ACCESS EXCLUSIVE on
# the table; the foreign keys are validated on the spot and the index is built while it is held.
NAIVE_0002_0003 = [
    """ALTER TABLE roles
        ADD COLUMN "tenantId" uuid REFERENCES tenants (id) ON DELETE RESTRICT,
        ADD COLUMN "systemRole" boolean NOT NULL DEFAULT false""",
    """ALTER TABLE users
        ADD COLUMN "tenantId" uuid REFERENCES tenants (id) ON DELETE RESTRICT,
        ADD COLUMN "authProvider" text NOT NULL DEFAULT 'local',
        ADD COLUMN "authId" text,
        ADD COLUMN status text NOT NULL DEFAULT 'active',
        ADD COLUMN "twoFactorEnabled" boolean NOT NULL DEFAULT false,
        ADD COLUMN "createdBy" uuid REFERENCES users (id) ON DELETE SET NULL,
        ADD COLUMN "updatedBy" uuid REFERENCES users (id) ON DELETE SET NULL""",
    """CREATE INDEX "users_tenantId_email_idx" ON users ("tenantId", email)""",
]
NAIVE_STEP = "0002+0003 naive, one transaction"


def naive_alter(dbname: str) -> None:
    with psycopg.connect(conninfo(dbname)) as conn, conn.transaction():
        conn.execute("CREATE TABLE IF NOT EXISTS tenants (id uuid PRIMARY KEY)")  # only if 0001 is missing
        for statement in NAIVE_0002_0003:
            conn.execute(statement)


# --- watching locks and latency --------------------------------------------------------------------

# Every ACCESS EXCLUSIVE lock held on users/roles, and every lock anyone waits for on them, by client
# backends (autovacuum is not the migration) other than the monitor itself. For a holder: what it is
# running; for a waiter: who is in its way (lock mode and statement).
SAMPLE_SQL = """
SELECT l.pid, c.relname, l.granted,
       CASE WHEN l.granted THEN left(a.query, 300) ELSE (
           SELECT string_agg(
               'holding ' || (SELECT string_agg(b.mode, '+') FROM pg_locks b
                              WHERE b.pid = ba.pid AND b.relation = l.relation AND b.granted)
               || ': ' || left(ba.query, 300), ' | ')
           FROM pg_stat_activity ba WHERE ba.pid = ANY(pg_blocking_pids(l.pid))) END
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND c.relname = ANY(%s) AND c.relnamespace = 'public'::regnamespace
  AND a.backend_type = 'client backend' AND l.pid <> pg_backend_pid()
  AND (l.mode = 'AccessExclusiveLock' OR NOT l.granted)
"""


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    # Longest continuous ACCESS EXCLUSIVE hold on users/roles by the migration (None: never sampled).
    ael_ms: float | None = None
    ael_table: str | None = None
    ael_statements: list[str] = field(default_factory=list)
    # Longest time an application session (a probe) waited for any lock on users/roles.
    app_wait_ms: float | None = None
    app_wait_blockers: list[str] = field(default_factory=list)
    read_ms: float | None = None  # worst probe SELECT ... WHERE id = $1
    write_ms: float | None = None  # worst probe UPDATE ... WHERE id = $1
    reads: int = 0
    writes: int = 0
    error: str | None = None


@dataclass
class Span:
    start: float
    step: str | None
    statements: list[str]


class Watch:
    """A lock monitor and two application probes on one database, running while the steps run."""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self.steps: dict[str, Step] = {}
        self.current: str | None = None
        self.samples = 0
        self.probe_errors: list[str] = []
        self.monitor_error: str | None = None  # a monitor that died saw nothing: the run does not count
        self._open: dict[tuple, Span] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> Watch:
        connect = [psycopg.connect(conninfo(self.dbname), autocommit=True) for _ in range(3)]
        self._conns = monitor, reader, writer = connect
        self.app_pids = {reader.info.backend_pid, writer.info.backend_pid}
        ids = [row[0] for row in reader.execute("SELECT id FROM users TABLESAMPLE SYSTEM (1) LIMIT 1000")]
        ids = ids or [row[0] for row in reader.execute("SELECT id FROM users LIMIT 1000")]
        self._threads = [
            threading.Thread(target=self._monitor, args=(monitor,), daemon=True),
            threading.Thread(
                target=self._probe,
                args=(reader, "read", "SELECT id, email, name FROM users WHERE id = %s", ids),
                daemon=True,
            ),
            threading.Thread(
                target=self._probe,
                args=(writer, "write", 'UPDATE users SET "lastLoginAt" = now() WHERE id = %s', ids),
                daemon=True,
            ),
        ]
        self._started = time.perf_counter()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(3 * SAMPLE_INTERVAL)  # let the monitor see the last release
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for conn in self._conns:
            conn.close()
        self.mean_interval_ms = 1000 * (time.perf_counter() - self._started) / max(self.samples, 1)

    @contextmanager
    def step(self, name: str):
        step = self.steps[name] = Step(name)
        self.current = name
        started = time.perf_counter()
        try:
            yield step
        except Exception as exc:
            step.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
        finally:
            step.seconds = time.perf_counter() - started
            self.current = None

    def _monitor(self, conn: psycopg.Connection) -> None:
        try:
            self._sample_until_stopped(conn)
        except Exception as exc:
            self.monitor_error = f"{type(exc).__name__}: {exc}"

    def _sample_until_stopped(self, conn: psycopg.Connection) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            rows = conn.execute(SAMPLE_SQL, (WATCHED,)).fetchall()
            self.samples += 1
            seen: dict[tuple, str] = {}
            for pid, table, granted, query in rows:
                if granted and pid not in self.app_pids:
                    seen["hold", pid, table] = query
                elif not granted and pid in self.app_pids:
                    seen["app_wait", pid, table] = query
            for key, query in seen.items():
                span = self._open.setdefault(key, Span(now, self.current, []))
                if query and query not in span.statements and len(span.statements) < 5:
                    span.statements.append(query)
            for key in [key for key in self._open if key not in seen]:
                self._close(key, self._open.pop(key), now)
            time.sleep(SAMPLE_INTERVAL)
        for key, span in self._open.items():
            self._close(key, span, time.perf_counter())

    def _close(self, key: tuple, span: Span, end: float) -> None:
        step = self.steps.get(span.step)
        if step is None:
            return
        ms = 1000 * (end - span.start)
        with self._lock:
            if key[0] == "hold" and ms > (step.ael_ms or 0):
                step.ael_ms, step.ael_table, step.ael_statements = ms, key[2], span.statements
            elif key[0] == "app_wait" and ms > (step.app_wait_ms or 0):
                step.app_wait_ms, step.app_wait_blockers = ms, span.statements

    def _probe(self, conn: psycopg.Connection, kind: str, sql: str, ids: list) -> None:
        while not self._stop.is_set():
            name = self.current
            started = time.perf_counter()
            try:
                conn.execute(sql, (random.choice(ids),))
            except psycopg.Error as exc:
                self.probe_errors.append(f"{kind}: {str(exc).strip()[:200]}")
            ms = 1000 * (time.perf_counter() - started)
            step = self.steps.get(name)
            if step is not None:
                with self._lock:
                    if kind == "read":
                        step.read_ms, step.reads = max(step.read_ms or 0, ms), step.reads + 1
                    else:
                        step.write_ms, step.writes = max(step.write_ms or 0, ms), step.writes + 1
            time.sleep(PROBE_PAUSE)


# --- the two runs ----------------------------------------------------------------------------------


def run_revisions(dbname: str, chain: list[str]) -> Watch:
    url = async_url(dbname)
    with Watch(dbname) as watch:
        with watch.step("adopt (check, stamp 0000)") as step:
            adopt(url)
        for before, after in zip(chain, chain[1:], strict=False):
            if step.error:
                break
            with watch.step(f"{before} -> {after}") as step:
                upgrade(url, after)
    return watch


def run_naive(dbname: str, chain: list[str]) -> Watch:
    url = async_url(dbname)
    with Watch(dbname) as watch:
        with watch.step("stamp 0000"):  # the same data, checked in the other run
            command.stamp(alembic_config(url), "0000")
        if len(chain) > 1:
            with watch.step(f"0000 -> {chain[1]} (revision)"):
                upgrade(url, chain[1])  # tenants: a new table, the same in both runs
        with watch.step(NAIVE_STEP):
            naive_alter(dbname)
    return watch


# --- report ----------------------------------------------------------------------------------------


def fmt(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:,.0f}"


def print_table(title: str, steps: list[Step]) -> None:
    header = f"{'step':<36}{'time s':>9}{'AEL users/roles ms':>20}{'app lock wait ms':>18}"
    header += f"{'read worst ms':>15}{'write worst ms':>16}"
    print(f"\n{title}\n{header}\n{'-' * len(header)}")
    for step in steps:
        line = f"{step.name:<36}{step.seconds:>9.2f}{fmt(step.ael_ms):>20}{fmt(step.app_wait_ms):>18}"
        print(line + f"{fmt(step.read_ms):>15}{fmt(step.write_ms):>16}")
        if step.error:
            print(f"    FAILED: {step.error}")
    total = sum(step.seconds for step in steps)
    worst = max((step.ael_ms or 0 for step in steps), default=0)
    print(f"{'total':<36}{total:>9.2f}{fmt(worst):>20}")


def summarize(steps: list[Step], names: list[str]) -> dict:
    picked = [step for step in steps if step.name in names]
    return {
        "seconds": sum(step.seconds for step in picked),
        "ael_ms": max((step.ael_ms or 0 for step in picked), default=0),
        "app_wait_ms": max((step.app_wait_ms or 0 for step in picked), default=0),
        "read_ms": max((step.read_ms or 0 for step in picked), default=0),
        "write_ms": max((step.write_ms or 0 for step in picked), default=0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="legacy users (default 1,000,000)")
    parser.add_argument("--keep", action="store_true", help="keep the two databases for inspection")
    args = parser.parse_args(argv)

    chain = [script.revision for script in ordered_revisions()]
    name = f"mobility_bench_{secrets.token_hex(4)}"
    naive_name = f"{name}_naive"
    created: list[str] = []
    started_at = datetime.now(UTC)
    try:
        print(
            f"legacy database {name}: {args.users:,} users, {args.users // 2:,} sessions, "
            f"{2 * args.users:,} activity logs; revisions {chain[0]}..{chain[-1]}"
        )
        admin(f'CREATE DATABASE "{name}"')
        created.append(name)
        setup = build_legacy(name, args.users)
        started = time.perf_counter()
        admin(f'CREATE DATABASE "{naive_name}" TEMPLATE "{name}" STRATEGY FILE_COPY')
        created.append(naive_name)
        setup["copy_for_baseline_s"] = time.perf_counter() - started
        print("setup (not part of the goal): " + ", ".join(f"{k} {v:.1f}" for k, v in setup.items()))

        revisions = run_revisions(name, chain)
        baseline = run_naive(naive_name, chain)
    finally:
        if not args.keep:
            for dbname in created:
                with suppress(psycopg.Error):
                    admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        elif created:
            print(f"kept databases: {', '.join(created)}")

    rev_steps, base_steps = list(revisions.steps.values()), list(baseline.steps.values())
    print_table("REVISIONS (lock-safe): adopt, then one revision at a time", rev_steps)
    print_table("BASELINE (naive, same data, same monitor)", base_steps)

    lock_safe = summarize(rev_steps, ["0001 -> 0002", "0002 -> 0003"])
    naive = summarize(base_steps, [NAIVE_STEP])
    print("\nroles + users change (0002+0003)   lock-safe revisions   naive baseline")
    for key, label in [
        ("seconds", "time s"),
        ("ael_ms", "longest AEL on users/roles ms"),
        ("app_wait_ms", "longest app lock wait ms"),
        ("read_ms", "worst read ms"),
        ("write_ms", "worst write ms"),
    ]:
        unit = ".2f" if key == "seconds" else ",.0f"
        print(f"  {label:<33}{format(lock_safe[key], unit):>20}{format(naive[key], unit):>17}")

    failed = [step for step in rev_steps if step.error]
    worst = max(rev_steps, key=lambda step: step.ael_ms or 0)
    monitor_error = revisions.monitor_error or baseline.monitor_error
    goal_met = not failed and not revisions.monitor_error and (worst.ael_ms or 0) <= GOAL_MS
    print(
        f"\nmonitor: {revisions.samples:,} + {baseline.samples:,} samples, one every "
        f"{revisions.mean_interval_ms:.1f} / {baseline.mean_interval_ms:.1f} ms; probe errors: "
        f"{len(revisions.probe_errors) + len(baseline.probe_errors)}"
        + (f"; MONITOR FAILED: {monitor_error}" if monitor_error else "")
    )
    if worst.ael_ms:
        print(
            f"longest ACCESS EXCLUSIVE hold: {fmt(worst.ael_ms)} ms on {worst.ael_table} in "
            f"{worst.name}, while running:"
        )
        for statement in worst.ael_statements:
            print("    " + " ".join(statement.split())[:200])
    for step in rev_steps:
        if (step.app_wait_ms or 0) >= NOTE_WAIT_MS:
            print(f"app sessions waited {fmt(step.app_wait_ms)} ms for a lock in {step.name}, behind:")
            for blocker in step.app_wait_blockers:
                print("    " + " ".join(blocker.split())[:200])
    verdict = "MET" if goal_met else "NOT MET"
    print(
        f"GOAL (no ACCESS EXCLUSIVE lock on users or roles held > {GOAL_MS:,.0f} ms): {verdict}"
        + (f" ({len(failed)} step(s) failed)" if failed else "")
    )

    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"migrate-{started_at:%Y%m%dT%H%M%SZ}.json"
    figures = {
        "started_at": started_at.isoformat(),
        "users": args.users,
        "revisions_chain": chain,
        "setup": setup,
        "goal_ms": GOAL_MS,
        "goal_met": goal_met,
        "revisions": [asdict(step) for step in rev_steps],
        "baseline": [asdict(step) for step in base_steps],
        "compare_0002_0003": {"lock_safe": lock_safe, "naive": naive},
        "monitor": {
            "sample_interval_ms": [revisions.mean_interval_ms, baseline.mean_interval_ms],
            "probe_errors": revisions.probe_errors + baseline.probe_errors,
            "monitor_errors": [revisions.monitor_error, baseline.monitor_error],
        },
    }
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {path}")
    return 0 if goal_met else 1


if __name__ == "__main__":
    sys.exit(main())
