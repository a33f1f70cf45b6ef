"""E-mail out: the message of a notification, and the mailers that send it.

- `SmtpMailer`: aiosmtplib, one connection kept open across messages (reconnected after a failure),
  STARTTLS or TLS and credentials from the settings (MOBILITY_SMTP_*).
- `FileMailer`: without an SMTP host (development, `make run`), each message is written to
  `<data dir>/mail/<Message-ID>.eml`: nothing is lost, and it can be read or re-sent by hand.

Each notification has one stable Message-ID, `<notification id@sender domain>`: a message sent again
after a worker died in the window between the server's acceptance and the worker's record of it
carries the same Message-ID, and the receiving side can tell it is the same message.
"""

from __future__ import annotations

import email.utils
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Protocol

import aiosmtplib

from mobility.core.config import Settings
from mobility.notifications.templates import Rendered


class SendFailed(Exception):
    """A message not sent. `permanent`: the server refused it for good (5xx), no use trying again."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def sender_domain(settings: Settings) -> str:
    return settings.mail_from.rpartition("@")[2] or "localhost"


def message_id(notification_id: object, settings: Settings) -> str:
    return f"<{notification_id}@{sender_domain(settings)}>"


def build_message(
    rendered: Rendered,
    *,
    to: str,
    notification_id: object,
    settings: Settings,
    sender_name: str | None,
    reply_to: str | None,
) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = email.utils.formataddr((sender_name or "", settings.mail_from))
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Message-ID"] = message_id(notification_id, settings)
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    message["Auto-Submitted"] = "auto-generated"
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...

    async def close(self) -> None: ...


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            timeout=s.smtp_timeout_seconds,
        )

    async def send(self, message: EmailMessage) -> None:
        try:
            if self._client is None or not self._client.is_connected:
                self._client = self._new_client()
                await self._client.connect()
            # Flattened once here (send_message would do it again): the envelope is the From
            # address and the one recipient.
            errors, _ = await self._client.sendmail(
                self._settings.mail_from, [message["To"].addresses[0].addr_spec], message.as_bytes()
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await self._reset_after_refusal()
            codes = [r.code for r in exc.recipients]
            raise SendFailed(f"recipient refused: {exc}", permanent=all(c >= 500 for c in codes)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset_after_refusal()
            raise SendFailed(f"SMTP {exc.code}: {exc.message}", permanent=500 <= exc.code < 600) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await self.close()  # a timeout or a dropped connection: the next message connects afresh
            raise SendFailed(f"{type(exc).__name__}: {exc}") from exc
        if errors:
            raise SendFailed(f"recipients refused: {errors}", permanent=True)

    async def _reset_after_refusal(self) -> None:
        """After a refusal the connection may stay (RSET) or be gone: either way the next send works."""
        if self._client is not None and self._client.is_connected:
            try:
                await self._client.rset()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            client.close()


class FileMailer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = message["Message-ID"].strip("<>").replace("/", "_")
        path = self.directory / f"{name}.eml"
        try:
            path.write_bytes(message.as_bytes())
        except OSError as exc:
            raise SendFailed(f"cannot write {path}: {exc}") from exc

    async def close(self) -> None:
        return None


def mailer_for(settings: Settings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(settings)
    return FileMailer(settings.data_dir / "mail")
