"""The sandbox's cards: Luhn, brands from the IIN, expiry and CVC checks, test-card behaviours."""

from __future__ import annotations

from datetime import date

import pytest

from sandboxpay.cards import (
    SUCCEEDS,
    TEST_CARDS,
    UNKNOWN_BRAND,
    CardError,
    CardSummary,
    Outcome,
    brand_of,
    inspect,
    luhn_valid,
)

TODAY = date(2026, 6, 15)


def _card(
    number: object = "4242424242424242", month: object = 12, year: object = 2030
) -> CardSummary:
    return inspect(number, month, year, "123", TODAY)


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4242424242424242", True),
        ("4242424242424241", False),
        ("79927398713", True),  # the textbook Luhn example
        ("79927398710", False),
        ("378282246310005", True),
        ("0000000000000000", True),
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", "visa"),
        ("4000056655665556", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("371449635398431", "amex"),
        ("6011111111111117", "discover"),
        ("6445644564456445", "discover"),
        ("3056930009020004", "diners"),
        ("36227206271667", "diners"),
        ("3566002020360505", "jcb"),
        ("6200000000000005", "unionpay"),
        ("9999999999999995", UNKNOWN_BRAND),
        ("2720999999999996", "mastercard"),
        ("2721000000000004", UNKNOWN_BRAND),
    ],
)
def test_brand_from_the_iin(number: str, brand: str) -> None:
    assert brand_of(number) == brand


def test_every_test_card_is_a_valid_visa() -> None:
    for number in TEST_CARDS:
        assert luhn_valid(number), number
        assert brand_of(number) == "visa"


@pytest.mark.parametrize(
    ("number", "outcome", "failure_code"),
    [
        ("4242424242424242", Outcome.SUCCEED, ""),
        ("4000000000000002", Outcome.DECLINE, "card_declined"),
        ("4000000000009995", Outcome.DECLINE, "insufficient_funds"),
        ("4000002500003155", Outcome.REQUIRE_AUTH, ""),
    ],
)
def test_test_card_behaviours(number: str, outcome: Outcome, failure_code: str) -> None:
    card = inspect(number, 12, 2030, "123", TODAY)
    assert card.behaviour.outcome is outcome
    assert card.behaviour.failure_code == failure_code
    assert card.last4 == number[-4:]


def test_any_other_valid_card_succeeds() -> None:
    card = inspect("5555 5555 5555 4444", 1, 2031, "1234", TODAY)
    assert card.behaviour == SUCCEEDS
    assert (card.brand, card.last4) == ("mastercard", "4444")


def test_the_summary_keeps_nothing_else_of_the_card() -> None:
    card = inspect("4000-0025-0000-3155", 11, 2029, "987", TODAY)
    text = repr(card)
    for secret in ("4000002500003155", "4000-0025", "987", "2029"):
        assert secret not in text
    assert set(vars(card)) == {"behaviour", "brand", "last4"}


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424241",  # Luhn
        "42424242424",  # too short
        "4" * 20,  # too long
        "4242x42424242424",
        "",
        4242424242424242,  # not a string
        None,
    ],
)
def test_bad_numbers_are_refused_without_echoing_them(number: object) -> None:
    with pytest.raises(CardError) as info:
        _card(number=number)
    assert info.value.code == "incorrect_number"
    assert info.value.param == "card_number"
    if number:
        assert str(number) not in info.value.message


@pytest.mark.parametrize(
    ("month", "year"),
    [(6, 2026), (12, 2026), (1, 2027), (6, 26), (12, 2046)],
)
def test_cards_are_valid_through_their_expiry_month(month: int, year: int) -> None:
    _card(month=month, year=year)


@pytest.mark.parametrize(
    ("month", "year", "code"),
    [
        (5, 2026, "expired_card"),
        (12, 2025, "expired_card"),
        (5, 26, "expired_card"),
        (0, 2030, "invalid_expiry_month"),
        (13, 2030, "invalid_expiry_month"),
        ("12", 2030, "invalid_expiry_month"),
        (True, 2030, "invalid_expiry_month"),
        (12, "2030", "invalid_expiry_year"),
        (12, -1, "invalid_expiry_year"),
        (12, 2047, "invalid_expiry_year"),
        (12, None, "invalid_expiry_year"),
    ],
)
def test_bad_expiry(month: object, year: object, code: str) -> None:
    with pytest.raises(CardError) as info:
        _card(month=month, year=year)
    assert info.value.code == code


@pytest.mark.parametrize("cvc", ["123", "0123"])
def test_cvc_of_three_or_four_digits(cvc: str) -> None:
    inspect("4242424242424242", 12, 2030, cvc, TODAY)


@pytest.mark.parametrize("cvc", ["12", "12345", "12a", "", 123, None, " 123"])
def test_bad_cvc(cvc: object) -> None:
    with pytest.raises(CardError) as info:
        inspect("4242424242424242", 12, 2030, cvc, TODAY)
    assert (info.value.code, info.value.param) == ("invalid_cvc", "cvc")
