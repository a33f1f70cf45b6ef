"""The auth package's modules import one another without a cycle (read from their source)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import mobility.auth

PACKAGE = Path(mobility.auth.__file__).resolve().parent


def sibling_imports(source: str) -> set[str]:
    """The modules of mobility.auth that `source` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mobility.auth":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("mobility.auth."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.split(".")[2] for alias in node.names if alias.name.startswith("mobility.auth.")
            }
    return found


def test_no_import_cycle_between_auth_modules() -> None:
    graph = {path.stem: sibling_imports(path.read_text()) for path in PACKAGE.glob("*.py")}
    assert graph["login"] >= {"authentication", "throttling"}  # the parser sees the imports at all
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle in mobility.auth: {error.args[1]}") from None


def test_the_parser_sees_every_form_of_import() -> None:
    source = (
        "from mobility.auth import login as x, sessions\n"
        "from mobility.auth.throttling import hold_throttle\n"
        "def f():\n    import mobility.auth.caller\n"
    )
    assert sibling_imports(source) == {"login", "sessions", "throttling", "caller"}
