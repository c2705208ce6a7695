"""Unit tests of domain/decimals.py: the text of a decimal is exact and never an exponent."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attain_server.domain.decimals import (
    DecimalFormatError,
    _parse_strictly,
    decimal_text,
    parse_decimal,
    quantize_down,
)

# Decimals as the domain holds them: parsed (up to 28 digits, 10 places), their differences
# (net lines), and the odd ones arithmetic can make (positive exponents, tiny values).
decimals = st.builds(
    lambda digits, exponent, negative: Decimal((int(negative), tuple(digits), exponent)),
    st.lists(st.integers(0, 9), min_size=1, max_size=28),
    st.integers(-12, 4),
    st.booleans(),
)


@given(decimals)
def test_decimal_text_is_plain_notation(value: Decimal) -> None:
    text = decimal_text(value)
    assert text == format(value, "f")
    assert "E" not in text
    assert Decimal(text) == value


def test_decimal_text_of_values_str_would_write_with_an_exponent() -> None:
    assert decimal_text(Decimal("1E+3")) == "1000"
    assert decimal_text(Decimal("0.0000001")) == "0.0000001"
    assert decimal_text(parse_decimal("12.50")) == "12.50"


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=12, min_value=-(10**15), max_value=10**15
    ),
    st.integers(min_value=0, max_value=12),
)
def test_quantize_down_cuts_towards_zero(value: Decimal, places: int) -> None:
    with localcontext() as ctx:
        ctx.prec = 60
        expected = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    got = quantize_down(value, places)
    assert got == expected and str(got) == str(expected)
    assert abs(got) <= abs(value)


@given(
    st.one_of(
        st.text(alphabet="0123456789.+-e _٣", max_size=40),
        st.from_regex(r"\A[0-9]{0,30}(\.[0-9]{0,12})?\Z"),
    )
)
def test_parse_decimal_takes_the_usual_text_as_its_rules_do(text: str) -> None:
    _agrees_with_the_rules(text)


def _agrees_with_the_rules(text: str) -> None:
    try:
        expected: Decimal | str = _parse_strictly(text)
    except DecimalFormatError as exc:
        expected = str(exc)
    try:
        got: Decimal | str = parse_decimal(text)
    except DecimalFormatError as exc:
        got = str(exc)
    assert type(got) is type(expected) and got == expected
    if isinstance(got, Decimal):
        assert got.as_tuple() == Decimal(text).as_tuple()  # the same digits and exponent


@pytest.mark.parametrize(
    "text",
    [
        "1." + "1" * 10,
        "1." + "1" * 11,
        "9" * 28,
        "9" * 29,
        "0" * 40 + "1",
        "9" * 18 + "." + "9" * 10,
        "9" * 19 + "." + "9" * 10,
        "1.",
        ".5",
        "",
        "1.2.3",
    ],
)
def test_parse_decimal_at_the_limits(text: str) -> None:
    _agrees_with_the_rules(text)


@pytest.mark.parametrize("text", ["١٢", "٣", "12.٣", "１２", "12\n"])
def test_parse_decimal_takes_ascii_digits_only(text: str) -> None:
    """Decimal() reads any Unicode digit and strips whitespace; the wire format does not."""
    with pytest.raises(DecimalFormatError, match=r"is not a decimal number like 1234\.50"):
        parse_decimal(text)


def test_a_refused_decimal_is_quoted_short() -> None:
    with pytest.raises(DecimalFormatError) as refused:
        parse_decimal("x" * 1_000_000)
    assert len(str(refused.value)) < 120
