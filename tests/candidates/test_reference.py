"""Reference numbers (candidates/reference.py): WTI-2026-000123, tenant code, year, six-digit sequence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mobility.candidates.reference import Reference, format_reference, parse_reference


def test_format() -> None:
    assert format_reference("WTI", 2026, 123) == "WTI-2026-000123"
    assert format_reference("WTI", 2026, 1) == "WTI-2026-000001"
    assert format_reference("WTI", 2026, 999_999) == "WTI-2026-999999"
    assert format_reference("WTI", 2026, 1_000_000) == "WTI-2026-1000000"  # grows, never wraps
    assert format_reference("FIJI-NTPC", 2027, 42) == "FIJI-NTPC-2027-000042"


@pytest.mark.parametrize(
    ("tenant", "year", "sequence"),
    [
        ("WTI", 2026, 0),  # sequences start at 1
        ("WTI", 2026, -5),
        ("WTI", 1999, 1),
        ("WTI", 10000, 1),
        ("wti", 2026, 1),  # tenant codes are upper case
        ("-WTI", 2026, 1),
        ("W TI", 2026, 1),
        ("", 2026, 1),
        ("A" * 21, 2026, 1),  # 21 + 12 = 33 characters: longer than the column (32)
    ],
)
def test_format_refuses(tenant: str, year: int, sequence: int) -> None:
    with pytest.raises(ValueError):
        format_reference(tenant, year, sequence)


def test_the_longest_tenant_code_that_fits() -> None:
    assert len(format_reference("A" * 20, 2026, 1)) == 32


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("WTI-2026-000123", ("WTI", 2026, 123)),
        (" wti-2026-123 ", ("WTI", 2026, 123)),  # typed into a search box
        ("WTI-2026-1000000", ("WTI", 2026, 1_000_000)),
        ("FIJI-NTPC-2027-000042", ("FIJI-NTPC", 2027, 42)),  # a tenant code with a dash
        ("AB-2026-2026-000001", ("AB-2026", 2026, 1)),  # the last two parts are year and number
    ],
)
def test_parse(text: str, parts: tuple[str, int, int]) -> None:
    reference = parse_reference(text)
    assert (reference.tenant_code, reference.year, reference.sequence) == parts
    assert str(reference) == format_reference(*parts)


@pytest.mark.parametrize(
    "text",
    ["WTI-26-000123", "WTI-2026-", "WTI2026000123", "2026-000123", "WTI-2026-000000", "WTI-2026-12a", ""],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_reference(text)


TENANT_CODES = st.from_regex(r"\A[A-Z0-9](?:[A-Z0-9-]{0,18}[A-Z0-9])?\Z")


@given(tenant=TENANT_CODES, year=st.integers(2000, 9999), sequence=st.integers(1, 999_999))
def test_parse_reads_what_format_writes(tenant: str, year: int, sequence: int) -> None:
    text = format_reference(tenant, year, sequence)
    assert parse_reference(text) == Reference(tenant, year, sequence)
    assert text.endswith(f"-{year}-{sequence:06d}") and len(text) <= 32
