"""Delivery benchmark: queued e-mail notifications delivered by 1, 2 and 4 `mobility worker` processes to
a local SMTP sink, beside a bare script sending as many messages over one reused SMTP connection.

    .venv/bin/python bench/notifications.py                       # 100,000 messages over 100 tenants
    .venv/bin/python bench/notifications.py --count 5000 --workers 1,2

For each worker count: the queue is filled afresh (N rows across the tenants, one INSERT ... SELECT),
the sink's log emptied, the workers started together with `--once` and timed until the last exits.
The sink (aiosmtpd, its own process) writes every Message-ID it accepts; duplicates are ids received
more than once (goal 0), lost are queued notifications never received (goal 0). Rates are messages per
second of wall time, worker start-up included. Goal: 2 workers >= 50 % of the baseline's rate. Exit 1
when a goal is missed. Needs the local PostgreSQL (MOBILITY_BENCH_PG_URL, as the other benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import textwrap
import time
from email.message import EmailMessage
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("MOBILITY_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

SINK = textwrap.dedent(
    """
    import asyncio, sys
    from email import message_from_bytes
    from aiosmtpd.smtp import SMTP

    log = open(sys.argv[1], "a", buffering=1)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            head = envelope.content.split(b"\\r\\n\\r\\n", 1)[0]
            for line in head.split(b"\\r\\n"):
                if line[:11].lower() == b"message-id:":
                    log.write(line[11:].strip().decode() + "\\n")
                    break
            return "250 OK"

    async def main():
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(Handler(), hostname="sink.bench"), host="127.0.0.1", port=0)
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """
)


def libpq(dbname: str) -> str:
    return make_url(ADMIN_URL).set(database=dbname).render_as_string(hide_password=False)


def async_url(dbname: str) -> str:
    return (
        make_url(ADMIN_URL)
        .set(drivername="postgresql+asyncpg", database=dbname)
        .render_as_string(hide_password=False)
    )


def admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def fill(dbname: str, count: int, tenants: int) -> None:
    """`tenants` tenants and `count` queued e-mails spread over them (server-side)."""
    with psycopg.connect(libpq(dbname), autocommit=True) as conn:
        conn.execute("SET mobility.system = 'on'")
        conn.execute("TRUNCATE notifications")
        if not conn.execute("SELECT count(*) FROM tenants").fetchone()[0]:
            conn.execute(
                """
                INSERT INTO tenants (id, name, code, branding, "contactInfo")
                SELECT gen_random_uuid(), 'Institute ' || n, 'T' || n,
                       '{"colorHex": "#1f4e79"}', '{"phone": "+679 000 0000"}'
                FROM generate_series(1, %s) AS n
                """,
                (tenants,),
            )
        conn.execute(
            """
            INSERT INTO notifications (id, "tenantId", "recipientEmail", channel, template, payload,
                                       status, attempts, "nextAttemptAt", language)
            SELECT gen_random_uuid(), t.id, 'person' || n || '@example.org', 'email',
                   'security.password_changed',
                   jsonb_build_object('ip_address', '203.0.113.7', 'at', '2026-03-01T09:30:00Z'),
                   'queued', 0, now(), 'en'
            FROM generate_series(1, %s) AS n
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM tenants) t
              ON t.k = n %% (SELECT count(*) FROM tenants)
            """,
            (count,),
        )
        conn.execute("VACUUM ANALYZE notifications")


def received(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


async def baseline(port: int, count: int) -> float:
    """Messages per second over one reused connection, nothing else: the sink's and the client's cost."""
    import aiosmtplib

    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    started = time.perf_counter()
    for n in range(count):
        message = EmailMessage()
        message["From"], message["To"] = "no-reply@bench.test", f"person{n}@example.org"
        message["Subject"], message["Message-ID"] = "Your password was changed", f"<base-{n}@bench.test>"
        message.set_content("Hello,\n\nYour password was changed.\n")
        await client.send_message(message)
    elapsed = time.perf_counter() - started
    await client.quit()
    return count / elapsed


def run_workers(dbname: str, port: int, workers: int, data_dir: Path) -> float:
    env = {
        **os.environ,
        "MOBILITY_DATABASE_URL": async_url(dbname),
        # A configured database needs the installation key (webhook secrets): one per run.
        "MOBILITY_SECRET_KEY": Fernet.generate_key().decode(),
        "MOBILITY_SMTP_HOST": "127.0.0.1",
        "MOBILITY_SMTP_PORT": str(port),
        "MOBILITY_MAIL_FROM": "no-reply@bench.test",
        "MOBILITY_DATA_DIR": str(data_dir),
        "MOBILITY_WORKER_BATCH_SIZE": "100",
    }
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "mobility.cli", "worker", "--once"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"a worker failed ({process.returncode}): {err[-2000:]}")
    return time.perf_counter() - started


def queued_ids(dbname: str) -> tuple[set[str], int]:
    with psycopg.connect(libpq(dbname), autocommit=True) as conn:
        conn.execute("SET mobility.system = 'on'")
        ids = {f"<{row[0]}@bench.test>" for row in conn.execute("SELECT id FROM notifications")}
        unsent = conn.execute("SELECT count(*) FROM notifications WHERE status <> 'sent'").fetchone()[0]
    return ids, unsent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    dbname = f"mobility_bench_notify_{secrets.token_hex(4)}"
    admin(f'CREATE DATABASE "{dbname}"')
    sink = None
    try:
        sys.path.insert(0, str(ROOT / "src"))
        from mobility.ops import migrations

        migrations.upgrade(async_url(dbname))
        with TemporaryDirectory() as tmp:
            log = Path(tmp) / "received.log"
            script = Path(tmp) / "sink.py"
            script.write_text(SINK)
            sink = subprocess.Popen(
                [sys.executable, str(script), str(log)], stdout=subprocess.PIPE, text=True
            )
            port = int(sink.stdout.readline().split()[1])

            base_rate = asyncio.run(baseline(port, args.count))
            log.write_text("")
            print(f"baseline: one reused SMTP connection, {args.count} messages: {base_rate:,.0f} msg/s")
            rows, ok = [], True
            for workers in counts:
                fill(dbname, args.count, args.tenants)
                log.write_text("")
                elapsed = run_workers(dbname, port, workers, Path(tmp))
                time.sleep(0.5)  # the sink's last lines
                got = received(log)
                expected, unsent = queued_ids(dbname)
                duplicates = len(got) - len(set(got))
                lost = len(expected - set(got))
                rate = args.count / elapsed
                rows.append((workers, rate, duplicates, lost, unsent))
                ok &= duplicates == 0 and lost == 0 and unsent == 0
                print(
                    f"{workers} worker(s): {rate:,.0f} msg/s ({rate / base_rate:.0%} of baseline), "
                    f"{elapsed:.1f} s, duplicates {duplicates}, lost {lost}, not sent {unsent}"
                )
            two = next((rate for workers, rate, *_ in rows if workers == 2), None)
            if two is not None:
                met = two >= 0.5 * base_rate
                ok &= met
                print(
                    f"goal: 2 workers >= 50 % of the baseline: {two / base_rate:.0%} -> {'met' if met else 'MISSED'}"
                )
            print(
                "duplicates and lost: goal 0 ->",
                "met" if all(r[2] == 0 and r[3] == 0 for r in rows) else "MISSED",
            )
            return 0 if ok else 1
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
        if not args.keep:
            admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(main())
