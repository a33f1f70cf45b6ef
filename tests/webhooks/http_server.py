"""A real HTTP server process on the loopback address for the webhook tests.

    python tests/webhooks/http_server.py DIRECTORY

Prints `port N`, then records every request as DIRECTORY/<n>.json (method, path, headers, body) and
answers by the path's first segment (the count is per `webhook-id`):
- `/ok...`: 200;
- `/fail...`: 500;
- `/flakyN...`: 500 for the first N requests of an event, then 200;
- `/hang...`: no answer for 5 s (the client times out), then 200;
- `/redirect...`: 302 to /ok (a client must not follow it).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOCK = threading.Lock()
SEEN: dict[str, int] = {}
COUNT = [0]


class Handler(BaseHTTPRequestHandler):
    directory: Path

    def log_message(self, *args) -> None:
        return None

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        event = self.headers.get("webhook-id", "")
        with LOCK:
            COUNT[0] += 1
            number = COUNT[0]
            SEEN[event] = attempt = SEEN.get(event, 0) + 1
        record = {
            "method": "POST",
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode(),
        }
        (self.directory / f"{number:06d}.json").write_text(json.dumps(record))
        segment = self.path.strip("/").split("/")[0]
        flaky = re.match(r"flaky(\d+)", segment)
        if segment.startswith("fail") or (flaky and attempt <= int(flaky.group(1))):
            self._answer(500)
        elif segment.startswith("hang"):
            time.sleep(5)
            self._answer(200)
        elif segment.startswith("redirect"):
            self.send_response(302)
            self.send_header("location", "/ok")
            self.send_header("content-length", "0")
            self.end_headers()
        else:
            self._answer(200)

    def _answer(self, status: int) -> None:
        payload = b'{"received": true}'
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    Handler.directory = target
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()
