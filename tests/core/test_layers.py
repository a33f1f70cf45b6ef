"""Layers point one way (STYLE rules 16 and 19), checked on the source and on a running interpreter.

- Offline tooling (`mobility.ops`: migrations, SQL scripts, Prisma export, backups, seed) is never
  loaded by the API: a fresh interpreter that imports `mobility.main`, creates the app, starts it
  and serves a request has no `mobility.ops` module in `sys.modules`; and no module of the package
  except the CLI (and `mobility.ops` itself) names `mobility.ops` in an import, not even inside a
  function, where the first check could only see it if that function happened to run.

`imports_of` and `package_modules` are for every rule of this kind: a new layer rule is one more
test below that names who may import what.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import mobility

PACKAGE_DIR = Path(mobility.__file__).resolve().parent

OPS = "mobility.ops"
# Who may import the offline tooling, besides itself (migrations/, bench/ and tests/ lie outside the package).
OPS_IMPORTERS = {"mobility.cli"}


def package_modules() -> dict[str, Path]:
    """Every module of the `mobility` package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(module: str, path: Path) -> set[str]:
    """Every module an import statement in the file names, wherever it stands (top level, a function,
    an `if TYPE_CHECKING:` block), relative imports resolved. `from a import b` yields both `a` and
    `a.b`, as `b` may be a module."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_the_cli_imports_the_offline_tooling() -> None:
    modules = package_modules()
    assert "mobility.main" in modules and "mobility.ops.migrations" in modules  # the walk found the package
    offenders = sorted(
        f"{module} imports {name}"
        for module, path in modules.items()
        if not within(module, OPS) and module not in OPS_IMPORTERS
        for name in imports_of(module, path)
        if within(name, OPS)
    )
    assert not offenders, (
        "mobility.ops is offline tooling for the CLI, the migrations and the tests; the API must not "
        "import it (move what the API needs into core/ or its domain):\n" + "\n".join(offenders)
    )


# Run in a fresh interpreter: the test process itself has imported mobility.ops long ago (fixtures
# migrate with it), so its sys.modules proves nothing.
SERVE_ONE_REQUEST = """
import asyncio, json, sys
import httpx
from mobility.core.config import Settings
from mobility.main import create_app

async def main():
    data_dir = sys.argv[1]
    app = create_app(Settings(database_url=f"sqlite:///{data_dir}/api.db", data_dir=data_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            statuses = [(await client.get(path)).status_code for path in ("/openapi.json", "/health")]
    loaded = sorted(name for name in sys.modules if name == "mobility" or name.startswith("mobility."))
    print(json.dumps({"statuses": statuses, "loaded": loaded}))

asyncio.run(main())
"""


def test_the_api_loads_no_offline_tooling(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SERVE_ONE_REQUEST, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    # The app was built and answered (the database is empty: /health says it is not migrated).
    assert report["statuses"] == [200, 503]
    assert "mobility.main" in report["loaded"] and "mobility.health.api" in report["loaded"]
    loaded_ops = [name for name in report["loaded"] if within(name, OPS)]
    assert not loaded_ops, f"the API loaded offline tooling: {loaded_ops}"
