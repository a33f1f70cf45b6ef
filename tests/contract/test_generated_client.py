"""A client generated from /openapi.json by openapi-python-client, as a partner's integrator would make
it, against the app served by uvicorn on a loopback socket: a success and each documented error of a
few operations parse into the documented models, without an exception (`raise_on_unexpected_status`
makes an undocumented status one)."""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from mobility.candidates.exports import XLSX_MEDIA_TYPE
from mobility.core.config import Settings
from mobility.main import create_app
from tests.support.admin_api import World
from tests.support.databases import app_role_url
from tests.support.factories import PASSWORD

PACKAGE = "mobility_generated_client"


@pytest.fixture
def served(contract_world: World) -> Iterator[str]:
    """The app on a free loopback port, in a thread of its own; its base URL."""
    settings = Settings(
        database_url=contract_world.url,
        app_database_url=app_role_url(contract_world.url),
        login_free_failures=2,
        login_max_lockout_seconds=60,
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture
def client_package(served: str, tmp_path: Path):
    """The package generated from the running app's /openapi.json, imported."""
    spec = tmp_path / "openapi.json"
    spec.write_bytes(httpx.get(f"{served}/openapi.json").content)
    config = tmp_path / "config.yaml"
    # The generator knows binary bodies only as application/octet-stream: the exports' spreadsheet is one.
    config.write_text(
        f"package_name_override: {PACKAGE}\npost_hooks: []\ncontent_type_overrides:\n"
        f"  {XLSX_MEDIA_TYPE}: application/octet-stream\n"
    )
    generator = Path(sys.executable).parent / "openapi-python-client"
    result = subprocess.run(
        [generator, "generate", "--path", spec, "--output-path", tmp_path / PACKAGE, "--meta", "none",
         "--config", config],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        for name in [name for name in sys.modules if name.startswith(PACKAGE)]:
            del sys.modules[name]
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))


def _module(package, name: str):
    return importlib.import_module(f"{package.__name__}.{name}")


def test_generated_client_parses_successes_and_documented_errors(
    client_package, served: str, contract_world: World
) -> None:
    client_module = _module(client_package, "client")
    login = _module(client_package, "api.auth.login")
    me = _module(client_package, "api.auth.me")
    get_user = _module(client_package, "api.users.get_user")
    list_users = _module(client_package, "api.users.list_users")
    models = _module(client_package, "models")

    public = client_module.Client(base_url=served, raise_on_unexpected_status=True)
    world = contract_world

    def login_as(email: str, password: str, tenant_code: str | None = None):
        body = models.LoginRequest(email=email, password=password, tenant_code=tenant_code)
        return login.sync_detailed(client=public, body=body)

    # login: 200, 401, 422, 429
    ok = login_as(world.admin.email, PASSWORD, world.tenant.code)
    assert ok.status_code == 200 and isinstance(ok.parsed, models.LoginResponse), ok.content
    wrong = login_as(world.trainer.email, "not the password")
    assert wrong.status_code == 401 and isinstance(wrong.parsed, models.Problem)
    assert wrong.parsed.code == "invalid_credentials"
    invalid = login_as("not an e-mail", "x")
    assert invalid.status_code == 422 and isinstance(invalid.parsed, models.Problem)
    assert invalid.parsed.errors and list(invalid.parsed.errors[0].loc) == ["body", "email"]
    throttled = None
    for _ in range(6):
        throttled = login_as(world.trainer.email, "still not the password")
        if throttled.status_code == 429:
            break
    assert throttled.status_code == 429 and isinstance(throttled.parsed, models.Problem), throttled.content
    assert int(throttled.headers["retry-after"]) > 0

    admin = client_module.AuthenticatedClient(
        base_url=served, token=ok.parsed.token, raise_on_unexpected_status=True
    )
    # getUser: 200, 404; listUsers: 200, 422; me: 200, 401
    found = get_user.sync_detailed(user_id=world.trainer.id, client=admin)
    assert found.status_code == 200 and isinstance(found.parsed, models.UserRead)
    assert found.parsed.email == world.trainer.email
    missing = get_user.sync_detailed(user_id=uuid.uuid4(), client=admin)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Problem)
    listed = list_users.sync_detailed(client=admin, limit=2)
    assert listed.status_code == 200 and isinstance(listed.parsed, models.PageUserRead)
    refused = list_users.sync_detailed(client=admin, limit=1000)
    assert refused.status_code == 422 and isinstance(refused.parsed, models.Problem)
    assert list(refused.parsed.errors[0].loc) == ["query", "limit"]
    mine = me.sync_detailed(client=admin)
    assert mine.status_code == 200 and isinstance(mine.parsed, models.MeRead)
    stranger = client_module.AuthenticatedClient(
        base_url=served, token="forged", raise_on_unexpected_status=True
    )
    unauthorized = me.sync_detailed(client=stranger)
    assert unauthorized.status_code == 401 and isinstance(unauthorized.parsed, models.Problem)
