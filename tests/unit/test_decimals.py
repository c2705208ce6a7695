"""Unit tests of domain/decimals.py: the text of a decimal is exact and never an exponent."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, localcontext

from hypothesis import given
from hypothesis import strategies as st

from attain_server.domain.decimals import decimal_text, parse_decimal, quantize_down

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
