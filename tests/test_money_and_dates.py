"""Reading money and dates the way the business app stores them (SPEC §2, §3)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from bson.decimal128 import Decimal128
from hypothesis import given
from hypothesis import strategies as st

from ledger.parsing import InvalidValue, decimal_of_bid, to_decimal, to_money, to_utc_datetime

D = Decimal


@pytest.mark.parametrize("value, expected", [
    (1200, "1200.00"),
    (0, "0.00"),
    (-35, "-35.00"),
    ("1200.50", "1200.50"),
    ("  1200.5 ", "1200.50"),
    ("1200.505", "1200.51"),       # half-up, not banker's rounding
    ("1200.515", "1200.52"),
    ("1200.525", "1200.53"),       # banker's rounding would give 1200.52
    ("1200.504", "1200.50"),
    ("-1200.505", "-1200.51"),     # half-up is away from zero
    ("1e3", "1000.00"),
    (Decimal128("99.995"), "100.00"),
    (Decimal128("1200.50"), "1200.50"),
    (D("0.005"), "0.01"),
    (D("0.0049999"), "0.00"),
    (0.1 + 0.2, "0.30"),           # its repr is 0.30000000000000004
    (2.675, "2.68"),               # binary 2.67499999…, but its repr is "2.675"
    (1.005, "1.01"),               # binary 1.00499999…, repr "1.005"
    (1200.5, "1200.50"),
    (19.99, "19.99"),
])
def test_money_is_an_exact_decimal_rounded_half_up_to_cents(value, expected):
    money = to_money(value)
    assert isinstance(money, Decimal)
    assert money == D(expected)
    assert money.as_tuple().exponent == -2, "money always carries exactly two places"
    assert str(money) == expected


def test_float_is_read_through_its_shortest_repr_not_its_binary_value():
    assert to_decimal(0.1 + 0.2) == D("0.30000000000000004")
    assert D(2.675) < D("2.675")  # the binary value would round down to 2.67
    assert to_money(2.675) == D("2.68")


@given(st.one_of(st.binary(min_size=16, max_size=16),
                 st.decimals(allow_nan=False, places=2, min_value=-10**15, max_value=10**15).map(
                     lambda amount: Decimal128(amount).bid)))
def test_a_decimal128_decodes_to_the_same_decimal_as_bson_decodes_it(bid):
    """Every 16 bytes, amounts and odd forms alike: the same sign, digits and exponent (NaN, infinity too)."""
    assert repr(decimal_of_bid(bid)) == repr(Decimal128.from_bid(bid).to_decimal())


def test_unrounded_decimal_keeps_quantities_and_prices_exact():
    assert to_decimal("0.3333") == D("0.3333")
    assert to_decimal(3) * to_decimal("33.333") == D("99.999")
    assert to_decimal(Decimal128("12.345")) == D("12.345")


@pytest.mark.parametrize("value, words", [
    (float("nan"), "finite"),
    (float("inf"), "finite"),
    (float("-inf"), "finite"),
    ("NaN", "finite"),
    ("Infinity", "finite"),
    ("-Infinity", "finite"),
    (Decimal128("NaN"), "finite"),
    (Decimal128("Infinity"), "finite"),
    (D("NaN"), "finite"),
    ("abc", "not a number"),
    ("12,50", "not a number"),
    ("twelve hundred", "not a number"),
    ({"$gt": 0}, "object"),
    (True, "not a number"),
    (False, "not a number"),
    (None, "missing"),
    ("", "missing"),
    ("   ", "missing"),
    ([100], "not a number"),
])
def test_unreadable_money_is_rejected_with_a_reason(value, words):
    with pytest.raises(InvalidValue) as raised:
        to_money(value)
    assert raised.value.reason
    assert words in raised.value.reason.lower()


@pytest.mark.parametrize("value", ["1e30", 1e30, Decimal128("1E+40"), "9" * 40])
def test_money_too_large_to_hold_in_cents_is_rejected_not_a_crash(value):
    # Cents of 1e30 need 33 significant digits: more than the decimal context holds.
    # That must be a rejection with a reason (the sync goes on), never an unhandled error.
    with pytest.raises(InvalidValue) as raised:
        to_money(value)
    assert raised.value.reason


# ---- dates ---------------------------------------------------------------------

def _utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("value, expected", [
    ("2026-03-05", _utc(2026, 3, 5)),                                  # date-only: midnight UTC
    ("2026-03-05T10:15:00", _utc(2026, 3, 5, 10, 15)),                 # no offset: UTC
    ("2026-03-05 10:15:00", _utc(2026, 3, 5, 10, 15)),
    ("2026-03-05T10:15:00Z", _utc(2026, 3, 5, 10, 15)),
    ("2026-03-05T10:15:00.250Z", _utc(2026, 3, 5, 10, 15, 0, 250000)),
    ("2026-03-05T10:15:00+00:00", _utc(2026, 3, 5, 10, 15)),
    ("2026-03-05T15:45:00+05:30", _utc(2026, 3, 5, 10, 15)),           # India: 5h30 ahead of UTC
    ("2026-03-05T02:00:00-05:00", _utc(2026, 3, 5, 7, 0)),
    ("2026-03-01T01:00:00+05:30", _utc(2026, 2, 28, 19, 30)),          # crosses to the previous UTC day
    ("  2026-03-05  ", _utc(2026, 3, 5)),
    (_utc(2026, 3, 5, 10, 15), _utc(2026, 3, 5, 10, 15)),
    (datetime(2026, 3, 5, 10, 15), _utc(2026, 3, 5, 10, 15)),          # naive BSON datetime is UTC
    (datetime(2026, 3, 5, 15, 45, tzinfo=timezone(timedelta(hours=5, minutes=30))), _utc(2026, 3, 5, 10, 15)),
    (date(2026, 3, 5), _utc(2026, 3, 5)),
])
def test_dates_are_aware_utc(value, expected):
    moment = to_utc_datetime(value)
    assert moment == expected
    assert moment.utcoffset() == timedelta(0)


def test_date_precision_is_cut_to_milliseconds_like_bson():
    assert to_utc_datetime("2026-03-05T10:15:00.123456Z") == _utc(2026, 3, 5, 10, 15, 0, 123000)
    assert to_utc_datetime(_utc(2026, 3, 5, 10, 15, 0, 123999)) == _utc(2026, 3, 5, 10, 15, 0, 123000)


@pytest.mark.parametrize("value, words", [
    (None, "missing"),
    ("", "missing"),
    ("yesterday", "iso-8601"),
    ("05/03/2026", "iso-8601"),
    ("2026-13-01", "iso-8601"),
    ("2026-02-30", "iso-8601"),
    ({"$date": "2026-03-05"}, "object"),
    (20260305, "not a date"),
    (True, "not a date"),
])
def test_unreadable_dates_are_rejected_with_a_reason(value, words):
    with pytest.raises(InvalidValue) as raised:
        to_utc_datetime(value)
    assert words in raised.value.reason.lower()
