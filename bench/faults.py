"""Fault benchmark: mixed load while the database's connections are killed and the database goes away.

    .venv/bin/python bench/faults.py [--outage restart|proxy] [--duration 45] [--kill-at 10] [--outage-at 20]
                                     [--outage-seconds 3] [--connections 16] [--workers 2] [--keep]

On PostgreSQL, in one run: makes a fresh database at head (bench/auth.py's `fill`: 100 tenants, users,
memberships), starts `mobility serve --workers 2` as the app role mobility_app, logs in 16 Admins (one per
tenant) and puts ~45 s of load on it from 16 connections: half read (GET /users/{id}, /me, the audit
log), half write (PATCH /me with a new name, PUT /settings/{key} with a new value; each writer on
its own user and tenant). The client records every request, and every write it saw acknowledged (2xx),
by its X-Request-ID.
  at --kill-at (10 s): every mobility_app backend of the benchmark's database is terminated
                       (pg_terminate_backend; other databases on the server are left alone);
  at --outage-at (20 s): the database goes away and comes back:
      --outage restart (default): PostgreSQL itself is restarted (pg_ctlcluster ... restart, as root or
                       through sudo). THIS DISTURBS EVERY OTHER USER OF THE SERVER (test runs, other
                       benchmarks): run it on a machine of your own;
      --outage proxy:  the app reaches PostgreSQL through a loopback proxy (tests/support/tcp_proxy.py),
                       which is cut (every connection dropped, new ones refused) for --outage-seconds
                       (3 s, about what a restart takes) and restored. The server is not touched.
Per phase (steady, backends killed, database restarting, recovered) it prints requests, 2xx, 503, other
5xx, connection errors and p99; then checks in the database that every acknowledged write is there and
in the audit trail (its row, by request id, with the value sent), and that no write answered with an
error left a change or an audit entry. Writes whose answer never came (a connection error) may have
happened or not; they are counted apart, and only their own audit row decides which.
GOALS: other 5xx = 0 in every phase; 0 acknowledged writes missing; 0 partial writes (an error answer
that left something behind); throughput back to >= 90 % of steady within 5 s of the database accepting
connections again. Exit 0 when met, 1 when not, 2 when the run could not measure.
Figures go to bench/results/faults-<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from auth import (
    ADMIN_URL,
    APP_ROLE,
    RESULTS_DIR,
    Server,
    admin,
    async_url,
    fill,
    free_port,
    libpq_url,
    login_admins,
    pick_admins,
)
from mobility.core.security import hash_password
from mobility.ops.migrations import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.tcp_proxy import CuttableProxy  # noqa: E402 (the tests' proxy, from the checkout)

USERS = 20_000  # 200 per tenant: enough rows for realistic plans, made in seconds
SETTING_KEY = "placements.passportValidityMonths"  # an int 0..120
PHASES = ("steady", "backends killed", "database restarting", "recovered")
RECOVERY_GOAL_S = 5.0
RECOVERY_SHARE = 0.90  # of the steady phase's 2xx per second


# --- the server, as an operator runs it -------------------------------------------------------------


class MobilityServe(Server):
    """`mobility serve --workers N` in its own process group (bench/auth.py's Server: readiness, stop)."""

    def __init__(self, workers: int, env: dict[str, str], log_dir: Path) -> None:
        self.kind, self.workers, self.port = "serve", workers, free_port()
        mobility = Path(sys.executable).with_name("mobility")
        command = [
            str(mobility),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self.log_path = log_dir / f"mobility-serve-{self.port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            command, env=env, cwd=log_dir, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.base = f"http://127.0.0.1:{self.port}"


class ProxyThread:
    """The cuttable proxy on an event loop of its own, so cutting it does not wait for the load."""

    def __init__(self, host: str, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy = CuttableProxy(host, port)
        self._call(self.proxy.start)

    def _call(self, method) -> None:
        asyncio.run_coroutine_threadsafe(method(), self._loop).result(30)

    def cut(self) -> None:
        self._call(self.proxy.cut)

    def restore(self) -> None:
        self._call(self.proxy.restore)

    def stop(self) -> None:
        self._call(self.proxy.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _cluster() -> tuple[str, str]:
    """(version, name) of the Debian cluster serving ADMIN_URL's port."""
    port = str(make_url(ADMIN_URL).port or 5432)
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == port:
            return fields[0], fields[1]
    raise RuntimeError(f"no cluster on port {port} in pg_lsclusters")


def restart_postgres() -> None:
    version, name = _cluster()
    command = ["pg_ctlcluster", version, name, "restart"]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    subprocess.run(command, check=True, capture_output=True)


def accepts_connections() -> bool:
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=1):
            return True
    except psycopg.Error:
        return False


def kill_app_backends(dbname: str) -> int:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE usename = %s AND datname = %s) AS ended",
            (APP_ROLE, dbname),
        ).fetchone()[0]


# --- the load ---------------------------------------------------------------------------------------


@dataclass
class Call:
    kind: str
    started: float  # seconds since the load began
    seconds: float
    status: int | None  # None: no answer (connection error or timeout)
    # A 503 in the app's shape (problem+json with Retry-After), not a server's plain refusal.
    problem: bool = False


@dataclass
class Write:
    kind: str  # "user.update" or "setting.update"
    worker: int
    request_id: str
    target: str  # user id, or tenant id for the setting
    value: Any
    status: int | None


@dataclass
class Schedule:
    kill_at: float
    outage_at: float
    back_at: float | None = None  # the database accepts connections again
    killed: int = 0
    events: list[str] = field(default_factory=list)


async def load(base: str, workers: list[dict], seconds: float, t0: float, calls: list, writes: list) -> None:
    async def one(
        client: httpx.AsyncClient, kind: str, method: str, path: str, **kw
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await client.request(method, path, **kw)
            status = response.status_code
        except httpx.HTTPError:
            response, status = None, None
        problem = response is not None and (
            response.headers.get("content-type", "").startswith("application/problem+json")
            and "retry-after" in response.headers
        )
        calls.append(Call(kind, started - t0, time.monotonic() - started, status, problem))
        return response

    async def reader(client: httpx.AsyncClient, worker: dict) -> None:
        headers = {"Authorization": f"Bearer {worker['token']}"}
        step = 0
        while time.monotonic() - t0 < seconds:
            choice = step % 4
            if choice in (0, 1):
                target = worker["targets"][step % len(worker["targets"])]
                await one(client, "GET /users/{id}", "GET", f"/api/v1/users/{target}", headers=headers)
            elif choice == 2:
                await one(client, "GET /me", "GET", "/api/v1/me", headers=headers)
            else:
                await one(client, "GET /audit-logs", "GET", "/api/v1/audit-logs", headers=headers)
            step += 1

    async def writer(client: httpx.AsyncClient, worker: dict, number: int) -> None:
        step = 0
        while time.monotonic() - t0 < seconds:
            request_id = f"fault-{number}-{step}-{secrets.token_hex(3)}"
            headers = {"Authorization": f"Bearer {worker['token']}", "X-Request-ID": request_id}
            if step % 2 == 0:
                value = f"Bench w{number} s{step}"
                response = await one(
                    client,
                    "PATCH /me",
                    "PATCH",
                    "/api/v1/me",
                    headers=headers,
                    json={"name": value},
                )
                kind, target = "user.update", worker["own_user"]
            else:
                value = (step // 2) % 121  # never the value the step before wrote
                response = await one(
                    client, "PUT /settings/{key}", "PUT", f"/api/v1/settings/{SETTING_KEY}", headers=headers,
                    json={"value": value},
                )  # fmt: skip
                kind, target = "setting.update", worker["tenant_id"]
            status = response.status_code if response is not None else None
            writes.append(Write(kind, number, request_id, target, value, status))
            step += 1

    limits = httpx.Limits(max_connections=len(workers), max_keepalive_connections=len(workers))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        tasks = []
        for number, worker in enumerate(workers):
            if number % 2 == 0:
                tasks.append(reader(client, worker))
            else:
                tasks.append(writer(client, worker, number))
        await asyncio.gather(*tasks)


async def faults(
    args: argparse.Namespace, schedule: Schedule, dbname: str, proxy: ProxyThread | None, t0: float
) -> None:
    """The schedule: terminate the app's backends, then take the database away and bring it back."""
    await asyncio.sleep(max(0.0, t0 + schedule.kill_at - time.monotonic()))
    schedule.killed = await asyncio.to_thread(kill_app_backends, dbname)
    schedule.events.append(
        f"{time.monotonic() - t0:.1f} s: {schedule.killed} mobility_app backends terminated"
    )
    await asyncio.sleep(max(0.0, t0 + schedule.outage_at - time.monotonic()))
    if proxy is not None:
        await asyncio.to_thread(proxy.cut)
        schedule.events.append(f"{time.monotonic() - t0:.1f} s: proxy cut")
        await asyncio.sleep(args.outage_seconds)
        await asyncio.to_thread(proxy.restore)
        schedule.back_at = time.monotonic() - t0
        schedule.events.append(f"{schedule.back_at:.1f} s: proxy restored")
        return
    restart = asyncio.create_task(asyncio.to_thread(restart_postgres))
    schedule.events.append(f"{time.monotonic() - t0:.1f} s: PostgreSQL restart begun")
    while True:  # the first moment a new connection is accepted, once the restart has gone through
        await asyncio.sleep(0.05)
        if restart.done() and await asyncio.to_thread(accepts_connections):
            break
    await restart  # raises if the restart failed
    schedule.back_at = time.monotonic() - t0
    schedule.events.append(f"{schedule.back_at:.1f} s: PostgreSQL accepts connections")


# --- figures ----------------------------------------------------------------------------------------


def phase_of(t: float, schedule: Schedule) -> str:
    if t < schedule.kill_at:
        return PHASES[0]
    if t < schedule.outage_at:
        return PHASES[1]
    if schedule.back_at is None or t < schedule.back_at:
        return PHASES[2]
    return PHASES[3]


def per_phase(calls: list[Call], schedule: Schedule) -> dict[str, dict]:
    table = {}
    for phase in PHASES:
        mine = [c for c in calls if phase_of(c.started, schedule) == phase]
        latencies = sorted(c.seconds for c in mine)
        table[phase] = {
            "requests": len(mine),
            "2xx": sum(1 for c in mine if c.status is not None and 200 <= c.status < 300),
            "503": sum(1 for c in mine if c.status == 503),
            "503_not_problem": sum(1 for c in mine if c.status == 503 and not c.problem),
            "other_5xx": sum(1 for c in mine if c.status is not None and c.status >= 500 and c.status != 503),
            "4xx": sum(1 for c in mine if c.status is not None and 400 <= c.status < 500),
            "connection_errors": sum(1 for c in mine if c.status is None),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1) if latencies else None,
        }
    return table


def recovery(calls: list[Call], schedule: Schedule, duration: float) -> tuple[float | None, float]:
    """Seconds from the database accepting connections to the first 1 s window whose successes reach
    RECOVERY_SHARE of the steady rate (the median of the steady phase's 1 s windows, the first 2 s
    left out as warm-up); and that steady rate. (The machine is shared: if other work starts during the
    run, the rate after the outage can stay below the steady one for reasons of its own; `settled`,
    printed beside it, is the median rate of the run's last 10 s.)"""
    done = sorted(c.started + c.seconds for c in calls if c.status is not None and 200 <= c.status < 300)

    def in_window(start: float) -> int:
        return sum(1 for t in done if start <= t < start + 1)

    steady = statistics.median(in_window(float(s)) for s in range(2, int(schedule.kill_at)))
    if schedule.back_at is None:
        return None, steady
    start = schedule.back_at
    while start + 1 <= duration:
        if in_window(start) >= RECOVERY_SHARE * steady:
            return round(start + 1 - schedule.back_at, 2), steady
        start += 0.1
    return None, steady


def check_writes(dbname: str, writes: list[Write]) -> dict[str, Any]:
    """Every acknowledged write in the audit trail (its request id, with the value sent) and in the
    table (each writer's last write that happened is the value stored); no write answered with an error
    left an audit row; the table has no value that no happened write explains."""
    ids = [w.request_id for w in writes]
    with psycopg.connect(libpq_url(dbname), autocommit=True) as conn:
        rows = conn.execute(
            'SELECT "requestId", action, "entityType", "after" FROM audit_logs WHERE "requestId" = ANY(%s)',
            (ids,),
        ).fetchall()
        names = dict(
            conn.execute(
                "SELECT id::text, name FROM users WHERE id = ANY(%s::uuid[])",
                ([w.target for w in writes if w.kind == "user.update"],),
            ).fetchall()
        )
        settings = dict(
            conn.execute(
                'SELECT "tenantId"::text, value FROM settings WHERE key = %s AND "tenantId" = ANY(%s::uuid[])',
                (SETTING_KEY, [w.target for w in writes if w.kind == "setting.update"]),
            ).fetchall()
        )
    trail: dict[str, list] = {}
    for request_id, action, entity_type, after in rows:
        trail.setdefault(request_id, []).append((action, entity_type, after))

    def recorded(write: Write) -> bool:
        field_name = "name" if write.kind == "user.update" else "value"
        return any(
            action == write.kind and (after or {}).get(field_name) == write.value
            for action, _entity, after in trail.get(write.request_id, [])
        )

    acknowledged = [w for w in writes if w.status is not None and 200 <= w.status < 300]
    refused = [w for w in writes if w.status is not None and not 200 <= w.status < 300]
    unknown = [w for w in writes if w.status is None]
    missing = [w.request_id for w in acknowledged if not recorded(w)]
    partial = [w.request_id for w in refused if w.request_id in trail]
    # The stored value of each writer's user and setting is that of its last write that happened.
    stale = []
    for kind, stored in (("user.update", names), ("setting.update", settings)):
        last: dict[str, Write] = {}
        for w in writes:  # in each writer's order
            if w.kind == kind and (w in acknowledged or (w in unknown and recorded(w))):
                last[w.target] = w
        for target, w in last.items():
            if stored.get(target) != w.value:
                stale.append({"request_id": w.request_id, "expected": w.value, "stored": stored.get(target)})
    return {
        "writes": len(writes),
        "acknowledged": len(acknowledged),
        "refused": len(refused),
        "unanswered": len(unknown),
        "unanswered_that_happened": sum(1 for w in unknown if recorded(w)),
        "acknowledged_missing": len(missing) + len(stale),
        "partial": len(partial),
        "examples": {"missing": missing[:5], "stale": stale[:5], "partial": partial[:5]},
    }


def print_results(
    table: dict, checks: dict, recovered: float | None, steady: float, schedule: Schedule
) -> None:
    for event in schedule.events:
        print("  " + event)
    header = f"{'phase':<22}{'requests':>9}{'2xx':>8}{'503':>7}{'other 5xx':>10}{'4xx':>6}{'conn err':>9}{'p99 ms':>9}"
    print(header)
    for phase, row in table.items():
        print(
            f"{phase:<22}{row['requests']:>9}{row['2xx']:>8}{row['503']:>7}{row['other_5xx']:>10}{row['4xx']:>6}"
            f"{row['connection_errors']:>9}{row['p99_ms'] if row['p99_ms'] is not None else '-':>9}"
        )
    print(
        f"writes: {checks['writes']} sent, {checks['acknowledged']} acknowledged, {checks['refused']} refused, "
        f"{checks['unanswered']} unanswered ({checks['unanswered_that_happened']} of them happened); "
        f"acknowledged but missing: {checks['acknowledged_missing']}; partial: {checks['partial']}"
    )
    print(
        f"recovery: steady {steady:.0f} 2xx/s; back to {RECOVERY_SHARE:.0%} of it "
        + (f"{recovered:.1f} s after the database accepted connections" if recovered is not None else "never")
    )


def verdict(table: dict, checks: dict, recovered: float | None, server_log: dict, workers: int) -> list[str]:
    missed = []
    # Issue 9: "one line per outage episode is enough": two faults, each at most one episode per process.
    allowed = 2 * workers
    if server_log["outage_lines"] > allowed:
        missed.append(f"{server_log['outage_lines']} 'database unavailable' lines (goal <= {allowed})")
    if server_log["tracebacks"]:
        missed.append(f"{server_log['tracebacks']} tracebacks logged")
    for phase, row in table.items():
        if row["other_5xx"]:
            missed.append(f"{row['other_5xx']} other 5xx while {phase}")
        if row["503_not_problem"]:
            missed.append(f"{row['503_not_problem']} 503 without problem+json and Retry-After while {phase}")
    if checks["acknowledged_missing"]:
        missed.append(f"{checks['acknowledged_missing']} acknowledged writes missing")
    if checks["partial"]:
        missed.append(f"{checks['partial']} partial writes")
    if recovered is None or recovered > RECOVERY_GOAL_S:
        missed.append(f"recovery {recovered} s (goal <= {RECOVERY_GOAL_S:.0f} s)")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", choices=("restart", "proxy"), default="restart")
    parser.add_argument("--duration", type=float, default=45)
    parser.add_argument("--kill-at", type=float, default=10)
    parser.add_argument("--outage-at", type=float, default=20)
    parser.add_argument("--outage-seconds", type=float, default=3, help="--outage proxy: how long it is cut")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the database and work files afterwards")
    args = parser.parse_args(argv)
    if not args.kill_at < args.outage_at < args.duration or args.connections < 2:
        parser.error("need --kill-at < --outage-at < --duration and at least 2 connections")
    if args.outage == "restart" and shutil.which("pg_ctlcluster") is None:
        print(
            "--outage restart needs pg_ctlcluster (Debian's postgresql-common); try --outage proxy",
            file=sys.stderr,
        )
        return 2

    started_at = datetime.now(UTC)
    dbname = f"mobility_faults_{secrets.token_hex(4)}"
    work = Path(tempfile.mkdtemp(prefix="mobility-bench-faults-"))
    created, server, proxy = False, None, None
    try:
        print(f"database {dbname}; outage by {args.outage}; work files in {work}")
        admin(f'CREATE DATABASE "{dbname}"')
        created = True
        upgrade(async_url(dbname))
        fill(dbname, USERS)
        password = secrets.token_urlsafe(18)
        admins, has_app_role = pick_admins(dbname, hash_password(password))
        if not has_app_role:
            print(f"no {APP_ROLE} role: the benchmark runs the API as it runs in production", file=sys.stderr)
            return 2
        admins = admins[: args.connections]
        if args.outage == "proxy":
            pg = make_url(ADMIN_URL)
            proxy = ProxyThread(pg.host or "127.0.0.1", pg.port or 5432)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOBILITY_")}
        env.update(
            MOBILITY_DATABASE_URL=async_url(dbname),
            MOBILITY_SECRET_KEY=Fernet.generate_key().decode(),
            MOBILITY_APP_DATABASE_URL=async_url(
                dbname, user=APP_ROLE, port=proxy.proxy.port if proxy else None
            ),
            MOBILITY_DATA_DIR=str(work / "data"),
        )
        server = MobilityServe(args.workers, env, work)
        server.wait_ready("/health")
        tokens = login_admins(server, admins, password)
        # Each writer renames itself (PATCH /me): a name is its owner's to change.
        workers = [{**a, "token": tokens[a["email"]], "own_user": a["user_id"]} for a in admins]
        print(
            f"{len(workers)} admins logged in; load for {args.duration:.0f} s from {len(workers)} connections"
        )

        calls: list[Call] = []
        writes: list[Write] = []
        schedule = Schedule(kill_at=args.kill_at, outage_at=args.outage_at)

        async def run() -> None:
            t0 = time.monotonic()
            await asyncio.gather(
                load(server.base, workers, args.duration, t0, calls, writes),
                faults(args, schedule, dbname, proxy, t0),
            )

        asyncio.run(run())
        table = per_phase(calls, schedule)
        checks = check_writes(dbname, writes)
        recovered, steady = recovery(calls, schedule, args.duration)
        ok_ends = [c.started + c.seconds for c in calls if c.status is not None and 200 <= c.status < 300]
        settled = statistics.median(
            sum(1 for t in ok_ends if s <= t < s + 1)
            for s in range(int(args.duration) - 10, int(args.duration) - 1)
        )
        first_ok = min(
            (t for t in ok_ends if schedule.back_at is not None and t >= schedule.back_at), default=None
        )
        print(
            f"after the outage: first 2xx {first_ok - schedule.back_at:.2f} s after the database accepted connections;"
            f" settled rate (last 10 s) {settled:.0f} 2xx/s"
            if first_ok is not None
            else "after the outage: no 2xx"
        )
        log = server.log_path.read_text()
        outage_lines = [
            line for line in log.splitlines() if "unavailable" in line or "available again" in line
        ]
        server_log = {
            "tracebacks": log.count("Traceback"),
            "outage_lines": sum("database unavailable" in line for line in outage_lines),
            "lines": outage_lines[:100],
        }
        print_results(table, checks, recovered, steady, schedule)
        print(
            f"server log: {server_log['tracebacks']} tracebacks, {server_log['outage_lines']} 'database unavailable' lines"
        )
        for line in server_log["lines"][:20]:
            print(f"  {line}")
        missed = verdict(table, checks, recovered, server_log, args.workers)
        print("GOALS " + ("met" if not missed else "MISSED: " + "; ".join(missed)))
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"faults-{started_at:%Y%m%dT%H%M%SZ}.json"
        out.write_text(
            json.dumps(
                {
                    "started_at": started_at.isoformat(),
                    "args": vars(args),
                    "schedule": asdict(schedule),
                    "phases": table,
                    "writes": checks,
                    "recovery_s": recovered,
                    "steady_2xx_per_s": steady,
                    "settled_2xx_per_s": settled,
                    "first_2xx_after_back_s": None if first_ok is None else first_ok - schedule.back_at,
                    "server_log": server_log,
                    "missed": missed,
                },
                indent=2,
            )
        )
        print(f"figures: {out}")
        return 1 if missed else 0
    except Exception as exc:
        print(f"the run could not measure: {type(exc).__name__}: {exc}", file=sys.stderr)
        if server is not None:
            print(f"server log: {server.log_tail()}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
        if proxy is not None:
            proxy.stop()
        if created and not args.keep:
            for _ in range(20):  # the server's connections may take a moment to go
                try:
                    admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
                    break
                except psycopg.Error:
                    time.sleep(0.5)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
