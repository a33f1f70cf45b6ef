"""STYLE rule 20: one recipe per kind of change, and its exceptions named. A domain reads with the ORM
(docs/architecture.md); the hot read path (`core.reads.Read`, compiled per scope shape and run on the
request's read connection) and raw driver connections are allowed only where a benchmark showed they
pay, each named below with that benchmark. A new use fails until it is argued into this list."""

from __future__ import annotations

import re
from pathlib import Path

import mobility

SOURCE = Path(mobility.__file__).resolve().parent

ALLOWED = {
    "users/service.py": "GET /users/{id}, bench/auth.py (a): the authenticated read of the speed goal",
    "auth/authentication.py": "the session lookup of every authenticated request (one round trip), bench/auth.py",
    "candidates/service.py": "GET /candidates without a text search, and its ranked name search, bench/candidates.py: the list goal (a) vs (b) and the search p99 goal",
}

HOT_PATH = re.compile(
    r"\bfrom mobility\.core\.reads import\b|\bfrom mobility\.core import reads\b|\bdriver_connection\b|\bread_connection\b"
)


def users_of_the_hot_path() -> set[str]:
    found = set()
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE).as_posix()
        if relative.startswith("core/"):
            continue  # the machinery itself
        if HOT_PATH.search(path.read_text(encoding="utf-8")):
            found.add(relative)
    return found


def test_only_the_allow_listed_modules_use_the_hot_read_path() -> None:
    unlisted = users_of_the_hot_path() - set(ALLOWED)
    assert not unlisted, (
        "core.reads / raw driver connections outside the allow-list (read with the ORM, or add the module "
        "to ALLOWED with the benchmark that justifies it): " + ", ".join(sorted(unlisted))
    )


def test_the_allow_list_is_not_stale() -> None:
    stale = set(ALLOWED) - users_of_the_hot_path()
    assert not stale, f"allow-listed but no longer using the hot path (remove them): {sorted(stale)}"
