"""Benchmark: the authenticated, tenant-scoped read under loopback load, against two baselines.

    .venv/bin/python bench/auth.py [--users N] [--workers 1,2] [--rounds 3] [--duration 8] [--profile] [--keep]

In one run on PostgreSQL: makes a database at head holding 100 tenants and N users (default 1,000,000)
with memberships, the 7 global system roles and some sessions, filled server-side; logs 50 admins (one
per tenant) in through the API; then puts the same `wrk` load (tokens and target users rotating, each
target a member of its admin's tenant) on three endpoints, each served by its own uvicorn:
  (a) GET /api/v1/users/{id} of the real app: token -> session lookup, tenant scope, permission check;
  (b) the same route of the same app with authentication off (bench/scoped_app.py: the Scope of each
      token fixed in memory and bound with apply_to_database, no lookup);
  (c) a bare FastAPI + asyncpg endpoint doing the same read in one SELECT (bench/bare_app.py).
Before the load it checks that the three answer the same body, and counts the PostgreSQL round trips
of one read of each with a counting proxy on the wire. The load is measured in rounds taken in turn
(a, b, c, a, b, c, ...) at each worker count; figures are the medians of the rounds.
GOALS: req/s of (a) >= 60 % of (b), and >= 40 % of (c), at every worker count measured.
Exit 0 when met, 1 when not, 2 when the run could not measure (no wrk, no endpoint, a failed check).
Figures go to bench/results/auth-<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from mobility.core.security import hash_password
from mobility.ops.migrations import upgrade

ADMIN_URL = os.environ.get("MOBILITY_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
FACTORY_ENV, DEFAULT_FACTORY = "MOBILITY_BENCH_APP_FACTORY", "mobility.main:create_app"
APP_ROLE = "mobility_app"  # the API's own login role under row-level security, when migrations made it

TENANTS = 100
ADMINS = 50  # logged in through the API, one per tenant
TARGETS_PER_ADMIN = 200  # users of the admin's own tenant that the load reads
GOAL_VS_B = 0.60
GOAL_VS_C = 0.40
ROUTE = "/api/v1/users/{id}"
ROLE_NAMES = ["System Admin", "Admin", "Trainer", "Candidate", "Agent", "Broker", "Recruiter"]
ENDPOINTS = {
    "a": "authenticated (the app)",
    "b": "auth off (scoped_app)",
    "c": "bare FastAPI+asyncpg",
}


# --- databases -------------------------------------------------------------------------------------


def libpq_url(dbname: str, user: str | None = None, port: int | None = None) -> str:
    url = make_url(ADMIN_URL).set(database=dbname)
    if user:
        url = url.set(username=user, password=None)
    if port:
        url = url.set(host="127.0.0.1", port=port)
    return url.render_as_string(hide_password=False)


def async_url(dbname: str, user: str | None = None, port: int | None = None) -> str:
    url = make_url(libpq_url(dbname, user, port)).set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def fill(dbname: str, users: int) -> dict[str, float]:
    """Tenants, the global system roles, users with one membership each (every 20th a second one) and
    sessions, all server-side. Users are spread over the tenants round-robin, as rows of a live
    database are: a tenant's members are scattered over the table, not packed together."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with psycopg.connect(libpq_url(dbname), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET TIME ZONE 'UTC'")  # the legacy timestamp columns hold UTC
        conn.execute("SET maintenance_work_mem = '512MB'")
        # Skip the row-by-row foreign key triggers while loading: the rows are consistent by construction.
        conn.execute("SET session_replication_role = replica")
        with conn.transaction():
            conn.execute(
                """INSERT INTO tenants (id, name, code)
                   SELECT gen_random_uuid(), 'Bench institute ' || lpad(t::text, 3, '0'),
                          'B' || lpad(t::text, 3, '0')
                   FROM generate_series(1, %s) AS t""",
                (TENANTS,),
            )
            conn.execute(
                """INSERT INTO roles (id, name, description, "updatedAt", "tenantId", "systemRole")
                   SELECT gen_random_uuid(), name, name || ' (system role)', now(), NULL, true
                   FROM unnest(%s::text[]) AS name""",
                (ROLE_NAMES,),
            )
            # Per tenant, in blocks of 100 users: 5 % Admin, 5 % each Trainer, Agent, Broker,
            # Recruiter, the rest Candidates. No System Admin: they would see every tenant.
            conn.execute(
                """INSERT INTO users (id, email, "passwordHash", name, "roleId", "tenantId",
                                      "lastLoginAt", "createdAt", "updatedAt")
                   SELECT gen_random_uuid(), 'user' || i || '@bench.example', md5(i::text), 'User ' || i,
                          r.ids[CASE (i / %(tenants)s) %% 20 WHEN 0 THEN 2 WHEN 1 THEN 3 WHEN 2 THEN 5
                                WHEN 3 THEN 6 WHEN 4 THEN 7 ELSE 4 END],
                          t.ids[1 + i %% %(tenants)s],
                          now() - (i %% 1000) * interval '1 hour', now() - (i %% 2000) * interval '1 day',
                          now()
                   FROM generate_series(1, %(users)s) AS i,
                        (SELECT array_agg(id ORDER BY code) AS ids FROM tenants) AS t,
                        (SELECT array_agg(id ORDER BY array_position(%(roles)s::text[], name)) AS ids
                         FROM roles) AS r""",
                {"users": users, "tenants": TENANTS, "roles": ROLE_NAMES},
            )
            timings["users_s"] = time.perf_counter() - started
            conn.execute(
                """INSERT INTO user_tenants (id, "userId", "tenantId", "roleId", "isPrimary")
                   SELECT gen_random_uuid(), id, "tenantId", "roleId", true FROM users"""
            )
            conn.execute(
                """INSERT INTO user_tenants (id, "userId", "tenantId", "roleId", "isPrimary")
                   SELECT gen_random_uuid(), u.id, t.ids[1 + (array_position(t.ids, u."tenantId") %% %s)],
                          (SELECT id FROM roles WHERE name = 'Candidate' AND "tenantId" IS NULL), false
                   FROM users u, (SELECT array_agg(id ORDER BY code) AS ids FROM tenants) AS t
                   WHERE u."roleId" = (SELECT id FROM roles WHERE name = 'Candidate' AND "tenantId" IS NULL)
                     AND abs(hashtext(u.id::text)) %% 20 = 0""",
                (TENANTS,),
            )
            timings["memberships_s"] = time.perf_counter() - started - sum(timings.values())
            conn.execute(
                """INSERT INTO sessions (id, "userId", "tenantId", token, "expiresAt", "lastSeenAt",
                                         "ipAddress", "userAgent", "createdAt")
                   SELECT gen_random_uuid(), id, "tenantId", encode(sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())), 'hex'),
                          (now() AT TIME ZONE 'UTC') + interval '12 hours', now(),
                          '10.0.0.1', 'Mozilla/5.0 (bench)', now() AT TIME ZONE 'UTC'
                   FROM users TABLESAMPLE BERNOULLI (10)"""
            )
            timings["sessions_s"] = time.perf_counter() - started - sum(timings.values())
        # A live database has been vacuumed: hint bits set, statistics current.
        conn.execute("VACUUM (ANALYZE)")
    timings["vacuum_analyze_s"] = time.perf_counter() - started - sum(timings.values())
    return timings


