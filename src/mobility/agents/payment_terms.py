"""A partner's payment terms: what an agent or broker earns for a placement, as a typed schema.

Stored in the partner's `paymentTerms` JSON column, in the API's camelCase:

    {"type": "flat", "amount": "250.00", "currency": "FJD", "dueDays": 30,
     "overrides": {"AU": {"type": "percent", "percent": "5", "dueDays": 45},
                   "NZ": {"type": "flat", "amount": "400.00", "currency": "NZD", "dueDays": 30}}}

- `flat`: a fixed `amount` in `currency` (ISO 4217) per placement.
- `percent`: `percent` of the placement's salary, in the salary's own currency (the placement holds
  it; the platform converts no currencies), so a percent term names none.
- `dueDays`: days from the event that creates the payable (the deployment, DESIGN.md) to its due date.
- `overrides`: terms for placements in a given destination country (ISO 3166-1 alpha-2 keys, the
  placement's country), replacing the default whole; overrides do not nest.
Amounts and percentages are decimals, never floats: JSON numbers or strings, written back as strings.
An amount has no more decimals than the currency has minor units (none for VUV and JPY), and at most
two (money columns are Numeric(12, 2)). A flat zero is allowed (a country where the partner earns
nothing); a percentage is above zero.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from mobility.core.iso_codes import IsoCountry, IsoCurrency, country_code, money_step
from mobility.core.schemas import InputModel

MAX_OVERRIDES = 50
MAX_DUE_DAYS = 365
# Numeric(12, 2): ten digits before the point.
MAX_AMOUNT = Decimal("9999999999.99")


def _decimal_places_at_most(value: Decimal, step: Decimal, what: str) -> Decimal:
    if value != value.quantize(step):
        places = -step.as_tuple().exponent
        raise ValueError(
            f"{what} is a whole number" if places == 0 else f"{what} has at most {places} decimals"
        )
    return value.quantize(step)


DueDays = Annotated[int, Field(ge=0, le=MAX_DUE_DAYS, description="Days from the deployment to the due date")]


class FlatTerm(InputModel):
    type: Literal["flat"]
    amount: Decimal = Field(ge=0, le=MAX_AMOUNT, examples=["250.00"])
    currency: IsoCurrency
    due_days: DueDays

    @model_validator(mode="after")
    def _minor_units(self) -> FlatTerm:
        self.amount = _decimal_places_at_most(
            self.amount, money_step(self.currency), f"A {self.currency} amount"
        )
        return self


class PercentTerm(InputModel):
    type: Literal["percent"]
    percent: Decimal = Field(gt=0, le=100, examples=["5"], description="Of the placement's salary")
    due_days: DueDays

    @field_validator("percent")
    @classmethod
    def _hundredths(cls, value: Decimal) -> Decimal:
        return _decimal_places_at_most(value, Decimal("0.01"), "A percentage")


Term = Annotated[FlatTerm | PercentTerm, Field(discriminator="type")]


class _Overrides(InputModel):
    overrides: dict[IsoCountry, Term] = Field(
        default_factory=dict, max_length=MAX_OVERRIDES, description="By destination country"
    )

    @field_validator("overrides", mode="before")
    @classmethod
    def _one_key_per_country(cls, value: Any) -> Any:
        # "au" and "AU" would both become AU, one silently replacing the other.
        if isinstance(value, dict):
            seen: set[str] = set()
            for key in value:
                try:
                    code = country_code(key) if isinstance(key, str) else key
                except ValueError:
                    continue  # the key's own validation reports it
                if code in seen:
                    raise ValueError(f"The country {code} is given twice")
                seen.add(code)
        return value


class FlatTerms(_Overrides, FlatTerm):
    pass


class PercentTerms(_Overrides, PercentTerm):
    pass


PaymentTerms = Annotated[FlatTerms | PercentTerms, Field(discriminator="type")]


def terms_for(terms: FlatTerms | PercentTerms, country: str | None) -> FlatTerm | PercentTerm:
    """The terms that apply to a placement in `country`: its override, else the default."""
    if country is not None and country in terms.overrides:
        return terms.overrides[country]
    return terms
