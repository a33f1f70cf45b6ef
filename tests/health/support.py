"""Helpers of the health tests."""

from __future__ import annotations

import ast
from pathlib import Path

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"


def head_revision() -> str:
    """The one revision of migrations/versions that no other revision follows, read from the scripts'
    `revision` / `down_revision` assignments (not from Alembic or the app)."""
    revisions, followed = set(), set()
    for script in VERSIONS.glob("*.py"):
        for node in ast.parse(script.read_text()).body:
            if isinstance(node, ast.AnnAssign | ast.Assign):
                target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                    value = ast.literal_eval(node.value)
                    values = value if isinstance(value, tuple | list) else (value,)
                    (revisions if target.id == "revision" else followed).update(v for v in values if v)
    heads = revisions - followed
    assert len(revisions) > 10 and len(heads) == 1, f"revisions {sorted(revisions)}, heads {sorted(heads)}"
    return heads.pop()
