"""ISO codes as input types: countries (ISO 3166-1 alpha-2), currencies (ISO 4217), languages (ISO 639).

The lists come from maintained packages, never typed in here: pycountry (the Debian iso-codes data:
countries and languages) and iso4217 (the ISO 4217 maintenance agency's own table, with each currency's
minor units). Input is taken in either letter case and stored in the standard's case.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import iso4217
import pycountry
from pydantic import AfterValidator, Field

# Officially assigned ISO 3166-1 alpha-2 codes (249). User-assigned codes (XK for Kosovo, EU) are not.
COUNTRY_CODES: frozenset[str] = frozenset(country.alpha_2 for country in pycountry.countries)


def _fund_codes() -> frozenset[str]:
    # The ISO table flags funds (USN "US Dollar (Next day)", CLF, BOV, ...): units of account, not money
    # that a partner is paid in. iso4217's parsed table drops the flag; its raw XML keeps it.
    return frozenset(
        entry.findtext("Ccy").strip()
        for entry in iso4217.raw_xml.findall("CcyTbl/CcyNtry")
        if entry.find("CcyNm") is not None
        and entry.find("CcyNm").get("IsFund", "").lower() == "true"
        and entry.findtext("Ccy")
    )


# Currency -> minor units (2 for FJD, 0 for VUV and JPY, 3 for KWD). Metals, SDR and test codes have
# none (N.A.) and are left out, and so are funds.
_FUNDS = _fund_codes()
CURRENCY_MINOR_UNITS: dict[str, int] = {
    currency.code: currency.exponent
    for currency in iso4217.Currency
    if currency.exponent is not None and currency.code not in _FUNDS
}

# Special ISO 639 codes that name no language: uncoded, multiple, undetermined, no linguistic content.
_SPECIAL_LANGUAGES = frozenset({"mis", "mul", "und", "zxx"})


def _languages() -> dict[str, str]:
    """Every accepted spelling (lower case) -> the code stored: ISO 639-1 where the language has one,
    else its ISO 639-3 code (the rule of BCP 47 language tags: the shortest code)."""
    codes: dict[str, str] = {}
    for language in pycountry.languages:
        if language.alpha_3 in _SPECIAL_LANGUAGES:
            continue
        stored = getattr(language, "alpha_2", None) or language.alpha_3
        for spelling in (stored, language.alpha_3, getattr(language, "bibliographic", None)):
            if spelling:
                codes[spelling] = stored
    return codes


LANGUAGE_CODES: dict[str, str] = _languages()


def country_code(value: str) -> str:
    code = value.strip().upper()
    if code not in COUNTRY_CODES:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. FJ, AU, NZ)")
    return code


def currency_code(value: str) -> str:
    code = value.strip().upper()
    if code not in CURRENCY_MINOR_UNITS:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. FJD, AUD, USD)")
    return code


def language_code(value: str) -> str:
    code = LANGUAGE_CODES.get(value.strip().lower())
    if code is None:
        raise ValueError(f"{value!r} is not an ISO 639 language code (e.g. en, fj, hif)")
    return code


def money_step(currency: str) -> Decimal:
    """The smallest amount of `currency` the platform stores: its minor unit, but never below a cent,
    as money columns keep two decimal places (a KWD amount is kept to 0.01, not 0.001)."""
    return Decimal(1).scaleb(-min(CURRENCY_MINOR_UNITS[currency], 2))


IsoCountry = Annotated[
    str,
    Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2", examples=["FJ"]),
    AfterValidator(country_code),
]
IsoCurrency = Annotated[
    str,
    Field(min_length=3, max_length=3, description="ISO 4217", examples=["FJD"]),
    AfterValidator(currency_code),
]
IsoLanguage = Annotated[
    str,
    Field(
        min_length=2,
        max_length=3,
        description="ISO 639: the two-letter code where the language has one, else ISO 639-3",
        examples=["fj"],
    ),
    AfterValidator(language_code),
]
