"""A candidate's human reference number, `WTI-2026-000123`: the tenant's code, the year of
registration, and the tenant's sequence number of that year, zero-padded to six digits (a
seventh digit appears after 999,999 registrations in one year; nothing wraps).

Pure formatting and parsing. Allocating the sequence number is the service's job, in the creating
transaction, from a counter row per (tenant, year) taken with SELECT ... FOR UPDATE (or an UPDATE ...
RETURNING of it), so concurrent registrations get distinct numbers and a rolled-back one leaves no hole
in what was committed. The year is the registration's year in UTC (no tenant time zone exists yet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The candidates.referenceNumber column. A tenant code of up to 20 characters fits with a 6-digit
# sequence (20 + 1 + 4 + 1 + 6); tenant codes may be 32: such a tenant needs a wider column.
MAX_LENGTH = 32
SEQUENCE_DIGITS = 6
FIRST_YEAR, LAST_YEAR = 2000, 9999

# A tenant code as tenants/schemas.py allows it: A-Z, 0-9 and dashes, not at either end.
_TENANT_CODE = r"[A-Z0-9](?:[A-Z0-9-]*[A-Z0-9])?"
_REFERENCE = re.compile(rf"^(?P<tenant>{_TENANT_CODE})-(?P<year>\d{{4}})-(?P<sequence>\d{{1,12}})$")


@dataclass(frozen=True, order=True)
class Reference:
    tenant_code: str
    year: int
    sequence: int

    def __post_init__(self) -> None:
        if not re.fullmatch(_TENANT_CODE, self.tenant_code):
            raise ValueError(f"{self.tenant_code!r} is not a tenant code")
        if not FIRST_YEAR <= self.year <= LAST_YEAR:
            raise ValueError(f"A reference's year lies in {FIRST_YEAR}..{LAST_YEAR}")
        if self.sequence < 1:
            raise ValueError("A reference's sequence number starts at 1")
        if len(str(self)) > MAX_LENGTH:
            raise ValueError(f"{self} is longer than a reference number may be ({MAX_LENGTH} characters)")

    def __str__(self) -> str:
        return f"{self.tenant_code}-{self.year:04d}-{self.sequence:0{SEQUENCE_DIGITS}d}"


def format_reference(tenant_code: str, year: int, sequence: int) -> str:
    """ "WTI-2026-000123" for ("WTI", 2026, 123); ValueError for a part out of range."""
    return str(Reference(tenant_code, year, sequence))


def parse_reference(text: str) -> Reference:
    """The parts of a reference number as a person may type it into a search box: any letter case,
    white space around, fewer leading zeros ("wti-2026-123" is WTI-2026-000123). ValueError if it is
    not one. The tenant code may itself hold dashes: the year and number are the last two parts."""
    found = _REFERENCE.match(text.strip().upper())
    if found is None:
        raise ValueError(f"{text!r} is not a reference number like WTI-2026-000123")
    return Reference(found["tenant"], int(found["year"]), int(found["sequence"]))
