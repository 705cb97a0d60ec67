"""Cards as the sandbox sees them at tokenisation: validation (Luhn, expiry, CVC), the brand
from the number's IIN, and the test cards' behaviours as data.

This module is the only code that handles a card number. It returns a `CardSummary` (behaviour,
brand, last 4) and nothing else leaves it: the number, CVC and expiry are checked and dropped.
Error messages never repeat what was sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import Enum
from types import MappingProxyType
from typing import Final


class Outcome(Enum):
    """What charging a token does."""

    SUCCEED = "succeed"
    DECLINE = "decline"
    REQUIRE_AUTH = "require_auth"  # 3-D Secure style: requires_action until confirmed


@dataclass(frozen=True)
class Behaviour:
    outcome: Outcome
    failure_code: str = ""  # for DECLINE: the provider's reason


SUCCEEDS: Final = Behaviour(Outcome.SUCCEED)

# The usual test cards (the numbers Stripe documents, https://docs.stripe.com/testing, which
# is what a developer tries first); issue #11 and ../shared/domain-facts.md (Payments) list the
# behaviours. Any other valid card succeeds.
TEST_CARDS: Final[MappingProxyType[str, Behaviour]] = MappingProxyType(
    {
        "4242424242424242": SUCCEEDS,
        "4000000000000002": Behaviour(Outcome.DECLINE, "card_declined"),
        "4000000000009995": Behaviour(Outcome.DECLINE, "insufficient_funds"),
        "4000002500003155": Behaviour(Outcome.REQUIRE_AUTH),
    }
)

# Brands by IIN (the leading digits), most specific prefixes first within a brand. Ranges from
# the card schemes' published IIN tables (ISO/IEC 7812; as summarised in
# https://en.wikipedia.org/wiki/Payment_card_number#Issuer_identification_number_(IIN)).
# (brand, first IIN, last IIN) compared on the number's first len(first) digits.
IIN_RANGES: Final[tuple[tuple[str, str, str], ...]] = (
    ("amex", "34", "34"),
    ("amex", "37", "37"),
    ("mastercard", "51", "55"),
    ("mastercard", "2221", "2720"),
    ("discover", "6011", "6011"),
    ("discover", "644", "649"),
    ("discover", "65", "65"),
    ("jcb", "3528", "3589"),
    ("diners", "300", "305"),
    ("diners", "36", "36"),
    ("diners", "38", "39"),
    ("unionpay", "62", "62"),
    ("visa", "4", "4"),
)
UNKNOWN_BRAND: Final = "unknown"

# ISO/IEC 7812 card numbers are 8 to 19 digits; payment cards in use are at least 12.
MIN_DIGITS: Final = 12
MAX_DIGITS: Final = 19
_SEPARATORS = re.compile(r"[ -]")
_DIGITS = re.compile(r"[0-9]+")
_CVC = re.compile(r"[0-9]{3,4}")
# Latest expiry accepted: cards are issued for a few years, never decades.
MAX_YEARS_AHEAD: Final = 20


class CardError(ValueError):
    """The card cannot be tokenised. `code` follows the providers' usual names
    (incorrect_number, invalid_expiry_month, invalid_expiry_year, expired_card, invalid_cvc);
    `param` names the offending field."""

    def __init__(self, code: str, param: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.param = param
        self.message = message


@dataclass(frozen=True)
class CardSummary:
    """All that outlives tokenisation."""

    behaviour: Behaviour
    brand: str
    last4: str


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check digit of ISO/IEC 7812 numbers."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def brand_of(digits: str) -> str:
    for brand, first, last in IIN_RANGES:
        prefix = digits[: len(first)]
        if len(prefix) == len(first) and first <= prefix <= last:
            return brand
    return UNKNOWN_BRAND


def behaviour_of(digits: str) -> Behaviour:
    return TEST_CARDS.get(digits, SUCCEEDS)


def normalise_number(card_number: object) -> str:
    """The digits of a card number given as a string (spaces and dashes allowed)."""
    if not isinstance(card_number, str):
        raise CardError("incorrect_number", "card_number", "card_number must be a string")
    digits = _SEPARATORS.sub("", card_number)
    if not _DIGITS.fullmatch(digits) or not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise CardError(
            "incorrect_number",
            "card_number",
            f"card_number must have {MIN_DIGITS} to {MAX_DIGITS} digits",
        )
    if not luhn_valid(digits):
        raise CardError("incorrect_number", "card_number", "the card number is not valid")
    return digits


def check_expiry(exp_month: object, exp_year: object, today: date) -> None:
    """A card is valid through the last day of its expiry month. Two-digit years are 20xx."""
    if isinstance(exp_month, bool) or not isinstance(exp_month, int) or not 1 <= exp_month <= 12:
        raise CardError("invalid_expiry_month", "exp_month", "exp_month must be 1 to 12")
    if isinstance(exp_year, bool) or not isinstance(exp_year, int) or exp_year < 0:
        raise CardError("invalid_expiry_year", "exp_year", "exp_year must be a year")
    year = exp_year + 2000 if exp_year < 100 else exp_year
    if year > today.year + MAX_YEARS_AHEAD:
        raise CardError("invalid_expiry_year", "exp_year", "exp_year is too far in the future")
    if (year, exp_month) < (today.year, today.month):
        raise CardError("expired_card", "exp_year", "the card has expired")


def check_cvc(cvc: object) -> None:
    if not isinstance(cvc, str) or not _CVC.fullmatch(cvc):
        raise CardError("invalid_cvc", "cvc", "cvc must be a string of 3 or 4 digits")


def inspect(
    card_number: object, exp_month: object, exp_year: object, cvc: object, today: date
) -> CardSummary:
    """Validate a card and keep only what a token needs; CardError when it is not valid."""
    digits = normalise_number(card_number)
    check_expiry(exp_month, exp_year, today)
    check_cvc(cvc)
    return CardSummary(behaviour_of(digits), brand_of(digits), digits[-4:])