def pick_admins(dbname: str, password_hash: str) -> tuple[list[dict[str, Any]], bool]:
    """One Admin in each of the first ADMINS tenants, given the run's password, with their targets."""
    with psycopg.connect(libpq_url(dbname), autocommit=True) as conn:
        rows = conn.execute(
            """SELECT DISTINCT ON (t.code) u.id::text, u.email, t.id::text, t.code
               FROM users u JOIN user_tenants ut ON ut."userId" = u.id AND ut."isPrimary"
               JOIN tenants t ON t.id = ut."tenantId" JOIN roles r ON r.id = ut."roleId"
               WHERE r.name = 'Admin' ORDER BY t.code, u.email LIMIT %s""",
            (ADMINS,),
        ).fetchall()
        conn.execute(
            'UPDATE users SET "passwordHash" = %s WHERE id = ANY(%s::uuid[])',
            (password_hash, [row[0] for row in rows]),
        )
        admins = []
        for user_id, email, tenant_id, code in rows:
            targets = conn.execute(
                """SELECT "userId"::text FROM user_tenants WHERE "tenantId" = %s
                   ORDER BY random() LIMIT %s""",
                (tenant_id, TARGETS_PER_ADMIN),
            ).fetchall()
            admins.append(
                {
                    "user_id": user_id,
                    "email": email,
                    "tenant_id": tenant_id,
                    "tenant_code": code,
                    "targets": [target for (target,) in targets],
                }
            )
        # For the isolation check: a user who belongs to none of the first admin's tenants.
        outsider = conn.execute(
            """SELECT u.id::text FROM users u WHERE NOT EXISTS (
                   SELECT 1 FROM user_tenants ut WHERE ut."userId" = u.id AND ut."tenantId" = %s)
               LIMIT 1""",
            (admins[0]["tenant_id"],),
        ).fetchone()[0]
        app_role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
    admins[0]["outsider"] = outsider
    return admins, app_role is not None


