"""Step 20: webhook signing secrets encrypted at rest.

`webhook_endpoints.secret` and `"previousSecret"` held the signing secrets in plain text
(`whsec_<base64>`): anyone reading the database or a backup could sign events as the platform. From
this revision they hold Fernet tokens (core/crypto.py) under the installation's key
(`MOBILITY_SECRET_KEY`, or the embedded default's generated `data_dir/secret.key`); the columns stay
text, nothing in the schema changes.

The upgrade encrypts each value still in plain text (one starting `whsec_`; a value already encrypted
is left as it is, so running it again changes nothing), the downgrade decrypts each value back to the
same plain text: no secret is lost either way, and receivers keep verifying with the secret they
were shown. Both need the key; with webhook endpoints stored and no key to use, they fail before
changing anything (set MOBILITY_SECRET_KEY and run again).

The SQL scripts (migrations/sql) cannot encrypt: their upgrade refuses while a plain-text secret is
stored, their downgrade while an encrypted one is; apply this step with `mobility db upgrade` (or
`mobility db downgrade`) instead, then continue with the scripts.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from mobility.ops.migration_ops import execute, is_postgresql

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLAIN = "whsec_"  # webhooks/signing.py's prefix: a secret in clear
COLUMNS = ("secret", "previousSecret")


def _refuse_offline(plain: bool, step: str) -> None:
    """The SQL scripts' stand-in: stop while a value would need the key (reads only)."""
    condition = " OR ".join(f"\"{column}\" {'' if plain else 'NOT '}LIKE '{PLAIN}%'" for column in COLUMNS)
    state = "in plain text" if plain else "encrypted"
    execute(
        f"""
        DO $check$
        BEGIN
            IF EXISTS (SELECT FROM webhook_endpoints WHERE {condition}) THEN
                RAISE EXCEPTION '0020 {step} refused: webhook signing secrets are stored {state}, and '
                    'SQL alone cannot change that: run this step with mobility db {step}';
            END IF;
        END
        $check$
        """
    )


def _box():
    """The installation's key, as the application finds it (core/crypto.py). The database migrated is
    the embedded default only if it is the one the settings name."""
    from mobility.core.config import Settings
    from mobility.core.crypto import secret_box

    settings = Settings()
    url = context.config.get_main_option("sqlalchemy.url")
    if not settings.database_url and url and url != settings.effective_database_url:
        settings = settings.model_copy(update={"database_url": url})
    return secret_box(settings)


def _convert(*, encrypt: bool) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.text('SELECT "tenantId", id, secret, "previousSecret" FROM webhook_endpoints')
    ).all()
    if not rows:
        return
    box = _box()

    def converted(value: str | None) -> str | None:
        if value is None:
            return None
        is_plain = value.startswith(PLAIN)
        if encrypt:
            return box.encrypt(value) if is_plain else value
        return value if is_plain else box.decrypt(value)

    for tenant_id, row_id, secret, previous in rows:
        connection.execute(
            sa.text(
                'UPDATE webhook_endpoints SET secret = :s, "previousSecret" = :p '
                'WHERE "tenantId" = :t AND id = :i'
            ),
            {"s": converted(secret), "p": converted(previous), "t": tenant_id, "i": row_id},
        )


def upgrade() -> None:
    if is_postgresql():
        execute("SET LOCAL mobility.system = 'on'")
    if context.is_offline_mode():
        _refuse_offline(plain=True, step="upgrade")
        return
    _convert(encrypt=True)


def downgrade() -> None:
    if is_postgresql():
        execute("SET LOCAL mobility.system = 'on'")
    if context.is_offline_mode():
        _refuse_offline(plain=False, step="downgrade")
        return
    _convert(encrypt=False)
