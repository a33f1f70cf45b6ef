"""STYLE rule 16: layers point one way. `mobility.core` imports nothing from a domain package or from
`mobility.models`: the rules that name domain models live above it (mobility.authz), and the
application wires them in (mobility.app_session, mobility.main). Read from the source, every import
(function-level ones too), so the cycle cannot come back unnoticed."""

from __future__ import annotations

import ast
from pathlib import Path

import mobility.core

CORE = Path(mobility.core.__file__).resolve().parent


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, relative imports resolved within mobility.core."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "mobility.core" if node.level == 1 else "mobility"
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from mobility import models` names a module through the attribute.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names if module == "mobility"]
    return found


def outside_core(module: str) -> bool:
    return (module == "mobility" or module.startswith("mobility.")) and not (
        module == "mobility.core" or module.startswith("mobility.core.")
    )


def test_core_imports_nothing_above_it() -> None:
    offending = [
        f"src/mobility/core/{path.name}:{line}: {module}"
        for path in sorted(CORE.glob("*.py"))
        for line, module in imported_modules(path)
        if outside_core(module) and module != "mobility"
    ]
    assert not offending, "core/ imports from above it (STYLE rule 16):\n" + "\n".join(offending)


def test_the_check_sees_every_form() -> None:
    source = (
        "import mobility.models\nfrom mobility import models\nfrom mobility.audit.models import AuditLog\n"
        "def f():\n    from mobility.auth import service\n"
    )
    path = Path(__file__).with_name("_probe_imports.py")
    try:
        path.write_text(source, encoding="utf-8")
        modules = [
            module
            for _line, module in imported_modules(path)
            if outside_core(module) and module != "mobility"
        ]
    finally:
        path.unlink()
    assert modules == ["mobility.models", "mobility.models", "mobility.audit.models", "mobility.auth"]