# --- servers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One endpoint served by uvicorn in its own process group, stopped by that group's id."""

    def __init__(self, kind: str, workers: int, env: dict[str, str], log_dir: Path) -> None:
        self.kind, self.workers, self.port = kind, workers, free_port()
        spec = {
            "a": ["--factory", env.get(FACTORY_ENV, DEFAULT_FACTORY)],
            "b": ["--factory", "--app-dir", str(BENCH_DIR), "scoped_app:create_app"],
            "c": ["--app-dir", str(BENCH_DIR), "bare_app:app"],
        }[kind]
        command = [sys.executable, "-m", "uvicorn", *spec, "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", str(workers), "--loop", "uvloop", "--http", "httptools"]
        command += ["--no-access-log", "--log-level", "warning"]
        self.log_path = log_dir / f"server-{kind}-{workers}w-{self.port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            command, env=env, cwd=log_dir, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, headers: dict[str, str] | None = None, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        answered = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.kind} exited: {self.log_tail()}")
            try:
                httpx.get(self.base + path, headers=headers, timeout=5)
                answered += 1
                if answered >= 2 * self.workers:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"server {self.kind} not ready after {timeout:.0f} s: {self.log_tail()}")

    def pids(self) -> list[int]:
        """The uvicorn process and its workers."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        found = [self.proc.pid]
        with suppress(OSError):
            found += [int(pid) for pid in children.read_text().split()]
        return found

    def log_tail(self) -> str:
        self._log.flush()
        return " | ".join(self.log_path.read_text().strip().splitlines()[-5:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


# --- load ------------------------------------------------------------------------------------------

# wrk's Lua: every request of a thread takes the next (token, target) line of the data file; the
# requests are built once in init(). done() prints the figures as one JSON line.
WRK_LUA = r"""
local requests = {}
local n, i = 0, 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

