"""The `mobility` command: database migrations, backups, seeding, serving, the Prisma schema, docs.

Settings are read afresh on every invocation (environment and `.env`). Expected failures (a bad
revision, an unreachable database, a missing file, a refused confirmation) print one line starting
with `error:` on stderr and exit with status 1; `--traceback` shows the Python traceback as well.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from mobility.core.config import Settings, get_settings
from mobility.ops import backup as backups
from mobility.ops import migrations

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="mobility",
    help="WTI Labour Mobility platform: database, seed data, API server.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Migrate, inspect, adopt, back up and restore the database.", no_args_is_help=True)
prisma_app = typer.Typer(help="The Prisma schema generated from the models.", no_args_is_help=True)
docs_app = typer.Typer(help="Documentation generated from the code.", no_args_is_help=True)
users_app = typer.Typer(
    help="Accounts: e-mail case twins, merging two accounts, setting a lost password.", no_args_is_help=True
)
jobs_app = typer.Typer(
    help="The periodic jobs the worker runs: list them, run one now.", no_args_is_help=True
)
import_app = typer.Typer(
    help="Bring records in from files: candidates from a spreadsheet.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(jobs_app, name="jobs")
app.add_typer(users_app, name="users")
app.add_typer(prisma_app, name="prisma")
app.add_typer(docs_app, name="docs")

_options = {"traceback": False}


class CliError(Exception):
    """A failure to report as one line."""


@app.callback()
def main(
    show_traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the Python traceback of a failure.")
    ] = False,
) -> None:
    _options["traceback"] = show_traceback


def _settings() -> Settings:
    """This invocation's settings, read afresh (so `get_settings()` users agree with the CLI)."""
    get_settings.cache_clear()
    try:
        settings = get_settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        first = str(exc).splitlines()
        raise CliError(f"invalid settings: {' '.join(line.strip() for line in first[:3])}") from exc
    try:
        backend = make_url(settings.effective_database_url).get_backend_name()
    except ArgumentError as exc:
        raise CliError(f"MOBILITY_DATABASE_URL is not a database URL: {exc}") from exc
    if backend not in ("postgresql", "sqlite"):
        raise CliError(
            f"unsupported database {backend!r} in MOBILITY_DATABASE_URL; use postgresql:// or sqlite://"
        )
    return settings


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _message(exc: BaseException) -> str:
    """One line describing `exc`."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig)
    elif isinstance(exc, SQLAlchemyError):
        text = str(exc).split("\n(Background on this error")[0]
    else:
        text = str(exc) or type(exc).__name__
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _fail(message: str, details: list[str] | None = None) -> None:
    typer.echo(f"error: {message}", err=True)
    for line in details or []:
        typer.echo(f"  {line}", err=True)
    raise typer.Exit(1)


def _command(group: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Registers a command whose expected failures become one `error:` line and exit status 1."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kw: Any) -> Any:
            try:
                return function(*args, **kw)
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except migrations.NotAdoptable as exc:
                for note in exc.notes:
                    typer.echo(f"warning: {note}", err=True)
                _fail(f"{exc}; nothing was changed:", exc.differences)
            except (CliError, migrations.MigrationError, backups.BackupError) as exc:
                _fail(str(exc))
            except OSError as exc:  # connection failures were told apart already: files, pipes, ...
                if _options["traceback"]:
                    traceback.print_exc()
                _fail(f"{type(exc).__name__}: {_message(exc)}")
            except (CommandError, ArgumentError) as exc:
                _fail(_message(exc))
            except SQLAlchemyError as exc:
                if _options["traceback"]:
                    traceback.print_exc()
                _fail(f"database error: {_message(exc)}")
            except Exception as exc:
                if _options["traceback"]:
                    traceback.print_exc()
                _fail(f"unexpected {type(exc).__name__}: {_message(exc)} (run with --traceback for details)")

        group.command(name, **kwargs)(wrapper)
        return function

    return decorate


def _confirm(question: str, yes: bool, refusal: str) -> None:
    """Goes on with --yes or an interactive "y"; otherwise fails without changing anything."""
    if yes:
        return
    if not _stdin_is_tty():
        raise CliError(f"{refusal}: confirmation needed; re-run with --yes")
    if not typer.confirm(question, default=False):
        raise CliError(f"{refusal}: not confirmed")


def _stdin_is_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _check_sqlite_exists(url: str) -> None:
    parsed = make_url(url)
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database
        and parsed.database != ":memory:"
        and not Path(parsed.database).expanduser().is_file()
    ):
        raise CliError(f"database file {parsed.database} does not exist")


def _take_backup(url: str, settings: Settings, revision: str | None, reason: str) -> Path:
    path = backups.backup(url, directory=settings.effective_backup_dir, revision=revision, reason=reason)
    typer.echo(f"backup written to {path}")
    return path


# --- db ----------------------------------------------------------------------------------------------


@_command(db_app, "upgrade")
def db_upgrade(
    to: Annotated[str, typer.Option("--to", help="Target revision (default: head).")] = "head",
) -> None:
    """Migrate the database up to head (or to --to REV)."""
    settings = _settings()
    url = settings.effective_database_url
    target = migrations.resolve_revision(to)
    state = migrations.status(url, settings=settings)
    migrations.check_upgrade(state, target)
    if target == state.current:
        typer.echo(f"already at {migrations.describe(target)}; nothing to do")
        return
    _migrate(migrations.upgrade, url, target or "base", settings)
    typer.echo(f"upgraded {_shown(url)} from {state.current or 'an empty database'} to {target}")


@_command(db_app, "downgrade")
def db_downgrade(
    to: Annotated[str, typer.Option("--to", help="Target revision (an id, or base).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Migrate the database down to --to REV, after a confirmation and a backup."""
    settings = _settings()
    url = settings.effective_database_url
    target = migrations.resolve_revision(to)
    state = migrations.status(url, settings=settings)
    migrations.check_downgrade(state, target)
    if target == state.current:
        typer.echo(f"already at {migrations.describe(target)}; nothing to do")
        return
    reverted = ", ".join(script.revision for script in reversed(migrations.between(target, state.current)))
    _confirm(
        f"Downgrade {_shown(url)} from {state.current} to {target or 'base'}, reverting {reverted}? "
        "What those revisions added (tables, columns and their data) is dropped; a backup is taken first.",
        yes,
        "downgrade refused",
    )
    _take_backup(url, settings, state.current, "before-downgrade")
    _migrate(migrations.downgrade, url, target or "base", settings)
    typer.echo(f"downgraded {_shown(url)} from {state.current} to {target or 'base'}")


