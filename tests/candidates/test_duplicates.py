"""Duplicate keys (candidates/duplicates.py). Similarities are worked out by hand from the rule:
Indel similarity = 100 * (1 - (inserted + deleted characters) / (sum of both lengths)), the better of
the words sorted and the spaces removed."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobility.candidates.duplicates import (
    NAME_THRESHOLD,
    PersonKey,
    email_key,
    likely_same_person,
    name_key,
    name_similarity,
    national_id_key,
    passport_key,
)

BORN = date(1996, 4, 12)


def test_passport_key_is_the_country_and_the_normalised_number() -> None:
    assert passport_key(" fb 12-3456 ", "fj") == "FJ:FB123456"
    assert passport_key("FB123456", "FJ") == passport_key("fb-123456", "fj")
    # The same number from two countries is two passports.
    assert passport_key("FB123456", "FJ") != passport_key("FB123456", "TO")
    with pytest.raises(ValueError):
        passport_key("FB123456", "UK")
    with pytest.raises(ValueError):
        passport_key("N/A", "FJ")


def test_national_id_and_email_keys() -> None:
    assert national_id_key("1234 5678-9012", "ph") == "PH:123456789012"
    assert email_key(" Mere.Tuilagi@Example.COM ") == "mere.tuilagi@example.com"


@pytest.mark.parametrize(
    ("first", "last", "key"),
    [
        ("Mere", "Tuilagi", "mere tuilagi"),
        ("Jos\u00e9", "M\u00fcller", "jose muller"),
        ("Jose\u0301", "Mu\u0308ller", "jose muller"),  # the same letters typed decomposed
        ("\u041c\u0430\u0440\u0438\u044f", "\u0418\u0432\u0430\u043d\u043e\u0432\u0430", "mariya ivanova"),
        ("Nguy\u1ec5n", "V\u0103n An", "nguyen van an"),
        ("Taufa\u02bbahau", "Tupou", "taufaahau tupou"),  # the ʻokina dropped
        ("Sean", "O'Brien", "sean obrien"),
        ("Sean", "O\u2019Brien", "sean obrien"),
        ("Jean-Luc", "Picard", "jean luc picard"),
        ("  MERE ", " TUILAGI", "mere tuilagi"),
        ("Ute", "Stra\u00dfe", "ute strasse"),
    ],
)
def test_name_keys(first: str, last: str, key: str) -> None:
    assert name_key(first, last) == key


@pytest.mark.parametrize(
    ("a", "b", "score"),
    [
        (("Josefa", "Ratu"), ("Ratu", "Josefa"), 100.0),  # first and last name swapped
        (("Jone", "Ratu"), ("Joni", "Ratu"), 100 * (1 - 2 / 18)),  # one letter of 9: 88.9
        (("Mohammed", "Ali"), ("Muhammad", "Ali"), 100 * (1 - 4 / 24)),  # two letters of 12: 83.3
        (("Maria", "Lopez"), ("Maria", "Garcia"), 100 * (1 - 11 / 23)),  # 52.2
        (
            ("\u041c\u0430\u0440\u0438\u044f", "\u0418\u0432\u0430\u043d\u043e\u0432\u0430"),
            ("Maria", "Ivanova"),
            100 * (1 - 1 / 27),
        ),
    ],
)
def test_name_similarity(a: tuple[str, str], b: tuple[str, str], score: float) -> None:
    assert name_similarity(name_key(*a), name_key(*b)) == pytest.approx(score)


def test_spaces_inside_a_name_do_not_matter() -> None:
    assert name_similarity(name_key("Ronald", "Mc Donald"), name_key("Ronald", "McDonald")) == 100.0
    assert name_similarity(name_key("Xiao Long", "Li"), name_key("XiaoLong", "Li")) == 100.0


def test_likely_duplicates_need_the_same_date_of_birth() -> None:
    mere = PersonKey.of("Mere", "Tuilagi", BORN)
    assert likely_same_person(mere, PersonKey.of("Mere", "Tuilagi", BORN))
    assert likely_same_person(mere, PersonKey.of("Tuilagi", "Mere", BORN))
    assert not likely_same_person(mere, PersonKey.of("Mere", "Tuilagi", date(1996, 4, 13)))
    assert not likely_same_person(
        PersonKey.of("Mere", "Tuilagi", None), PersonKey.of("Mere", "Tuilagi", None)
    )
    assert likely_same_person(PersonKey.of("Mohammed", "Ali", BORN), PersonKey.of("Muhammad", "Ali", BORN))
    assert not likely_same_person(PersonKey.of("Maria", "Lopez", BORN), PersonKey.of("Maria", "Garcia", BORN))


def test_the_threshold_is_inclusive() -> None:
    # One changed letter in five: 100 * (1 - 2/10) = 80, the threshold itself; in four: 75.
    assert NAME_THRESHOLD == 80
    assert likely_same_person(PersonKey(BORN, "abcde"), PersonKey(BORN, "abcdx"))
    assert not likely_same_person(PersonKey(BORN, "abcd"), PersonKey(BORN, "abcx"))
    assert name_similarity("", "mere") == 0.0


NAMES = st.text(st.characters(categories=["L", "M", "Zs"], include_characters="'-."), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(first=NAMES, last=NAMES, other_first=NAMES, other_last=NAMES)
def test_name_keys_and_similarity_are_well_behaved(
    first: str, last: str, other_first: str, other_last: str
) -> None:
    key, other = name_key(first, last), name_key(other_first, other_last)
    assert set(key) <= set("abcdefghijklmnopqrstuvwxyz0123456789 ")
    assert key == key.strip() and "  " not in key
    assert name_key(*key.partition(" ")[::2]) == key  # a key is its own key
    score = name_similarity(key, other)
    assert 0 <= score <= 100
    assert score == pytest.approx(name_similarity(other, key))
    assert name_key(last, first) == " ".join(
        part for part in (name_key(last, ""), name_key(first, "")) if part
    )
    if key:
        assert name_similarity(key, key) == 100
        assert name_similarity(key, name_key(last, first)) == 100  # order never matters
