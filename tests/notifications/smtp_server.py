"""A real SMTP server process for the tests (aiosmtpd), with faults chosen by the recipient's address.

    python tests/notifications/smtp_server.py DIRECTORY

Prints `port N` when it listens on 127.0.0.1 (a free port), then writes every message it accepts to
DIRECTORY/<n>.eml (written before the 250 answer: once the file is there, the server has the message).
The recipient's local part picks what happens (the count is per Message-ID):
- `refuse-...`: 550 to RCPT (refused for good);
- `busy-...`: 451 to RCPT, always (try later);
- `flakyN-...`: 451 to DATA for the first N attempts, then accepted;
- `slowN-...`: for the first N attempts, no answer to DATA for 5 s (the client times out), then 451;
- `dropN-...`: for the first N attempts, the connection closed in the middle of DATA, no answer;
- `kill-...`: accepted, and just before the 250 the process whose pid is in DIRECTORY/killpid is
  killed with SIGKILL (a worker that dies after the server accepted and before it recorded it);
- `wait-...`: accepted after half a second;
- anything else: accepted.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from email import message_from_bytes
from email.policy import default
from pathlib import Path

from aiosmtpd.smtp import SMTP

FAULT = re.compile(r"^(refuse|busy|flaky|slow|drop|kill|wait)(\d*)-")


class Handler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.attempts: dict[str, int] = {}
        self.count = 0

    @staticmethod
    def _fault(address: str) -> tuple[str | None, int]:
        found = FAULT.match(address.lower())
        if not found:
            return None, 0
        return found.group(1), int(found.group(2) or 1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        fault, _ = self._fault(address)
        if fault == "refuse":
            return "550 5.1.1 No such mailbox here"
        if fault == "busy":
            return "451 4.3.0 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        message = message_from_bytes(envelope.content, policy=default)
        message_id = str(message["Message-ID"])
        attempt = self.attempts[message_id] = self.attempts.get(message_id, 0) + 1
        fault, times = self._fault(envelope.rcpt_tos[0])
        if fault == "flaky" and attempt <= times:
            return "451 4.3.0 Temporary failure, try again"
        if fault == "slow" and attempt <= times:
            await asyncio.sleep(5)
            return "451 4.3.0 Too slow"
        if fault == "wait":
            await asyncio.sleep(0.5)
        if fault == "drop" and attempt <= times:
            server.transport.abort()
            return "451 dropped"  # never reaches the client
        self.count += 1
        path = self.directory / f"{self.count:06d}.eml"
        partial = path.with_suffix(".part")
        partial.write_bytes(envelope.content)
        partial.rename(path)
        if fault == "kill":
            pid_file = self.directory / "killpid"
            if pid_file.exists():
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
                pid_file.unlink()
        return "250 OK accepted"


async def main(directory: Path) -> None:
    handler = Handler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test", timeout=30), host="127.0.0.1", port=0
    )
    port = server.sockets[0].getsockname()[1]
    print(f"port {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(target))