def _migrate(run: Callable[..., None], url: str, target: str, settings: Settings) -> None:
    try:
        run(url, target, lock_timeout=settings.migration_lock_timeout, progress=typer.echo)
    except (SQLAlchemyError, CommandError, OSError) as exc:
        try:
            now = migrations.current_revision(url, settings=settings)
        except Exception:
            now = "unknown"
        raise CliError(
            f"migration failed: {_message(exc)}; the database is at revision {now or 'none'} "
            f"(each revision commits on its own: fix the cause and run the command again)"
        ) from exc


@_command(db_app, "status")
def db_status() -> None:
    """Show the current revision, the head and the pending revisions."""
    settings = _settings()
    url = settings.effective_database_url
    typer.echo(f"database: {_shown(url)}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_file():
        head = migrations.head_revision()
        typer.echo("current:  none (the database file does not exist yet)")
        typer.echo(f"head:     {migrations.describe(head)}")
        _print_pending(migrations.between(None, head))
        return
    state = migrations.status(url, settings=settings)
    if state.current is not None:
        current = migrations.describe(state.current)
    elif state.legacy_unstamped:
        current = "none (legacy tables without a revision: run `mobility db adopt`)"
    elif state.table_count:
        current = f"none ({state.table_count} tables, none of them ours or legacy)"
    else:
        current = "none (empty database)"
    typer.echo(f"current:  {current}")
    typer.echo(f"head:     {migrations.describe(state.head)}")
    _print_pending(state.pending)


def _print_pending(pending: list[Any]) -> None:
    if not pending:
        typer.echo("pending:  none (up to date)")
        return
    typer.echo(f"pending:  {len(pending)}")
    for script in pending:
        typer.echo(f"  {script.revision}  {migrations.summary(script)}")


@_command(db_app, "adopt")
def db_adopt() -> None:
    """Check that an existing legacy database has the expected shape, then stamp the baseline (0000)."""
    settings = _settings()
    url = settings.effective_database_url
    _check_sqlite_exists(url)
    adoption = migrations.adopt(url, settings=settings)
    if adoption.already:
        typer.echo(f"already adopted: the database is at the baseline revision {migrations.BASELINE}")
        typer.echo("next: `mobility db upgrade`")
        return
    for note in adoption.notes:
        typer.echo(f"warning: {note}", err=True)
    typer.echo(f"adopted: {_shown(url)} has the legacy shape; stamped revision {migrations.BASELINE}")
    typer.echo("next: `mobility db upgrade`")


@_command(db_app, "backup")
def db_backup(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default: a new file in the backup dir)."),
    ] = None,
) -> None:
    """Back the database up (pg_dump custom format on PostgreSQL, a consistent copy on SQLite)."""
    settings = _settings()
    url = settings.effective_database_url
    _check_sqlite_exists(url)
    revision = migrations.status(url, settings=settings).current
    path = backups.backup(
        url, directory=settings.effective_backup_dir, output=output, revision=revision, reason=None
    )
    typer.echo(f"backup of {_shown(url)} at revision {revision or 'none'} written to {path}")


