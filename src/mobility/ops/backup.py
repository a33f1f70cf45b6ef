"""Backups and restores of the whole database: pg_dump / pg_restore on PostgreSQL, the online backup API
on SQLite.

- PostgreSQL backup: `pg_dump --format=custom` (a consistent snapshot, taken while the database stays
  in use), checked with `pg_restore --list` before it counts as made.
- PostgreSQL restore: `pg_restore --clean --if-exists --no-owner` renders the dump, and `psql
  --single-transaction` applies it after first dropping every table, view, sequence and type left in
  the schema, so the database ends up exactly as backed up (also when the backup is older than the
  schema, e.g. a backup taken before an upgrade). One transaction: if anything fails, nothing changed.
- SQLite: sqlite3's online backup API both ways (never a plain file copy, which could catch a write
  half-done); the copy is checked with `PRAGMA quick_check`.

Files are written under a temporary name and renamed once complete, readable by their owner alone.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url

PG_MAGIC = b"PGDMP"
SQLITE_MAGIC = b"SQLite format 3\x00"


class BackupError(Exception):
    """A backup or restore that could not be done; the message is one line for the user."""


def is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def backup_name(database_url: str, revision: str | None, reason: str | None = None) -> str:
    """`<database>_<UTC timestamp>_rev-<revision>[_<reason>].<dump|sqlite3>`."""
    url = make_url(database_url)
    database = url.database if is_postgres(database_url) else Path(url.database or "sqlite").stem
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    extension = "dump" if is_postgres(database_url) else "sqlite3"
    parts = [database or "database", stamp, f"rev-{revision or 'none'}", *([reason] if reason else [])]
    return "_".join(parts) + "." + extension


def backup(
    database_url: str,
    *,
    directory: Path | None = None,
    output: Path | None = None,
    revision: str | None = None,
    reason: str | None = None,
) -> Path:
    """Backs the database up to `output`, or to a new timestamped file in `directory`; the file's path."""
    if output is not None:
        target = output.expanduser().resolve()
        if target.exists():
            raise BackupError(f"{target} already exists; choose another --output")
        _make_dir(target.parent)
    elif directory is not None:
        folder = directory.expanduser().resolve()
        _make_dir(folder)
        target = _free_name(folder / backup_name(database_url, revision, reason))
    else:
        raise BackupError("no backup directory or output file given")
    partial = target.with_name(f".{target.name}.partial")
    try:
        if is_postgres(database_url):
            _pg_dump(make_url(database_url), partial)
        else:
            _sqlite_copy(_sqlite_path(database_url, must_exist=True), partial)
        os.chmod(partial, 0o600)
        os.replace(partial, target)
    except OSError as exc:
        raise BackupError(f"cannot write the backup {target}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


def check_backup_file(database_url: str, file: Path) -> None:
    """BackupError unless `file` is a readable backup of the kind this database restores."""
    file = file.expanduser()
    if not file.is_file():
        raise BackupError(f"backup file {file} does not exist")
    try:
        with file.open("rb") as handle:
            magic = handle.read(16)
    except OSError as exc:
        raise BackupError(f"cannot read backup file {file}: {exc.strerror or exc}") from exc
    if is_postgres(database_url):
        if not magic.startswith(PG_MAGIC):
            kind = (
                "a SQLite database" if magic.startswith(SQLITE_MAGIC) else "not a pg_dump custom-format file"
            )
            raise BackupError(f"{file} is {kind}; a PostgreSQL database restores `mobility db backup` dumps")
        _run(["pg_restore", "--list", str(file)], what=f"{file} is not a readable pg_dump archive")
    else:
        if not magic.startswith(SQLITE_MAGIC):
            kind = "a PostgreSQL dump" if magic.startswith(PG_MAGIC) else "not a SQLite database"
            raise BackupError(f"{file} is {kind}; a SQLite database restores `mobility db backup` copies")
        _sqlite_check(file)


def restore(database_url: str, file: Path, *, lock_timeout: str | None = None) -> None:
    """Replaces the database's content with the backup `file`, all or nothing."""
    file = file.expanduser().resolve()
    check_backup_file(database_url, file)
    if is_postgres(database_url):
        _pg_restore(make_url(database_url), file, lock_timeout)
    else:
        _sqlite_copy(file, _sqlite_path(database_url, must_exist=False))


# --- PostgreSQL ------------------------------------------------------------------------------------


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and the environment that carries it."""
    env = {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "10")}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    query = {}
    # asyncpg spells libpq's sslmode `ssl`; other driver options mean nothing to libpq.
    ssl = url.query.get("sslmode") or url.query.get("ssl")
    if ssl:
        query["sslmode"] = ssl if isinstance(ssl, str) else ssl[0]
    plain = url.set(drivername="postgresql", password=None, query=query)
    return plain.render_as_string(hide_password=False), env


def _run(
    args: list[str], *, what: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        result = subprocess.run(args, env=env, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise BackupError(f"{args[0]} is not installed (PostgreSQL client tools are needed)") from exc
    if result.returncode != 0:
        raise BackupError(f"{what}: {_last_line(result.stderr)}")
    return result


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
    return (errors or lines or ["(no message)"])[0]


def _pg_dump(url: URL, target: Path) -> None:
    dsn, env = _libpq(url)
    # Row-level security is FORCEd on the tenant tables, so it applies to an owner that is not a
    # superuser: pg_dump's default (row_security off) would then fail. Dump under the policies, with
    # the system setting that lets them pass every row (see docs/security.md).
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c mobility.system=on".strip()
    _run(
        [
            "pg_dump",
            "--format=custom",
            "--enable-row-security",
            "--no-password",
            f"--file={target}",
            f"--dbname={dsn}",
        ],
        what="pg_dump failed",
        env=env,
    )
    _run(["pg_restore", "--list", str(target)], what="the dump pg_dump wrote is not readable")


# Drops every table, view, sequence and type of the current schema (not those of extensions), so that
# the dump that follows recreates the schema exactly as it was: tables added since the backup go too.
_CLEAR_SCHEMA = """
DO $clear$
DECLARE item record;
BEGIN
  FOR item IN
    SELECT c.relname AS name, CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
             WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND NOT c.relispartition
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
    ORDER BY c.relkind DESC
  LOOP
    EXECUTE format('DROP %s IF EXISTS %I CASCADE', item.kind, item.name);
  END LOOP;
  FOR item IN
    SELECT t.typname AS name, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END AS kind
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd', 'r', 'm')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                      AND d.objid = t.oid AND d.deptype IN ('e', 'i'))
  LOOP
    EXECUTE format('DROP %s IF EXISTS %I CASCADE', item.kind, item.name);
  END LOOP;
END
$clear$;
"""


def _pg_restore(url: URL, file: Path, lock_timeout: str | None) -> None:
    dsn, env = _libpq(url)
    preamble = ""
    if lock_timeout:
        preamble += f"SET lock_timeout = '{lock_timeout.replace(chr(39), '')}';\n"
    preamble += _CLEAR_SCHEMA
    render = ["pg_restore", "--clean", "--if-exists", "--no-owner", "--file=-", str(file)]
    apply = ["psql", "--no-psqlrc", "--quiet", "--no-password", "--single-transaction"]
    apply += ["--set=ON_ERROR_STOP=1", "--file=-", f"--dbname={dsn}"]
    with tempfile.TemporaryFile() as render_err, tempfile.TemporaryFile() as apply_err:
        try:
            renderer = subprocess.Popen(render, stdout=subprocess.PIPE, stderr=render_err, env=env)
            applier = subprocess.Popen(
                apply, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=apply_err, env=env
            )
        except FileNotFoundError as exc:
            raise BackupError(
                f"{exc.filename} is not installed (PostgreSQL client tools are needed)"
            ) from exc
        assert renderer.stdout is not None and applier.stdin is not None
        try:
            applier.stdin.write(preamble.encode())
            shutil.copyfileobj(renderer.stdout, applier.stdin, 1 << 20)
            applier.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped at an error: reported below
        finally:
            renderer.stdout.close()
            render_code, apply_code = renderer.wait(), applier.wait()
        if apply_code != 0:
            apply_err.seek(0)
            raise BackupError(f"restore failed, nothing was changed: {_last_line(apply_err.read())}")
        if render_code != 0:  # psql committed only what it got; cannot happen after --list succeeded
            render_err.seek(0)
            raise BackupError(f"pg_restore failed reading {file}: {_last_line(render_err.read())}")


# --- SQLite ----------------------------------------------------------------------------------------


def _sqlite_path(database_url: str, *, must_exist: bool) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    path = Path(database).expanduser().resolve()
    if must_exist and not path.is_file():
        raise BackupError(f"database file {path} does not exist")
    return path


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of `source` into `target` with the online backup API, checked afterwards."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"copying {source} to {target} failed: {exc}") from exc
    _sqlite_check(target)


def _sqlite_check(path: Path) -> None:
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            result = connection.execute("PRAGMA quick_check").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{path} is not a usable SQLite database: {exc}") from exc
    if not result or result[0] != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {result[0] if result else 'no answer'}")


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {path}: {exc.strerror or exc}") from exc
    if not path.is_dir():
        raise BackupError(f"the backup directory {path} is not a directory")


def _free_name(path: Path) -> Path:
    candidate, counter = path, 1
    while candidate.exists():
        counter += 1
        candidate = path.with_name(f"{path.stem}-{counter}{path.suffix}")
    return candidate
