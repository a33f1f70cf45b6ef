"""Benchmark: candidates' list, search and import (issue 12, Performance), against bare baselines.

    .venv/bin/python bench/candidates.py [--candidates N] [--tenants T] [--import-rows R] [--workers 1]
                                          [--rounds 3] [--duration 8] [--keep]

In one run on PostgreSQL: makes a database at head holding T tenants (default 100) with one Admin each
and N candidates (default 1,000,000) spread over them, filled server-side (INSERT ... SELECT, foreign
key triggers off, then VACUUM ANALYZE); logs 20 admins in through the API; then
  list   the same wrk load (tokens rotating over 20 tenants) on
         (a) GET /api/v1/candidates?status=registered&limit=50 of the real app (authenticated, tenant
             scope, row rules, keyset), the first page and a deep page (a cursor ~40 pages in), and
         (b) the same request of a bare FastAPI + asyncpg endpoint (bench/bare_candidates.py) answering
             the same body; checked equal before any load;
  search (a) GET /api/v1/candidates?q=<a misspelt surname>&limit=50 (trigram similarity, ranked);
  import R rows (default 100,000) of a CSV through `mobility import candidates` (every rule of the API,
         duplicates within the file and against the database, reference numbers, one audit entry per
         candidate), against a raw COPY of the same rows (with the columns the service computes) into
         the same table; peak memory (max RSS) of the import printed.
GOALS: (a) >= 35 % of (b) in req/s, first and deep page; search p99 <= 5 x (b)'s first-page p99;
import >= 15 % of COPY's rows/s (the import's own time: the command's less its start-up, measured on a
header-only file). Exit 0 when met, 1 when not, 2 when the run could not measure.
Figures go to bench/results/candidates-<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import random
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet

from auth import APP_ROLE, ROLE_NAMES, _same_json, admin, async_url, free_port, libpq_url, run_wrk
from mobility.core.security import hash_password
from mobility.ops.migrations import upgrade

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
ADMINS = 20
STATUS = "registered"
DEEP_OFFSET = 2000  # rows into the tenant's list: page 41 of 50
GOAL_LIST = 0.35
GOAL_SEARCH_P99 = 5.0
GOAL_IMPORT = 0.15
FIRST_NAMES = ["Mere", "Sione", "Ana", "Losa", "Vika", "Pita", "Seini", "Tevita", "Litia", "Josefa", "Akanesi",
               "Viliami", "Salote", "Isileli", "Mele", "Semisi", "Ofa", "Paula", "Lupe", "Tomasi"]  # fmt: skip
LAST_NAMES = ["Tuilagi", "Tupou", "Vake", "Fifita", "Lui", "Taufa", "Havili", "Kioa", "Naufahu", "Moala", "Ratu",
              "Vunipola", "Waqa", "Tamani", "Qarase", "Bainimarama", "Rabuka", "Nailatikau", "Koroi", "Seru",
              "Fonua", "Latu", "Mahe", "Pulu", "Tonga", "Uasi", "Veikune", "Funaki", "Kata", "Piutau"]  # fmt: skip
MISSPELT = ["Tupuo", "Fifta", "Vunipoal", "Naufhau", "Bainimaram", "Nailatiaku", "Veikuen", "Piutua"]
NATIONALITIES = ["FJ", "TO", "WS", "VU", "PG", "SB", "KI", "TV"]
# Per tenant, the position's status: 40 % registered, the rest along the pipeline.
STATUSES = ["registered"] * 4 + ["in_training", "in_training", "trained", "vetting", "ready", "placed"]


# --- the database --------------------------------------------------------------------------------


def fill(dbname: str, tenants: int, candidates: int, password_hash: str) -> dict[str, float]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    year = datetime.now(UTC).year
    with psycopg.connect(libpq_url(dbname), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET session_replication_role = replica")
        with conn.transaction():
            conn.execute(
                """INSERT INTO tenants (id, name, code)
                   SELECT gen_random_uuid(), 'Bench institute ' || lpad(t::text, 3, '0'), 'B' || lpad(t::text, 3, '0')
                   FROM generate_series(1, %s) AS t""",
                (tenants,),
            )
            conn.execute(
                """INSERT INTO roles (id, name, description, "updatedAt", "tenantId", "systemRole")
                   SELECT gen_random_uuid(), name, name || ' (system role)', now(), NULL, true
                   FROM unnest(%s::text[]) AS name""",
                (ROLE_NAMES,),
            )
            conn.execute(
                """INSERT INTO users (id, email, "passwordHash", name, "roleId", "tenantId", "createdAt", "updatedAt")
                   SELECT gen_random_uuid(), 'admin-' || lower(t.code) || '@bench.example', %s, 'Admin ' || t.code,
                          (SELECT id FROM roles WHERE name = 'Admin'), t.id, now(), now()
                   FROM tenants t""",
                (password_hash,),
            )
            conn.execute(
                """INSERT INTO user_tenants (id, "userId", "tenantId", "roleId", "isPrimary")
                   SELECT gen_random_uuid(), id, "tenantId", "roleId", true FROM users"""
            )
            conn.execute(
                """INSERT INTO candidates (id, "tenantId", "referenceNumber", "firstName", "lastName", "dateOfBirth",
                       gender, nationality, "passportNumber", "passportExpiry", status, skills, languages,
                       education, "workHistory", "passportKey", "searchName", "createdAt", "updatedAt")
                   SELECT gen_random_uuid(), t.ids[1 + i %% %(tenants)s],
                          t.codes[1 + i %% %(tenants)s] || '-' || %(year)s || '-' || lpad((i / %(tenants)s + 1)::text, 6, '0'),
                          f.first, l.last, date '1955-01-01' + (i %% 15000), 'undisclosed', n.nat,
                          'S' || lpad(i::text, 8, '0'), current_date + (i %% 3000),
                          ((%(statuses)s::text[])[1 + (i / %(tenants)s) %% 10])::"CandidateStatus",
                          '[]', '[]', '[]', '[]', n.nat || ':S' || lpad(i::text, 8, '0'), lower(f.first || ' ' || l.last),
                          now() - (i %% 500000) * interval '1 minute' - (i %% 997) * interval '1 millisecond', now()
                   FROM generate_series(1, %(candidates)s) AS i,
                        (SELECT array_agg(id ORDER BY code) AS ids, array_agg(code ORDER BY code) AS codes FROM tenants) t,
                        LATERAL (SELECT (%(first)s::text[])[1 + i %% %(nfirst)s] AS first) f,
                        LATERAL (SELECT (%(last)s::text[])[1 + (i / 7) %% %(nlast)s] AS last) l,
                        LATERAL (SELECT (%(nats)s::text[])[1 + (i / 3) %% %(nnats)s] AS nat) n""",
                {
                    "tenants": tenants, "candidates": candidates, "year": year, "statuses": STATUSES,
                    "first": FIRST_NAMES, "nfirst": len(FIRST_NAMES), "last": LAST_NAMES,
                    "nlast": len(LAST_NAMES), "nats": NATIONALITIES, "nnats": len(NATIONALITIES),
                },
            )  # fmt: skip
            conn.execute(
                """INSERT INTO candidate_reference_counters (id, "tenantId", year, "lastNumber")
                   SELECT gen_random_uuid(), t.id, %s, (SELECT count(*) FROM candidates c WHERE c."tenantId" = t.id)
                   FROM tenants t""",
                (year,),
            )
            timings["candidates_s"] = time.perf_counter() - started
        conn.execute("VACUUM (ANALYZE)")
    timings["vacuum_analyze_s"] = time.perf_counter() - started - sum(timings.values())
    return timings


def pick_admins(dbname: str) -> tuple[list[dict[str, Any]], bool]:
    """The first ADMINS tenants' admins, each with a deep cursor into its list (as the app encodes it)."""
    with psycopg.connect(libpq_url(dbname), autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        rows = conn.execute(
            """SELECT u.email, t.id::text, t.code FROM users u JOIN tenants t ON t.id = u."tenantId"
               WHERE u.email LIKE 'admin-%%@bench.example' ORDER BY t.code LIMIT %s""",
            (ADMINS,),
        ).fetchall()
        admins = []
        for email, tenant_id, code in rows:
            # ~40 pages in, or halfway through a small tenant's list.
            deep = conn.execute(
                """SELECT "createdAt", id FROM candidates WHERE "tenantId" = %(t)s AND status = %(s)s
                   ORDER BY "createdAt" DESC, id DESC
                   OFFSET least(%(o)s, (SELECT count(*) / 2 FROM candidates WHERE "tenantId" = %(t)s AND status = %(s)s))
                   LIMIT 1""",
                {"t": tenant_id, "s": STATUS, "o": DEEP_OFFSET},
            ).fetchone()
            cursor = None
            if deep is not None:
                cursor = base64.urlsafe_b64encode(json.dumps([deep[0].isoformat(), str(deep[1])]).encode())
                cursor = cursor.decode().rstrip("=")
            admins.append(
                {"email": email, "tenant_id": tenant_id, "tenant_code": code, "deep_cursor": cursor}
            )
        app_role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
    return admins, app_role is not None


# --- servers -------------------------------------------------------------------------------------


class Server:
    """(a) the app or (b) the bare endpoint, served by uvicorn in its own process group."""

    def __init__(self, kind: str, workers: int, env: dict[str, str], log_dir: Path) -> None:
        self.kind, self.port = kind, free_port()
        spec = (
            ["--factory", "mobility.main:create_app"]
            if kind == "a"
            else ["--app-dir", str(BENCH_DIR), "bare_candidates:app"]
        )
        command = [sys.executable, "-m", "uvicorn", *spec, "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        command += ["--log-level", "warning"]
        self.log_path = log_dir / f"server-{kind}-{self.port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(command, env=env, cwd=log_dir, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, headers: dict[str, str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.kind} exited: {self.log_path.read_text()[-500:]}")
            with suppress(httpx.TransportError):
                if httpx.get(self.base + path, headers=headers, timeout=10).status_code < 500:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server {self.kind} not ready after {timeout:.0f} s")

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


WRK_LUA = r"""
local requests = {}
local n, i = 0, 0
function init(args)
  for line in io.lines(args[1]) do
    local token, path = line:match("^(%S+)%s+(%S+)$")
    requests[#requests + 1] = wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
  end
  n = #requests
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


def login(server: Server, admins: list[dict], password: str) -> dict[str, str]:
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


def workloads(admins: list[dict], tokens: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    first = f"/api/v1/candidates?status={STATUS}&limit=50"
    loads = {
        "first page": [(tokens[a["email"]], first) for a in admins],
        "deep page": [
            (tokens[a["email"]], f"{first}&cursor={a['deep_cursor']}") for a in admins if a["deep_cursor"]
        ],
        "name search": [
            (tokens[a["email"]], f"/api/v1/candidates?q={name}&limit=50") for a in admins for name in MISSPELT
        ],
    }
    for pairs in loads.values():
        random.Random(7).shuffle(pairs)
    return loads


def check_same(servers: dict[str, Server], pairs: list[tuple[str, str]]) -> None:
    """(a) and (b) answer the same body; (a) answers another tenant's token nothing of this one's."""
    for token, path in pairs[:5]:
        bodies = {}
        for kind, server in servers.items():
            response = httpx.get(server.base + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            if response.status_code != 200:
                raise RuntimeError(f"({kind}) {path}: {response.status_code} {response.text[:300]}")
            bodies[kind] = response.json()
        if not bodies["a"]["items"] or not _same_json(bodies["a"], bodies["b"]):
            raise RuntimeError(
                f"(a) and (b) differ on {path}:\n  {str(bodies['a'])[:400]}\n  {str(bodies['b'])[:400]}"
            )


def load(args, server: Server, work: Path, name: str, pairs: list[tuple[str, str]]) -> dict:
    data = work / f"{name.replace(' ', '-')}-{server.kind}.txt"
    data.write_text("".join(f"{token} {path}\n" for token, path in pairs))
    run_wrk(args, server.base, work / "rotate.lua", data, args.warmup)
    rounds = []
    for _ in range(args.rounds):
        figures = run_wrk(args, server.base, work / "rotate.lua", data, args.duration)
        figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
        figures["errors"] = sum(
            figures[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")
        )
        rounds.append(figures)
    return {
        "rps": statistics.median(r["rps"] for r in rounds),
        "p50_us": statistics.median(r["p50_us"] for r in rounds),
        "p99_us": statistics.median(r["p99_us"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "rps_rounds": [r["rps"] for r in rounds],
    }


# --- the import ----------------------------------------------------------------------------------


def write_files(work: Path, rows: int, tenant_id: str, code: str) -> tuple[Path, Path, Path]:
    """The import's CSV, the same rows as COPY columns (with what the service computes), and a
    header-only CSV (the command's start-up)."""
    today = date.today()
    year = today.year
    header = ["First name", "Last name", "Date of birth", "Nationality", "Passport number", "Passport expiry",
              "E-mail", "Phone", "Skills", "Languages"]  # fmt: skip
    copy_columns = ["id", "tenantId", "referenceNumber", "firstName", "lastName", "dateOfBirth", "nationality",
                    "passportNumber", "passportExpiry", "email", "phone", "skills", "languages", "passportKey",
                    "emailKey", "searchName", "createdAt", "updatedAt"]  # fmt: skip
    intake, raw, empty = work / "intake.csv", work / "copy.csv", work / "header-only.csv"
    now = datetime.now(UTC).isoformat()
    import uuid6

    with intake.open("w", newline="") as a, raw.open("w", newline="") as b:
        to_import, to_copy = csv.writer(a), csv.writer(b)
        to_import.writerow(header)
        to_copy.writerow(copy_columns)
        for i in range(rows):
            first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[(i // 7) % len(LAST_NAMES)]
            born = (today - timedelta(days=365 * 20 + i % 9000)).isoformat()
            nationality = NATIONALITIES[i % len(NATIONALITIES)]
            passport, expiry = f"I{i:08d}", (today + timedelta(days=100 + i % 3000)).isoformat()
            email, phone = f"import{i}@bench.example", f"+614{i % 100_000_000:08d}"
            to_import.writerow(
                [
                    first,
                    last,
                    born,
                    nationality,
                    passport,
                    expiry,
                    email,
                    phone,
                    "Welding; Forklift operation",
                    "en B2",
                ]
            )  # noqa: E501
            to_copy.writerow([
                str(uuid6.uuid7()), tenant_id, f"{code}-{year}-{i + 1:06d}", first, last, born, nationality, passport,
                expiry, email, phone, '[{"name": "Welding"}, {"name": "Forklift operation"}]',
                '[{"code": "en", "level": "B2"}]', f"{nationality}:{passport}", email,
                f"{first} {last}".lower(), now, now,
            ])  # fmt: skip
    empty.write_text(",".join(header) + "\n")
    return intake, raw, empty


def run_import(env: dict[str, str], file: Path, code: str, email: str) -> tuple[float, int, str]:
    """`mobility import candidates`: wall seconds, peak RSS (KiB) and its last output line."""
    command = [
        sys.executable,
        "-m",
        "mobility.cli",
        "import",
        "candidates",
        str(file),
        "--tenant",
        code,
        "--as",
        email,
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"import failed ({proc.returncode}): {err.strip()[-1000:]}")
    return seconds, usage.ru_maxrss, (out.strip().splitlines() or [""])[-1]


def run_copy(dbname: str, file: Path) -> float:
    columns = file.open().readline().strip().split(",")
    started = time.perf_counter()
    with psycopg.connect(libpq_url(dbname)) as conn, conn.cursor() as cur:
        quoted = ", ".join(f'"{c}"' for c in columns)
        with (
            cur.copy(f"COPY candidates ({quoted}) FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            file.open("rb") as f,
        ):
            while data := f.read(1 << 20):
                copy.write(data)
        conn.commit()
    return time.perf_counter() - started


def import_phase(dbname: str, env: dict[str, str], work: Path, rows: int) -> dict[str, Any]:
    """Two fresh tenants of the same table: one for the import, one for COPY (codes new to the database,
    so a kept one can be measured again)."""
    suffix = secrets.token_hex(3).upper()
    importer = f"importer-{suffix.lower()}@bench.example"
    with psycopg.connect(libpq_url(dbname), autocommit=True) as conn:
        found = {}
        for code in (f"IMPORT{suffix}", f"COPY{suffix}"):
            tenant_id = conn.execute(
                "INSERT INTO tenants (id, name, code) VALUES (gen_random_uuid(), %s, %s) RETURNING id::text",
                (f"Bench {code}", code),
            ).fetchone()[0]
            found[code] = tenant_id
        conn.execute(
            """INSERT INTO users (id, email, "passwordHash", name, "roleId", "tenantId", "createdAt", "updatedAt")
               VALUES (gen_random_uuid(), %s, 'x', 'Importer',
                       (SELECT id FROM roles WHERE name = 'Admin'), %s, now(), now())""",
            (importer, found[f"IMPORT{suffix}"]),
        )
        conn.execute(
            """INSERT INTO user_tenants (id, "userId", "tenantId", "roleId", "isPrimary")
               SELECT gen_random_uuid(), id, "tenantId", "roleId", true FROM users WHERE email = %s""",
            (importer,),
        )
    intake, raw, empty = write_files(work, rows, found[f"COPY{suffix}"], f"COPY{suffix}")
    startup, _rss, _line = run_import(env, empty, f"IMPORT{suffix}", importer)
    seconds, rss_kib, line = run_import(env, intake, f"IMPORT{suffix}", importer)
    copy_seconds = run_copy(dbname, raw)
    with psycopg.connect(libpq_url(dbname), autocommit=True) as conn:
        imported = conn.execute(
            'SELECT count(*) FROM candidates WHERE "tenantId" = %s', (found[f"IMPORT{suffix}"],)
        ).fetchone()[0]
        audited = conn.execute(
            "SELECT count(*) FROM audit_logs WHERE \"tenantId\" = %s AND action = 'candidate.import'",
            (found[f"IMPORT{suffix}"],),
        ).fetchone()[0]
    if imported != rows or audited != rows:
        raise RuntimeError(
            f"the import wrote {imported} candidates and {audited} audit entries, not {rows}: {line}"
        )
    work_seconds = max(seconds - startup, 1e-6)
    return {
        "rows": rows,
        "file_bytes": intake.stat().st_size,
        "command_s": seconds,
        "startup_s": startup,
        "import_rows_per_s": rows / work_seconds,
        "command_rows_per_s": rows / seconds,
        "copy_s": copy_seconds,
        "copy_rows_per_s": rows / copy_seconds,
        "peak_rss_mib": rss_kib / 1024,
        "summary": line,
    }


# --- the run -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=1_000_000, help="candidates (default 1,000,000)")
    parser.add_argument("--tenants", type=int, default=100, help="tenants (default 100)")
    parser.add_argument(
        "--import-rows", type=int, default=100_000, help="rows of the CSV import (default 100,000)"
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of each endpoint (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per endpoint and load")
    parser.add_argument("--duration", type=float, default=8, help="seconds of one measured run (default 8)")
    parser.add_argument(
        "--warmup", type=float, default=3, help="seconds of load before measuring (default 3)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the database and work files afterwards")
    parser.add_argument(
        "--database",
        help="measure a database an earlier --keep run left (not filled again, not dropped; its admins get "
        "a new password); --candidates and --tenants are then what it holds",
    )
    parser.add_argument(
        "--phases", default="load,import", help="what to measure: load, import or both (default load,import)"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: `sudo apt-get install -y wrk`", file=sys.stderr)
        return 2
    if args.tenants < ADMINS or args.candidates < args.tenants:
        print(f"--tenants must be >= {ADMINS} and --candidates >= --tenants", file=sys.stderr)
        return 2

    phases = set(args.phases.split(","))
    if not phases or phases - {"load", "import"}:
        print("--phases takes load, import or load,import", file=sys.stderr)
        return 2
    started_at = datetime.now(UTC)
    stamp = f"{started_at:%Y%m%dT%H%M%SZ}"
    dbname = args.database or f"mobility_bench_{secrets.token_hex(4)}"
    work = Path(tempfile.mkdtemp(prefix="mobility-bench-candidates-"))
    figures: dict[str, Any] = {"started_at": started_at.isoformat(), "candidates": args.candidates,
                               "tenants": args.tenants, "import_rows": args.import_rows, "workers": args.workers,
                               "cpus": os.cpu_count(), "phases": sorted(phases)}  # fmt: skip
    created = False
    results: dict[str, dict[str, dict]] = {}
    imported: dict[str, Any] = {}
    try:
        password = secrets.token_urlsafe(18)
        if args.database:
            print(f"database {dbname} (kept by an earlier run); work files in {work}")
            with psycopg.connect(libpq_url(dbname), autocommit=True) as conn:
                conn.execute(
                    """UPDATE users SET "passwordHash" = %s WHERE email LIKE 'admin-%%@bench.example'""",
                    (hash_password(password),),
                )
        else:
            print(
                f"database {dbname}: {args.tenants} tenants, {args.candidates:,} candidates; work files in {work}"
            )
            admin(f'CREATE DATABASE "{dbname}"')
            created = True
            started = time.perf_counter()
            upgrade(async_url(dbname))
            setup = {"migrate_s": time.perf_counter() - started}
            setup.update(fill(dbname, args.tenants, args.candidates, hash_password(password)))
            print("setup: " + ", ".join(f"{k} {v:.1f}" for k, v in setup.items()))
            figures["setup"] = setup

        env = {k: v for k, v in os.environ.items() if not k.startswith("MOBILITY_")}
        env.update(MOBILITY_DATABASE_URL=async_url(dbname), MOBILITY_SECRET_KEY=Fernet.generate_key().decode(), MOBILITY_DATA_DIR=str(work / "data"),
                   MOBILITY_BENCH_DSN=libpq_url(dbname), MOBILITY_BENCH_SCOPES=str(work / "scopes.json"))  # fmt: skip
        if "load" in phases:
            figures["load"] = results = load_phase(args, dbname, env, work, password)
        if "import" in phases:
            print(
                f"import: {args.import_rows:,} rows through `mobility import candidates`, then COPY of the same rows"
            )
            figures["import"] = imported = import_phase(dbname, env, work, args.import_rows)
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if created and not args.keep:
            with suppress(psycopg.Error):
                admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        elif created:
            print(f"kept database {dbname} (measure it again with --database {dbname}); work files in {work}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    verdicts: dict[str, float] = {}
    met: dict[str, bool] = {}
    errors = sum(r["errors"] for runs in results.values() for r in runs.values())
    if results:
        header = f"{'load':<14}{'endpoint':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        print(f"\n{header}\n{'-' * len(header)}")
        names = {"a": "(a) the app", "b": "(b) bare FastAPI+asyncpg"}
        for name, runs in results.items():
            for kind, r in runs.items():
                print(
                    f"{name:<14}{names[kind]:<26}{r['rps']:>9,.0f}{r['p50_us'] / 1000:>9.1f}{r['p99_us'] / 1000:>9.1f}{r['errors']:>8}"
                )
        for name in ("first page", "deep page"):
            verdicts[name] = results[name]["a"]["rps"] / results[name]["b"]["rps"]
            met[name] = verdicts[name] >= GOAL_LIST
        verdicts["search p99"] = results["name search"]["a"]["p99_us"] / results["first page"]["b"]["p99_us"]
        met["search p99"] = verdicts["search p99"] <= GOAL_SEARCH_P99
    if imported:
        print(
            f"\nimport of {imported['rows']:,} rows ({imported['file_bytes'] / 1e6:.1f} MB): {imported['command_s']:.1f} s "
            f"(start-up {imported['startup_s']:.1f} s), {imported['import_rows_per_s']:,.0f} rows/s "
            f"({imported['command_rows_per_s']:,.0f} with start-up); peak memory {imported['peak_rss_mib']:.0f} MiB"
        )
        print(f"COPY of the same rows: {imported['copy_s']:.2f} s, {imported['copy_rows_per_s']:,.0f} rows/s")
        verdicts["import"] = imported["import_rows_per_s"] / imported["copy_rows_per_s"]
        met["import"] = verdicts["import"] >= GOAL_IMPORT

    print()
    lines = {
        "first page": lambda v: (
            f"first page: (a)/(b) = {100 * v:.0f} % of req/s (goal >= {100 * GOAL_LIST:.0f} %)"
        ),
        "deep page": lambda v: (
            f"deep page:  (a)/(b) = {100 * v:.0f} % of req/s (goal >= {100 * GOAL_LIST:.0f} %)"
        ),
        "search p99": lambda v: f"name search p99 = {v:.1f} x (b)'s p99 (goal <= {GOAL_SEARCH_P99:.0f} x)",
        "import": lambda v: f"import = {100 * v:.0f} % of COPY's rows/s (goal >= {100 * GOAL_IMPORT:.0f} %)",
    }
    for name, value in verdicts.items():
        print(f"{lines[name](value)}  {'met' if met[name] else 'NOT MET'}")
    goal_met = all(met.values()) and errors == 0
    if errors:
        print(f"{errors} errors during the load: figures invalid")
    measured = "" if phases == {"load", "import"} else f" (measured: {', '.join(sorted(phases))} only)"
    print(f"GOALS: {'MET' if goal_met else 'NOT MET'}{measured}")
    figures.update(ratios=verdicts, met=met, goal_met=goal_met)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"candidates-{stamp}.json"
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"figures: {path}")
    return 0 if goal_met else 1


def load_phase(
    args, dbname: str, env: dict[str, str], work: Path, password: str
) -> dict[str, dict[str, dict]]:
    """The list and search loads on (a) the app and (b) the bare endpoint."""
    admins, has_app_role = pick_admins(dbname)
    api_env = dict(env)
    if has_app_role:
        api_env["MOBILITY_APP_DATABASE_URL"] = async_url(dbname, user=APP_ROLE)
    (work / "rotate.lua").write_text(WRK_LUA)
    servers: dict[str, Server] = {}
    try:
        servers["a"] = Server("a", args.workers, api_env, work)
        servers["a"].wait_ready("/health", {})
        tokens = login(servers["a"], admins, password)
        (work / "scopes.json").write_text(
            json.dumps({tokens[a["email"]]: {"tenant_id": a["tenant_id"]} for a in admins})
        )
        servers["b"] = Server("b", args.workers, env, work)
        loads = workloads(admins, tokens)
        token, path = loads["first page"][0]
        servers["b"].wait_ready(path, {"Authorization": f"Bearer {token}"})
        for name in ("first page", "deep page"):
            check_same(servers, loads[name])
        print(
            f"checks: (a) and (b) answer the same first and deep pages; (a) as {APP_ROLE if has_app_role else 'owner'}"
        )
        results: dict[str, dict[str, dict]] = {}
        for name in ("first page", "deep page"):
            results[name] = {}
            for kind in "ab":
                results[name][kind] = load(args, servers[kind], work, name, loads[name])
                r = results[name][kind]
                print(f"  {name} ({kind}): {r['rps']:,.0f} req/s, p50 {r['p50_us'] / 1000:.1f} ms, "
                      f"p99 {r['p99_us'] / 1000:.1f} ms" + (f", {r['errors']} ERRORS" if r["errors"] else ""))  # fmt: skip
        results["name search"] = {"a": load(args, servers["a"], work, "name search", loads["name search"])}
        r = results["name search"]["a"]
        print(
            f"  name search (a): {r['rps']:,.0f} req/s, p50 {r['p50_us'] / 1000:.1f} ms, p99 {r['p99_us'] / 1000:.1f} ms"
        )
        return results
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