function init(args)
  for line in io.lines(args[1]) do
    local token, id = line:match("^(%S+)%s+(%S+)$")
    requests[#requests + 1] = wrk.format("GET", "/api/v1/users/" .. id, {["Authorization"] = "Bearer " .. token})
  end
  n = #requests
  i = ((thread_no or 1) - 1) * math.floor(n / 7)
end

function request()
  i = i % n + 1
  return requests[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "non_2xx": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime (clock ticks) of each process still alive."""
    ticks = {}
    for pid in pids:
        with suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def backend_pids(dbname: str) -> list[int]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)
        ).fetchall()
    return [pid for (pid,) in rows]


def run_wrk(args: argparse.Namespace, url: str, script: Path, data: Path, seconds: float) -> dict:
    """One bounded wrk run; its figures, and the CPU seconds wrk itself used."""
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds:g}s"]
    command += ["--timeout", "5s", "-s", str(script), url, "--", str(data)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((line for line in out.splitlines() if line.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip() or out.strip()}")
    figures = json.loads(line.removeprefix("BENCH_JSON "))
    figures["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return figures


def measure(args: argparse.Namespace, server: Server, dbname: str, script: Path, data: Path) -> dict:
    """One measured run, with the CPU that the app, PostgreSQL, wrk and everything else spent."""
    app_pids, pg_pids = server.pids(), backend_pids(dbname)
    app_before, pg_before, machine_before = cpu_ticks(app_pids), cpu_ticks(pg_pids), machine_ticks()
    figures = run_wrk(args, server.base, script, data, args.duration)
    pg_pids = sorted(set(pg_pids) | set(backend_pids(dbname)))
    app_after, pg_after, machine_after = cpu_ticks(app_pids), cpu_ticks(pg_pids), machine_ticks()
    tick = os.sysconf("SC_CLK_TCK")
    seconds = figures["duration_us"] / 1e6
    requests = max(figures["requests"], 1)
    app_s = sum(app_after[pid] - app_before.get(pid, 0) for pid in app_after) / tick
    pg_s = sum(pg_after[pid] - pg_before.get(pid, 0) for pid in pg_after) / tick
    busy_s = (machine_after[0] - machine_before[0]) / tick
    cores = os.cpu_count() or 1
    figures.update(
        rps=figures["requests"] / seconds,
        errors=sum(
            figures[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")
        ),
        app_cpu_us_per_request=1e6 * app_s / requests,
        pg_cpu_us_per_request=1e6 * pg_s / requests,
        wrk_cpu_us_per_request=1e6 * figures["wrk_cpu_s"] / requests,
        machine_busy_pct=100 * busy_s / (seconds * cores),
        # CPU of every other process on the machine (other people's work): it was not ours to use.
        others_cpu_pct=100 * max(busy_s - app_s - pg_s - figures["wrk_cpu_s"], 0) / (seconds * cores),
    )
    return figures


def summarize(rounds: list[dict]) -> dict:
    """Medians over the rounds of one endpoint (and the spread of req/s)."""
    keys = ["rps", "p50_us", "p99_us", "app_cpu_us_per_request", "pg_cpu_us_per_request",
            "wrk_cpu_us_per_request", "machine_busy_pct", "others_cpu_pct"]  # fmt: skip
    summary = {key: statistics.median(run[key] for run in rounds) for key in keys}
    summary.update(
        rps_rounds=[run["rps"] for run in rounds],
        requests=sum(run["requests"] for run in rounds),
        errors=sum(run["errors"] for run in rounds),
        max_us=max(run["max_us"] for run in rounds),
    )
    return summary


def load_phase(
    args: argparse.Namespace, workers: int, env: dict[str, str], work: Path, dbname: str, ready: tuple
) -> dict[str, dict]:
    """The three servers up at once (an idle server costs no CPU), each warmed up, then measured in
    rounds taken in turn (a, b, c, a, b, c, ...): load from other processes that comes and goes falls
    on all three alike. Returns each endpoint's rounds and their summary."""
    script, data = work / "rotate.lua", work / "targets.txt"
    servers: dict[str, Server] = {}
    try:
        for kind in "abc":
            servers[kind] = Server(kind, workers, env, work)
        for server in servers.values():
            server.wait_ready(*ready)
            run_wrk(args, server.base, script, data, args.warmup)
        rounds: dict[str, list[dict]] = {kind: [] for kind in servers}
        for number in range(1, args.rounds + 1):
            for kind, server in servers.items():
                run = measure(args, server, dbname, script, data)
                rounds[kind].append(run)
                print(
                    f"  round {number}/{args.rounds} ({kind}) {workers} worker(s): {run['rps']:,.0f} req/s, "
                    f"p50 {run['p50_us'] / 1000:.1f} ms, p99 {run['p99_us'] / 1000:.1f} ms"
                    + (f", {run['errors']} ERRORS" if run["errors"] else "")
                    + f"; other processes {run['others_cpu_pct']:.0f} % of the machine"
                )
    finally:
        for server in servers.values():
            server.stop()
    return {kind: {"summary": summarize(runs), "rounds": runs} for kind, runs in rounds.items()}


# --- round trips: a counting proxy on the wire -----------------------------------------------------

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


_UUID_LITERAL = re.compile(r"'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'")


def _label(sql: str) -> str:
    """A statement, short: a long SELECT's column list becomes `...` (up to its top-level FROM), and
    uuids written into the SQL (the read connection's settings) become `<uuid>`, so one statement
    with different values counts as one."""
    sql = " ".join(sql.split())
    sql = _UUID_LITERAL.sub("'<uuid>'", sql)
    if sql[:7].upper() == "SELECT " and len(sql) > 80:
        depth = 0
        for i, char in enumerate(sql):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and sql[i : i + 6].upper() == " FROM ":
                sql = "SELECT ... " + sql[i + 1 :]
                break
    return sql if len(sql) <= 110 else sql[:107] + "..."


class WireCounter:
    """A loopback TCP proxy in front of PostgreSQL that counts the round trips its clients make.

    Reads the frontend protocol: a round trip ends with each Sync ('S', extended protocol: asyncpg's
    prepare and bind/execute) and each simple Query ('Q': BEGIN, COMMIT, ROLLBACK); each is labelled
    with the statement it ran. The server's replies are passed through untouched. SSL is refused
    (loopback), so the client talks plain protocol.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.round_trips: Counter[str] = Counter()
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> int:
        self._thread.start()
        self._ready.wait(10)
        return self.listen_port

    def reset(self) -> None:
        self._loop.call_soon_threadsafe(self._reset)

    def _reset(self) -> None:
        self.round_trips.clear()
        self.connections = 0

    def snapshot(self) -> tuple[Counter[str], int]:
        done = threading.Event()
        result: list = []

        def take() -> None:
            result.append((Counter(self.round_trips), self.connections))
            done.set()

        self._loop.call_soon_threadsafe(take)
        done.wait(10)
        return result[0]

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.listen_port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        server_w = None
        try:
            server_r, server_w = await asyncio.open_connection(self.host, self.port)
            while True:  # untyped start-up messages: SSL/GSS requests (refused here), then StartupMessage
                head = await client_r.readexactly(8)
                length, code = int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big")
                rest = await client_r.readexactly(length - 8)
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    client_w.write(b"N")
                    await client_w.drain()
                    continue
                server_w.write(head + rest)
                break
            pipe = asyncio.ensure_future(self._pipe(server_r, client_w))
            try:
                await self._client_to_server(client_r, server_w)
            finally:
                pipe.cancel()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            for writer in (client_w, server_w):
                if writer is not None:
                    with suppress(Exception):
                        writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with suppress(Exception):
            writer.close()

    async def _client_to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        statements: dict[str, str] = {}  # prepared statement name -> label
        parsed: list[str] = []
        executed: list[str] = []
        bound = ""
        while True:
            head = await reader.readexactly(5)
            body = await reader.readexactly(int.from_bytes(head[1:], "big") - 4)
            writer.write(head + body)
            await writer.drain()
            kind = head[:1]
            if kind == b"P":
                name, _, rest = body.partition(b"\0")
                label = _label(rest.partition(b"\0")[0].decode(errors="replace"))
                statements[name.decode()] = label
                parsed.append(label)
            elif kind == b"B":
                _portal, _, rest = body.partition(b"\0")
                bound = statements.get(rest.partition(b"\0")[0].decode(), "?")
            elif kind == b"E":
                executed.append(bound)
            elif kind == b"S":
                if executed:
                    self.round_trips[" + ".join(executed)] += 1
                elif parsed:
                    self.round_trips["(prepare) " + " + ".join(parsed)] += 1
                else:
                    self.round_trips["(sync)"] += 1
                parsed, executed = [], []
            elif kind == b"Q":
                self.round_trips[_label(body.rstrip(b"\0").decode(errors="replace"))] += 1
            elif kind == b"X":
                return


def count_round_trips(
    kind: str, env: dict[str, str], log_dir: Path, pairs: list[tuple[str, str]], requests: int
) -> dict:
    """Serve `kind` (1 worker) through the counting proxy; warm up, then count `requests` reads."""
    pg = make_url(ADMIN_URL)
    counter = WireCounter(pg.host or "127.0.0.1", pg.port or 5432)
    port = counter.start()
    proxied = dict(env)
    for key in ("MOBILITY_DATABASE_URL", "MOBILITY_APP_DATABASE_URL", "MOBILITY_BENCH_DSN"):
        if proxied.get(key):
            proxied[key] = make_url(proxied[key]).set(host="127.0.0.1", port=port).render_as_string(False)
    server = Server(kind, 1, proxied, log_dir)
    try:
        token, target = pairs[0]
        headers = {"Authorization": f"Bearer {token}"}
        server.wait_ready(f"/api/v1/users/{target}", headers)
        with httpx.Client(base_url=server.base, timeout=10) as client:
            for token, target in pairs[:50]:  # warm: connections open, statements prepared
                client.get(f"/api/v1/users/{target}", headers={"Authorization": f"Bearer {token}"})
            time.sleep(0.2)
            counter.reset()
            time.sleep(0.2)
            statuses: Counter[int] = Counter()
            for token, target in pairs[50 : 50 + requests]:
                response = client.get(f"/api/v1/users/{target}", headers={"Authorization": f"Bearer {token}"})
                statuses[response.status_code] += 1
            time.sleep(0.2)
        counts, connections = counter.snapshot()
    finally:
        server.stop()
        counter.stop()
    done = sum(statuses.values())
    per_request = {label: n / done for label, n in counts.most_common()}
    return {
        "requests": done,
        "statuses": dict(statuses),
        "round_trips_per_request": sum(counts.values()) / done,
        "new_connections": connections,
        "breakdown": per_request,
    }


# --- profile ---------------------------------------------------------------------------------------

# Where the app's CPU goes, by the innermost frame of each py-spy sample (self time) ...
SELF_BUCKETS = [
    ("asyncpg", "asyncpg/"),
    ("SQLAlchemy", "sqlalchemy/"),
    ("pydantic", "pydantic"),
    ("FastAPI", "fastapi/"),
    ("Starlette", "starlette/"),
    ("uvicorn/httptools", "uvicorn/"),
    ("mobility (app code)", "mobility/"),
    ("asyncio/uvloop", "asyncio/"),
    ("asyncio/uvloop", "uvloop/"),
]
# ... and by kind of work: a sample goes to the first kind that matches (they sum to 100 %). The first five
# match a frame anywhere on the stack (work done in or under that library); the others, the innermost frame.
# Caller-based shares ("how much is authentication") cannot be read from these stacks: SQLAlchemy runs each
# statement in a greenlet and asyncpg's waits resume from the event loop, so py-spy sees those stacks without
# the request's coroutines around them. bench/README.md says how to measure per-step costs instead.
WORK_KINDS = [
    (
        "tenancy row filter (do_orm_execute, policies)",
        True,
        ("_filter_statements (mobility/core/", "policies.py"),
    ),
    ("pool checkout and pre-ping", True, ("_async_ping (", "(sqlalchemy/pool/")),
    ("asyncpg: protocol, BEGIN/COMMIT, round trips", True, ("(asyncpg/",)),
    ("SQLAlchemy: statement build, compile, execute, ORM", True, ("(sqlalchemy/",)),
    ("pydantic and response serialization", True, ("(pydantic", "serialize_response (fastapi")),
    ("mobility code itself (self time)", False, ("(mobility/",)),
    ("FastAPI/Starlette itself: routing, dependencies", False, ("(fastapi/", "(starlette/")),
    (
        "uvicorn, HTTP parsing, event loop",
        False,
        ("(uvicorn/", "uvloop", "(asyncio/", "(httptools", "runners.py"),
    ),
]


def work_kind(stack: str) -> str:
    innermost = stack.rsplit(";", 1)[-1]
    for name, anywhere, keys in WORK_KINDS:
        if any(key in (stack if anywhere else innermost) for key in keys):
            return name
    return "other (stdlib, native)"


def profile(pid: int, seconds: float, out: Path) -> dict | None:
    """py-spy (when installed) on the worker for `seconds`: collapsed stacks, summarised."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    command = [spy, "record", "--pid", str(pid), "--duration", f"{seconds:.0f}", "--rate", "250"]
    command += ["--nonblocking", "--format", "raw", "--output", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0 or not out.exists():
        return {"error": (result.stderr or result.stdout).strip()[-500:]}
    selfs: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        innermost = stack.split(";")[-1]
        selfs[next((name for name, key in SELF_BUCKETS if key in innermost), "other")] += n
        kinds[work_kind(stack)] += n
    total = max(total, 1)
    return {
        "samples": total,
        "self_pct": {name: 100 * n / total for name, n in selfs.most_common()},
        "work_pct": {name: 100 * n / total for name, n in kinds.most_common()},
        "collapsed_stacks": str(out),
    }


# --- checks ----------------------------------------------------------------------------------------


def _same_json(left: Any, right: Any) -> bool:
    """Equal, reading strings that are timestamps as instants (2024-01-01T00:00:00Z == ...+00:00)."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same_json(left[k], right[k]) for k in left)
    if isinstance(left, str) and isinstance(right, str) and left != right:
        try:
            return datetime.fromisoformat(left) == datetime.fromisoformat(right)
        except ValueError:
            return False
    return left == right


def check_endpoint(server: Server, admin: dict, token: str, reference: dict | None) -> dict:
    """Before any load: the read answers 200 (with the same body as (a)), and for (a)/(b) a user of
    another tenant is 404 and a request without a token is 401."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base, timeout=10) as client:
        response = client.get(f"/api/v1/users/{admin['targets'][0]}", headers=headers)
        if response.status_code != 200:
            raise RuntimeError(
                f"({server.kind}) own-tenant read: {response.status_code} {response.text[:300]}"
            )
        body = response.json()
        if reference is not None and not _same_json(body, reference):
            raise RuntimeError(f"({server.kind}) body differs from (a):\n  {body}\n  {reference}")
        if server.kind in "ab":
            other = client.get(f"/api/v1/users/{admin['outsider']}", headers=headers)
            if other.status_code != 404:
                raise RuntimeError(f"({server.kind}) user of another tenant: {other.status_code}, not 404")
            anonymous = client.get(f"/api/v1/users/{admin['targets'][0]}")
            if anonymous.status_code != 401:
                raise RuntimeError(f"({server.kind}) without a token: {anonymous.status_code}, not 401")
    return body


def route_exists(factory: str) -> bool:
    module, _, name = factory.partition(":")
    app = getattr(importlib.import_module(module), name)()
    paths = app.openapi()["paths"]
    return any(re.fullmatch(r"/api/v1/users/\{\w+\}", path) and "get" in paths[path] for path in paths)


# --- report ----------------------------------------------------------------------------------------


def print_results(loads: dict[int, dict[str, dict]], trips: dict[str, dict]) -> None:
    header = (
        f"{'endpoint':<31}{'workers':>8}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'round trips':>12}{'app CPU':>9}{'PG CPU':>8}{'wrk CPU':>8}{'others %':>9}"
    )
    print(
        "\nmedians of the rounds; CPU in microseconds per request; others: CPU of other processes, % of the machine"
    )
    print(f"{header}\n{'-' * len(header)}")
    for workers, runs in loads.items():
        for kind, result in runs.items():
            run = result["summary"]
            trip = trips[kind]["round_trips_per_request"]
            print(
                f"({kind}) {ENDPOINTS[kind]:<27}{workers:>8}{run['rps']:>9,.0f}{run['p50_us'] / 1000:>8.1f}"
                f"{run['p99_us'] / 1000:>8.1f}{run['errors']:>7}{trip:>12.2f}"
                f"{run['app_cpu_us_per_request']:>9,.0f}{run['pg_cpu_us_per_request']:>8,.0f}"
                f"{run['wrk_cpu_us_per_request']:>8,.0f}{run['others_cpu_pct']:>9.0f}"
            )
    print(
        "req/s of each round: "
        + "; ".join(
            f"({kind}) {workers}w " + " ".join(f"{rps:,.0f}" for rps in result["summary"]["rps_rounds"])
            for workers, runs in loads.items()
            for kind, result in runs.items()
        )
    )
    print("\nround trips to PostgreSQL of one read (counted on the wire, per request):")
    for kind in "abc":
        print(f"  ({kind}) {ENDPOINTS[kind]}: {trips[kind]['round_trips_per_request']:.2f}")
        for label, n in trips[kind]["breakdown"].items():
            print(f"      {n:5.2f}  {label}")


def print_profile(prof: dict) -> None:
    if "self_pct" not in prof:
        print(f"\nprofile failed: {prof.get('error')}")
        return
    print(
        f"\nprofile of (a), 1 worker, {prof['samples']:,} py-spy samples (wall clock of the busy thread; "
        f"{prof['rps_under_profiler']:,.0f} req/s meanwhile); collapsed stacks: {prof['collapsed_stacks']}"
    )
    print("  self time by library: " + ", ".join(f"{k} {v:.0f}%" for k, v in prof["self_pct"].items()))
    print("  by kind of work:")
    for name, pct in prof["work_pct"].items():
        print(f"      {pct:5.1f}%  {name}")


def verdict(loads: dict[int, dict[str, dict]]) -> tuple[bool, dict]:
    verdicts = {}
    print()
    for workers, runs in loads.items():
        a, b, c = (runs[kind]["summary"]["rps"] for kind in "abc")
        clean = all(runs[kind]["summary"]["errors"] == 0 for kind in "abc")
        met = clean and a / b >= GOAL_VS_B and a / c >= GOAL_VS_C
        verdicts[str(workers)] = {"a_vs_b": a / b, "a_vs_c": a / c, "errors_free": clean, "met": met}
        print(
            f"{workers} worker(s): (a)/(b) = {100 * a / b:.0f} % (goal >= {100 * GOAL_VS_B:.0f} %), "
            f"(a)/(c) = {100 * a / c:.0f} % (goal >= {100 * GOAL_VS_C:.0f} %)"
            + ("" if clean else "  [errors during the load: figures invalid]")
            + ("  met" if met else "  NOT MET")
        )
    goal_met = all(v["met"] for v in verdicts.values())
    print(
        f"GOAL ((a) >= {100 * GOAL_VS_B:.0f} % of (b) and >= {100 * GOAL_VS_C:.0f} % of (c) in req/s, at every "
        f"worker count): {'MET' if goal_met else 'NOT MET'}"
    )
    return goal_met, verdicts


# --- the run ---------------------------------------------------------------------------------------


def login_admins(server: Server, admins: list[dict], password: str) -> dict[str, str]:
    tokens = {}
    with httpx.Client(base_url=server.base, timeout=60) as client:
        for adm in admins:
            response = client.post(
                "/api/v1/auth/login",
                json={"email": adm["email"], "password": password, "tenantCode": adm["tenant_code"]},
            )
            if response.status_code != 200:
                raise RuntimeError(f"login of {adm['email']}: {response.status_code} {response.text[:300]}")
            tokens[adm["email"]] = response.json()["token"]
    return tokens


def write_work_files(work: Path, admins: list[dict], tokens: dict[str, str]) -> list[tuple[str, str]]:
    """wrk's script and data (token, target: shuffled), and the scopes of (b) and (c)."""
    pairs = [(tokens[adm["email"]], target) for adm in admins for target in adm["targets"]]
    random.Random(7).shuffle(pairs)
    (work / "targets.txt").write_text("".join(f"{token} {target}\n" for token, target in pairs))
    scopes = {
        tokens[adm["email"]]: {"tenant_id": adm["tenant_id"], "actor_id": adm["user_id"], "role": "Admin"}
        for adm in admins
    }
    (work / "scopes.json").write_text(json.dumps(scopes))
    (work / "rotate.lua").write_text(WRK_LUA)
    return pairs


def profile_phase(
    args: argparse.Namespace, env: dict[str, str], work: Path, ready: tuple, stamp: str
) -> dict:
    server = Server("a", 1, env, work)
    try:
        server.wait_ready(*ready)
        script, data = work / "rotate.lua", work / "targets.txt"
        run_wrk(args, server.base, script, data, args.warmup)
        RESULTS_DIR.mkdir(exist_ok=True)
        stacks = RESULTS_DIR / f"auth-profile-{stamp}.txt"
        seconds = args.duration * args.rounds
        holder: dict = {}
        spy = threading.Thread(target=lambda: holder.update(result=profile(server.proc.pid, seconds, stacks)))
        spy.start()
        profiled = run_wrk(args, server.base, script, data, seconds)
        spy.join()
    finally:
        server.stop()
    result = holder.get("result")
    if result is not None:
        result["rps_under_profiler"] = profiled["requests"] / (profiled["duration_us"] / 1e6)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="users (default 1,000,000)")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts to measure (default 1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per endpoint, taken in turn")
    parser.add_argument("--duration", type=float, default=8, help="seconds of one measured run (default 8)")
    parser.add_argument(
        "--warmup", type=float, default=5, help="seconds of load before measuring (default 5)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--count-requests", type=int, default=200, help="reads whose round trips are counted")
    parser.add_argument(
        "--app",
        default=DEFAULT_FACTORY,
        help="the app factory of (a) and (b), module:function (default: ours)",
    )
    parser.add_argument("--profile", action="store_true", help="then (a), 1 worker, once more under py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the database and work files afterwards")
    args = parser.parse_args(argv)
    workers_list = [int(w) for w in args.workers.split(",") if w.strip()]

    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: `sudo apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` (macOS)",
            file=sys.stderr,
        )
        return 2
    try:
        found = route_exists(args.app)
    except Exception as exc:
        print(f"cannot make the app with {args.app}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if not found:
        print(f"GET {ROUTE} does not exist in {args.app}: nothing to measure", file=sys.stderr)
        return 2

    started_at = datetime.now(UTC)
    stamp = f"{started_at:%Y%m%dT%H%M%SZ}"
    dbname = f"mobility_bench_{secrets.token_hex(4)}"
    work = Path(tempfile.mkdtemp(prefix="mobility-bench-auth-"))
    figures: dict[str, Any] = {
        "started_at": started_at.isoformat(),
        "users": args.users,
        "tenants": TENANTS,
        "admins": ADMINS,
        "targets_per_admin": TARGETS_PER_ADMIN,
        "app": args.app,
        "wrk": {
            "threads": args.threads,
            "connections": args.connections,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
        },
        "goals": {"a_vs_b": GOAL_VS_B, "a_vs_c": GOAL_VS_C},
        "cpus": os.cpu_count(),
    }
    created = False
    try:
        print(f"database {dbname}: {TENANTS} tenants, {args.users:,} users; work files in {work}")
        admin(f'CREATE DATABASE "{dbname}"')
        created = True
        started = time.perf_counter()
        upgrade(async_url(dbname))
        setup = {"migrate_s": time.perf_counter() - started}
        setup.update(fill(dbname, args.users))
        password = secrets.token_urlsafe(18)
        admins, has_app_role = pick_admins(dbname, hash_password(password))
        print("setup: " + ", ".join(f"{k} {v:.1f}" for k, v in setup.items()))

        env = {k: v for k, v in os.environ.items() if not k.startswith("MOBILITY_")}
        env.update(
            MOBILITY_DATABASE_URL=async_url(dbname),
            MOBILITY_SECRET_KEY=Fernet.generate_key().decode(),
            MOBILITY_DATA_DIR=str(work / "data"),
            MOBILITY_BENCH_DSN=libpq_url(dbname),
            MOBILITY_BENCH_SCOPES=str(work / "scopes.json"),
            MOBILITY_BENCH_APP_FACTORY=args.app,
        )
        if has_app_role:
            env["MOBILITY_APP_DATABASE_URL"] = async_url(dbname, user=APP_ROLE)
        figures["api_database_role"] = APP_ROLE if has_app_role else make_url(ADMIN_URL).username
        print(
            f"(a) and (b) connect as {figures['api_database_role']}"
            + ("" if has_app_role else f" (no {APP_ROLE} role: no row-level security)")
            + f"; (c) as {make_url(ADMIN_URL).username}"
        )

        # The admins log in through the API: server (a), which then answers the checks.
        started = time.perf_counter()
        server = Server("a", 1, env, work)
        try:
            server.wait_ready("/health")
            tokens = login_admins(server, admins, password)
            setup["logins_s"] = time.perf_counter() - started
            print(f"{len(tokens)} admins logged in through the API in {setup['logins_s']:.1f} s")
            pairs = write_work_files(work, admins, tokens)
            first = admins[0]
            token = tokens[first["email"]]
            reference = check_endpoint(server, first, token, None)
        finally:
            server.stop()
        figures["setup"] = setup
        ready = (f"/api/v1/users/{first['targets'][0]}", {"Authorization": f"Bearer {token}"})
        for kind in "bc":
            other = Server(kind, 1, env, work)
            try:
                other.wait_ready(*ready)
                check_endpoint(other, first, token, reference)
            finally:
                other.stop()
        print(
            "checks: (a), (b), (c) answer the same body; in (a) and (b) another tenant's user is 404, no token 401"
        )

        trips = {}
        for kind in "abc":
            trips[kind] = count_round_trips(kind, env, work, pairs, args.count_requests)
        figures["round_trips"] = trips
        print(
            "round trips per read: "
            + ", ".join(f"({kind}) {trips[kind]['round_trips_per_request']:.2f}" for kind in "abc")
        )

        loads: dict[int, dict[str, dict]] = {}
        for workers in workers_list:
            print(
                f"load: {workers} uvicorn worker(s) per endpoint, wrk -t{args.threads} -c{args.connections}, "
                f"{args.rounds} x {args.duration:g} s each after {args.warmup:g} s of warm-up"
            )
            loads[workers] = load_phase(args, workers, env, work, dbname, ready)
        figures["load"] = {str(workers): runs for workers, runs in loads.items()}

        if args.profile:
            figures["profile"] = profile_phase(args, env, work, ready, stamp)
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if created and not args.keep:
            with suppress(psycopg.Error):
                admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        elif created:
            print(f"kept database {dbname}; work files (tokens, targets, scopes) in {work}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print_results(loads, trips)
    if args.profile:
        if figures.get("profile") is None:
            print("\n--profile: py-spy is not installed (`.venv/bin/pip install py-spy`); skipped")
        else:
            print_profile(figures["profile"])
    goal_met, figures["ratios"] = verdict(loads)
    figures["goal_met"] = goal_met

    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"auth-{stamp}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {path}")
    return 0 if goal_met else 1


if __name__ == "__main__":
    sys.exit(main())
