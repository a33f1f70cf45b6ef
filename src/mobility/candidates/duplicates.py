"""Duplicate keys: what makes two candidate records the same person, or likely the same person.

Pure functions; the candidates service stores or computes these keys and asks the database.

Refused as duplicates (409) within a tenant:
- the same passport: `passport_key` = nationality + normalised number ("FJ:FB123456"); passport
  numbers are unique only within the issuing country, so the nationality is part of the key;
- the same national id: `national_id_key`, likewise with the nationality;
- the same e-mail address: `email_key`, the address in lower case (as logins compare them).

Listed as likely duplicates (not refused): the same date of birth and similar names,
`likely_same_person`. The names are compared by `name_key`: first and last name (middle names are
left out: they are recorded inconsistently), transliterated to ASCII with anyascii (Мария -> Mariya,
Nguyễn -> Nguyen, Müller -> Muller, Straße -> Strasse), lower case, apostrophes and the ʻokina dropped
(O'Brien = OBrien, Taufaʻahau = Taufaahau), every other mark a word break. `name_similarity` is
rapidfuzz's score (0..100) for the two keys, the better of:
- the token-sort ratio: words in any order (first and last name swapped on a form), and
- the plain ratio of the keys without spaces ("Mc Donald" = "McDonald", "LiXiaoLong" = "Li Xiao Long").
Both are Indel similarity: 100 * (1 - edits / total length), edits counting inserted and deleted
characters (a changed letter is two). `NAME_THRESHOLD` = 80 lets one changed letter through in names
of 5+ characters and two in names of 10+ (Mohammed Ali ~ Muhammad Ali: 83), while the date of birth,
compared exactly, keeps the list short. Names in different scripts that transliterate apart
(an Arabic name without vowels, محمد -> mhmd) are not found; travel documents give the Latin form.

Lookup: in a tenant, candidates sharing a date of birth are few (a million candidates over 60 birth
years are ~45 per date), so the service selects by (tenantId, dateOfBirth) and scores those in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from anyascii import anyascii
from rapidfuzz import fuzz

from mobility.candidates.profile import normalise_national_id, normalise_passport_number
from mobility.core.iso_codes import country_code

NAME_THRESHOLD = 80.0

_APOSTROPHES = re.compile(r"['`\u2018\u2019\u02bb\u02bc]")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def passport_key(number: str, nationality: str) -> str:
    """ "FJ:FB123456": the issuing country and the number, normalised (ValueError if either is not)."""
    return f"{country_code(nationality)}:{normalise_passport_number(number)}"


def national_id_key(number: str, nationality: str) -> str:
    return f"{country_code(nationality)}:{normalise_national_id(number)}"


def email_key(email: str) -> str:
    return email.strip().lower()


def name_key(first_name: str, last_name: str) -> str:
    """The words of the name in ASCII lower case, in their order, one space apart."""
    ascii_text = _APOSTROPHES.sub("", anyascii(f"{first_name} {last_name}")).lower()
    return " ".join(_NON_WORD.sub(" ", ascii_text).split())


def name_similarity(key_a: str, key_b: str) -> float:
    """0..100: how alike two name keys are (see the module's doc); 0 if either is empty."""
    if not key_a or not key_b:
        return 0.0
    return max(
        fuzz.token_sort_ratio(key_a, key_b),
        fuzz.ratio(key_a.replace(" ", ""), key_b.replace(" ", "")),
    )


@dataclass(frozen=True)
class PersonKey:
    """What the likely-duplicate rule compares of a candidate."""

    date_of_birth: date | None
    name_key: str

    @classmethod
    def of(cls, first_name: str, last_name: str, date_of_birth: date | None) -> PersonKey:
        return cls(date_of_birth, name_key(first_name, last_name))


def likely_same_person(a: PersonKey, b: PersonKey) -> bool:
    """The same date of birth (both known) and names at least NAME_THRESHOLD alike."""
    if a.date_of_birth is None or a.date_of_birth != b.date_of_birth:
        return False
    return name_similarity(a.name_key, b.name_key) >= NAME_THRESHOLD