@_command(db_app, "purge-throttles")
def db_purge_throttles() -> None:
    """Delete login-throttle counters that no longer count (no failure, or unlocked and quiet past
    their forgetting period): no answer to any login changes, so nothing asks or backs up first.
    Run it from cron or a timer, e.g. daily."""
    from mobility.app_session import create_sessionmaker
    from mobility.auth.throttling import purge_stale_throttles
    from mobility.core.db import create_engine, transaction
    from mobility.core.scope import Scope, apply_to_database

    settings = _settings()
    url = settings.effective_database_url
    _check_sqlite_exists(url)

    async def _run() -> int:
        engine = create_engine(url, settings=settings)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await apply_to_database(session, Scope.for_system())
                return await purge_stale_throttles(session, settings)
        finally:
            await engine.dispose()

    deleted = asyncio.run(_run())
    typer.echo(f"deleted {deleted} login-throttle counter(s) that no longer counted from {_shown(url)}")


@_command(db_app, "restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `mobility db backup` (or a downgrade).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the database with a backup, after a confirmation and a backup of its current state."""
    settings = _settings()
    url = settings.effective_database_url
    backups.check_backup_file(url, file)
    _confirm(
        f"Replace everything in {_shown(url)} with {file}? A backup of its current state is taken first.",
        yes,
        "restore refused",
    )
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        typer.echo("no current database file: nothing to back up")
    else:
        _take_backup(url, settings, migrations.status(url, settings=settings).current, "before-restore")
    backups.restore(url, file, lock_timeout=settings.migration_lock_timeout)
    revision = migrations.current_revision(url, settings=settings)
    typer.echo(f"restored {_shown(url)} from {file}; now at revision {revision or 'none'}")


# --- users ------------------------------------------------------------------------------------------

# `users duplicates` and `users merge` are what lets a database with case twins past revision 0013, so
# they work from the revision before it.
USERS_FROM_REVISION = "0012"
NEW_PASSWORD_VARIABLE = "MOBILITY_NEW_PASSWORD"


def _users_database(settings: Settings, *, at_head: bool) -> tuple[str, migrations.Status]:
    url = settings.effective_database_url
    _check_sqlite_exists(url)
    state = migrations.status(url, settings=settings)
    if at_head and state.current != state.head:
        raise CliError(
            f"the database is at revision {state.current or 'none'}, not at head {state.head}; "
            "run `mobility db upgrade` first"
        )
    if migrations.position(state.current) < migrations.position(USERS_FROM_REVISION):
        raise CliError(
            f"the database is at revision {state.current or 'none'}; this command needs revision "
            f"{USERS_FROM_REVISION} or later: run `mobility db upgrade` first"
        )
    return url, state


def _as_system(url: str, settings: Settings, work: Callable[[Any], Any]) -> Any:
    """`await work(session)` in one transaction under the system scope (the CLI acts across tenants);
    an AccountError is a one-line refusal (rolled back)."""
    from mobility.app_session import create_sessionmaker
    from mobility.core.db import create_engine, transaction
    from mobility.core.scope import Scope, apply_to_database
    from mobility.users.accounts import AccountError

    async def _run() -> Any:
        engine = create_engine(url, settings=settings)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await apply_to_database(session, Scope.for_system())
                return await work(session)
        finally:
            await engine.dispose()

    from mobility.core.errors import AppError

    try:
        return asyncio.run(_run())
    except AccountError as exc:
        raise CliError(f"{exc}; nothing was changed") from exc
    except AppError as exc:
        raise CliError(f"{exc.detail[:1].lower()}{exc.detail[1:]} Nothing was changed.") from exc


@_command(users_app, "duplicates")
def users_duplicates() -> None:
    """List the case twins: groups of accounts whose e-mails are equal apart from letter case."""
    from mobility.users import accounts

    settings = _settings()
    url, _state = _users_database(settings, at_head=False)
    groups = _as_system(url, settings, accounts.case_twins)
    if not groups:
        typer.echo("no case twins: every e-mail belongs to one account")
        return
    typer.echo(f"{len(groups)} e-mail address(es) with more than one account (oldest first):")
    for group in groups:
        typer.echo("")
        for line in accounts.describe_accounts(group):
            typer.echo(f"  {line}")
    typer.echo("")
    typer.echo("fold each group into one account with `mobility users merge KEEP DROP` (ids or e-mails)")


@_command(users_app, "merge")
def users_merge(
    keep: Annotated[str, typer.Argument(help="The account that stays: its id or e-mail.")],
    drop: Annotated[str, typer.Argument(help="The account folded into KEEP, then deleted: id or e-mail.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Fold account DROP into its case twin KEEP: memberships, references and activity move to KEEP,
    DROP's sessions end, the merge is audited, DROP is deleted. Asks first; takes a backup first."""
    from mobility.users import accounts

    settings = _settings()
    url, state = _users_database(settings, at_head=False)
    plan = _as_system(url, settings, lambda session: accounts.plan_merge(session, keep, drop))
    typer.echo("keep:  " + accounts.describe_accounts([plan.keep])[0])
    typer.echo("drop:  " + accounts.describe_accounts([plan.drop])[0])
    for warning in plan.warnings:
        typer.echo(f"warning: {warning}", err=True)
    moved = ", ".join(plan.memberships_moved) or "none"
    kept = ", ".join(plan.memberships_dropped) or "none"
    references = sum(plan.references.values())
    _confirm(
        f"Merge {plan.drop.email} into {plan.keep.email}? Memberships moved: {moved}; "
        f"where both are members, {plan.keep.email}'s role stays: {kept}. {plan.live_sessions} live "
        f"session(s) end, {references} reference(s) move, {plan.drop.email} is deleted. "
        "A backup is taken first.",
        yes,
        "merge refused",
    )
    _take_backup(url, settings, state.current, "before-merge")
    report = _as_system(url, settings, lambda session: accounts.merge(session, keep, drop))
    typer.echo(
        f"merged {report.drop.email} ({report.drop.id}) into {report.keep.email} ({report.keep.id}): "
        f"{len(report.memberships_moved)} membership(s) moved, {len(report.memberships_dropped)} deleted "
        f"(the kept account's role stays), {report.live_sessions} session(s) ended, "
        f"{sum(len(ids) for ids in report.moved.values())} reference(s) moved"
    )
    for name, ids in sorted(report.moved.items()):
        typer.echo(f"  {name}: {len(ids)}")
    if state.current != state.head:
        typer.echo("next: `mobility users duplicates`, then `mobility db upgrade` once none are left")


def _new_password() -> str:
    """From MOBILITY_NEW_PASSWORD when set, else asked twice without echo."""
    import os

    from_environment = os.environ.get(NEW_PASSWORD_VARIABLE)
    if from_environment:
        return from_environment
    try:
        first = typer.prompt("New password", hide_input=True)
        second = typer.prompt("The same again", hide_input=True)
    except (typer.Abort, EOFError) as exc:
        raise CliError(f"no password given: type it twice, or set {NEW_PASSWORD_VARIABLE}") from exc
    if first != second:
        raise CliError("the two passwords differ; nothing was changed")
    return first


@_command(users_app, "set-password")
def users_set_password(
    account: Annotated[str, typer.Argument(metavar="EMAIL", help="The account's e-mail (or id).")],
) -> None:
    """Set an account's password (e.g. the only admin's, lost): asked twice, or MOBILITY_NEW_PASSWORD.
    Ends the account's sessions; activates an invited account; recorded in the activity log."""
    from mobility.users import accounts

    settings = _settings()
    url, _state = _users_database(settings, at_head=True)
    password = _new_password()
    done = _as_system(url, settings, lambda session: accounts.set_password(session, account, password))
    typer.echo(
        f"password set for {done.email}; {done.sessions_ended} session(s) ended"
        + ("; the invited account is now active" if done.activated else "")
        + (f", in {done.tenants_joined} tenant(s) that invited it" if done.tenants_joined else "")
        + (f"; the account stays {done.status}" if done.status != "active" else "")
    )


@_command(users_app, "invitation-link")
def users_invitation_link(
    email: Annotated[str, typer.Argument(help="The invited address.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The code of the tenant that invited it.")],
) -> None:
    """Print a fresh invitation token for an address whose account an invitation created and that was
    never set up (until invitations are e-mailed: the token goes to the address's owner only, and sets
    the first password at POST /api/v1/invitations/accept). The earlier token stops working."""
    from mobility.users import service as users_service

    settings = _settings()
    url, _state = _users_database(settings, at_head=True)
    token = _as_system(
        url,
        settings,
        lambda session: users_service.issue_invitation_link(session, email=email, tenant_code=tenant),
    )
    typer.echo(
        f"invitation token for {email} (valid for the tenant's invitation period; give it to them only):"
    )
    typer.echo(token)


# --- import -----------------------------------------------------------------------------------------


@_command(import_app, "candidates")
def import_candidates(
    file: Annotated[Path, typer.Argument(help="A CSV (UTF-8) or Excel (.xlsx) file; README: the columns.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The code of the tenant to import into.")],
    acting_as: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="EMAIL",
            help="Act as this member of the tenant (their rights; recorded as the actor). "
            "Default: the operator, with the tenant's Admin rights.",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row; write nothing.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows; report and skip the others.")
    ] = False,
) -> None:
    """Register the candidates of a spreadsheet, each row checked as the API checks one (duplicates
    within the file and against the database included). All or nothing unless --skip-invalid: any
    refused row and nothing is written (exit status 1). Refused rows are listed with their line."""
    from mobility.app_session import create_sessionmaker
    from mobility.candidates import imports
    from mobility.core.db import create_engine
    from mobility.core.errors import AppError
    from mobility.core.scope import Scope, apply_to_database

    settings = _settings()
    url = _at_head(settings)
    if not file.is_file():
        raise CliError(f"no file {file}")

    async def _run() -> imports.ImportReport:
        engine = create_engine(url, settings=settings)
        try:
            async with create_sessionmaker(engine)() as session:
                await apply_to_database(session, Scope.for_system())
                scope = await imports.acting_scope(session, tenant_code=tenant, email=acting_as)
                await apply_to_database(session, scope.but(request_id=f"cli:import:{file.name}"[:120]))
                with file.open("rb") as handle, _progress(file.name) as progress:
                    report = await imports.import_candidates(
                        session,
                        handle,
                        dry_run=dry_run,
                        skip_invalid=skip_invalid,
                        progress=progress,
                        processes=imports.checking_processes(file.stat().st_size),
                    )
                await session.commit()
                return report
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(_run())
    except AppError as exc:
        raise CliError(f"{exc.detail[:1].lower()}{exc.detail[1:].rstrip('.')}; nothing was imported") from exc
    for row in report.rejected_rows:
        typer.echo(f"line {row.line}: {' | '.join(row.reasons)}", err=True)
    if report.truncated:
        typer.echo(f"... and {report.rejected - len(report.rejected_rows)} more refused row(s)", err=True)
    if report.rejected and not report.written and not dry_run:
        _fail(report.summary())
    typer.echo(report.summary())


class _progress:
    """A progress bar on stderr while an import runs (bytes of a CSV, rows of a workbook)."""

    def __init__(self, label: str) -> None:
        self.label, self.bar, self.shown = label, None, 0

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            self.bar = typer.progressbar(length=total or 0, label=f"importing {self.label}", file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(max(done - self.shown, 0))
        self.shown = max(done, self.shown)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


# --- seed, serve, prisma -----------------------------------------------------------------------------


@_command(app, "seed")
def seed_command() -> None:
    """Create the WTI tenant, the system roles, an admin user and linked sample records (idempotent)."""
    from mobility.app_session import create_sessionmaker
    from mobility.core.db import create_engine, transaction
    from mobility.ops.seed import SeedError, seed

    settings = _settings()
    url = settings.effective_database_url
    state = migrations.status(url, settings=settings)
    if state.current != state.head:
        raise CliError(
            f"the database is at revision {state.current or 'none'}, not at head {state.head}; "
            "run `mobility db upgrade` first"
        )

    async def _run():
        engine = create_engine(url, settings=settings)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await seed(
                    session, admin_email=settings.admin_email, admin_password=settings.admin_password
                )
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(_run())
    except SeedError as exc:
        raise CliError(f"seed failed, nothing was written: {exc}") from exc
    typer.echo(
        f"seeded {_shown(url)}: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.existing)} already there"
    )
    for label in report.created:
        typer.echo(f"  created  {label}")
    for label in report.updated:
        typer.echo(f"  updated  {label}")
    if report.generated_password:
        typer.echo(f"admin login: {report.admin_email}")
        typer.echo(f"admin password (generated, shown only this once): {report.generated_password}")


@_command(app, "worker")
def worker_command(
    once: Annotated[
        bool,
        typer.Option("--once", help="Run the due jobs, deliver everything due, then exit (cron, tests)."),
    ] = False,
) -> None:
    """Deliver queued notifications and webhooks, and run the periodic jobs, until SIGTERM (or --once).
    Several workers may run at once on PostgreSQL; on SQLite run one."""
    from mobility.worker.app import run

    settings = _settings()
    _at_head(settings)
    tally = asyncio.run(run(settings, once=once))
    for line in tally.lines():
        typer.echo(line)


def _at_head(settings: Settings) -> str:
    url = settings.effective_database_url
    _check_sqlite_exists(url)
    state = migrations.status(url, settings=settings)
    if state.current != state.head:
        raise CliError(
            f"the database is at revision {state.current or 'none'}, not at head {state.head}; "
            "run `mobility db upgrade` first"
        )
    return url


def _with_jobs(settings: Settings, url: str, work: Callable[[Any, Any], Any]) -> Any:
    from mobility.app_session import create_sessionmaker
    from mobility.core.db import create_engine
    from mobility.worker.jobs import JobBusy, Jobs, UnknownJob

    async def _run() -> Any:
        engine = create_engine(url, settings=settings)
        try:
            return await work(Jobs(), create_sessionmaker(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(_run())
    except (JobBusy, UnknownJob) as exc:
        raise CliError(str(exc)) from exc


@_command(jobs_app, "list")
def jobs_list() -> None:
    """Each job: how often it runs, when next, when it last finished and what it reported."""
    settings = _settings()
    url = _at_head(settings)

    async def work(jobs, sessionmaker):
        return jobs, await jobs.leases(sessionmaker)

    jobs, leases = _with_jobs(settings, url, work)
    for name, job in sorted(jobs.jobs.items()):
        lease = leases.get(name)
        typer.echo(f"{name}  every {job.every}  {job.description}")
        if lease is None:
            typer.echo("    never run; due at the next worker round")
            continue
        state = (
            f"running in {lease.leased_by} (lease until {lease.lease_until:%Y-%m-%d %H:%M:%S}Z)"
            if lease.leased_by
            else "idle"
        )
        typer.echo(f"    {state}; next {lease.next_run_at:%Y-%m-%d %H:%M:%S}Z")
        if lease.last_finished_at:
            outcome = f"error: {lease.last_error}" if lease.last_error else f"{lease.last_result}"
            typer.echo(f"    last finished {lease.last_finished_at:%Y-%m-%d %H:%M:%S}Z: {outcome}")


@_command(jobs_app, "run")
def jobs_run(name: Annotated[str, typer.Argument(help="The job's name (see `mobility jobs list`).")]) -> None:
    """Run one job now, whatever its schedule (refused while a worker is running it)."""
    from mobility.worker.queue import new_worker_id

    settings = _settings()
    url = _at_head(settings)
    report = _with_jobs(
        settings,
        url,
        lambda jobs, sessionmaker: jobs.run_now(
            sessionmaker, settings, name, worker_id=f"cli:{new_worker_id()}"
        ),
    )
    if "error" in report:
        raise CliError(f"job {name} failed: {report['error']}")
    typer.echo(f"{name}: {report}")


@_command(app, "serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: MOBILITY_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: MOBILITY_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default: MOBILITY_WORKERS).")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    with_worker: Annotated[
        bool, typer.Option("--with-worker", help="Also run one `mobility worker` beside the API (make run).")
    ] = False,
) -> None:
    """Serve the API with uvicorn (OpenAPI docs at /docs)."""
    import subprocess

    import uvicorn

    from mobility.core.http import serve_options

    settings = _settings()
    worker = subprocess.Popen([sys.executable, "-m", "mobility.cli", "worker"]) if with_worker else None
    try:
        _serve(uvicorn, serve_options, settings, host, port, workers, reload)
    finally:
        if worker is not None:
            worker.terminate()  # SIGTERM: it finishes the message in hand
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


def _serve(uvicorn, serve_options, settings, host, port, workers, reload) -> None:
    uvicorn.run(
        "mobility.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=None if reload else (workers or settings.workers),
        reload=reload,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # Timeouts for slow and idle clients, and the connection limit (core/http.py).
        **serve_options(settings),
    )


@_command(prisma_app, "export")
def prisma_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: prisma/schema.prisma).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; fail if the file is not what export would write.")
    ] = False,
) -> None:
    """Write prisma/schema.prisma from the models."""
    try:
        from mobility.ops import prisma
    except ImportError as exc:
        raise CliError(f"the Prisma exporter is not available: {exc}") from exc
    if check:
        if not prisma.is_up_to_date(output):
            raise CliError(f"{output or 'prisma/schema.prisma'} is out of date; run `mobility prisma export`")
        typer.echo(f"{output or 'prisma/schema.prisma'} is up to date")
        return
    typer.echo(f"wrote {prisma.export(output)}")


PERMISSIONS_DOC = Path("docs") / "permissions.md"


@_command(docs_app, "permissions")
def docs_permissions(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: docs/permissions.md).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; fail if the file is not what would be written.")
    ] = False,
) -> None:
    """Write docs/permissions.md from the permission matrix (src/mobility/authz/permissions.py)."""
    from mobility.authz.permissions import render_markdown
    from mobility.ops.migrations import PROJECT_ROOT

    path = output if output is not None else PROJECT_ROOT / PERMISSIONS_DOC
    shown = output or PERMISSIONS_DOC
    expected = render_markdown()
    if check:
        if not path.is_file() or path.read_text(encoding="utf-8") != expected:
            raise CliError(f"{shown} is out of date; run `mobility docs permissions`")
        typer.echo(f"{shown} is up to date")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(expected, encoding="utf-8", newline="\n")
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
